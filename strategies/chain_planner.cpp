// Contract: ChainPlanner's tape and chain-file planning (see chain_planner.hpp).
#include "strategies/chain_planner.hpp"

#include "strategies/stage_schedules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <numeric>

namespace remat {

PlanReport ChainPlanner::plan_report(const PlanRequest& request) const {
  const Tape& tape = request.tape;
  check_loss(tape, request.loss, name().c_str());
  NodeCosts analytic;
  if (!request.costs) analytic = analytic_node_costs(tape);
  const NodeCosts& costs = request.costs ? *request.costs : analytic;
  ChainViewOptions view_options;
  view_options.costs = &costs;
  view_options.use_marks = request.use_marks;
  auto view = std::make_shared<const ChainView>(chain_view(tape, request.loss, view_options));
  const bool budgeted = request.budget.bytes.has_value();

  CandidateSearch search(tape, name(), options_.time_limit_seconds);
  for (auto& ns : family(view->chain, budgeted))
    search.add(schedule_candidate(tape, view, std::move(ns.schedule), name(), std::move(ns.setting), costs));
  add_candidates(request, costs, search);
  if (budgeted) {  // the end of every family: no strategy refuses a budget store-all fits
    Candidate fallback = schedule_candidate(tape, view, store_all_schedule(view->chain), name(),
                                            "store-all (no schedule of the family fits)", costs);
    fallback.fallback = true;
    search.add(std::move(fallback));
  }
  PlanReport report;
  report.strategy = name();
  search.choose(request.budget, report, preference(budgeted));
  if (report.setting.rfind("store-all (no schedule", 0) == 0)
    report.notes.push_back("fallback: no " + name() + " schedule fits the budget, store-all does");
  return report;
}

StagePlan choose_stage_schedule(const std::string& strategy, const Chain& chain, std::vector<NamedSchedule> family,
                                const Budget& budget, Preference preference, bool with_fallback) {
  if (family.empty()) throw Error("[" + strategy + "] internal: no candidate schedules");
  const std::size_t family_size = family.size();
  if (with_fallback) family.push_back({"store-all (no schedule of the family fits)", store_all_schedule(chain)});
  std::vector<ScheduleStats> stats;
  for (const auto& ns : family) stats.push_back(simulate_schedule(chain, ns.schedule));
  std::vector<std::size_t> order(family_size);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return stats[a].makespan < stats[b].makespan; });
  if (preference == Preference::least_peak)
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return stats[a].peak_memory < stats[b].peak_memory; });
  if (with_fallback) order.push_back(family_size);
  const std::int64_t B = budget.bytes ? static_cast<std::int64_t>(std::min<std::size_t>(
                                            *budget.bytes, std::numeric_limits<std::int64_t>::max()))
                                      : std::numeric_limits<std::int64_t>::max();
  std::int64_t least = std::numeric_limits<std::int64_t>::max();
  for (std::size_t k : order) {
    least = std::min(least, stats[k].peak_memory);
    if (stats[k].peak_memory <= B || !budget.bytes)
      return StagePlan{nullptr, std::move(family[k].schedule), std::move(stats[k]), family[k].setting};
  }
  throw InfeasibleBudget(fmt::format("[{}] budget {} is infeasible for chain {}: the least peak of its {} candidate "
                                     "schedules is {}, the smallest feasible budget",
                                     strategy, *budget.bytes, chain.name, family.size(), least),
                         static_cast<std::size_t>(least));
}

StagePlan ChainPlanner::plan_chain(const Chain& chain, const Budget& budget) const {
  chain.validate();
  const bool budgeted = budget.bytes.has_value();
  return choose_stage_schedule(name(), chain, family(chain, budgeted), budget, preference(budgeted), budgeted);
}

}  // namespace remat
