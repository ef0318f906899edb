// Contract: paper_kirisame2021, Kirisame, Lyubomirsky, Haan, Brennan, He, Roesch, Chen,
// Tatlock 2021, "Dynamic Tensor Rematerialization" (ICLR, arXiv:2006.09616):
// Part 1 (slowdown): every greedy heuristic (greedy_heuristics(): dtr, dtr-eq, dtr-local,
//   lru, size, msps) on mlp, resmlp, transformer and unet (small sizes; --quick: tiny),
//   at budgets from 1.0 down to 0.2 of store-all's peak. Slowdown = time / store-all's,
//   planned (analytic_program_time) and measured (real runs, promises checked, median
//   over interleaved rounds). Budgets the greedy runtime cannot meet are reported as
//   infeasible (with the least budget it named) or failed (thrashing), as DTR's
//   figures leave them out. With --onnx PATH (scripts/export_models.py), the same sweep
//   runs on each real architecture too (rows named onnx:PATH).
// Part 2 (unit chain): the claim that an N-layer linear network trains with an
//   O(sqrt(N)) budget using O(N) tensor operations. mlp with N layers, width 16, batch 4
//   (one activation = 256 bytes; N = 100, 400, 1600; --quick: 16, 64), budget =
//   c sqrt(N) activations for c = 2 (the claim) and c = 4, every heuristic, and revolve
//   at the same byte budget for reference; reported: recomputed ops / N. A heuristic
//   that was infeasible or recomputed more than 10 N ops at one N is skipped (status
//   "skipped") at the next: its planning time grows with its recomputations.
// Writes results/kirisame2021/{slowdown,unit_chain}.{csv,json}, kirisame2021.png and
// unit_chain.png. Exit status: 0; 2 on errors; 4 when a promise broke.
#include "experiments/common/bench.hpp"

#include <iostream>

using namespace remat;
using namespace remat::papers;

namespace {

constexpr const char* about =
    "paper_kirisame2021: DTR's greedy heuristics, slowdown against budget ratio on four models,\n"
    "and recomputed ops at a 2 sqrt(N) budget on an N-layer linear chain.";

Cell status_or(const Outcome& x, Cell value) { return x.feasible() ? value : Cell{}; }

void run(const DriverOptions& o, int threads) {
  const std::vector<std::string> specs =
      o.quick ? std::vector<std::string>{"mlp:layers=8,width=16,batch=4", "resmlp:layers=8,width=16,batch=4",
                                         "transformer:layers=2,width=16,heads=2,seq=8,batch=2,vocab=32",
                                         "unet:levels=2,width=4,batch=1,image=16"}
              : std::vector<std::string>{"mlp:layers=32,width=256,batch=64", "resmlp:layers=32,width=256,batch=64",
                                         "transformer:layers=4,width=64,heads=4,seq=64,batch=4,vocab=256",
                                         "unet:levels=3,width=16,batch=4,image=32"};
  const std::vector<double> ratios = o.quick ? std::vector<double>{1.0, 0.6, 0.3}
                                             : std::vector<double>{1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2};

  // ---- Part 1: slowdown against budget ratio ----
  Table slowdown({"model", "heuristic", "budget_ratio", "budget_bytes", "status", "min_feasible_bytes", "error",
                  "peak_bytes_measured", "peak_bytes_predicted", "recomputed_ops", "planned_slowdown", "measured_slowdown",
                  "median_seconds", "plan_seconds", "grads_bitwise_equal", "promises_hold"});
  auto slowdown_on = [&](ModelBench& bench) {
    const std::size_t full = bench.store_all_peak();
    std::vector<Outcome> outs;
    for (const auto& h : greedy_heuristics())
      for (double r : ratios) {
        StrategyOptions so;
        so.heuristic = h;
        outs.push_back(bench.plan(Attempt{"greedy", fmt::format("budget {:g}", r), fraction_of(full, r), so}));
      }
    std::vector<Outcome*> ptrs;
    for (auto& x : outs) ptrs.push_back(&x);
    bench.execute(ptrs, o.repeat);
    std::cout << fmt::format("{} (store-all peak {} bytes, step {:.4f} s): planned / measured slowdown by budget ratio\n",
                             bench.spec(), full, bench.store_all_median());
    std::cout << fmt::format("  {:<10}", "heuristic");
    for (double r : ratios) std::cout << fmt::format(" {:>11g}", r);
    std::cout << "\n";
    for (std::size_t hi = 0; hi < greedy_heuristics().size(); ++hi) {
      std::cout << fmt::format("  {:<10}", greedy_heuristics()[hi]);
      for (std::size_t ri = 0; ri < ratios.size(); ++ri) {
        const Outcome& x = outs[hi * ratios.size() + ri];
        const double budget_ratio = ratios[ri];
        slowdown.add({bench.spec(), x.attempt.options.heuristic, budget_ratio,
                      static_cast<std::int64_t>(*x.attempt.budget), std::string(status_name(x.status)),
                      x.status == Status::infeasible ? Cell{static_cast<std::int64_t>(x.min_feasible_bytes)} : Cell{},
                      x.status == Status::failed ? Cell{x.error} : Cell{},
                      status_or(x, static_cast<std::int64_t>(x.measured.peak_bytes)),
                      status_or(x, static_cast<std::int64_t>(x.predicted.peak_bytes)), status_or(x, x.measured.recomputed_ops),
                      status_or(x, 1.0 + x.planned_overhead), status_or(x, 1.0 + x.measured_overhead),
                      status_or(x, x.median_seconds), x.plan_seconds, status_or(x, x.grads_bitwise_equal),
                      status_or(x, x.promises_hold)});
        if (x.feasible())
          std::cout << fmt::format(" {:>5.2f}/{:<5.2f}", 1.0 + x.planned_overhead, 1.0 + x.measured_overhead);
        else
          std::cout << fmt::format(" {:>11}", x.status == Status::infeasible ? "infeasible" : "thrashing");
      }
      std::cout << "\n";
    }
  };
  for (const auto& spec : specs) {
    std::cerr << fmt::format("[kirisame2021] {}\n", spec);
    ModelBench bench(spec, o.paper);
    slowdown_on(bench);
  }
  for (Model& real : real_models(o)) {  // --onnx: the same sweep on real architectures
    ModelBench bench(std::move(real), o.paper);
    slowdown_on(bench);
  }

  // ---- Part 2: the unit chain ----
  const std::vector<int> lengths = o.quick ? std::vector<int>{16, 64} : std::vector<int>{100, 400, 1600};
  const std::int64_t width = 16, batch = 4, activation = width * batch * 4;
  Table unit({"N", "c", "budget_activations", "budget_bytes", "strategy", "status", "min_feasible_bytes", "peak_bytes_measured",
              "peak_activations", "store_all_peak_activations", "recomputed_ops", "recomputed_per_N", "forward_ops",
              "store_all_forward_ops", "grads_bitwise_equal", "promises_hold"});
  std::cout << fmt::format("unit chain (mlp, width {}, batch {}: one activation = {} bytes): recomputed ops / N\n", width,
                           batch, activation);
  std::map<std::pair<std::string, double>, double> last_ratio;  // (heuristic, c) -> recomputed / N at the previous N
  for (int N : lengths) {
    const std::string spec = fmt::format("mlp:layers={},width={},batch={},act=relu", N, width, batch);
    std::cerr << fmt::format("[kirisame2021] unit chain {}\n", spec);
    ModelBench bench(spec, o.paper);
    const std::int64_t base_forward = simulate(bench.tape(), bench.store_all()).forward_ops;
    for (double c : {2.0, 4.0}) {
      const double acts = c * std::sqrt(static_cast<double>(N));
      const auto budget = static_cast<std::size_t>(std::llround(acts * static_cast<double>(activation)));
      std::vector<Outcome> outs;
      std::vector<std::string> skipped;
      for (const auto& h : greedy_heuristics()) {
        // A heuristic that was infeasible, or recomputed more than 10 N ops, at the previous
        // N is not run at the next (its planning time grows with its recomputations).
        auto previous = last_ratio.find({h, c});
        if (previous != last_ratio.end() && !(previous->second <= 10.0)) {
          skipped.push_back(h);
          continue;
        }
        StrategyOptions so;
        so.heuristic = h;
        outs.push_back(bench.plan(Attempt{"greedy", fmt::format("{:g} sqrt(N)", c), budget, so}));
      }
      outs.push_back(bench.plan(Attempt{"revolve", fmt::format("{:g} sqrt(N)", c), budget, {}}));
      std::vector<Outcome*> ptrs;
      for (auto& x : outs) ptrs.push_back(&x);
      bench.execute(ptrs, 1);
      std::cout << fmt::format("  N = {:<5} budget {:g} sqrt(N) = {:.0f} activations:", N, c, acts);
      for (const Outcome& x : outs) {
        const std::string name = x.attempt.strategy == "greedy" ? x.attempt.options.heuristic : x.attempt.strategy;
        last_ratio[{name, c}] = x.feasible() ? static_cast<double>(x.measured.recomputed_ops) / static_cast<double>(N) : std::nan("");
        unit.add({std::int64_t{N}, c, acts, static_cast<std::int64_t>(budget), name, std::string(status_name(x.status)),
                  x.status == Status::infeasible ? Cell{static_cast<std::int64_t>(x.min_feasible_bytes)} : Cell{},
                  status_or(x, static_cast<std::int64_t>(x.measured.peak_bytes)),
                  status_or(x, static_cast<double>(x.measured.peak_bytes) / static_cast<double>(activation)),
                  static_cast<double>(bench.store_all_peak()) / static_cast<double>(activation),
                  status_or(x, x.measured.recomputed_ops),
                  status_or(x, static_cast<double>(x.measured.recomputed_ops) / static_cast<double>(N)),
                  status_or(x, x.measured.forward_ops), base_forward, status_or(x, x.grads_bitwise_equal),
                  status_or(x, x.promises_hold)});
        if (x.feasible())
          std::cout << fmt::format(" {} {:.2f}", name, static_cast<double>(x.measured.recomputed_ops) / static_cast<double>(N));
        else
          std::cout << fmt::format(" {} {}", name, x.status == Status::infeasible ? "infeasible" : "thrashing");
      }
      for (const auto& h : skipped) {
        unit.add({std::int64_t{N}, c, acts, static_cast<std::int64_t>(budget), h, std::string("skipped"), Cell{}, Cell{}, Cell{},
                  static_cast<double>(bench.store_all_peak()) / static_cast<double>(activation), Cell{}, Cell{}, Cell{},
                  base_forward, Cell{}, Cell{}});
        std::cout << fmt::format(" {} skipped", h);
      }
      std::cout << "\n";
    }
  }
  nlohmann::json meta{{"threads", threads}, {"repeat", o.repeat}, {"ratios", ratios}, {"unit_chain_lengths", lengths},
                      {"activation_bytes", activation}};
  write_results(o, "slowdown", slowdown, meta);
  write_results(o, "unit_chain", unit, meta);
}

}  // namespace

int main(int argc, char** argv) { return paper_main(argc, argv, "kirisame2021", about, run, /*takes_real_models=*/true); }
