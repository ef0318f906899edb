// Contract: the strategies remat ships and how to get one by name.
//  - Chain strategies (store-all, sqrt, chen-greedy, revolve, optimal) produce a
//    stage-level Schedule for a Chain (schedule()) and, for a tape, lower it to a
//    Program through chain_view()/lower_schedule() (plan()).
//  - greedy (budget_greedy.cpp) works on the node-level graph directly.
// Every plan() returns a Program whose simulated peak is within the budget, or
// throws InfeasibleBudget naming the smallest budget that would work.
#pragma once

#include "autodiff/strategy.hpp"
#include "strategies/chain_view.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace remat {

struct StrategyOptions {
  std::optional<int> slots;          // revolve: checkpoint slots (slot 0 holds x(0)); sqrt: segments
  std::string heuristic = "dtr";     // greedy: dtr, dtr-eq, dtr-local, lru, size, msps
  int dp_slots = 200;                // optimal: memory slots the budget is divided into
  ChainViewOptions chain;            // how tapes are cut and costed
};

class ChainStrategy : public Strategy {
 public:
  // The stage-level schedule for a chain under a budget (in the chain's memory units).
  virtual Schedule schedule(const Chain& chain, const Budget& budget) const = 0;
  Program plan(const Tape& tape, int loss, const Budget& budget) const override;
  explicit ChainStrategy(StrategyOptions options) : options_(std::move(options)) {}
  const StrategyOptions& options() const { return options_; }

 protected:
  StrategyOptions options_;
};

std::unique_ptr<Strategy> make_strategy(const std::string& name, const StrategyOptions& options = {});
const std::vector<std::string>& strategy_names();
const std::vector<std::string>& greedy_heuristics();

// Node-level budget-greedy eviction (DTR); see budget_greedy.cpp.
Program plan_budget_greedy(const Tape& tape, int loss, std::size_t budget, const std::string& heuristic);

}  // namespace remat
