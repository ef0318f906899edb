// Contract: the registry table (see strategies.hpp). One row per strategy.
#include "strategies/strategies.hpp"

#include "strategies/checkmate.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace remat {

const char* strategy_level_name(StrategyLevel level) { return level == StrategyLevel::chain ? "chain" : "node"; }

bool StrategyInfo::uses(StrategyOption option) const {
  return std::find(options.begin(), options.end(), option) != options.end();
}

const std::vector<StrategyInfo>& strategy_registry() {
  using O = StrategyOption;
  static const std::vector<StrategyInfo> rows{
      {"store-all", "tape everything, recompute nothing: the baseline", "every value kept", StrategyLevel::chain, {},
       &make_store_all_strategy},
      {"sqrt", "sqrt(n) segments, each recomputed once (Chen et al. 2016)", "round(sqrt(L)) segments",
       StrategyLevel::chain, {O::slots}, &make_sqrt_strategy},
      {"chen-greedy", "Chen et al. 2016 Alg. 3: greedy segmentation, threshold searched", "least memory",
       StrategyLevel::chain, {}, &make_chen_greedy_strategy},
      {"revolve", "binomial checkpointing with s slots (Griewank and Walther 2000)", "log4(L) slots",
       StrategyLevel::chain, {O::slots}, &make_revolve_strategy},
      {"optimal", "DP-optimal persistent schedule of a heterogeneous chain (Beaumont et al. 2019)",
       "the least time at store-all's memory", StrategyLevel::chain, {O::dp_slots}, &make_optimal_strategy, true},
      {"greedy", "budget-greedy eviction with recomputation on demand, any graph (Kirisame et al. 2021, DTR)",
       "store-all (nothing to evict)", StrategyLevel::node, {O::heuristic}, &make_greedy_strategy, true},
      {"checkmate", "the MILP optimum of the training graph on CBC, time-limited (Jain et al. 2020)",
       "store-all (the optimum without a budget)", StrategyLevel::node, {O::time_limit}, &make_checkmate_milp_strategy,
       true, true},
      {"checkmate-lp", "Checkmate's LP relaxation with two-phase rounding, for large graphs (Jain et al. 2020 Sec. 5)",
       "store-all", StrategyLevel::node, {O::time_limit}, &make_checkmate_lp_strategy, true, true},
  };
  return rows;
}

std::vector<std::string> strategy_names(bool include_solvers) {
  std::vector<std::string> names;
  for (const auto& row : strategy_registry())
    if (include_solvers || !row.solver) names.push_back(row.name);
  return names;
}

const StrategyInfo& strategy_info(const std::string& name) {
  for (const auto& row : strategy_registry())
    if (row.name == name) return row;
  throw Error(fmt::format("[strategy] unknown strategy '{}'; expected one of: {}", name, fmt::join(strategy_names(), ", ")));
}

std::unique_ptr<RematStrategy> make_strategy(const std::string& name, const StrategyOptions& options) {
  return strategy_info(name).make(options);
}

std::unique_ptr<RematStrategy> make_checkmate_milp_strategy(const StrategyOptions& options) {
  CheckmateOptions o;
  o.time_limit = options.time_limit_seconds;
  o.threads = options.threads;
  return make_checkmate_strategy(o);
}

std::unique_ptr<RematStrategy> make_checkmate_lp_strategy(const StrategyOptions& options) {
  CheckmateOptions o;
  o.time_limit = options.time_limit_seconds;
  o.threads = options.threads;
  o.lp_relaxation = true;
  return make_checkmate_strategy(o);
}

const std::vector<std::string>& greedy_heuristics() {
  static const std::vector<std::string> names{"dtr", "dtr-eq", "dtr-local", "lru", "size", "msps"};
  return names;
}

}  // namespace remat
