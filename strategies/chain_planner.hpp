// Contract: what every chain strategy shares. A ChainPlanner names a family of stage
// schedules for a Chain that does not depend on the budget (family()); planning a
// tape cuts it into a chain (chain_view), lowers every schedule of the family to a
// Program, adds store-all at the end, and picks by the acceptance rule of
// planning.hpp (CandidateSearch: the most preferred candidate whose simulated peak
// fits). Planning a chain file uses the same family, judged by the stage model
// (simulate_schedule), which is the memory model of a chain file.
#pragma once

#include "strategies/strategies.hpp"

namespace remat {

struct NamedSchedule {
  std::string setting;  // "5 slots", "segments starting at 0 4 8", ...
  Schedule schedule;
};

class ChainPlanner : public RematStrategy {
 public:
  explicit ChainPlanner(StrategyOptions options) : options_(std::move(options)) {}
  PlanReport plan_report(const PlanRequest& request) const override;
  StagePlan plan_chain(const Chain& chain, const Budget& budget) const override;
  const StrategyOptions& options() const { return options_; }

 protected:
  // The family for `chain`: with `budgeted` false, the schedules the strategy picks
  // from when no budget is given (often one: its default setting).
  virtual std::vector<NamedSchedule> family(const Chain& chain, bool budgeted) const = 0;
  virtual Preference preference(bool /*budgeted*/) const { return Preference::least_time; }
  // Extra tape-level candidates beyond the family (optimal adds budget-greedy's plan
  // when greedy accepts the budget); none by default.
  virtual void add_candidates(const PlanRequest&, const NodeCosts&, CandidateSearch&) const {}
  StrategyOptions options_;
};

// The stage-level choice over named schedules by the same rule, judged by the stage
// model: the first (by preference) whose stage peak fits, then store-all when
// with_fallback; InfeasibleBudget with the least stage peak otherwise. Without a
// budget, the first by preference. Used by ChainPlanner::plan_chain.
StagePlan choose_stage_schedule(const std::string& strategy, const Chain& chain, std::vector<NamedSchedule> family,
                                const Budget& budget, Preference preference, bool with_fallback);

}  // namespace remat
