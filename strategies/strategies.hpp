// Contract: the strategy registry, the one table of the strategies remat ships.
// Each row names a strategy, says what it does, its setting when no option is given,
// whether it plans stages of a chain or nodes of a graph, which options it reads, and
// how to make it. make_strategy(), the CLI's help and option checks, compare's default
// list, the tests' validity grids and the benchmarks all read this table: adding a
// strategy is one file (its class and factory) plus one row in strategies.cpp.
// Every strategy plans through planning.hpp (plan(strategy, request) -> PlanReport)
// and is accepted on the simulated peak of its Program.
#pragma once

#include "strategies/planning.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace remat {

struct StrategyOptions {
  std::optional<int> slots;          // revolve: checkpoint slots (slot 0 holds x(0)); sqrt: segments
  std::string heuristic = "dtr";     // greedy: dtr, dtr-eq, dtr-local, lru, size, msps
  std::optional<int> dp_slots;       // optimal on a tape: memory slots of its DP (default 1000)
  // Planning beyond this many seconds is refused before it starts when a planner can
  // estimate its cost (optimal's DP), and stopped with an Error when it runs past it.
  double time_limit_seconds = 60;
  int threads = 1;                   // checkmate: CBC threads
};

enum class StrategyLevel : std::uint8_t { chain, node };
const char* strategy_level_name(StrategyLevel level);

// Options a strategy reads (a given option no strategy of the command reads is refused).
enum class StrategyOption : std::uint8_t { slots, heuristic, dp_slots, time_limit };

struct StrategyInfo {
  std::string name;
  std::string summary;          // one line, with the paper
  std::string default_setting;  // what it does without options and without a budget
  StrategyLevel level;
  std::vector<StrategyOption> options;
  std::unique_ptr<RematStrategy> (*make)(const StrategyOptions&);
  // Without a budget its plan is store-all's, so comparisons (compare, gpu_bench) give it
  // sqrt's peak as the budget.
  bool compared_at_sqrt_peak = false;
  // A time-limited solver (checkmate): one plan takes seconds to minutes, so compare's
  // default list, the benchmarks' sweeps and the exhaustive test grids leave it out
  // unless it is named; its own tests and checkmate_bench cover it.
  bool solver = false;
  bool uses(StrategyOption option) const;
};

const std::vector<StrategyInfo>& strategy_registry();
// The row of `name`; Error "[strategy] unknown strategy 'x'; expected one of: ..." otherwise.
const StrategyInfo& strategy_info(const std::string& name);
std::unique_ptr<RematStrategy> make_strategy(const std::string& name, const StrategyOptions& options = {});
// Every strategy's name; without solvers when `include_solvers` is false.
std::vector<std::string> strategy_names(bool include_solvers = true);
const std::vector<std::string>& greedy_heuristics();

// The factories the registry rows call (one per strategy file).
std::unique_ptr<RematStrategy> make_store_all_strategy(const StrategyOptions& options);
std::unique_ptr<RematStrategy> make_sqrt_strategy(const StrategyOptions& options);
std::unique_ptr<RematStrategy> make_chen_greedy_strategy(const StrategyOptions& options);
std::unique_ptr<RematStrategy> make_revolve_strategy(const StrategyOptions& options);
std::unique_ptr<RematStrategy> make_optimal_strategy(const StrategyOptions& options);
std::unique_ptr<RematStrategy> make_greedy_strategy(const StrategyOptions& options);
std::unique_ptr<RematStrategy> make_checkmate_milp_strategy(const StrategyOptions& options);
std::unique_ptr<RematStrategy> make_checkmate_lp_strategy(const StrategyOptions& options);

// Node-level budget-greedy eviction (DTR) at one internal budget, as the greedy
// strategy runs it (budget_greedy.cpp); throws InfeasibleBudget when that budget fails.
Program plan_budget_greedy(const Tape& tape, int loss, std::size_t budget, const std::string& heuristic);

}  // namespace remat
