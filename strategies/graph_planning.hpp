// Contract: planning on a training graph that has no tape behind it (a node-link graph
// file, or a chain file lowered by training_graph_from_chain), for the node-level
// strategies of the registry:
//
//   store-all     the graph's order, every node once (the topological schedule);
//   greedy        budget-greedy eviction on the graph (dtr_schedule, Kirisame et al. 2021);
//                 only the "dtr" heuristic is defined on graphs without a tape;
//   checkmate     the MILP optimum (solve_checkmate), time-limited, warm-started from
//                 greedy's schedule and the heuristic family;
//   checkmate-lp  the LP relaxation with two-phase rounding.
//
// Memory is the interchange rule of training_graph.hpp (simulate_graph_schedule), in the
// graph's units (cost_ram), and that simulation is the only judge of acceptance: the
// returned schedule's simulated peak is at most the budget. Without a budget every
// strategy returns the topological schedule (the optimum when memory is free).
// A refusal is InfeasibleBudget naming a budget the same strategy accepts (greedy: the
// least budget its bisection finds feasible; checkmate: the least peak of the heuristic
// family). Chain strategies (sqrt, revolve, ...) are an Error naming the ones that apply.
#pragma once

#include "strategies/strategies.hpp"
#include "strategies/training_graph.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace remat {

struct GraphPlan {
  std::string strategy;
  std::string setting;        // how the schedule was found
  GraphSchedule schedule;
  GraphScheduleStats stats;   // simulate_graph_schedule(graph, schedule)
  GraphScheduleStats topological;  // the store-all schedule's figures
  nlohmann::json solver;      // checkmate: checkmate_plan_json; null otherwise
  double plan_seconds = 0;
};

// The strategies plan_graph() accepts.
const std::vector<std::string>& graph_strategy_names();

GraphPlan plan_graph(const std::string& strategy, const TrainingGraph& graph, std::optional<std::int64_t> budget,
                     const StrategyOptions& options = {});

}  // namespace remat
