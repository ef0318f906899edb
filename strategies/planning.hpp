// Contract: the one planning entry point and the plan report.
//
//   PlanReport plan(const Strategy&, const PlanRequest&)
//
// returns the Program, its prediction (simulate(): the executor on the metering
// backend, the only judge of a peak), its planned time under the request's cost
// table, and, for chain strategies, the chain view and stage schedule behind it with
// the stage model's figures (the planner's internal bound, never the acceptance test).
// Callers (CLI, tests, benchmarks, Python) use this and nothing else, so no caller
// re-cuts, re-profiles or re-schedules after planning.
//
// Acceptance by the real peak. Every remat strategy (RematStrategy) draws its plan from
// a family of candidate Programs that does not depend on the budget, in a fixed order
// of preference (least planned time first, unless the strategy says otherwise), and
// returns the first candidate whose simulated peak fits the budget. So a budget B is
// accepted exactly when some candidate's simulated peak is at most B; the smallest
// feasible budget is the least simulated peak over the family (reported by
// InfeasibleBudget and itself accepted); a plan found for a smaller budget is a valid
// answer for a larger one; and when B is refused, no plan the strategy returns at any
// budget peaks at or below B. Store-all ends every family, so no strategy refuses a
// budget at or above store-all's peak (the report notes such a fallback).
// CandidateSearch implements this rule once for all strategies; budget-greedy, whose
// family is indexed by its internal budget, has its own equivalent (budget_greedy.cpp).
#pragma once

#include "autodiff/costs.hpp"
#include "autodiff/executor.hpp"
#include "autodiff/strategy.hpp"
#include "strategies/chain_view.hpp"
#include "strategies/schedule.hpp"

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace remat {

struct PlanRequest {
  const Tape& tape;
  int loss = -1;
  Budget budget;
  const NodeCosts* costs = nullptr;  // per-node times the plan is weighed by; null: analytic
  bool use_marks = true;             // chain strategies cut at Tape::mark_stage marks when present
};

// The stage level behind a chain strategy's Program.
struct StagePlan {
  std::shared_ptr<const ChainView> view;  // shared by every candidate of one plan call
  Schedule schedule;
  ScheduleStats stats;  // stage-model figures: peak_memory is the planner's internal bound
  std::string note;     // how it was planned, when that matters (DP units, rounding bound)
};

struct PlanReport {
  std::string strategy;             // the strategy's name
  std::string setting;              // what it chose: "5 slots", "12 segments", "budget 4.2 MiB", ...
  Program program;
  StepReport predicted;             // simulate(tape, program)
  std::int64_t planned_time = 0;    // program_time under the request's costs (ns)
  std::int64_t store_all_time = 0;  // the same for store-all
  std::size_t store_all_peak = 0;   // simulated peak of store-all (plan() fills it in when 0)
  std::string cost_source;          // "analytic" or "measured on cpu"; plan() fills it, planned_time
                                    // and store_all_time in unless the strategy set all three
  std::optional<StagePlan> stage;   // chain strategies
  std::vector<std::string> notes;   // fallbacks, slot rounding, ...
  std::shared_ptr<const nlohmann::json> solver;  // a solver's own figures (checkmate: status, bound, gap)
  int candidates_simulated = 0;     // programs lowered and simulated while planning
  double plan_seconds = 0;
  double planned_overhead() const {
    return store_all_time > 0 ? static_cast<double>(planned_time) / static_cast<double>(store_all_time) - 1.0 : 0.0;
  }
};

// The strategies remat ships derive from this: plan() is plan_report().program.
class RematStrategy : public Strategy {
 public:
  Program plan(const Tape& tape, int loss, const Budget& budget) const final;
  virtual PlanReport plan_report(const PlanRequest& request) const = 0;
  // Stage level, for chain files (no tape): accepted by the stage model's peak, which
  // is the memory model of a chain file. Node-level strategies refuse (Error).
  virtual StagePlan plan_chain(const Chain& chain, const Budget& budget) const;
};

// The planning entry point. Any Strategy works (a user's own too: its Program is
// simulated and checked against the budget here); remat's fill the whole report.
PlanReport plan(const Strategy& strategy, const PlanRequest& request);

// How a strategy prefers among the candidates that fit.
enum class Preference : std::uint8_t {
  least_time,  // the fastest (ties: the order given)
  least_peak,  // the least simulated peak (ties: least time, then the order given)
};

// One candidate of a strategy's family.
struct Candidate {
  std::string setting;
  std::int64_t planned_time = 0;  // the preference key (ties: the order given)
  bool fallback = false;          // considered only after every other candidate
  // The stage model's peak of this candidate when known (it bounds the real peak from
  // above, so a candidate whose stage peak fits is accepted without simulating first).
  std::optional<std::size_t> stage_peak;
  std::function<Program()> lower;  // builds the Program (and nothing else)
  std::shared_ptr<const StagePlan> stage;  // chain candidates
};

// The acceptance rule above, for a family given in full. With least_time, candidates
// are ordered by planned time (stable: equal times keep their order; fallbacks last)
// and the first whose simulated peak fits `budget` wins; without a budget the first
// wins. With least_peak every candidate is simulated and the least peak wins (it must
// fit the budget). Throws InfeasibleBudget naming the least simulated peak of the
// family (every candidate simulated).
class CandidateSearch {
 public:
  CandidateSearch(const Tape& tape, std::string strategy, double time_limit_seconds = 60)
      : tape_(tape), strategy_(std::move(strategy)), time_limit_(time_limit_seconds) {}
  void add(Candidate candidate) { candidates_.push_back(std::move(candidate)); }
  // A member of the family that refused this budget itself (budget-greedy), naming the
  // least peak of its plans: it enters the smallest feasible budget of a refusal.
  void note_refused_member(std::size_t least_peak) { refused_least_ = std::min(refused_least_, least_peak); }
  std::size_t size() const { return candidates_.size(); }
  // Fills report.program, predicted, setting, stage and candidates_simulated.
  void choose(const Budget& budget, PlanReport& report, Preference preference = Preference::least_time);

 private:
  const Tape& tape_;
  std::string strategy_;
  std::vector<Candidate> candidates_;
  std::size_t refused_least_ = static_cast<std::size_t>(-1);
  double time_limit_;
};

// Store-all as a candidate (the end of every family).
Candidate store_all_candidate(const Tape& tape, int loss, const NodeCosts& costs);
// A stage schedule over `view` as a candidate: its planned time is the stage
// makespan plus the one compute of x(0); its Program is lower_schedule().
Candidate schedule_candidate(const Tape& tape, std::shared_ptr<const ChainView> view, Schedule schedule,
                             const std::string& strategy, std::string setting, const NodeCosts& costs);

// "4.2 MiB (4404019 B)"-style text for notes and settings.
std::string bytes_text(std::size_t bytes);

}  // namespace remat
