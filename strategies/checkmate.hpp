// Contract: Checkmate, the optimal rematerialization schedule of a training graph by mixed
// integer linear programming (Jain, Jain, Nrusimha, Gholami, Abbeel, Keutzer, Stoica,
// Gonzalez, "Checkmate: Breaking the Memory Wall with Optimal Tensor Rematerialization",
// MLSys 2020, arXiv:1910.02653), solved with COIN-OR CBC (CLP for the LPs).
//
// The MILP (Sec. 4, over the stage-by-node grid of Sec. 4.1; t = stage, i, k = nodes in
// the graph's order, v = values, p(v) its producer, M_v its size, W_k a node's workspace):
//   min  sum_t sum_i C_i R[t,i]                                               (Eq. 1)
//   R[t,t] = 1; R[t,i] = 0 for i > t; S[0,.] = 0, S[t,v] = 0 unless p(v) < t  (Eq. 1e-1f)
//   R[t,j] <= R[t,p(v)] + S[t,v]      for each input v of j                  (Eq. 1b)
//   S[t+1,v] <= S[t,v] + R[t,p(v)]                                           (Eq. 1c)
//   U[t,k0] = sum_v M_v S[t,v] + M(k0) R[t,k0]   (k0: first node of stage t)  (Eq. 2)
//   U[t,k]  = U[t,k'] + M(k) R[t,k] - sum_{v in in(k') u out(k')} M_v FREE[t,v,k']   (Eq. 3)
//   U[t,k] + W_k R[t,k] <= budget                                            (Eq. 1d)
//   FREE[t,v,k] = R[t,k] (1 - S[t+1,v]) prod_{readers j > k of v} (1 - R[t,j])  (Eq. 4)
// where M(k) is the size of k's outputs. (Equation labels follow the paper's Sec. 4: Eq. 1
// the objective with its correctness constraints 1a-1f, Eq. 2-3 the memory recurrence of
// Sec. 4.3, Eq. 4 FREE; they were written from docs/papers.md and the paper's structure, the
// paper itself not being available offline: check the numbers against the PDF.)
// Values generalise Checkmate's one output per node
// (training_graph.hpp): R is per node, S and FREE per value. FREE is linearised from
// above only, one row per factor (FREE <= R[t,k], FREE <= 1 - S[t+1,v],
// FREE <= 1 - R[t,j]): freeing only lowers memory, so the solver sets it to its largest
// allowed value and Sec. 4.4's lower-bound rows are not needed. Added, all valid for some
// optimal solution:
//   - sum_k FREE[t,v,k] <= S[t,v] + R[t,p(v)]: a value is freed at most once per stage,
//     and only if present (the cut an independent CBC implementation found decisive);
//   - S[t,v] + R[t,p(v)] <= 1: never recompute a resident value;
//   - a non-recomputable node is computed only in its own stage; its values are kept
//     (S = 1) until their last reader;
//   - R[t,i] exists only when i reaches a node >= t (last_descendants), S[t,v] only up to
//     v's horizon (value_horizons): a computation that serves no later stage is useless.
// The optimum is over schedules in stage form (training_graph.hpp), Checkmate's class:
// first computations in the graph's order, each stage recomputing in increasing order at
// most once. A schedule outside that class (another topological order, or a value
// computed twice in one stage) can be cheaper; tests/checkmate_tests.cpp measures how often.
//
// Solving. Memory is scaled to the budget (coefficients in bytes made the LP bound wrong
// in an independent implementation), costs to integers divided by their gcd (or to
// multiples of the least cost), so that CBC's tolerances separate distinct schedules. CBC
// runs through CbcMain1 (the cbc driver: presolve, cuts, heuristics) with the warm start
// as a MIP start. The time limit is remat's: CLP and CBC event handlers stop at the
// deadline, including inside a long root LP, and what was found by then is returned.
// Every schedule returned is re-simulated (simulate_graph_schedule) and fits the budget;
// its cost is recomputed from the graph, not read from the solver.
//
// checkmate-lp (Sec. 5): the LP relaxation, then two-phase rounding: S is rounded
// (thresholds 0.05..0.95 and randomised rounding S ~ Bernoulli(S*)), then the least R for
// that S is recovered (each stage computes what its nodes need that is not resident, and
// what S keeps that is not yet there); the cheapest rounding within the budget wins (LPs
// at 0.9 and 0.8 of the budget are tried when none fits, as Checkmate does). The LP value
// is a lower bound on the stage-form optimum.
#pragma once

#include "strategies/planning.hpp"
#include "strategies/graph_heuristics.hpp"
#include "strategies/training_graph.hpp"

#include <nlohmann/json_fwd.hpp>
#include <memory>
#include <optional>
#include <string>

namespace remat {

enum class CheckmateStatus : std::uint8_t {
  optimal,      // proven optimal (MILP), or LP rounding that met the LP bound
  feasible,     // a schedule within the budget; optimality not proven (time limit, or LP rounding)
  infeasible,   // proven: no stage-form schedule fits the budget
  no_solution,  // the time ran out before any schedule within the budget was found
};
const char* checkmate_status_name(CheckmateStatus status);

// The largest stage-by-node grid (R and S cells, n (n + 1) / 2 + n V) solve_checkmate
// builds; a larger graph is refused with an Error naming its size (about 2,000 nodes).
inline constexpr std::int64_t max_checkmate_grid_cells = 5'000'000;

struct CheckmateOptions {
  double time_limit = 60;       // seconds of wall time for the whole solve, enforced by remat
  int threads = 1;              // CBC threads
  bool lp_relaxation = false;   // checkmate-lp: LP relaxation + two-phase rounding
  std::vector<GraphSchedule> warm_starts;   // schedules to start from (regrouped into stage form)
  bool heuristic_warm_start = true;         // also start from best_heuristic_schedule
  int rounding_samples = 32;    // randomised roundings (checkmate-lp)
  std::uint64_t seed = 1;       // of the randomised rounding
  bool log = false;             // CBC's and CLP's log on stdout
  TapeGraphCosts costs;         // tapes: per node costs (empty: analytic)
};

// The schedule returned is the cheapest found within the budget: the MILP's (stage form) or a
// warm start's; a warm start outside stage form answers only when it is cheaper than every
// stage-form schedule found. "optimal" means: no stage-form schedule is cheaper (proven).
struct CheckmatePlan {
  CheckmateStatus status = CheckmateStatus::no_solution;
  std::optional<GraphSchedule> schedule;  // the best schedule found, within the budget
  GraphScheduleStats stats;               // its simulation
  double incumbent = 0;     // its cost (stats.cost); infinity without a schedule
  double lower_bound = 0;   // proven lower bound on the stage-form optimum (the incumbent when optimal)
  double gap = 0;           // (incumbent - lower_bound) / incumbent; infinity without a schedule
  std::optional<double> lp_bound;  // the LP relaxation's value (checkmate-lp)
  double solve_seconds = 0; // wall time of the whole call
  std::int64_t budget = 0;
  std::string source;       // where the schedule comes from: "milp", "warm start: ...", "lp rounding: ..."
  std::optional<double> warm_start_cost;
  int columns = 0, rows = 0, integer_columns = 0;
  std::string message;      // one line for people
};

// Throws InfeasibleBudget before solving when the budget is below minimum_step_memory()
// (named with its node), carrying the least peak of the heuristic family (a budget that
// certainly works).
CheckmatePlan solve_checkmate(const TrainingGraph& graph, std::int64_t budget, const CheckmateOptions& options = {});

// The MILP's memory accounting of a stage-form schedule: its R, and the S and FREE its
// liveness implies, substituted into the rows above; the largest U[t,k] + W_k of a
// computed k. Every row but the budget must hold (Error otherwise). Equals
// simulate_graph_schedule(...).peak for every valid stage-form schedule (tested).
std::int64_t checkmate_accounting_peak(const TrainingGraph& graph, const GraphSchedule& schedule);

nlohmann::json checkmate_plan_json(const TrainingGraph& graph, const CheckmatePlan& plan);

// The refusal of a solve that found no schedule within the budget: whether the MILP proved
// it or ran out of time, and the least budget remat can certify (the heuristic family's
// least peak). `subject` opens the message after the strategy's name ("budget 4096 bytes");
// `unit` follows the certified budget (" bytes" on tapes, "" in a graph file's units).
InfeasibleBudget checkmate_refusal(const std::string& who, const std::string& subject, const TrainingGraph& graph,
                                   const CheckmatePlan& plan, const std::string& unit);

// ---- tapes ----
struct CheckmateTapePlan {
  Program program;
  CheckmatePlan plan;
  TrainingGraph graph;
  std::size_t simulated_peak = 0;  // simulate(tape, program).peak_bytes
};
// The training graph of the tape (options.costs), warm-started from the best of the
// heuristic family and the greedy planner (plan_budget_greedy "dtr"), solved and lowered.
// Unlimited budget: the store-all order. Throws InfeasibleBudget when no schedule within
// the budget is found, carrying the least budget that remat can certify.
CheckmateTapePlan plan_checkmate(const Tape& tape, int loss, const Budget& budget, const CheckmateOptions& options = {});

// The strategy (registry rows "checkmate" and "checkmate-lp"). Its family is the MILP's
// answer and its warm starts (budget-greedy's plan when greedy accepts the budget, and
// the Chen-style checkpoint sets), judged on the simulated peak of the lowered Program.
// A refusal names the least budget those certify. One caveat of a time-limited solve: a
// budget the MILP solves in time can be accepted below that certified least budget while
// a slightly larger one, whose solve runs out of time, is refused; above it, every budget
// is accepted.
class CheckmateStrategy final : public RematStrategy {
 public:
  explicit CheckmateStrategy(CheckmateOptions options = {}) : options_(std::move(options)) {}
  std::string name() const override { return options_.lp_relaxation ? "checkmate-lp" : "checkmate"; }
  PlanReport plan_report(const PlanRequest& request) const override;
  const CheckmateOptions& options() const { return options_; }

 private:
  CheckmateOptions options_;
};

std::unique_ptr<RematStrategy> make_checkmate_strategy(const CheckmateOptions& options = {});

}  // namespace remat
