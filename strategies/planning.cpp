// Contract: the planning entry point, CandidateSearch and the common candidates
// (see planning.hpp).
#include "strategies/planning.hpp"

#include "strategies/stage_schedules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <numeric>
#include <optional>

namespace remat {

std::string bytes_text(std::size_t b) {
  if (b >= (std::size_t{1} << 30)) return fmt::format("{:.2f} GiB ({} B)", static_cast<double>(b) / (1 << 30), b);
  if (b >= (std::size_t{1} << 20)) return fmt::format("{:.2f} MiB ({} B)", static_cast<double>(b) / (1 << 20), b);
  if (b >= (std::size_t{1} << 10)) return fmt::format("{:.1f} KiB ({} B)", static_cast<double>(b) / (1 << 10), b);
  return fmt::format("{} B", b);
}

Program RematStrategy::plan(const Tape& tape, int loss, const Budget& budget) const {
  return plan_report(PlanRequest{tape, loss, budget}).program;
}

StagePlan RematStrategy::plan_chain(const Chain&, const Budget&) const {
  throw Error("[" + name() + "] works on node-level graphs (a recorded tape or a training graph), not on a chain file");
}

PlanReport plan(const Strategy& strategy, const PlanRequest& request) {
  check_loss(request.tape, request.loss, strategy.name().c_str());
  const auto t0 = std::chrono::steady_clock::now();
  PlanReport report;
  if (const auto* remat_strategy = dynamic_cast<const RematStrategy*>(&strategy)) {
    report = remat_strategy->plan_report(request);
  } else {  // a user's own Strategy: its Program, held to the same budget
    report.strategy = strategy.name();
    report.program = strategy.plan(request.tape, request.loss, request.budget);
    report.predicted = simulate(request.tape, report.program);
    if (request.budget.bytes && report.predicted.peak_bytes > *request.budget.bytes)
      throw Error(fmt::format("[{}] returned a program that peaks at {} bytes, above the budget of {} bytes (a "
                              "Strategy must refuse with InfeasibleBudget instead)",
                              strategy.name(), report.predicted.peak_bytes, *request.budget.bytes));
  }
  // A strategy that weighed its plan and store-all under the request's costs while
  // planning (greedy's search) has set cost_source, planned_time and store_all_time, and
  // one that simulated store-all its peak; the rest is filled in here.
  std::optional<Program> store_all;
  auto store_all_stream = [&]() -> const Program& {
    if (!store_all) store_all = store_all_program(request.tape, request.loss);
    return *store_all;
  };
  if (report.cost_source.empty()) {
    NodeCosts analytic;
    if (!request.costs) analytic = analytic_node_costs(request.tape);
    const NodeCosts& costs = request.costs ? *request.costs : analytic;
    report.cost_source = costs.source;
    report.planned_time = program_time(request.tape, report.program, costs);
    report.store_all_time = program_time(request.tape, store_all_stream(), costs);
  }
  if (report.store_all_peak == 0) report.store_all_peak = simulate(request.tape, store_all_stream()).peak_bytes;
  report.plan_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

void CandidateSearch::choose(const Budget& budget, PlanReport& report, Preference preference) {
  if (candidates_.empty()) throw Error("[" + strategy_ + "] internal: no candidate plans");
  const auto start = std::chrono::steady_clock::now();
  auto check_time = [&](int simulated) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > time_limit_)
      throw Error(fmt::format("[{}] planning passed the time limit of {:.0f} s after simulating {} of {} candidate plans: "
                              "raise --time-limit",
                              strategy_, time_limit_, simulated, candidates_.size()));
  };
  std::vector<std::size_t> order(candidates_.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const Candidate &x = candidates_[a], &y = candidates_[b];
    if (x.fallback != y.fallback) return y.fallback;
    return x.planned_time < y.planned_time;
  });
  auto take = [&](std::size_t k, Program program, StepReport predicted) {
    Candidate& c = candidates_[k];
    report.program = std::move(program);
    report.predicted = std::move(predicted);
    report.setting = c.setting;
    if (c.stage) report.stage = *c.stage;
  };
  if (preference == Preference::least_peak) {
    std::optional<std::size_t> best;
    Program best_program;
    StepReport best_report;
    for (std::size_t k : order) {
      check_time(report.candidates_simulated);
      Program p = candidates_[k].lower();
      StepReport r = simulate(tape_, p);
      ++report.candidates_simulated;
      if (!best || r.peak_bytes < best_report.peak_bytes) {
        best = k;
        best_program = std::move(p);
        best_report = std::move(r);
      }
    }
    if (budget.bytes && best_report.peak_bytes > *budget.bytes) {
      const std::size_t least = std::min(best_report.peak_bytes, refused_least_);
      throw InfeasibleBudget(fmt::format("[{}] budget {} bytes is infeasible: the least peak of its candidate plans is "
                                         "{} bytes, the smallest feasible budget",
                                         strategy_, *budget.bytes, least),
                             least);
    }
    take(*best, std::move(best_program), std::move(best_report));
    return;
  }
  if (!budget.bytes) {
    Program p = candidates_[order[0]].lower();
    StepReport r = simulate(tape_, p);
    ++report.candidates_simulated;
    take(order[0], std::move(p), std::move(r));
    return;
  }
  const std::size_t B = *budget.bytes;
  std::size_t least = std::numeric_limits<std::size_t>::max();
  for (std::size_t k : order) {
    check_time(report.candidates_simulated);
    Candidate& c = candidates_[k];
    Program p = c.lower();
    StepReport r = simulate(tape_, p);
    ++report.candidates_simulated;
    least = std::min(least, r.peak_bytes);
    if (r.peak_bytes <= B) {
      take(k, std::move(p), std::move(r));
      return;
    }
    // The stage model bounds the node level from above (chain_view.hpp): a candidate
    // whose stage peak fits and whose simulation does not is a bug in the chain costs.
    if (c.stage_peak && *c.stage_peak <= B)
      throw Error(fmt::format("[{}] internal: candidate '{}' peaks at {} bytes, above its stage-model bound {}", strategy_,
                              c.setting, r.peak_bytes, *c.stage_peak));
  }
  least = std::min(least, refused_least_);
  throw InfeasibleBudget(fmt::format("[{}] budget {} bytes is infeasible: the least peak of its candidate plans is {} "
                                     "bytes, the smallest feasible budget",
                                     strategy_, B, least),
                         least);
}

Candidate store_all_candidate(const Tape& tape, int loss, const NodeCosts& costs) {
  Program p = store_all_program(tape, loss);
  Candidate c;
  c.setting = "store-all";
  c.planned_time = program_time(tape, p, costs);
  c.lower = [p] { return p; };
  return c;
}

Candidate schedule_candidate(const Tape& tape, std::shared_ptr<const ChainView> view, Schedule schedule,
                             const std::string& strategy, std::string setting, const NodeCosts& costs) {
  Candidate c;
  c.setting = std::move(setting);
  ScheduleStats stats = simulate_schedule(view->chain, schedule);
  const std::int64_t x0 = view->boundary[0] >= 0 ? costs.forward(view->boundary[0]) : 0;
  c.planned_time = stats.makespan + x0;
  c.stage_peak = static_cast<std::size_t>(std::max<std::int64_t>(0, stats.peak_memory));
  auto stage = std::make_shared<const StagePlan>(StagePlan{view, std::move(schedule), std::move(stats), {}});
  c.lower = [&tape, stage, strategy] { return lower_schedule(tape, *stage->view, stage->schedule, strategy); };
  c.stage = std::move(stage);
  return c;
}

}  // namespace remat
