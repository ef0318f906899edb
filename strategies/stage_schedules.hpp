// Contract: the stage-level schedule generators. Each is a pure function of a
// Chain and a few numbers, returns a Schedule in the vocabulary of schedule.hpp
// (F_n, F_ck, F_all, B, discard) that simulate_schedule() accepts, and never
// touches a tensor. Memory is the stage model of schedule.cpp (x(0) counted).
//
//  store_all_schedule     tape everything: F_all 0..L-1, B L, ..., B 0.
//                         forward_steps = L.
//  segments_schedule      Chen et al. 2016 (arXiv:1604.06174, sqrt(n) strategy): k
//                         segments, keep only segment inputs, recompute each
//                         segment once, taped. forward_steps = 2L - (length of
//                         the last segment), which is run taped directly.
//  sqrt_schedule          segments with k = round(sqrt(L)).
//  chen_greedy_schedule   Chen et al. 2016 Alg. 3 (greedy segmentation under a
//                         threshold B, with a search over B); least peak <= budget.
//  revolve_schedule       Griewank & Walther 2000 (ACM TOMS 26(1), Algorithm 799,
//                         doi:10.1145/347837.347846): binomial checkpointing with
//                         s slots (slot 0 holds x(0)); forward_steps = p(L, s) + L.
//  optimal_schedule       Beaumont, Eyraud-Dubois, Herrmann, Joly, Shilova 2019
//                         (arXiv:1911.13214): the dynamic program
//                         opt[m][i][l] over memory slots (chain branch with exact
//                         transients, optimal.cpp); least makespan <= budget among
//                         persistent schedules (a kept x(i) stays until B i).
// Infeasible budgets throw InfeasibleBudget (autodiff/strategy.hpp) carrying the
// smallest feasible budget the generator can certify.
#pragma once

#include "autodiff/strategy.hpp"
#include "strategies/schedule.hpp"

#include <cstdint>
#include <vector>

namespace remat {

// ---- store-all and segments (segments.cpp) ----
Schedule store_all_schedule(const Chain& chain);
// simulate_schedule(chain, store_all_schedule(chain)) in O(L) without the schedule
// (memory_after left empty).
ScheduleStats store_all_stats(const Chain& chain);
// `segments` in 1..L segments with boundaries floor(t * L / k), t = 0..k.
Schedule segments_schedule(const Chain& chain, int segments);
// Segments starting at `starts` (strictly increasing, starts[0] = 0, all < L).
Schedule segments_schedule_at(const Chain& chain, const std::vector<int>& starts);
Schedule sqrt_schedule(const Chain& chain);
// Chen's Alg. 3: walk stages i = 1..L-1 adding a size (cw[i], and separately cbw[i]);
// when the running total exceeds the threshold, stage i starts a new segment and the
// total restarts. Thresholds searched: every sum of consecutive sizes (L <= 128) or
// 512 evenly spaced values (larger L). Returns the segmentation with the least stage
// peak (ties: least makespan) among those with peak <= budget, else throws
// InfeasibleBudget with the least peak seen.
Schedule chen_greedy_schedule(const Chain& chain, std::int64_t budget);
// The distinct segmentations (segment starts) of that threshold search, in the order
// found (cw walk, then cbw walk; thresholds increasing).
std::vector<std::vector<int>> chen_segmentations(const Chain& chain);
// At most `cap` of them, evenly chosen (all when there are no more): the candidate
// family of the chen-greedy strategy.
std::vector<std::vector<int>> chen_segmentation_family(const Chain& chain, std::size_t cap = 256);

// ---- Revolve (revolve.cpp) ----
// beta(s, r) = C(s + r, s), saturated at 2^62; beta(s, -1) = 0.
std::int64_t revolve_beta(std::int64_t s, std::int64_t r);
// p(n, s) = r*n - beta(s+1, r-1) with beta(s, r-1) < n <= beta(s, r) (docs/papers.md):
// the least number of recomputed forward steps for n steps and s >= 1 slots.
std::int64_t revolve_recomputations(std::int64_t n, std::int64_t s);
// The first checkpoint offset the generator uses for (n >= 2, s >= 2): any i with
// beta(s, r-2) <= i <= beta(s, r-1) and beta(s-1, r-1) <= n - i <= beta(s-1, r)
// gives i + p(i, s) + p(n - i, s - 1) = p(n, s); we take the smallest.
std::int64_t revolve_split(std::int64_t n, std::int64_t s);
// The forward count of revolve_schedule for every (n, s), n <= max_n, s <= max_s,
// computed by the generator's own recursion (F(1,s) = 1, F(n,1) = n(n+1)/2,
// F(n,s) = i + F(n-i,s-1) + F(i,s) with i = revolve_split) without materialising
// schedules: entry [n * (max_s + 1) + s]; row n = 0 and column s = 0 are 0.
std::vector<std::int64_t> revolve_forward_count_table(int max_n, int max_s);
// The binomial schedule over the L = chain.length() stages with `slots` >= 1
// slots, slot 0 holding x(0): checkpoint writes are F_ck, plain advances F_n,
// each turn F_all i then B i (B L right after F_all L-1). No discards.
// forward_steps - L = p(L, slots) exactly. Throws Error past 2^31 actions.
Schedule revolve_schedule(const Chain& chain, int slots);
// simulate_schedule(chain, revolve_schedule(chain, slots)) without materialising the
// schedule (memory_after is left empty): forward counts by ranges, peaks by range maxima,
// O(L + stages reversed) time; on a chain of alike stages (cw, btmp, ftmp, fw equal on
// 0..L-1, cbw on 1..L-1, forward_drop_peak on 1..L-2) one evaluation per distinct task of
// the recursion, O(L) for the checks. n = 10^6, s = 20 (about 10^7 actions) in milliseconds.
ScheduleStats revolve_stats(const Chain& chain, int slots);
// The stage-model peak of revolve_schedule(chain, slots) (by revolve_stats).
std::int64_t revolve_peak_memory(const Chain& chain, int slots);
// The slot counts the revolve strategy tries under a budget: 1..L, or past 256 stages
// 1..64 and then every 25% more (the recomputations barely change there).
std::vector<int> revolve_slot_family(int stages);
// The most slots (fewest recomputations) in 1..L whose revolve peak fits `budget`;
// throws InfeasibleBudget with the peak of 1 slot when even that does not fit.
int revolve_slots_for_budget(const Chain& chain, std::int64_t budget);

// ---- Optimal (optimal.cpp) ----
struct OptimalPlan {
  Schedule schedule;
  std::int64_t makespan = 0;      // the DP value opt[M - cw[0]][0][L]
  std::int64_t slot_bytes = 1;    // memory unit the DP ran in
  std::int64_t budget_slots = 0;  // M
};
// The DP on the chain's integer memory as given (one unit = one slot).
OptimalPlan optimal_plan_units(const Chain& chain, std::int64_t budget_units);
// The least budget (in the chain's own units) with a feasible schedule: cw[0] plus
// the least m with opt[m][0][L] finite (an O(L^3) recursion, exact).
std::int64_t optimal_min_budget_units(const Chain& chain);
// Bytes: slot_bytes = ceil(budget / slot_count), the chain rounded up to slots
// (Chain::in_slots), M = floor(budget / slot_bytes); the replayed byte peak is then
// <= M * slot_bytes <= budget. InfeasibleBudget carries the smallest budget b* in
// bytes this procedure accepts; every budget >= b* is accepted (one whose own
// rounding is too coarse is planned with b*'s slot size).
OptimalPlan optimal_plan(const Chain& chain, std::int64_t budget, int slot_count);
Schedule optimal_schedule(const Chain& chain, std::int64_t budget, int slot_count);
// Every distinct optimum of one DP table over the chain's own units: for each budget
// M in [optimal_min_budget_units, max_budget] where opt changes, the plan at the least
// such M (by increasing budget, so by decreasing makespan). One table of width
// max_budget - cw[0] + 1 serves them all.
std::vector<OptimalPlan> optimal_plans_up_to(const Chain& chain, std::int64_t max_budget);
// Bytes of the DP table for a chain of L stages and `width` memory values.
double optimal_table_bytes(int stages, std::int64_t width);
// Seconds the DP takes for L stages and `width` memory values on this class of machine
// (8e8 table cells per second: strategy_bench measures 2e9 on tables that fit in
// cache and about 8e8 on gigabyte tables), for refusing plans that
// would run past a time limit before they start.
double optimal_estimated_seconds(int stages, std::int64_t width);
// The smallest byte budget optimal_plan(chain, budget, slot_count) accepts; throws
// Error when no budget works with that many slots.
std::int64_t optimal_min_budget(const Chain& chain, int slot_count);

}  // namespace remat
