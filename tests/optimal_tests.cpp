// Contract: the rotor dynamic program (Beaumont et al. 2019, arXiv:1911.13214) against
// independent oracles:
//  (a) Revolve's counts on uniform chains. Exact budget: a uniform chain with cw = 1 and
//      taped size cbw = K (i >= 1) needs, to reverse a step with s slots (x(0)
//      included, plus the working state x(i)), M = (s + 1) + K + 2: s + 1 stored x's,
//      the tape xbar(i+1), delta(i+1) and delta(i). When K > s no tape other than the
//      one being reversed can ever be kept (that needs 2K + 2 > M - 1), the DP's leaf
//      recursion is Revolve's, and forward_steps = p(n, s) + n exactly. On
//      Chain::uniform (K = 2) the budget is s + 5 and the DP may keep tapes Revolve
//      cannot: forward_steps <= p(n, s) + n (e.g. 7 < 8 for n = 4, s = 2).
//  (b) An exhaustive search (Dijkstra over every state of the stage vocabulary: stored
//      x's, tapes, kept x's, next backward) on >= 200 random chains of 1..6 stages,
//      several budgets each. Over persistent schedules (rotor's class: a kept x(i) stays
//      until B i) it finds the DP's makespan and feasibility exactly, and the returned
//      schedule replays with that makespan and peak <= budget. Over all schedules the
//      DP is an upper bound: dropping a kept x(i) and recomputing it is sometimes faster
//      on heterogeneous chains (the count is printed).
//  (c) Infeasible budgets: InfeasibleBudget carries the smallest feasible budget,
//      which is feasible while every smaller budget is not.
#include "models/models.hpp"
#include "strategies/stage_schedules.hpp"
#include "strategies/strategies.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>
#include <queue>
#include <random>
#include <utility>

using namespace remat;

namespace {

constexpr std::int64_t none = -1;

// Least makespan over the schedules of the stage vocabulary whose peak stays <= budget, or
// -1: Dijkstra over every state, with the semantics written out independently of
// schedule.cpp. A state is (plain x bits, taped xbar bits, kept bits, next backward);
// from it, any forward of an unfinished stage whose input is available, any discard and
// the next backward are explored. With `persistent`, an x(i) kept by F_ck i or F_all i
// may not be dropped (by F_n i or discard i) before B i: rotor's persistent schedules.
class ExhaustiveSearch {
 public:
  std::int64_t solve(const Chain& c, std::int64_t budget, bool persistent) {
    const int L = c.length();
    REQUIRE(L <= 6);
    auto cw = [&](int j) { return j <= L ? c.cw[j] : std::int64_t{0}; };
    auto cbw = [&](int j) { return j <= L ? c.cbw[j] : std::int64_t{0}; };
    // key: plain bits 0..L | xbar bits 1..L | kept bits 0..L-1 | next backward + 1
    const int pb = L + 1, xb = pb + L, kb = xb + L;
    auto key = [&](unsigned plain, unsigned xbar, unsigned kept, int nb) {
      return plain | ((xbar >> 1) << pb) | (kept << xb) | (static_cast<unsigned>(nb + 1) << kb);
    };
    if (cw(0) > budget) return none;
    ++stamp_;
    auto seen = [&](unsigned k) { return stamp_of_[k] == stamp_; };
    using Item = std::pair<std::int64_t, unsigned>;
    std::priority_queue<Item, std::vector<Item>, std::greater<>> queue;
    auto push = [&](unsigned k, std::int64_t d) {
      if (!seen(k) || d < dist_[k]) {
        stamp_of_[k] = stamp_;
        dist_[k] = d;
        queue.push({d, k});
      }
    };
    push(key(1u, 0u, 1u, L), 0);
    while (!queue.empty()) {
      const auto [d, k] = queue.top();
      queue.pop();
      if (d != dist_[k]) continue;
      const unsigned plain = k & ((1u << pb) - 1), xbar = ((k >> pb) & ((1u << L) - 1)) << 1,
                     kept = (k >> xb) & ((1u << L) - 1);
      const int nb = static_cast<int>(k >> kb) - 1;
      if (nb < 0) return d;
      std::int64_t mem = nb < L ? cw(nb + 1) : 0;
      for (int j = 0; j <= L; ++j) mem += ((plain >> j) & 1u ? cw(j) : 0) + ((xbar >> j) & 1u ? cbw(j) : 0);
      auto go = [&](unsigned p, unsigned x, unsigned kp, int n, std::int64_t cost, std::int64_t transient) {
        if (transient <= budget) push(key(p, x, persistent ? kp : 0u, n), d + cost);
      };
      auto avail = [&](int j) { return ((plain | xbar) >> j) & 1u; };
      // may x(j) stored as plain be dropped now?
      auto droppable = [&](int j) { return !persistent || !((kept >> j) & 1u) || ((xbar >> j) & 1u); };
      for (int i = 0; i < L && i <= nb; ++i) {
        if (!avail(i)) continue;
        const unsigned in = 1u << i, out = 1u << (i + 1);
        const std::int64_t t = c.ftmp[i];
        go(plain | out, xbar, kept | in, nb, c.fw[i], mem + cw(i + 1) + t);                          // F_ck i
        if (!(plain & in) || droppable(i)) {  // F_n i; dropping a plain x(i) no tape holds frees it early
          const bool drops = (plain & in) && !(xbar & in);
          go((plain | out) & ~in, xbar, kept, nb, c.fw[i],
             drops ? mem - cw(i) + std::min(c.fdrop.empty() ? cw(i) + cw(i + 1) + t : c.fdrop[static_cast<std::size_t>(i)],
                                            cw(i) + cw(i + 1) + t)
                   : mem + cw(i + 1) + t);
        }
        go(plain & ~out, xbar | out, kept | in, nb, c.fw[i], mem + cbw(i + 1) + t);                 // F_all i
      }
      for (int j = 0; j <= L; ++j)
        if (((plain >> j) & 1u) && droppable(j)) go(plain & ~(1u << j), xbar, kept, nb, 0, mem);   // discard j
      if (avail(nb) && (nb == L || ((xbar >> (nb + 1)) & 1u)))                                       // B nb
        go(plain & ~(1u << nb), nb < L ? xbar & ~(1u << (nb + 1)) : xbar, kept & ~(1u << nb), nb - 1, c.bw[nb],
           mem + cw(nb) + c.btmp[nb]);
    }
    return none;
  }

 private:
  static constexpr std::size_t states = std::size_t{1} << 22;  // L <= 6: 7 + 6 + 6 + 3 bits
  std::vector<std::int64_t> dist_ = std::vector<std::int64_t>(states);
  std::vector<std::uint32_t> stamp_of_ = std::vector<std::uint32_t>(states, 0);
  std::uint32_t stamp_ = 0;
};

Chain random_small_chain(int L, std::mt19937& rng) {
  auto r = [&](int lo, int hi) { return static_cast<std::int64_t>(std::uniform_int_distribution<int>(lo, hi)(rng)); };
  Chain c;
  c.name = "random";
  for (int i = 0; i <= L; ++i) {
    c.bw.push_back(i < L ? r(0, 5) : r(0, 1));
    c.cw.push_back(r(0, 4));
    c.cbw.push_back(c.cw.back() + r(0, 4));
    c.btmp.push_back(r(0, 3));
    if (i < L) {
      c.fw.push_back(r(0, 5));
      c.ftmp.push_back(r(0, 3));
    }
  }
  // Half the chains carry fdrop (F_n frees x(i) early), at most the rotor transient.
  if (rng() % 2)
    for (int i = 0; i < L; ++i) c.fdrop.push_back(c.cw[i + 1] + r(0, 4));
  return c;
}

std::int64_t forward_steps(const Schedule& s) {
  std::int64_t f = 0;
  for (const auto& a : s.actions) f += a.kind != StageActionKind::backward && a.kind != StageActionKind::discard;
  return f;
}

}  // namespace

TEST_CASE("optimal: reproduces Revolve's forward counts on uniform chains at the exact budget") {
  constexpr int K = 9;  // taped size, > every s below
  int fewer_on_uniform = 0;
  for (int n = 1; n <= 60; ++n)
    for (int s = 1; s <= 8; ++s) {
      CAPTURE(n);
      CAPTURE(s);
      Chain c = Chain::uniform(n);
      for (int i = 1; i <= n; ++i) c.cbw[i] = K;
      const std::int64_t M = (s + 1) + K + 2;
      const OptimalPlan plan = optimal_plan_units(c, M);
      const ScheduleStats st = simulate_schedule(c, plan.schedule);
      CHECK(st.forward_steps == revolve_recomputations(n, s) + n);
      CHECK(st.peak_memory <= M);
      CHECK(simulate_schedule(c, revolve_schedule(c, s)).peak_memory <= M);
      // Chain::uniform (K = 2): tapes are cheap enough to keep, so the DP can only do better.
      const Chain u = Chain::uniform(n);
      const ScheduleStats su = simulate_schedule(u, optimal_plan_units(u, s + 5).schedule);
      CHECK(su.forward_steps <= revolve_recomputations(n, s) + n);
      CHECK(su.peak_memory <= s + 5);
      fewer_on_uniform += su.forward_steps < revolve_recomputations(n, s) + n;
    }
  MESSAGE("on Chain::uniform at budget s + 5 the DP needs fewer forwards than Revolve in " << fewer_on_uniform
                                                                                         << " of 480 (n, s)");
  const Chain u4 = Chain::uniform(4);
  CHECK(forward_steps(optimal_plan_units(u4, 7).schedule) == 7);
  CHECK(revolve_recomputations(4, 2) + 4 == 8);
}

TEST_CASE("optimal: equals an exhaustive search over persistent schedules on random chains of <= 6 stages") {
  std::mt19937 rng(1911132140);
  std::vector<Chain> chains;
  // Needs the exact chain-branch transient: F_all 0 runs beside delta(2), with ftmp[0] = 10.
  Chain tricky;
  tricky.name = "tricky";
  tricky.fw = {1, 1};
  tricky.bw = {1, 1, 0};
  tricky.cw = {1, 1, 3};
  tricky.cbw = {1, 5, 3};
  tricky.ftmp = {10, 0};
  tricky.btmp = {0, 0, 0};
  chains.push_back(tricky);
  for (int t = 0; t < 240; ++t) chains.push_back(random_small_chain(1 + t % 6, rng));
  ExhaustiveSearch search;
  int compared = 0, feasible = 0, non_persistent_faster = 0;
  for (std::size_t t = 0; t < chains.size(); ++t) {
    const Chain& c = chains[t];
    CAPTURE(t);
    CAPTURE(c.to_json().dump());
    const std::int64_t least = optimal_min_budget_units(c);
    const std::int64_t store_all_peak = simulate_schedule(c, store_all_schedule(c)).peak_memory;
    std::vector<std::int64_t> budgets{least - 1, least, least + 1, least + 2, least + 4, store_all_peak};
    if (t == 0)
      for (std::int64_t b = least; b <= store_all_peak; ++b) budgets.push_back(b);
    for (const std::int64_t budget : budgets) {
      CAPTURE(budget);
      const std::int64_t best = search.solve(c, budget, true);
      const std::int64_t best_any = search.solve(c, budget, false);
      ++compared;
      if (budget < least) {
        CHECK(best == none);
        CHECK_THROWS_AS(optimal_plan_units(c, budget), InfeasibleBudget);
        continue;
      }
      ++feasible;
      REQUIRE(best != none);
      const OptimalPlan plan = optimal_plan_units(c, budget);
      CHECK(plan.makespan == best);
      const ScheduleStats st = simulate_schedule(c, plan.schedule);
      CHECK(st.makespan == best);
      CHECK(st.peak_memory <= budget);
      // Over all schedules (dropping and recomputing kept values allowed) the DP is an upper bound.
      CHECK(best_any != none);
      CHECK(best_any <= best);
      non_persistent_faster += best_any < best;
    }
  }
  CHECK(compared >= 1400);
  CHECK(feasible >= 1000);
  MESSAGE("optimal vs exhaustive: " << feasible << " feasible (chain, budget) pairs; a non-persistent schedule is faster in "
                                    << non_persistent_faster);
}

TEST_CASE("optimal: infeasible byte budgets name the smallest feasible budget") {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 60; ++trial) {
    const int L = 1 + trial % 8;
    Chain c = random_small_chain(L, rng);
    const int scale = trial < 30 ? 13 : 997;  // bytes per unit: small chains are scanned exhaustively
    for (auto* f : {&c.cw, &c.cbw, &c.ftmp, &c.btmp, &c.fdrop})
      for (auto& v : *f) v = v * scale + static_cast<std::int64_t>(rng() % scale);
    for (int i = 1; i <= L; ++i) c.cbw[i] = std::max(c.cbw[i], c.cw[i]);
    c.name = "bytes" + std::to_string(trial);
    const int slots = 16 + trial % 29;
    CAPTURE(c.to_json().dump());
    CAPTURE(slots);
    const std::int64_t smallest = optimal_min_budget(c, slots);
    const OptimalPlan plan = optimal_plan(c, smallest, slots);
    CHECK(simulate_schedule(c, plan.schedule).peak_memory <= smallest);
    try {
      optimal_plan(c, smallest - 1, slots);
      FAIL("expected InfeasibleBudget");
    } catch (const InfeasibleBudget& e) {
      CHECK(static_cast<std::int64_t>(e.min_feasible_bytes) == smallest);
      const std::string message = e.what();
      CHECK(message.find("[optimal] budget " + std::to_string(smallest - 1) + " bytes is infeasible for chain " + c.name) == 0);
      CHECK(message.find("the smallest feasible budget is " + std::to_string(smallest) + " bytes") != std::string::npos);
    }
    for (std::int64_t b = smallest; b <= smallest + (scale == 13 ? 400 : 40); ++b) {  // all larger budgets work
      CAPTURE(b);
      CHECK(simulate_schedule(c, optimal_plan(c, b, slots).schedule).peak_memory <= b);
    }
    if (scale == 13) {  // every smaller budget is infeasible too (the answer is the global least)
      int accepted = 0;
      for (std::int64_t b = 1; b < smallest; ++b) {
        try {
          optimal_plan(c, b, slots);
          ++accepted;
        } catch (const InfeasibleBudget&) {
        }
      }
      CHECK(accepted == 0);
    }
  }
  // Units: the least budget is exactly the DP's feasibility threshold.
  const Chain u = Chain::uniform(10);
  const std::int64_t least = optimal_min_budget_units(u);
  CHECK(least == 6);  // x(0), x(9), xbar(10), delta(10), delta(9)
  CHECK_NOTHROW(optimal_plan_units(u, least));
  try {
    optimal_plan_units(u, least - 1);
    FAIL("expected InfeasibleBudget");
  } catch (const InfeasibleBudget& e) {
    CHECK(e.min_feasible_bytes == 6);
    CHECK(std::string(e.what()) == "[optimal] budget 5 is infeasible for chain uniform:n=10; the smallest feasible budget is 6");
  }
  CHECK_THROWS_AS(optimal_plan(u, 100, 0), Error);
  CHECK_THROWS_AS(optimal_plan(u, 0, 10), Error);
  // Too few slots for any budget: at least 6 separate values must coexist.
  CHECK_THROWS_WITH_AS(optimal_min_budget(u, 3), doctest::Contains("memory slots at any slot size"), Error);
}

TEST_CASE("optimal: planning 100 stages with 1000 memory slots") {
  std::mt19937 rng(100);
  Chain c = Chain::uniform(100);
  for (int i = 0; i <= 100; ++i) {
    c.cw[i] = 1000 + static_cast<std::int64_t>(rng() % 100000);
    c.cbw[i] = c.cw[i] + static_cast<std::int64_t>(rng() % 300000);
    c.btmp[i] = static_cast<std::int64_t>(rng() % 10000);
    if (i < 100) {
      c.fw[i] = 1 + static_cast<std::int64_t>(rng() % 1000);
      c.bw[i] = 2 * c.fw[i];
      c.ftmp[i] = static_cast<std::int64_t>(rng() % 5000);
    }
  }
  c.name = "heterogeneous100";
  const std::int64_t budget = 3 * optimal_min_budget(c, 1000);
  const auto t0 = std::chrono::steady_clock::now();
  const OptimalPlan plan = optimal_plan(c, budget, 1000);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("optimal: 100 stages, 1000 slots planned in " << seconds << " s");
  const ScheduleStats st = simulate_schedule(c, plan.schedule);
  CHECK(st.peak_memory <= budget);
  CHECK(st.makespan == plan.makespan);
  CHECK(plan.budget_slots == 1000);
}

// "Optimal is optimal" on the model chains it is meant for: on homogeneous chains
// (mlp, resmlp) at a tenth, a fifth, a third and half of store-all's peak, optimal's
// planned time, and its recomputed ops, are at most those of every other strategy
// at the same budget (each accepted on the simulated peak).
TEST_CASE("optimal: never slower than sqrt, chen-greedy, revolve or greedy on homogeneous chains") {
  for (const char* spec : {"mlp:layers=12,width=64,batch=16", "mlp:layers=40,width=32,batch=8,act=tanh",
                           "resmlp:layers=16,width=32,batch=8,act=relu", "resmlp:layers=30,width=16,batch=4,act=gelu"}) {
    Model m = build_model(spec);
    const Tape& tape = *m.tape;
    const std::size_t full = simulate(tape, store_all_program(tape, m.loss.id)).peak_bytes;
    for (double f : {0.1, 0.2, 1.0 / 3, 0.5}) {
      const Budget budget{static_cast<std::size_t>(f * static_cast<double>(full))};
      CAPTURE(spec);
      CAPTURE(*budget.bytes);
      std::optional<PlanReport> best;
      try {
        best = plan(*make_strategy("optimal"), PlanRequest{tape, m.loss.id, budget});
      } catch (const InfeasibleBudget&) {
      }
      for (const char* other : {"sqrt", "chen-greedy", "revolve", "greedy"}) {
        CAPTURE(other);
        try {
          PlanReport r = plan(*make_strategy(other), PlanRequest{tape, m.loss.id, budget});
          REQUIRE(best);  // whatever another strategy fits, optimal fits
          CHECK(best->planned_time <= r.planned_time);
          CHECK(best->predicted.recomputed_ops <= r.predicted.recomputed_ops);
        } catch (const InfeasibleBudget&) {
        }
      }
    }
  }
}
