// Contract: store-all and the segment schedules of Chen, Xu, Zhang, Guestrin 2016,
// "Training Deep Nets with Sublinear Memory Cost" (arXiv:1604.06174; docs/papers.md).
//  - store_all_schedule: F_all 0..L-1, B L, ..., B 0 (the baseline, no recomputation).
//  - segments_schedule_at(starts): the sqrt(n) segment strategy at stage granularity. The
//    forward sweep runs every segment but the last keeping only its input
//    (F_ck at a segment start, F_n inside), so x(start) of each segment is stored;
//    the backward, last segment first, re-runs each segment taped (F_all over it,
//    B L after the last segment's tape) and back-propagates it (B end-1 .. B start).
//    forward_steps = L + (start of the last segment) = 2L - (length of the last
//    segment): the last segment is taped directly, never run twice.
//  - segments_schedule(k): boundaries floor(t L / k), t = 0..k; k = 1 is store-all.
//  - sqrt_schedule: k = round(sqrt(L)) (memory O(n/k) + O(k) is least
//    at k = sqrt(n)).
//  - chen_greedy_schedule: Alg. 3 ("memory-optimized greedy") on the stage sizes:
//    walk the candidate split points x(1)..x(L-1) adding a size per stage; when the
//    running total exceeds the threshold B, x(i) starts a new segment and the total
//    restarts at 0. Two size walks are searched: cw[i] (the size of x(i)) and cbw[i]
//    (everything stage i-1 outputs and keeps when taped, closer to Chen's sum of
//    node output sizes). B is searched (Alg. 3, "search over B"): every distinct sum
//    of consecutive sizes (and -1) when L <= 128, else 512 evenly spaced values in
//    [-1, sum]. Each distinct segmentation is replayed by simulate_schedule; the
//    result has the least peak (ties: least makespan, then fewest segments) among
//    those with peak <= budget, else InfeasibleBudget with the least peak seen.
#include "strategies/stage_schedules.hpp"

#include "strategies/chain_planner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace remat {

Schedule store_all_schedule(const Chain& chain) { return segments_schedule_at(chain, {0}); }

ScheduleStats store_all_stats(const Chain& chain) {
  chain.validate();
  const int L = chain.length();
  using Wide = __int128;
  auto u = [](int i) { return static_cast<std::size_t>(i); };
  Wide mem = chain.cw[0], peak = mem, makespan = 0;
  for (int i = 0; i < L; ++i) {  // F_all i
    peak = std::max(peak, mem + chain.cbw[u(i + 1)] + chain.ftmp[u(i)]);
    mem += chain.cbw[u(i + 1)];
    makespan += chain.fw[u(i)];
  }
  peak = std::max(peak, mem + chain.cw[u(L)] + chain.btmp[u(L)]);  // B L
  mem += chain.cw[u(L)];
  for (int i = L; i >= 0; --i) makespan += chain.bw[u(i)];
  for (int i = L - 1; i >= 0; --i) {  // B i: delta(i) in; the tape and delta(i+1) out; x(0) out at the end
    peak = std::max(peak, mem + chain.cw[u(i)] + chain.btmp[u(i)]);
    mem += chain.cw[u(i)] - chain.cbw[u(i + 1)] - chain.cw[u(i + 1)] - (i == 0 ? chain.cw[0] : 0);
  }
  if (peak > std::numeric_limits<std::int64_t>::max() || makespan > std::numeric_limits<std::int64_t>::max())
    throw Error(fmt::format("[schedule] chain {}: store-all's peak or makespan passes 2^63", chain.name));
  ScheduleStats stats;
  stats.forward_steps = L;
  stats.makespan = static_cast<std::int64_t>(makespan);
  stats.peak_memory = static_cast<std::int64_t>(peak);
  return stats;
}

Schedule segments_schedule_at(const Chain& chain, const std::vector<int>& starts) {
  chain.validate();
  const int L = chain.length();
  if (starts.empty() || starts[0] != 0)
    throw Error(fmt::format("[segments] segment starts must begin with 0 (chain {})", chain.name));
  for (std::size_t t = 1; t < starts.size(); ++t)
    if (starts[t] <= starts[t - 1] || starts[t] >= L)
      throw Error(fmt::format("[segments] segment start {} = {} must be increasing and < L = {} (chain {})", t,
                              starts[t], L, chain.name));
  const std::size_t K = starts.size();
  auto end_of = [&](std::size_t t) { return t + 1 < K ? starts[t + 1] : L; };
  Schedule schedule;
  auto& out = schedule.actions;
  out.reserve(static_cast<std::size_t>(3 * L + 1));
  for (std::size_t t = 0; t + 1 < K; ++t) {
    out.push_back({StageActionKind::forward_checkpoint, starts[t]});
    for (int i = starts[t] + 1; i < end_of(t); ++i) out.push_back({StageActionKind::forward_none, i});
  }
  for (std::size_t t = K; t-- > 0;) {
    for (int i = starts[t]; i < end_of(t); ++i) out.push_back({StageActionKind::forward_taped, i});
    if (t + 1 == K) out.push_back({StageActionKind::backward, L});
    for (int i = end_of(t) - 1; i >= starts[t]; --i) out.push_back({StageActionKind::backward, i});
  }
  return schedule;
}

Schedule segments_schedule(const Chain& chain, int segments) {
  chain.validate();
  const int L = chain.length();
  if (segments < 1 || segments > L)
    throw Error(fmt::format("[segments] {} segments for chain {}: must be in 1..L = {}", segments, chain.name, L));
  std::vector<int> starts;
  for (int t = 0; t < segments; ++t)
    starts.push_back(static_cast<int>(static_cast<std::int64_t>(t) * L / segments));
  return segments_schedule_at(chain, starts);
}

Schedule sqrt_schedule(const Chain& chain) {
  chain.validate();
  const int L = chain.length();
  const int k = std::clamp(static_cast<int>(std::lround(std::sqrt(static_cast<double>(L)))), 1, L);
  return segments_schedule(chain, k);
}

std::vector<std::vector<int>> chen_segmentations(const Chain& chain) {
  chain.validate();
  const int L = chain.length();
  std::set<std::vector<int>> seen;
  std::vector<std::vector<int>> out;
  for (const auto* sizes : {&chain.cw, &chain.cbw}) {
    std::vector<std::int64_t> thresholds{-1};
    if (L <= 128) {
      for (int a = 1; a < L; ++a) {
        std::int64_t sum = 0;
        for (int b = a; b < L; ++b) thresholds.push_back(sum += (*sizes)[b]);
      }
    } else {
      __int128 total = 0;  // up to 10^7 values of 2^50: beyond 64 bits
      for (int i = 1; i < L; ++i) total += (*sizes)[i];
      for (int t = 0; t <= 511; ++t)
        thresholds.push_back(-1 + static_cast<std::int64_t>(std::min(static_cast<long double>(total + 1) * t / 511.0L,
                                                                     static_cast<long double>(std::int64_t{1} << 62))));
    }
    std::sort(thresholds.begin(), thresholds.end());
    thresholds.erase(std::unique(thresholds.begin(), thresholds.end()), thresholds.end());
    for (const std::int64_t B : thresholds) {
      std::vector<int> starts{0};
      __int128 running = 0;
      for (int i = 1; i < L; ++i) {
        running += (*sizes)[i];
        if (running > B) {
          starts.push_back(i);
          running = 0;
        }
      }
      if (seen.insert(starts).second) out.push_back(std::move(starts));
    }
  }
  return out;
}

std::vector<std::vector<int>> chen_segmentation_family(const Chain& chain, std::size_t cap) {
  auto all = chen_segmentations(chain);
  if (all.size() <= cap || cap < 2) return all;
  std::vector<std::vector<int>> out;
  const std::size_t n = all.size();
  for (std::size_t t = 0; t < cap; ++t) out.push_back(all[t * (n - 1) / (cap - 1)]);
  return out;
}

Schedule chen_greedy_schedule(const Chain& chain, std::int64_t budget) {
  Schedule best;
  bool found = false;
  std::int64_t best_peak = 0, best_makespan = 0, least_peak = -1;
  std::size_t best_segments = 0;
  for (const auto& starts : chen_segmentations(chain)) {
    Schedule schedule = segments_schedule_at(chain, starts);
    const ScheduleStats stats = simulate_schedule(chain, schedule);
    least_peak = least_peak < 0 ? stats.peak_memory : std::min(least_peak, stats.peak_memory);
    if (stats.peak_memory > budget) continue;
    const bool better =
        !found || stats.peak_memory < best_peak ||
        (stats.peak_memory == best_peak &&
         (stats.makespan < best_makespan || (stats.makespan == best_makespan && starts.size() < best_segments)));
    if (better) {
      found = true;
      best = std::move(schedule);
      best_peak = stats.peak_memory;
      best_makespan = stats.makespan;
      best_segments = starts.size();
    }
  }
  if (!found)
    throw InfeasibleBudget(fmt::format("[chen-greedy] budget {} is infeasible for chain {}; the least peak over the "
                                       "threshold search is {}", budget, chain.name, least_peak),
                           static_cast<std::size_t>(least_peak));
  return best;
}

// ---- the strategies of this family ----
namespace {

std::string segments_setting(const std::vector<int>& starts) {
  return fmt::format("{} segment{}", starts.size(), starts.size() == 1 ? "" : "s");
}

class StoreAllStrategy final : public ChainPlanner {
 public:
  using ChainPlanner::ChainPlanner;
  std::string name() const override { return "store-all"; }
  // Store-all needs no chain: the plain reverse sweep works on any graph.
  PlanReport plan_report(const PlanRequest& request) const override {
    PlanReport report;
    report.strategy = name();
    report.setting = "every value kept";
    report.program = store_all_program(request.tape, request.loss);
    report.predicted = simulate(request.tape, report.program);
    ++report.candidates_simulated;
    // On a chain, the stage view of the same sweep (for reports and teaching); the
    // Program is the plain reverse sweep, which any graph has.
    try {
      NodeCosts analytic;
      if (!request.costs) analytic = analytic_node_costs(request.tape);
      ChainViewOptions vo;
      vo.costs = request.costs ? request.costs : &analytic;
      vo.use_marks = request.use_marks;
      auto view = std::make_shared<const ChainView>(chain_view(request.tape, request.loss, vo));
      Schedule schedule = store_all_schedule(view->chain);
      ScheduleStats stats = simulate_schedule(view->chain, schedule);
      report.stage = StagePlan{view, std::move(schedule), std::move(stats), report.setting};
    } catch (const Error&) {  // not a chain: no stage view
    }
    const std::size_t peak = report.predicted.peak_bytes;
    if (request.budget.bytes && peak > *request.budget.bytes)
      throw InfeasibleBudget(fmt::format("[store-all] budget {} bytes is below store-all's peak; the smallest "
                                         "feasible budget is {} bytes",
                                         *request.budget.bytes, peak),
                             peak);
    return report;
  }

 protected:
  std::vector<NamedSchedule> family(const Chain& chain, bool) const override {
    return {{"every value kept", store_all_schedule(chain)}};
  }
};

class SqrtStrategy final : public ChainPlanner {
 public:
  using ChainPlanner::ChainPlanner;
  std::string name() const override { return "sqrt"; }

 protected:
  std::vector<NamedSchedule> family(const Chain& chain, bool) const override {
    const int L = chain.length();
    if (options_.slots) {
      const int k = *options_.slots;
      if (k < 1 || k > L)
        throw Error(fmt::format("[sqrt] --slots (segments) = {} must be in 1..{} (the chain has {} stages)", k, L, L));
      return {{fmt::format("{} segments", k), segments_schedule(chain, k)}};
    }
    const int k = std::clamp(static_cast<int>(std::lround(std::sqrt(static_cast<double>(L)))), 1, L);
    return {{fmt::format("{} segments (round(sqrt({})))", k, L), segments_schedule(chain, k)}};
  }
};

class ChenGreedyStrategy final : public ChainPlanner {
 public:
  using ChainPlanner::ChainPlanner;
  std::string name() const override { return "chen-greedy"; }

 protected:
  // Alg. 3's segmentations for every threshold (at most 256, evenly chosen, on tapes:
  // each is simulated), the fastest that fits a budget, else the least memory.
  std::vector<NamedSchedule> family(const Chain& chain, bool) const override {
    std::vector<NamedSchedule> out;
    for (const auto& starts : chen_segmentation_family(chain))
      out.push_back({segments_setting(starts), segments_schedule_at(chain, starts)});
    return out;
  }
  Preference preference(bool budgeted) const override {
    return budgeted ? Preference::least_time : Preference::least_peak;
  }
};

}  // namespace

std::unique_ptr<RematStrategy> make_store_all_strategy(const StrategyOptions& o) {
  return std::make_unique<StoreAllStrategy>(o);
}
std::unique_ptr<RematStrategy> make_sqrt_strategy(const StrategyOptions& o) { return std::make_unique<SqrtStrategy>(o); }
std::unique_ptr<RematStrategy> make_chen_greedy_strategy(const StrategyOptions& o) {
  return std::make_unique<ChenGreedyStrategy>(o);
}

}  // namespace remat
