// Contract: see graph_planning.hpp.
#include "strategies/graph_planning.hpp"

#include "strategies/checkmate.hpp"
#include "strategies/graph_heuristics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace remat {

const std::vector<std::string>& graph_strategy_names() {
  static const std::vector<std::string> names{"store-all", "greedy", "checkmate", "checkmate-lp"};
  return names;
}

namespace {

// Budget-greedy on the graph: the schedule at `budget`, else a refusal naming the least
// budget at which dtr_schedule succeeds, found by bisection between the largest single
// step's need and the topological peak (where it always succeeds) and checked.
GraphSchedule greedy_on_graph(const TrainingGraph& graph, std::int64_t budget, std::int64_t topological_peak,
                              std::string& setting) {
  if (budget >= topological_peak) {
    setting = "store-all (the budget holds every value)";
    return topological_schedule(graph);
  }
  if (auto s = dtr_schedule(graph, budget)) {
    setting = fmt::format("dtr eviction at budget {}", budget);
    return *s;
  }
  std::int64_t lo = minimum_step_memory(graph) - 1;  // refused (no schedule can meet it)
  std::int64_t hi = topological_peak;                 // accepted
  lo = std::max(lo, budget);
  while (hi - lo > 1) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (dtr_schedule(graph, mid)) hi = mid;
    else lo = mid;
  }
  throw InfeasibleBudget(fmt::format("[greedy] graph '{}': budget {} is refused: eviction cannot keep every step within "
                                     "it; the smallest budget greedy found feasible is {}",
                                     graph.name, budget, hi),
                         static_cast<std::size_t>(hi));
}

}  // namespace

GraphPlan plan_graph(const std::string& strategy, const TrainingGraph& graph, std::optional<std::int64_t> budget,
                     const StrategyOptions& options) {
  const auto& names = graph_strategy_names();
  if (std::find(names.begin(), names.end(), strategy) == names.end()) {
    strategy_info(strategy);  // an unknown name: the registry's error, listing them all
    throw Error(fmt::format("[plan] strategy '{}' plans chains of stages, not graphs; on a graph use one of: {}", strategy,
                            fmt::join(names, ", ")));
  }
  if (strategy == "greedy" && options.heuristic != "dtr")
    throw Error(fmt::format("[greedy] on a graph without a tape only the dtr heuristic is defined, got '{}'",
                            options.heuristic));
  if (budget && *budget < 0) throw Error(fmt::format("[plan] a budget must be >= 0, got {}", *budget));
  const auto t0 = std::chrono::steady_clock::now();
  GraphPlan out;
  out.strategy = strategy;
  const GraphSchedule topological = topological_schedule(graph);
  out.topological = simulate_graph_schedule(graph, topological);
  out.solver = nullptr;
  if (!budget) {
    out.schedule = topological;
    out.setting = "store-all (no budget)";
  } else if (strategy == "store-all") {
    if (*budget < out.topological.peak)
      throw InfeasibleBudget(fmt::format("[store-all] graph '{}': budget {} is below the topological order's peak {}",
                                         graph.name, *budget, out.topological.peak),
                             static_cast<std::size_t>(out.topological.peak));
    out.schedule = topological;
    out.setting = "every node once, in the graph's order";
  } else if (strategy == "greedy") {
    out.schedule = greedy_on_graph(graph, *budget, out.topological.peak, out.setting);
  } else {
    CheckmateOptions o;
    o.time_limit = options.time_limit_seconds;
    o.threads = options.threads;
    o.lp_relaxation = strategy == "checkmate-lp";
    if (auto g = dtr_schedule(graph, *budget)) o.warm_starts.push_back(*g);
    const CheckmatePlan p = solve_checkmate(graph, *budget, o);
    if (!p.schedule) throw checkmate_refusal(strategy, fmt::format("graph '{}': budget {}", graph.name, *budget), graph, p, "");
    out.schedule = *p.schedule;
    out.setting = fmt::format("{}: {}", checkmate_status_name(p.status), p.source);
    out.solver = checkmate_plan_json(graph, p);
  }
  out.stats = simulate_graph_schedule(graph, out.schedule);
  if (budget && out.stats.peak > *budget)
    throw Error(fmt::format("[{}] internal: the schedule peaks at {} above the budget {}", strategy, out.stats.peak, *budget));
  out.plan_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace remat
