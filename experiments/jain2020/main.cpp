// Contract: paper_jain2020, Jain, Jain, Nrusimha, Gholami, Abbeel, Keutzer, Stoica, Gonzalez
// 2020, "Checkmate: Breaking the Memory Wall with Optimal Tensor Rematerialization" (MLSys,
// arXiv:1910.02653), their Figure 5 at CPU scale: overhead against budget for
// checkpoint-all (store-all), sqrt on articulation points (sqrt: remat's chain view cuts
// only where every path passes), Chen's greedy (chen-greedy), budget-greedy (greedy, DTR's
// heuristic), checkmate-lp and checkmate, on the zoo's unet, resnet and transformer at
// sizes the MILP solves (--quick: tiny ones), at budgets from 1.0 down to 0.5 of
// store-all's peak. Every plan is planned through the planning entry point with analytic
// costs, run on the CPU with the three promises checked, and timed interleaved with
// store-all (medians). For checkmate: MILP status, seconds, gap, and the lower bound's
// overhead (Table 2's solve times, as far as CPU-scale graphs go).
// Writes results/jain2020/overhead.{csv,json} and jain2020.png. Exit status: 0; 2 on
// errors; 4 when a promise broke.
#include "experiments/common/bench.hpp"
#include "strategies/training_graph.hpp"

#include <cmath>
#include <iostream>

using namespace remat;
using namespace remat::papers;

namespace {

constexpr const char* about =
    "paper_jain2020: Checkmate's Figure 5 at CPU scale: overhead against budget for checkpoint-all, sqrt,\n"
    "Chen's greedy, budget-greedy, checkmate-lp and checkmate (MILP on CBC) on unet, resnet and transformer.";

double json_number(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j.at(key).is_number() ? j.at(key).get<double>() : std::nan("");
}

void run(const DriverOptions& o, int threads) {
  const std::vector<std::string> specs =
      o.quick ? std::vector<std::string>{"unet:levels=1,width=4,batch=1,image=8", "resnet:blocks=1,width=4,batch=2,image=8",
                                         "transformer:layers=1,width=8,heads=2,seq=4,batch=2,vocab=16"}
              : std::vector<std::string>{"unet:levels=2", "resnet:blocks=2", "transformer:layers=1"};
  const std::vector<double> ratios = o.quick ? std::vector<double>{1.0, 0.8}
                                             : std::vector<double>{1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5};
  const double time_limit = o.quick ? 5 : 30;
  const std::vector<std::string> strategies{"store-all", "sqrt", "chen-greedy", "greedy", "checkmate-lp", "checkmate"};

  Table table({"model", "graph_nodes", "strategy", "budget_ratio", "budget_bytes", "status", "min_feasible_bytes",
               "peak_bytes_predicted", "peak_bytes_measured", "recomputed_ops", "planned_overhead", "measured_overhead",
               "plan_seconds", "solver_status", "solver_gap", "lower_bound_overhead", "promises_hold"});
  for (const auto& spec : specs) {
    std::cerr << fmt::format("[jain2020] {}\n", spec);
    ModelBench bench(spec, o.paper);
    const std::size_t full = bench.store_all_peak();
    const int nodes = training_graph_from_tape(bench.tape(), bench.loss()).size();
    std::vector<Outcome> outs;
    for (double r : ratios)
      for (const auto& name : strategies) {
        StrategyOptions so;
        so.time_limit_seconds = time_limit;
        std::cerr << fmt::format("[jain2020]   {} at {:g}\n", name, r);
        outs.push_back(bench.plan(Attempt{name, fmt::format("budget {:g}", r), fraction_of(full, r), so}));
      }
    std::vector<Outcome*> ptrs;
    for (auto& x : outs) ptrs.push_back(&x);
    bench.execute(ptrs, o.repeat);

    std::cout << fmt::format("{} ({} graph nodes, store-all peak {} bytes): planned overhead by budget ratio "
                             "(- : refused)\n  {:<13}",
                             bench.spec(), nodes, full, "strategy");
    for (double r : ratios) std::cout << fmt::format(" {:>8g}", r);
    std::cout << "\n";
    for (std::size_t si = 0; si < strategies.size(); ++si) {
      std::cout << fmt::format("  {:<13}", strategies[si]);
      for (std::size_t ri = 0; ri < ratios.size(); ++ri) {
        const Outcome& x = outs[ri * strategies.size() + si];
        std::cout << (x.feasible() ? fmt::format(" {:>7.1f}%", 100 * x.planned_overhead) : fmt::format(" {:>8}", "-"));
        const bool solved = x.feasible() && x.solver;
        const std::string solver_status = solved ? x.solver->value("status", std::string()) : std::string();
        const double gap = solved ? json_number(*x.solver, "gap") : std::nan("");
        // The lower bound as an overhead over the topological order (the graph's own costs).
        const double bound = solved ? json_number(*x.solver, "lower_bound") / json_number(*x.solver, "topological_compute") - 1
                                    : std::nan("");
        auto number = [](double v) { return std::isfinite(v) ? Cell{v} : Cell{}; };
        table.add({bench.spec(), static_cast<std::int64_t>(nodes), x.attempt.strategy, ratios[ri],
                   static_cast<std::int64_t>(*x.attempt.budget), std::string(status_name(x.status)),
                   x.status == Status::infeasible ? Cell{static_cast<std::int64_t>(x.min_feasible_bytes)} : Cell{},
                   x.feasible() ? Cell{static_cast<std::int64_t>(x.predicted.peak_bytes)} : Cell{},
                   x.executed ? Cell{static_cast<std::int64_t>(x.measured.peak_bytes)} : Cell{},
                   x.executed ? Cell{x.measured.recomputed_ops} : Cell{},
                   x.feasible() ? Cell{x.planned_overhead} : Cell{}, number(x.measured_overhead),
                   x.plan_seconds, solved ? Cell{solver_status} : Cell{}, number(gap), number(bound),
                   x.executed ? Cell{x.promises_hold} : Cell{}});
      }
      std::cout << "\n";
    }
    // Checkmate's solves: status and seconds per budget.
    std::cout << "  checkmate MILP:";
    for (std::size_t ri = 0; ri < ratios.size(); ++ri) {
      const Outcome& x = outs[ri * strategies.size() + strategies.size() - 1];
      if (x.feasible() && x.solver)
        std::cout << fmt::format(" {:g}: {} {:.1f} s gap {:.1f}%;", ratios[ri], x.solver->value("status", std::string()),
                                 x.plan_seconds, 100 * json_number(*x.solver, "gap"));
      else
        std::cout << fmt::format(" {:g}: {};", ratios[ri], status_name(x.status));
    }
    std::cout << "\n\n";
  }
  const nlohmann::json meta{{"threads", threads}, {"time_limit_seconds", time_limit}, {"costs", "analytic"},
                            {"repeat", o.repeat}};
  write_results(o, "overhead", table, meta);
}

}  // namespace

int main(int argc, char** argv) { return paper_main(argc, argv, "jain2020", about, run); }
