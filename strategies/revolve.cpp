// Contract: Revolve, binomial checkpointing (Griewank 1992, Optim. Methods Softw.
// 1:35-54; Griewank & Walther 2000, "Algorithm 799: revolve", ACM TOMS 26(1):19-45,
// doi:10.1145/347837.347846; PAPERS.md "Revolve").
//  - beta(s, r) = C(s + r, s) (G&W 2000, the binomial bound: the number of steps s slots
//    reverse with at most r advances per step), saturated at 2^62.
//  - p(n, s) = r n - beta(s + 1, r - 1) with beta(s, r - 1) < n <= beta(s, r)
//    (G&W 2000, the minimal repetition count; PAPERS.md): the least number
//    of recomputed (untaped) forward steps for n steps with s slots, slot 0 = x(0).
//  - The schedule follows the recursion p(n, s) = min_i [i + p(i, s) + p(n - i, s - 1)]
//    with an optimal i in closed form (revolve_split): advance i steps from the
//    stored x(a) (F_ck a, then F_n), store x(a + i), reverse the last n - i steps with
//    s - 1 slots, then the first i with s slots. With s = 1 the state advances from
//    x(a) to each step in turn (n(n-1)/2 advances). Each reversal of a step a is
//    the "turn": F_all a, B a (and B L right after F_all L-1, the loss).
//  - Hence forward_steps = p(L, s) + L exactly; the generator is iterative (an
//    explicit work stack), O(1) per action: n = 10^6, s = 20 plans in well under
//    a second (about 9.8 million actions).
//  - Stage memory (schedule.cpp): at most s stored x values plus the working state,
//    the tape of the step being reversed and two gradients. On Chain::uniform that
//    is a peak of at most s + 5 (s + 1 x's of 1, xbar of 2, delta(i+1) and delta(i)).
#include "strategies/stage_schedules.hpp"

#include "strategies/chain_planner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace remat {

namespace {

constexpr std::int64_t saturation = std::int64_t{1} << 62;

// r with beta(s, r-1) < n <= beta(s, r), for n >= 1, s >= 1.
std::int64_t repetition_number(std::int64_t n, std::int64_t s) {
  std::int64_t r = 0;
  __int128 beta = 1;  // beta(s, 0)
  while (beta < n) {
    ++r;
    beta = beta * (s + r) / r;  // C(s+r, r) = C(s+r-1, r-1) (s+r) / r, exact
    if (beta > saturation) beta = saturation;
  }
  return r;
}

void check_ns(const char* what, std::int64_t n, std::int64_t s) {
  if (n < 1 || s < 1) throw Error(fmt::format("[revolve] {}: n = {} steps and s = {} slots must both be >= 1", what, n, s));
}

}  // namespace

std::int64_t revolve_beta(std::int64_t s, std::int64_t r) {
  if (s < 0 || r < -1) throw Error(fmt::format("[revolve] beta({}, {}) is undefined", s, r));
  if (r == -1) return 0;
  const std::int64_t k = std::min(s, r);  // C(s+r, k)
  __int128 b = 1;
  for (std::int64_t t = 1; t <= k; ++t) {
    b = b * (s + r - k + t) / t;  // C(s+r-k+t, t), exact at every step
    if (b > saturation) return saturation;
  }
  return static_cast<std::int64_t>(b);
}

std::int64_t revolve_recomputations(std::int64_t n, std::int64_t s) {
  check_ns("p(n, s)", n, s);
  const std::int64_t r = repetition_number(n, s);
  const __int128 p = static_cast<__int128>(r) * n - revolve_beta(s + 1, r - 1);
  if (p < 0 || p > saturation) throw Error(fmt::format("[revolve] p({}, {}) overflows", n, s));
  return static_cast<std::int64_t>(p);
}

std::int64_t revolve_split(std::int64_t n, std::int64_t s) {
  if (n < 2 || s < 2) throw Error(fmt::format("[revolve] split({}, {}): needs n >= 2 and s >= 2", n, s));
  const std::int64_t r = repetition_number(n, s);
  // First part i in [beta(s, r-2), beta(s, r-1)] (each step advanced at most r-1 more
  // times), last part n-i in [beta(s-1, r-1), beta(s-1, r)]; both on their linear piece
  // of p, whose sum telescopes to r n - beta(s+1, r-1) = p(n, s).
  const std::int64_t lower = r >= 2 ? revolve_beta(s, r - 2) : 0;
  const std::int64_t i = std::max({lower, n - revolve_beta(s - 1, r), std::int64_t{1}});
  return i;
}

std::vector<std::int64_t> revolve_forward_count_table(int max_n, int max_s) {
  if (max_n < 0 || max_s < 0) throw Error("[revolve] forward count table: negative size");
  const std::size_t W = static_cast<std::size_t>(max_s) + 1;
  std::vector<std::int64_t> F((static_cast<std::size_t>(max_n) + 1) * W, 0);
  for (std::int64_t n = 1; n <= max_n; ++n)
    for (std::int64_t s = 1; s <= max_s; ++s) {
      std::int64_t& f = F[n * W + s];
      if (n == 1) f = 1;
      else if (s == 1) f = n * (n + 1) / 2;
      else {
        const std::int64_t i = revolve_split(n, s);
        f = i + F[(n - i) * W + (s - 1)] + F[i * W + s];
      }
    }
  return F;
}

Schedule revolve_schedule(const Chain& chain, int slots) {
  chain.validate();
  const int L = chain.length();
  check_ns("schedule", L, slots);
  const std::int64_t total = revolve_recomputations(L, slots) + 2 * std::int64_t{L} + 1;
  // 2^27 actions are 1 GiB of schedule: beyond that, refuse before allocating.
  if (total > (std::int64_t{1} << 27))
    throw Error(fmt::format("[revolve] {} stages with {} slots need {} stage actions (at most 2^27 are materialised); "
                            "use more slots",
                            L, slots, total));
  Schedule schedule;
  auto& out = schedule.actions;
  out.reserve(static_cast<std::size_t>(total));
  auto advance = [&](int a, std::int64_t steps) {  // from the stored x(a) to x(a+steps), keeping x(a)
    out.push_back({StageActionKind::forward_checkpoint, a});
    for (std::int64_t k = 1; k < steps; ++k) out.push_back({StageActionKind::forward_none, static_cast<int>(a + k)});
  };
  auto turn = [&](int a) {  // reverse step a from x(a)
    out.push_back({StageActionKind::forward_taped, a});
    if (a == L - 1) out.push_back({StageActionKind::backward, L});
    out.push_back({StageActionKind::backward, a});
  };
  struct Task { int a; std::int64_t n, s; };
  std::vector<Task> stack{{0, L, std::min<std::int64_t>(slots, L)}};  // s > L slots behave as s = L
  while (!stack.empty()) {
    const Task t = stack.back();
    stack.pop_back();
    if (t.n == 1) {
      turn(t.a);
    } else if (t.s == 1) {
      for (std::int64_t k = t.n - 1; k >= 1; --k) {
        advance(t.a, k);
        turn(static_cast<int>(t.a + k));
      }
      turn(t.a);
    } else {
      const std::int64_t i = revolve_split(t.n, t.s);
      advance(t.a, i);
      stack.push_back({t.a, i, t.s});                                     // the first i steps, later
      stack.push_back({static_cast<int>(t.a + i), t.n - i, t.s - 1});     // the last n-i steps, now
    }
  }
  return schedule;
}

std::int64_t revolve_peak_memory(const Chain& chain, int slots) {
  return simulate_schedule(chain, revolve_schedule(chain, slots)).peak_memory;
}

std::vector<int> revolve_slot_family(int L) {
  std::vector<int> out;
  for (int s = 1; s <= L; s = (L <= 256 || s < 64) ? s + 1 : std::max(s + 1, s + s / 4)) out.push_back(s);
  return out;
}

int revolve_slots_for_budget(const Chain& chain, std::int64_t budget) {
  chain.validate();
  const int L = chain.length();
  const std::int64_t peak1 = revolve_peak_memory(chain, 1);
  if (peak1 > budget)
    throw InfeasibleBudget(fmt::format("[revolve] budget {} is infeasible for chain {}: even 1 slot peaks at {}",
                                       budget, chain.name, peak1),
                           static_cast<std::size_t>(peak1));
  // Bisection for the largest fitting s (the peak grows with s on uniform chains; on
  // others the answer is a fitting s, verified, not necessarily the largest).
  int lo = 1, hi = L;
  while (lo < hi) {
    const int mid = lo + (hi - lo + 1) / 2;
    if (revolve_peak_memory(chain, mid) <= budget) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// ---- the strategy ----
namespace {

class RevolveStrategy final : public ChainPlanner {
 public:
  using ChainPlanner::ChainPlanner;
  std::string name() const override { return "revolve"; }

 protected:
  // --slots s: that schedule. No budget: Griewank and Walther's adjust(), about log4(L)
  // slots. A budget: every s in 1..L (past 256 stages: 1..64 and then every 25% more),
  // the fastest that fits.
  std::vector<NamedSchedule> family(const Chain& chain, bool budgeted) const override {
    const int L = chain.length();
    auto named = [&](int s) { return NamedSchedule{fmt::format("{} slot{}", s, s == 1 ? "" : "s"), revolve_schedule(chain, s)}; };
    if (options_.slots) {
      const int s = *options_.slots;
      if (s < 1 || s > L)
        throw Error(fmt::format("[revolve] --slots = {} must be in 1..{} (slot 0 holds x(0); the chain has {} stages, so "
                                "more slots than stages are never used)",
                                s, L, L));
      return {named(s)};
    }
    if (!budgeted) {
      int s = std::max(1, static_cast<int>(std::ceil(std::log(static_cast<double>(L)) / std::log(4.0))));
      return {named(std::min(s, L))};
    }
    std::vector<NamedSchedule> out;
    for (int s : revolve_slot_family(L)) out.push_back(named(s));
    return out;
  }
};

}  // namespace

std::unique_ptr<RematStrategy> make_revolve_strategy(const StrategyOptions& o) {
  return std::make_unique<RevolveStrategy>(o);
}

}  // namespace remat
