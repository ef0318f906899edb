// Contract: the optimal persistent schedule for heterogeneous chains, the dynamic
// program of Beaumont, Eyraud-Dubois, Herrmann, Joly, Shilova 2019 ("Optimal
// checkpointing for heterogeneous chains", arXiv:1911.13214, the dynamic
// program for opt[m][i][l]; docs/papers.md "Heterogeneous chains"), over integer
// memory. opt[m][i][l] = least time to back-propagate stages i..l with m memory
// free, x(i) stored outside m, delta(l+1) inside m. With fw[L] = ftmp[L] = 0 and
// cw[L+1] = cbw[L+1] = 0 (the loss stage L):
//   l = i: fw[i] + bw[i] if m >= max(cw[i+1] + cbw[i+1] + ftmp[i],
//                                    cw[i] + cw[i+1] + cbw[i+1] + btmp[i]).
//   l > i: infinite if m < mmin = max(cw[l+1] + cw[i+1] + ftmp[i],
//                                     cw[l+1] + max_{i<j<l} fdrop[j]);
//          (fdrop[j] = cw[j] + cw[j+1] + ftmp[j] in the rotor model; a tape's chain view
//          sets it lower when x(j) dies inside the stage: Chain::forward_drop_peak)
//          else the least of
//          leaf checkpoint at j, i < j <= l, m >= cw[j]:
//              sum(fw[i..j-1]) + opt[m - cw[j]][j][l] + opt[m][i][j-1]
//              (F_ck i, F_n i+1..j-1, then [j..l], then [i..j-1]);
//          chain checkpoint, m >= cbw[i+1]:
//              opt[m][i][i] + opt[m - cbw[i+1]][i+1][l]   (F_all i, [i+1..l], B i)
//              (as docs/papers.md states it; see the correction below).
//   The chain branch is evaluated with its exact transients instead of through
//   opt[m][i][i]: fw[i] + bw[i] + opt[m - cbw[i+1]][i+1][l] when
//   m >= max(cw[l+1] + cbw[i+1] + ftmp[i], cw[i] + cw[i+1] + cbw[i+1] + btmp[i]).
//   F_all i runs beside delta(l+1), not delta(i+1) as opt[m][i][i] assumes, so the
//   literal formula is both unsafe (cw = 1,1,3, cbw = -,5,3, ftmp = 10,0, l = 1: it
//   accepts m = 16 while F_all 0 peaks at 18) and, when cw[l+1] < cw[i+1], needlessly
//   strict (an exhaustive search finds faster persistent schedules). For l = i the
//   two agree (the base case).
// Whole chain with budget M: opt[M - cw[0]][0][L]. optimal_tests.cpp checks this DP
// against an exhaustive search over the stage vocabulary: equal to the best persistent
// schedule, an upper bound on the best schedule of any kind (see Optimality below).
//
// Layout: one row of M - cw[0] + 1 int64 times per pair (i, l) (triangular order),
// filled by increasing l - i; each branch is one contiguous loop over m (the whole
// row at once). Time O(L^3 M), memory 8 (L+1)(L+2)/2 (M+1) bytes; no choice table:
// the schedule is rebuilt by re-deriving which branch attains each value
// (chain first, then leaf j ascending). Feasibility alone (the least m with
// opt[m][i][l] finite) is an O(L^3) recursion, used for the smallest budgets.
// Bytes: slot_bytes = ceil(budget / slot_count), the chain rounded up to slots,
// M = floor(budget / slot_bytes). The smallest feasible byte budget b* is exact for
// this procedure (the slots needed are non-increasing in the slot size, so the least
// slot size k with needed(k) <= slot_count gives b* = max((k-1) S + 1, needed(k) k)).
// A budget >= b* whose own rounding is too coarse is planned with b*'s slot size, so
// every budget >= b* succeeds and every smaller one throws InfeasibleBudget(b*).
//
// Optimality: the DP is optimal among persistent schedules (rotor's assumption: once
// F_ck i or F_all i keeps x(i), it stays stored until B i). Schedules that drop a kept
// x(i) and recompute it later are valid in the stage vocabulary and are sometimes
// faster on heterogeneous chains; optimal_tests.cpp measures both searches.
#include "strategies/stage_schedules.hpp"

#include "strategies/chain_planner.hpp"
#include "strategies/planning.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <optional>

namespace remat {

namespace {

constexpr std::int64_t INF = std::numeric_limits<std::int64_t>::max() / 4;

// The chain's arrays extended to the loss: fw, ftmp, bw, btmp on 0..L; cw, cbw on 0..L+1.
struct Ext {
  int L = 0;
  std::vector<std::int64_t> fw, bw, cw, cbw, ftmp, btmp, fdrop, fw_prefix;
  explicit Ext(const Chain& c)
      : L(c.length()), fw(c.fw), bw(c.bw), cw(c.cw), cbw(c.cbw), ftmp(c.ftmp), btmp(c.btmp) {
    for (int i = 0; i < L; ++i) fdrop.push_back(c.forward_drop_peak(i));
    fw.push_back(0);
    ftmp.push_back(0);
    cw.push_back(0);
    cbw.push_back(0);
    // Every value the DP forms is a sum of these: refuse chains whose totals could
    // overflow (values are at most 2^50 each, chain.hpp; the totals must stay below 2^60).
    __int128 time = 0, memory = 0;
    for (int i = 0; i <= L; ++i) time += static_cast<__int128>(fw[i]) + bw[i];
    for (int i = 0; i <= L + 1; ++i) memory += static_cast<__int128>(cw[i]) + cbw[i] + (i <= L ? ftmp[i] + btmp[i] : 0);
    if (time >= (static_cast<__int128>(1) << 60) || memory >= (static_cast<__int128>(1) << 60))
      throw Error(fmt::format("[optimal] chain {}: its total time or memory reaches 2^60; scale the costs down to plan it",
                              c.name));
    fw_prefix.assign(L + 2, 0);
    for (int i = 0; i <= L; ++i) fw_prefix[i + 1] = fw_prefix[i] + fw[i];
  }
  std::int64_t base_limit(int i) const {
    return std::max(cw[i + 1] + cbw[i + 1] + ftmp[i], cw[i] + cw[i + 1] + cbw[i + 1] + btmp[i]);
  }
  std::int64_t mmin(int i, int l) const {  // l > i
    std::int64_t m = cw[l + 1] + cw[i + 1] + ftmp[i];
    for (int j = i + 1; j < l; ++j) m = std::max(m, cw[l + 1] + fdrop[j]);  // F_n j, dropping x(j)
    return m;
  }
  // chain checkpoint at i for [i..l]: F_all i beside delta(l+1), B i beside delta(i+1).
  std::int64_t chain_limit(int i, int l) const {
    return std::max(cw[l + 1] + cbw[i + 1] + ftmp[i], cw[i] + cw[i + 1] + cbw[i + 1] + btmp[i]);
  }
};

// Least m with opt[m][i][l] finite, for every pair; the whole chain needs cw[0] + mm(0, L).
std::int64_t min_memory(const Ext& e) {
  const int N = e.L + 1;
  std::vector<std::int64_t> mm(static_cast<std::size_t>(N) * N, 0);
  auto at = [&](int i, int l) -> std::int64_t& { return mm[static_cast<std::size_t>(i) * N + l]; };
  for (int d = 0; d < N; ++d)
    for (int i = 0; i + d < N; ++i) {
      const int l = i + d;
      if (d == 0) {
        at(i, i) = e.base_limit(i);
        continue;
      }
      std::int64_t best = std::max(e.cbw[i + 1] + at(i + 1, l), e.chain_limit(i, l));
      for (int j = i + 1; j <= l; ++j) best = std::min(best, std::max(e.cw[j] + at(j, l), at(i, j - 1)));
      at(i, l) = std::max(e.mmin(i, l), best);
    }
  return e.cw[0] + at(0, e.L);
}

// The row kernels of the fill, one contiguous loop each; built for AVX2 and for the
// baseline ISA, the loader picks (function multiversioning, GCC: clang does not clone
// templates, so the clang builds of the fuzzers get the baseline loop). T is int32 when
// every value of the table is known to fit, which doubles the lanes.
#if defined(__clang__)
#define REMAT_ROW_CLONES
#else
#define REMAT_ROW_CLONES __attribute__((target_clones("avx2", "default")))
#endif
template <class T>
REMAT_ROW_CLONES void chain_row(T* out, const T* b, T own, std::int64_t n) {
  for (std::int64_t m = 0; m < n; ++m) out[m] = own + b[m];
}
template <class T>
REMAT_ROW_CLONES void leaf_row(T* out, const T* a, const T* b, T sf, std::int64_t n) {
  for (std::int64_t m = 0; m < n; ++m) {
    const T cand = sf + a[m] + b[m];
    out[m] = cand < out[m] ? cand : out[m];
  }
}
template <class T>
REMAT_ROW_CLONES void clamp_row(T* out, T inf, std::int64_t n) {
  for (std::int64_t m = 0; m < n; ++m) out[m] = out[m] < inf ? out[m] : inf;
}

// opt[m][i][l] for one chain, all m < width, in T (int32 or int64); `inf` is the
// infeasible value, small enough that three of them add without overflow.
template <class T>
class TableOf {
 public:
  TableOf(const Ext& e, std::int64_t width, T inf) : e_(e), width_(width), inf_(inf) {
    const std::size_t N = static_cast<std::size_t>(e.L) + 1;
    t_.assign(N * (N + 1) / 2 * static_cast<std::size_t>(width_), inf_);
    fill();
  }
  std::int64_t at(int i, int l, std::int64_t m) const {
    const T v = t_[offset(i, l) + static_cast<std::size_t>(m)];
    return v >= inf_ ? INF : static_cast<std::int64_t>(v);
  }

 private:
  std::size_t offset(int i, int l) const {  // pairs in triangular order, one row of width_ each
    return (static_cast<std::size_t>(l) * (l + 1) / 2 + static_cast<std::size_t>(i)) * static_cast<std::size_t>(width_);
  }
  const T* row(int i, int l) const { return t_.data() + offset(i, l); }

  void fill() {
    const int N = e_.L + 1;
    const std::int64_t W = width_;
    for (int d = 0; d < N; ++d)
      for (int i = 0; i + d < N; ++i) {
        const int l = i + d;
        T* out = t_.data() + offset(i, l);
        if (d == 0) {
          const T value = static_cast<T>(e_.fw[i] + e_.bw[i]);
          for (std::int64_t m = std::min(e_.base_limit(i), W); m < W; ++m) out[m] = value;
          continue;
        }
        const std::int64_t lo = e_.mmin(i, l);
        // chain checkpoint: F_all i, [i+1..l] with m - cbw[i+1], B i
        {
          const std::int64_t cb = e_.cbw[i + 1];
          const std::int64_t start = std::min(std::max(lo, e_.chain_limit(i, l)), W);
          if (start < W) chain_row<T>(out + start, row(i + 1, l) + (start - cb), static_cast<T>(e_.fw[i] + e_.bw[i]), W - start);
        }
        // leaf checkpoint at j: F_ck i, F_n i+1..j-1, [j..l] with m - cw[j], [i..j-1] with m
        for (int j = i + 1; j <= l; ++j) {
          const std::int64_t c = e_.cw[j];
          const std::int64_t start = std::min(std::max(lo, c), W);
          if (start < W)
            leaf_row<T>(out + start, row(j, l) + (start - c), row(i, j - 1) + start,
                        static_cast<T>(e_.fw_prefix[j] - e_.fw_prefix[i]), W - start);
        }
        clamp_row<T>(out, inf_, W);
      }
  }

  const Ext& e_;
  std::int64_t width_;
  T inf_;
  std::vector<T> t_;
};

class Table {
 public:
  Table(const Ext& e, std::int64_t mx) : e_(e) {
    const std::int64_t width = mx + 1;
    const double bytes32 = optimal_table_bytes(e.L, width) / 2;
    if (bytes32 > 4.0 * (1u << 30))
      throw Error(fmt::format("[optimal] the table for {} stages and {} memory slots needs {:.1f} GiB; use fewer slots",
                              e.L, width, bytes32 / (1u << 30)));
    // Every value is the time of a persistent schedule: each stage runs forward at most
    // L + 1 times and backward once. When that bound fits in 2^29, int32 holds the table.
    const double bound = static_cast<double>(e.fw_prefix.back()) * (e.L + 1) +
                         static_cast<double>(std::accumulate(e.bw.begin(), e.bw.end(), std::int64_t{0}));
    if (bound > static_cast<double>(INF) / 4)
      throw Error(fmt::format("[optimal] the chain's times are too large to plan exactly (a schedule could take up to "
                              "{:.3g} units, beyond 2^59): scale fw and bw down",
                              bound));
    if (bound < static_cast<double>(std::int64_t{1} << 29))
      small_.emplace(e, width, std::int32_t{1} << 29);
    else
      large_.emplace(e, width, INF);
  }
  std::int64_t at(int i, int l, std::int64_t m) const { return small_ ? small_->at(i, l, m) : large_->at(i, l, m); }

  void rebuild(int i, int l, std::int64_t m, std::vector<StageAction>& out) const {
    while (true) {
      if (i == l) {
        if (i < e_.L) out.push_back({StageActionKind::forward_taped, i});
        out.push_back({StageActionKind::backward, i});
        return;
      }
      const std::int64_t value = at(i, l, m);
      const std::int64_t cb = e_.cbw[i + 1];
      if (m >= e_.chain_limit(i, l) && m - cb >= 0 && e_.fw[i] + e_.bw[i] + at(i + 1, l, m - cb) == value) {
        out.push_back({StageActionKind::forward_taped, i});
        rebuild(i + 1, l, m - cb, out);
        out.push_back({StageActionKind::backward, i});
        return;
      }
      int leaf = -1;
      for (int j = i + 1; j <= l && leaf < 0; ++j)
        if (m >= e_.cw[j] && e_.fw_prefix[j] - e_.fw_prefix[i] + at(j, l, m - e_.cw[j]) + at(i, j - 1, m) == value)
          leaf = j;
      if (leaf < 0) throw Error(fmt::format("[optimal] internal: no branch attains opt[{}][{}][{}]", m, i, l));
      out.push_back({StageActionKind::forward_checkpoint, i});
      for (int k = i + 1; k < leaf; ++k) out.push_back({StageActionKind::forward_none, k});
      rebuild(leaf, l, m - e_.cw[leaf], out);
      l = leaf - 1;  // then [i..leaf-1] with the same m
    }
  }

 private:
  const Ext& e_;
  std::optional<TableOf<std::int32_t>> small_;
  std::optional<TableOf<std::int64_t>> large_;
};

}  // namespace

std::int64_t optimal_min_budget_units(const Chain& chain) {
  chain.validate();
  return min_memory(Ext(chain));
}

OptimalPlan optimal_plan_units(const Chain& chain, std::int64_t budget_units) {
  chain.validate();
  const Ext e(chain);
  const std::int64_t need = min_memory(e);
  if (budget_units < need)
    throw InfeasibleBudget(fmt::format("[optimal] budget {} is infeasible for chain {}; the smallest feasible budget is {}",
                                       budget_units, chain.name, need),
                           static_cast<std::size_t>(need));
  const std::int64_t mx = budget_units - e.cw[0];
  const Table table(e, mx);
  OptimalPlan plan;
  plan.makespan = table.at(0, e.L, mx);
  plan.budget_slots = budget_units;
  plan.slot_bytes = 1;
  if (plan.makespan >= INF) throw Error(fmt::format("[optimal] internal: budget {} passed the feasibility check but "
                                                    "opt is infinite for chain {}", budget_units, chain.name));
  table.rebuild(0, e.L, mx, plan.schedule.actions);
  return plan;
}

std::int64_t optimal_min_budget(const Chain& chain, int slot_count) {
  chain.validate();
  if (slot_count < 1) throw Error(fmt::format("[optimal] slot_count = {} must be >= 1", slot_count));
  const std::int64_t S = slot_count;
  auto slots_needed = [&](std::int64_t slot_bytes) { return min_memory(Ext(chain.in_slots(slot_bytes))); };
  std::int64_t k_hi = 1;
  for (const auto* f : {&chain.cw, &chain.cbw, &chain.ftmp, &chain.btmp})
    for (auto v : *f) k_hi = std::max(k_hi, v);
  const std::int64_t coarsest = slots_needed(k_hi);  // every nonzero size is one slot
  if (coarsest > S)
    throw Error(fmt::format("[optimal] chain {} needs at least {} memory slots at any slot size; {} slots cannot hold "
                            "any schedule (use a larger slot count)", chain.name, coarsest, S));
  // slots_needed(k) is non-increasing in k: find the least k with slots_needed(k) <= S.
  std::int64_t lo = 1, hi = k_hi;
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (slots_needed(mid) <= S) hi = mid;
    else lo = mid + 1;
  }
  // Budgets B with ceil(B / S) = k are ((k-1)S, kS]; they fit iff floor(B / k) >= slots_needed(k).
  return std::max((lo - 1) * S + 1, slots_needed(lo) * lo);
}

OptimalPlan optimal_plan(const Chain& chain, std::int64_t budget, int slot_count) {
  chain.validate();
  if (slot_count < 1) throw Error(fmt::format("[optimal] slot_count = {} must be >= 1", slot_count));
  if (budget < 1) {  // a budget of 0 (or less) is infeasible like any other too-small one
    const std::int64_t smallest = optimal_min_budget(chain, slot_count);
    throw InfeasibleBudget(fmt::format("[optimal] budget {} bytes is infeasible for chain {}; the smallest feasible "
                                       "budget is {} bytes", budget, chain.name, smallest),
                           static_cast<std::size_t>(smallest));
  }
  std::int64_t slot_bytes = budget / slot_count + (budget % slot_count != 0 ? 1 : 0);
  Chain slotted = chain.in_slots(slot_bytes);
  std::int64_t M = budget / slot_bytes;
  const std::int64_t need = optimal_min_budget_units(slotted);
  if (M < need) {
    const std::int64_t smallest = optimal_min_budget(chain, slot_count);
    if (budget < smallest)
      throw InfeasibleBudget(fmt::format("[optimal] budget {} bytes is infeasible for chain {} (it needs {} slots of {} "
                                         "bytes, {} available); the smallest feasible budget is {} bytes",
                                         budget, chain.name, need, slot_bytes, M, smallest),
                             static_cast<std::size_t>(smallest));
    // This budget's slots are too coarse (rounding loses up to a slot per live value), but a
    // smaller budget fits: plan with that budget's slot size, so feasibility is monotone.
    slot_bytes = smallest / slot_count + (smallest % slot_count != 0 ? 1 : 0);
    slotted = chain.in_slots(slot_bytes);
    M = budget / slot_bytes;
  }
  OptimalPlan plan = optimal_plan_units(slotted, M);
  plan.slot_bytes = slot_bytes;
  return plan;
}

Schedule optimal_schedule(const Chain& chain, std::int64_t budget, int slot_count) {
  return optimal_plan(chain, budget, slot_count).schedule;
}

double optimal_estimated_seconds(int stages, std::int64_t width) {
  const double N = static_cast<double>(stages) + 1;
  return N * N * N / 6 * (static_cast<double>(width) / 8e8 + 1 / 3e8);
}

double optimal_table_bytes(int stages, std::int64_t width) {
  const double N = static_cast<double>(stages) + 1;
  return 8.0 * N * (N + 1) / 2 * static_cast<double>(width);
}

std::vector<OptimalPlan> optimal_plans_up_to(const Chain& chain, std::int64_t max_budget) {
  chain.validate();
  const Ext e(chain);
  const std::int64_t need = min_memory(e);
  std::vector<OptimalPlan> plans;
  if (max_budget < need) return plans;
  const std::int64_t mx = max_budget - e.cw[0];
  const Table table(e, mx);
  std::int64_t last = INF;
  for (std::int64_t m = need - e.cw[0]; m <= mx; ++m) {
    const std::int64_t value = table.at(0, e.L, m);
    if (value >= last) continue;
    last = value;
    OptimalPlan plan;
    plan.makespan = value;
    plan.budget_slots = m + e.cw[0];
    plan.slot_bytes = 1;
    table.rebuild(0, e.L, m, plan.schedule.actions);
    plans.push_back(std::move(plan));
  }
  return plans;
}

// ---- the strategy ----
namespace {

constexpr double table_limit_bytes = 2.0 * (1u << 30);  // the most a DP table may take

// Refuses a DP that would run past the time limit, before it starts.
void check_dp_cost(int stages, std::int64_t width, double limit) {
  const double estimate = optimal_estimated_seconds(stages, width);
  if (estimate > limit)
    throw Error(fmt::format("[optimal] the DP over {} stages and {} memory values would take about {:.0f} s, beyond the "
                            "time limit of {:.0f} s: raise --time-limit, or give fewer --dp-slots",
                            stages, width, estimate, limit));
}

class OptimalStrategy final : public ChainPlanner {
 public:
  using ChainPlanner::ChainPlanner;
  std::string name() const override { return "optimal"; }

  // A chain file: the DP in the chain's own units (exact) whenever its table fits in
  // table_limit_bytes; beyond that (or with --dp-slots) sizes are rounded up to slots,
  // and the plan carries the cost a DP rounding sizes down would reach: the exact
  // optimum lies between the two.
  StagePlan plan_chain(const Chain& chain, const Budget& budget) const override {
    chain.validate();
    check_dp_cost(chain.length(), 0, options_.time_limit_seconds);  // the feasibility recursion alone
    const std::int64_t need = optimal_min_budget_units(chain);
    const std::int64_t full = store_all_stats(chain).peak_memory;
    const std::int64_t B = budget.bytes ? static_cast<std::int64_t>(std::min<std::size_t>(*budget.bytes, std::size_t{1} << 62))
                                        : std::max(full, need);
    if (B < need)
      throw InfeasibleBudget(fmt::format("[optimal] budget {} is infeasible for chain {}; the smallest feasible budget is {}",
                                         B, chain.name, need),
                             static_cast<std::size_t>(need));
    const int L = chain.length();
    if (B >= full) {  // store-all fits: nothing is faster than running every stage once
      StagePlan plan;
      plan.schedule = store_all_schedule(chain);
      plan.stats = simulate_schedule(chain, plan.schedule);
      plan.note = "store-all fits the budget: no recomputation";
      return plan;
    }
    std::int64_t width = B - chain.cw[0] + 1;
    std::int64_t slot = 1;
    if (options_.dp_slots) {
      if (*options_.dp_slots < 1) throw Error("[optimal] --dp-slots must be at least 1");
      slot = std::max<std::int64_t>(1, (width + *options_.dp_slots - 1) / *options_.dp_slots);
    }
    while (optimal_table_bytes(L, width / slot + 1) > table_limit_bytes) slot *= 2;
    check_dp_cost(L, width / slot + 1, options_.time_limit_seconds);
    StagePlan plan;
    if (slot == 1) {
      OptimalPlan p = optimal_plan_units(chain, B);
      plan.schedule = std::move(p.schedule);
      plan.stats = simulate_schedule(chain, plan.schedule);
      plan.note = fmt::format("DP in the chain's exact units (table {:.1f} MiB)", optimal_table_bytes(L, width) / (1 << 20));
      return plan;
    }
    // Rounded: sizes up to slots (a valid plan), and down (a bound on the exact optimum).
    const Chain up = chain.in_slots(slot);
    const std::int64_t budget_slots = B / slot;
    const std::int64_t need_up = optimal_min_budget_units(up);
    if (budget_slots < need_up)
      throw InfeasibleBudget(fmt::format("[optimal] budget {} is infeasible for chain {} after rounding sizes to slots of "
                                         "{} (it needs {} slots, {} available); give a larger budget or more --dp-slots",
                                         B, chain.name, slot, need_up, budget_slots),
                             static_cast<std::size_t>(need_up * slot));
    OptimalPlan p = optimal_plan_units(up, budget_slots);
    plan.schedule = std::move(p.schedule);
    plan.stats = simulate_schedule(chain, plan.schedule);
    Chain down = chain;
    for (auto* f : {&down.cw, &down.cbw, &down.ftmp, &down.btmp})
      for (auto& v : *f) v /= slot;
    std::int64_t bound = -1;
    try {
      bound = optimal_plan_units(down, (B + slot - 1) / slot).makespan;
    } catch (const InfeasibleBudget&) {
    }
    plan.note = fmt::format("DP in slots of {} units (the exact table would need {:.1f} GiB): makespan {}, and no "
                            "schedule is faster than {} (rounding may cost at most {})",
                            slot, optimal_table_bytes(L, width) / (1 << 30), plan.stats.makespan, bound,
                            bound >= 0 ? plan.stats.makespan - bound : plan.stats.makespan);
    return plan;
  }

 protected:
  // A tape: the DP's schedule at every internal budget of one table (sizes rounded up
  // to slots of 1/dp_slots of store-all's stage peak), revolve's, sqrt's and Chen's
  // schedules, then store-all; the fastest whose simulated peak fits wins.
  std::vector<NamedSchedule> family(const Chain& chain, bool budgeted) const override {
    if (!budgeted) return {{"store-all: the least time at store-all's memory", store_all_schedule(chain)}};
    const int W = options_.dp_slots.value_or(1000);
    if (W < 1) throw Error("[optimal] --dp-slots must be at least 1");
    const std::int64_t full = simulate_schedule(chain, store_all_schedule(chain)).peak_memory;
    const std::int64_t slot = std::max<std::int64_t>(1, (full + W - 1) / W);
    const Chain slotted = chain.in_slots(slot);
    const std::int64_t top = simulate_schedule(slotted, store_all_schedule(slotted)).peak_memory;
    if (optimal_table_bytes(chain.length(), top - slotted.cw[0] + 1) > table_limit_bytes)
      throw Error(fmt::format("[optimal] the DP table for {} stages and {} memory slots needs {:.1f} GiB (at most {:.0f} "
                              "GiB): give fewer --dp-slots",
                              chain.length(), top, optimal_table_bytes(chain.length(), top) / (1 << 30),
                              table_limit_bytes / (1 << 30)));
    check_dp_cost(chain.length(), top - slotted.cw[0] + 1, options_.time_limit_seconds);
    std::vector<NamedSchedule> out;
    for (auto& p : optimal_plans_up_to(slotted, top))
      out.push_back({fmt::format("DP at internal budget {}", bytes_text(static_cast<std::size_t>(p.budget_slots * slot))),
                     std::move(p.schedule)});
    for (int s : revolve_slot_family(chain.length()))
      out.push_back({fmt::format("revolve, {} slots", s), revolve_schedule(chain, s)});
    out.push_back({"sqrt segments", sqrt_schedule(chain)});
    for (const auto& starts : chen_segmentation_family(chain))
      out.push_back({fmt::format("Chen segmentation, {} segments", starts.size()), segments_schedule_at(chain, starts)});
    return out;
  }

  // Budget-greedy's plan, when greedy accepts the budget: the DP is optimal among
  // persistent stage schedules, and node-level eviction sometimes beats every one of
  // them (it may recompute x(i) between the vjps of stage i, or drop a checkpoint and
  // rebuild it); optimal then returns that plan, and says so. Greedy's acceptance is
  // monotone with the least peak it reports (budget_greedy.cpp), so this family keeps
  // the acceptance rule of planning.hpp.
  void add_candidates(const PlanRequest& request, const NodeCosts& costs, CandidateSearch& search) const override {
    if (!request.budget.bytes) return;
    StrategyOptions greedy_options;
    greedy_options.heuristic = "dtr";
    try {
      PlanReport g = make_greedy_strategy(greedy_options)->plan_report(request);
      Candidate c;
      c.setting = "budget-greedy (dtr) plan: faster than every persistent stage schedule";
      c.planned_time = program_time(request.tape, g.program, costs);
      c.lower = [p = std::move(g.program)] { return p; };
      search.add(std::move(c));
    } catch (const InfeasibleBudget& e) {
      search.note_refused_member(e.min_feasible_bytes);
    }
  }
};

}  // namespace

std::unique_ptr<RematStrategy> make_optimal_strategy(const StrategyOptions& o) {
  return std::make_unique<OptimalStrategy>(o);
}

}  // namespace remat
