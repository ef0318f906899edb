// Contract: paper_gruslys2016, Gruslys, Munos, Danihelka, Lanctot, Graves 2016,
// "Memory-Efficient Backpropagation Through Time" (NeurIPS, arXiv:1606.03401): an
// LSTM over T = 1000 steps (hidden 16, input 8, batch 4; --quick: T = 40) under a
// sweep of byte budgets, as fractions of store-all's peak, for
//   optimal  the rotor DP (Beaumont et al. 2019), which on a chain of identical steps
//            plays the part of Gruslys's BPTT-MSM (it may keep hidden states, F_ck, or
//            everything a step's backward needs, F_all); its O(L^3 M) cost limits it
//            to four budgets at T = 1000 (M = 100 or 200 memory slots);
//   revolve  binomial checkpointing with the most slots that fit the budget;
//   sqrt     uniform segments, k = round(sqrt(L)) (one point) and a sweep of k.
// Planned overhead: analytic_program_time against store-all's (roofline op times,
// backward = 2x forward). Measured overhead: real runs (promises checked), median over
// interleaved rounds. Reported beside the paper's headline: at T = 1000, 95% less
// memory for about one third more time per iteration.
// The LSTM is the zoo's `lstm` (the state (h, c) is one tensor, so steps are stages).
// Writes results/gruslys2016/budgets.{csv,json} and gruslys2016.png.
// Exit status: 0; 2 on errors; 4 when a promise broke.
#include "experiments/common/bench.hpp"

#include <iostream>

using namespace remat;
using namespace remat::papers;

namespace {

constexpr const char* about =
    "paper_gruslys2016: compute overhead against memory budget for an LSTM over T = 1000 steps\n"
    "(optimal, revolve, sqrt); the overhead at about 5% of store-all's memory.";

void run(const DriverOptions& o, int threads) {
  const std::int64_t T = o.quick ? 40 : 1000;
  ModelBench bench(fmt::format("lstm:steps={},hidden=16,input=8,batch=4", T), o.paper);
  const std::size_t full = bench.store_all_peak();
  const int L = bench.view().chain.length();

  const std::vector<double> fractions{1.0, 0.5, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.04, 0.03, 0.02, 0.01};
  // The DP costs O(L^3 M) with M = dp_slots memory slots of ceil(budget / M) bytes: at
  // T = 1000 about half a minute per 100 slots here, so it runs at four budgets, with
  // slots no larger than a few checkpoints (a checkpoint x(i) is cw bytes).
  struct DpPoint { double fraction; int dp_slots; };
  const std::vector<DpPoint> optimal_points =
      o.quick ? std::vector<DpPoint>{{0.5, 200}, {0.2, 200}, {0.15, 200}, {0.1, 200}}
              : std::vector<DpPoint>{{0.2, 100}, {0.1, 100}, {0.05, 200}, {0.02, 100}};
  std::vector<Outcome> outs;
  outs.push_back(bench.plan(Attempt{"store-all", "", std::nullopt, {}}));
  auto add = [&](Outcome x) {
    std::cerr << fmt::format("[gruslys2016] {} {}: {} (plan {:.1f} s)\n", x.attempt.strategy, x.attempt.setting,
                             status_name(x.status), x.plan_seconds);
    outs.push_back(std::move(x));
    return outs.back().feasible() ? std::size_t{0} : outs.back().min_feasible_bytes;
  };
  // revolve at every fraction, then at its smallest feasible budget.
  std::size_t revolve_min = 0;
  for (double f : fractions) {
    std::size_t m = add(bench.plan(Attempt{"revolve", fmt::format("budget {:g}", f), fraction_of(full, f), {}}));
    if (m) revolve_min = m;
  }
  if (revolve_min) add(bench.plan(Attempt{"revolve", "smallest feasible", revolve_min, {}}));
  // optimal at a few fractions, then at its smallest feasible budget when 5% is infeasible.
  std::size_t optimal_min = 0;
  int optimal_min_slots = 0;
  for (const DpPoint& d : optimal_points) {
    StrategyOptions dp;
    dp.dp_slots = d.dp_slots;
    std::size_t m = add(bench.plan(Attempt{"optimal", fmt::format("budget {:g}, {} slots", d.fraction, d.dp_slots),
                                           fraction_of(full, d.fraction), dp}));
    if (m) optimal_min = m, optimal_min_slots = d.dp_slots;
  }
  if (optimal_min) {
    StrategyOptions dp;
    dp.dp_slots = optimal_min_slots;
    add(bench.plan(Attempt{"optimal", fmt::format("smallest feasible, {} slots", optimal_min_slots), optimal_min, dp}));
  }
  // sqrt: the canonical k = round(sqrt(L)), and a sweep of segment counts.
  add(bench.plan(Attempt{"sqrt", "round(sqrt(L)) segments", std::nullopt, {}}));
  for (int k : {2, 4, 8, 16, 64, 128}) {
    if (k >= L) continue;
    StrategyOptions so;
    so.slots = k;
    add(bench.plan(Attempt{"sqrt", fmt::format("{} segments", k), std::nullopt, so}));
  }
  std::vector<Outcome*> ptrs;
  for (auto& x : outs) ptrs.push_back(&x);
  bench.execute(ptrs, o.repeat);

  Table table({"strategy", "setting", "budget_bytes", "budget_fraction", "status", "min_feasible_bytes", "peak_bytes_measured",
               "peak_bytes_predicted", "memory_fraction", "memory_saved", "forward_steps", "forward_steps_per_T",
               "recomputed_ops", "planned_overhead", "measured_overhead", "median_seconds", "plan_seconds",
               "grads_bitwise_equal", "promises_hold"});
  for (const Outcome& x : outs) {
    const bool ok = x.feasible();
    const double frac = static_cast<double>(x.predicted.peak_bytes) / static_cast<double>(full);
    table.add({x.attempt.strategy, x.attempt.setting,
               x.attempt.budget ? Cell{static_cast<std::int64_t>(*x.attempt.budget)} : Cell{},
               x.attempt.budget ? Cell{static_cast<double>(*x.attempt.budget) / static_cast<double>(full)} : Cell{},
               std::string(status_name(x.status)),
               x.status == Status::infeasible ? Cell{static_cast<std::int64_t>(x.min_feasible_bytes)} : Cell{},
               optional_cell(ok, static_cast<std::int64_t>(x.measured.peak_bytes)),
               optional_cell(ok, static_cast<std::int64_t>(x.predicted.peak_bytes)), optional_cell(ok, frac),
               optional_cell(ok, 1.0 - frac), optional_cell(ok && x.stage.has_value(), x.stage ? x.stage->forward_steps : 0),
               optional_cell(ok && x.stage.has_value(), x.stage ? static_cast<double>(x.stage->forward_steps) / static_cast<double>(T) : 0.0),
               optional_cell(ok, x.measured.recomputed_ops), optional_cell(ok, x.planned_overhead),
               optional_cell(ok, x.measured_overhead), optional_cell(ok, x.median_seconds), x.plan_seconds,
               optional_cell(ok, x.grads_bitwise_equal), optional_cell(ok, x.promises_hold)});
  }
  std::cout << fmt::format("{}: {} chain stages, store-all peak {} bytes, step {:.3f} s (median)\n", bench.spec(), L,
                           full, bench.store_all_median());
  std::cout << fmt::format("{:<9} {:<24} {:>10} {:>9} {:>9} {:>10} {:>10}\n", "strategy", "setting", "peak", "memory",
                           "saved", "planned", "measured");
  for (const Outcome& x : outs) {
    if (!x.feasible()) {
      std::cout << fmt::format("{:<9} {:<24} infeasible: smallest feasible budget {} bytes ({:.1f}% of store-all)\n",
                               x.attempt.strategy, x.attempt.setting, x.min_feasible_bytes,
                               100.0 * static_cast<double>(x.min_feasible_bytes) / static_cast<double>(full));
      continue;
    }
    const double frac = static_cast<double>(x.measured.peak_bytes) / static_cast<double>(full);
    std::cout << fmt::format("{:<9} {:<24} {:>10} {:>8.1f}% {:>8.1f}% {:>+9.1f}% {:>+9.1f}%\n", x.attempt.strategy,
                             x.attempt.setting, x.measured.peak_bytes, 100 * frac, 100 * (1 - frac), 100 * x.planned_overhead,
                             100 * x.measured_overhead);
  }
  nlohmann::json meta{{"threads", threads}, {"repeat", o.repeat}, {"model", bench.spec()},
                      {"store_all_peak_bytes", full}, {"stages", L}, {"checkpoint_bytes", bench.view().chain.cw.at(1)},
                      {"taped_step_bytes", bench.view().chain.cbw.at(1)},
                      {"store_all_median_seconds", bench.store_all_median()}};
  write_results(o, "budgets", table, meta);
}

}  // namespace

int main(int argc, char** argv) { return paper_main(argc, argv, "gruslys2016", about, run); }
