// Contract: the stage memory model of simulate_schedule (a hand-computed trace), its
// documented errors for malformed schedules, and a validity replay of every
// generator (store-all, segments, sqrt, Chen greedy, Revolve, Optimal) over a grid of
// chains and budgets/slots: simulate_schedule accepts each schedule (so every action
// finds what it needs), every stage is back-propagated exactly once, peak <= budget
// where a budget applies, and forward counts are the documented ones.
#include "cli_harness.hpp"
#include "strategies/stage_schedules.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <random>

using namespace remat;
using remat::testing::message_of;

namespace {

using K = StageActionKind;

Schedule parse(std::initializer_list<std::pair<const char*, int>> list) {
  Schedule s;
  for (auto [name, stage] : list) {
    const std::string n = name;
    const K kind = n == "F_n" ? K::forward_none : n == "F_ck" ? K::forward_checkpoint : n == "F_all" ? K::forward_taped
                   : n == "B" ? K::backward : K::discard;
    s.actions.push_back({kind, stage});
  }
  return s;
}

std::string sim_error(const Chain& c, std::initializer_list<std::pair<const char*, int>> list) {
  return message_of([&] { simulate_schedule(c, parse(list)); });
}

// Replays and checks the invariants every schedule must satisfy.
ScheduleStats replay(const Chain& c, const Schedule& s) {
  const ScheduleStats st = simulate_schedule(c, s);
  std::vector<int> back_count(c.length() + 1, 0);
  for (const auto& a : s.actions)
    if (a.kind == K::backward) ++back_count[a.stage];
  for (int i = 0; i <= c.length(); ++i) CHECK(back_count[i] == 1);
  CHECK(st.memory_after.size() == s.actions.size());
  CHECK(st.memory_after.back() == c.cw[0]);  // only delta(0) is left
  CHECK(st.recomputed_steps == st.forward_steps - c.length());
  return st;
}

Chain random_chain(int L, std::mt19937& rng, int max_size) {
  auto r = [&](int lo, int hi) { return static_cast<std::int64_t>(std::uniform_int_distribution<int>(lo, hi)(rng)); };
  Chain c;
  c.name = "random L=" + std::to_string(L);
  for (int i = 0; i <= L; ++i) {
    c.bw.push_back(i < L ? r(1, 9) : 0);
    c.cw.push_back(r(1, max_size));
    c.cbw.push_back(c.cw.back() + r(0, max_size));
    c.btmp.push_back(r(0, max_size / 2));
    if (i < L) {
      c.fw.push_back(r(1, 6));
      c.ftmp.push_back(r(0, max_size / 2));
    }
  }
  return c;
}

}  // namespace

TEST_CASE("schedule: action names and one action per line") {
  CHECK(std::string(stage_action_name(K::forward_none)) == "F_n");
  CHECK(std::string(stage_action_name(K::forward_checkpoint)) == "F_ck");
  CHECK(std::string(stage_action_name(K::forward_taped)) == "F_all");
  CHECK(std::string(stage_action_name(K::backward)) == "B");
  CHECK(std::string(stage_action_name(K::discard)) == "discard");
  CHECK(parse({{"F_ck", 0}, {"discard", 3}, {"B", 7}}).to_string() == "F_ck 0\ndiscard 3\nB 7\n");
}

TEST_CASE("schedule: the stage memory model on a hand-computed trace") {
  Chain c;
  c.name = "trace";
  c.fw = {1, 2};
  c.bw = {3, 4, 1};
  c.cw = {2, 3, 1};
  c.cbw = {2, 5, 4};
  c.ftmp = {1, 2};
  c.btmp = {1, 0, 2};
  // x0 = 2 | F_ck 0: peak 2+3+1, x1 kept | F_all 1: peak 5+4+2, xbar2 | B 2: peak 9+1+2, delta2 |
  // B 1: peak 10+3+0, drops xbar2, delta2, x1 | F_all 0: peak 5+5+1 | B 0: peak 10+2+1, leaves delta0.
  const ScheduleStats st = simulate_schedule(c, parse({{"F_ck", 0}, {"F_all", 1}, {"B", 2}, {"B", 1}, {"F_all", 0}, {"B", 0}}));
  CHECK(st.memory_after == std::vector<std::int64_t>{5, 9, 10, 5, 10, 2});
  CHECK(st.peak_memory == 13);
  CHECK(st.forward_steps == 3);
  CHECK(st.recomputed_steps == 1);
  CHECK(st.makespan == 1 + 2 + 1 + 1 + 4 + 3);
  // discard drops a checkpoint; F_all over a plain x(i+1) replaces it (-3 + 4).
  CHECK(simulate_schedule(c, parse({{"F_ck", 0}, {"F_ck", 1}, {"discard", 2}, {"F_all", 1}, {"B", 2}, {"B", 1},
                                    {"F_all", 0}, {"B", 0}}))
            .memory_after == std::vector<std::int64_t>{5, 6, 5, 9, 10, 5, 10, 2});
  CHECK(simulate_schedule(c, parse({{"F_ck", 0}, {"F_ck", 1}, {"F_all", 1}, {"B", 2}, {"B", 1}, {"F_all", 0}, {"B", 0}}))
            .memory_after == std::vector<std::int64_t>{5, 6, 9, 10, 5, 10, 2});
  // F_n drops its plain input x(i) but never a taped one.
  CHECK(simulate_schedule(c, parse({{"F_all", 0}, {"F_n", 1}, {"B", 2}, {"F_all", 1}, {"B", 1}, {"B", 0}}))
            .memory_after == std::vector<std::int64_t>{7, 8, 8, 12, 10, 2});
}

TEST_CASE("schedule: malformed schedules produce the documented errors") {
  const Chain u3 = Chain::uniform(3);
  CHECK(sim_error(u3, {{"F_n", 1}}) == "[schedule] action 0 (F_n 1): x(1) is not available");
  CHECK(sim_error(u3, {{"F_ck", 0}, {"F_ck", 0}}) == "[schedule] action 1 (F_ck 0): x(1) is already available");
  CHECK(sim_error(u3, {{"F_all", 0}, {"F_all", 0}}) == "[schedule] action 1 (F_all 0): xbar(1) is already taped");
  CHECK(sim_error(u3, {{"B", 2}}) == "[schedule] action 0 (B 2): out of order: backward 3 must come first");
  CHECK(sim_error(u3, {{"B", 5}}) == "[schedule] action 0 (B 5): stage 5 is out of range (0 <= i <= L = 3)");
  CHECK(sim_error(u3, {{"F_all", 3}}) == "[schedule] action 0 (F_all 3): stage 3 is not a forward stage (0 <= i < L = 3)");
  CHECK(sim_error(u3, {{"discard", 2}}) == "[schedule] action 0 (discard 2): x(2) is not stored as a checkpoint");
  CHECK(sim_error(u3, {{"F_ck", 0}, {"F_ck", 1}, {"F_ck", 2}, {"B", 3}, {"B", 2}}) ==
        "[schedule] action 4 (B 2): xbar(3) is not taped (run F_all 2 first)");
  CHECK(sim_error(u3, {{"F_ck", 0}, {"F_n", 1}, {"F_n", 2}, {"B", 3}, {"B", 2}}) ==
        "[schedule] action 4 (B 2): x(2) is not available");
  CHECK(sim_error(u3, {{"F_all", 0}, {"F_all", 1}}) ==
        "[schedule] the schedule ends after 2 actions, before backward 0 (next expected: backward 3)");

  const Chain u1 = Chain::uniform(1);
  CHECK(sim_error(u1, {{"F_all", 0}, {"B", 1}, {"B", 0}, {"F_all", 0}}) ==
        "[schedule] action 3 (F_all 0): the schedule continues after backward 0");
  CHECK(sim_error(u1, {{"F_all", 0}, {"discard", 0}, {"B", 1}, {"B", 0}}) ==
        "[schedule] action 3 (B 0): x(0) is not available");
  CHECK(sim_error(u1, {{"F_all", 0}, {"B", 1}, {"B", 1}}) ==
        "[schedule] action 2 (B 1): stage 1 was already back-propagated");

  const Chain u2 = Chain::uniform(2);
  CHECK(sim_error(u2, {{"F_all", 0}, {"F_all", 1}, {"B", 2}, {"B", 1}, {"F_n", 1}}) ==
        "[schedule] action 4 (F_n 1): stage 1 was already back-propagated");
  CHECK(sim_error(u2, {{"F_ck", 0}, {"F_all", 1}, {"B", 2}, {"B", 1}, {"F_ck", 0}}) ==
        "[schedule] action 4 (F_ck 0): x(1) is no longer needed: stage 1 was back-propagated");
  CHECK(sim_error(u2, {{"F_n", 0}, {"F_all", 1}, {"B", 2}, {"B", 1}, {"F_all", 0}}) ==
        "[schedule] action 4 (F_all 0): x(0) is not available");

  Chain bad = u2;
  bad.cw.pop_back();
  CHECK(message_of([&] { simulate_schedule(bad, store_all_schedule(u2)); }).find("[chain uniform:n=2] cw has 2 entries") == 0);
}

TEST_CASE("schedule: store-all and segment schedules on uniform chains") {
  for (int L = 1; L <= 30; ++L) {
    CAPTURE(L);
    const Chain c = Chain::uniform(L);
    const ScheduleStats all = replay(c, store_all_schedule(c));
    CHECK(all.forward_steps == L);
    CHECK(all.makespan == 3 * L);
    CHECK(all.peak_memory == 2 * L + 3);  // x0, L tapes of 2, delta(i+1), delta(i)
    CHECK(store_all_schedule(c).actions == segments_schedule(c, 1).actions);
    for (int k = 1; k <= L; ++k) {
      const auto last = L - static_cast<int>(static_cast<std::int64_t>(k - 1) * L / k);
      CHECK(replay(c, segments_schedule(c, k)).forward_steps == 2 * L - last);
    }
    const int k = std::clamp(static_cast<int>(std::lround(std::sqrt(L))), 1, L);
    CHECK(sqrt_schedule(c).actions == segments_schedule(c, k).actions);
  }
  // 100 stages in 10 segments: checkpoints 10, a taped segment 20, two gradients.
  const Chain c = Chain::uniform(100);
  CHECK(replay(c, sqrt_schedule(c)).peak_memory == 10 + 20 + 2);
  CHECK_THROWS_AS(segments_schedule(c, 0), Error);
  CHECK_THROWS_AS(segments_schedule(c, 101), Error);
  CHECK_THROWS_AS(segments_schedule_at(c, {0, 5, 5}), Error);
  CHECK_THROWS_AS(segments_schedule_at(c, {1, 5}), Error);
}

TEST_CASE("schedule: every generator replays validly over a grid of chains and budgets") {
  std::mt19937 rng(20240611);
  std::vector<Chain> chains;
  for (int L = 1; L <= 24; ++L) {
    chains.push_back(Chain::uniform(L));
    chains.push_back(random_chain(L, rng, 8));
  }
  for (const Chain& c : chains) {
    CAPTURE(c.name);
    const int L = c.length();
    const ScheduleStats all = replay(c, store_all_schedule(c));
    CHECK(all.forward_steps == L);
    struct Known { std::int64_t peak, makespan; };
    std::vector<Known> known{{all.peak_memory, all.makespan}};
    for (int k = 1; k <= L; ++k) {
      const ScheduleStats st = replay(c, segments_schedule(c, k));
      known.push_back({st.peak_memory, st.makespan});
    }
    for (int s = 1; s <= std::min(L, 9); ++s) {
      CAPTURE(s);
      const ScheduleStats st = replay(c, revolve_schedule(c, s));
      CHECK(st.forward_steps == revolve_recomputations(L, s) + L);
      known.push_back({st.peak_memory, st.makespan});
    }
    // Budgets from below the least Optimal budget to above store-all.
    const std::int64_t least = optimal_min_budget_units(c);
    std::vector<std::int64_t> budgets{least - 1, least, least + 1, least + 3, (least + all.peak_memory) / 2,
                                      all.peak_memory - 1, all.peak_memory};
    for (const std::int64_t budget : budgets) {
      CAPTURE(budget);
      // Optimal, one unit = one slot: feasible exactly from `least` on, and no slower than
      // any other generator's schedule that fits the budget.
      if (budget < least) {
        CHECK_THROWS_AS(optimal_plan_units(c, budget), InfeasibleBudget);
      } else {
        const OptimalPlan plan = optimal_plan_units(c, budget);
        const ScheduleStats st = replay(c, plan.schedule);
        CHECK(st.peak_memory <= budget);
        CHECK(st.makespan == plan.makespan);
        for (const auto& k : known)
          if (k.peak <= budget) CHECK(plan.makespan <= k.makespan);
      }
      // Chen's greedy: peak within budget, or InfeasibleBudget with a budget that works.
      try {
        const ScheduleStats st = replay(c, chen_greedy_schedule(c, budget));
        CHECK(st.peak_memory <= budget);
      } catch (const InfeasibleBudget& e) {
        const auto smallest = static_cast<std::int64_t>(e.min_feasible_bytes);
        CHECK(smallest > budget);
        CHECK(replay(c, chen_greedy_schedule(c, smallest)).peak_memory <= smallest);
      }
    }
  }
}

TEST_CASE("schedule: Optimal in bytes stays within the byte budget after rounding to slots") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const int L = 1 + trial % 12;
    const Chain c = random_chain(L, rng, 5000);
    CAPTURE(c.name);
    const int slots = 8 + trial % 40;
    const std::int64_t smallest = optimal_min_budget(c, slots);
    const std::int64_t store_all_peak = simulate_schedule(c, store_all_schedule(c)).peak_memory;
    for (const std::int64_t budget : {smallest, smallest + 17, smallest * 3 / 2, store_all_peak, 2 * store_all_peak}) {
      if (budget < smallest) continue;
      CAPTURE(budget);
      const OptimalPlan plan = optimal_plan(c, budget, slots);
      const ScheduleStats st = replay(c, plan.schedule);
      CHECK(st.peak_memory <= budget);
      CHECK(st.makespan == plan.makespan);
      // ceil(budget / slots), or the smallest feasible budget's slot size when that is too coarse
      CHECK(plan.slot_bytes <= (budget + slots - 1) / slots);
      CHECK(plan.budget_slots * plan.slot_bytes <= budget);
    }
  }
}

TEST_CASE("schedule: Chen's greedy finds the sqrt(n) segmentation's peak or better") {
  const Chain c = Chain::uniform(100);
  const std::int64_t sqrt_peak = simulate_schedule(c, sqrt_schedule(c)).peak_memory;
  const ScheduleStats st = replay(c, chen_greedy_schedule(c, 1000));
  CHECK(st.peak_memory <= sqrt_peak);
  CHECK(st.forward_steps <= 2 * 100);
  try {
    chen_greedy_schedule(c, 10);
    FAIL("expected InfeasibleBudget");
  } catch (const InfeasibleBudget& e) {
    CHECK(static_cast<std::int64_t>(e.min_feasible_bytes) == st.peak_memory);
    CHECK(std::string(e.what()).find("[chen-greedy] budget 10 is infeasible for chain uniform:n=100") == 0);
  }
  // A large chain takes the sampled-threshold path.
  const Chain big = Chain::uniform(400);
  CHECK(replay(big, chen_greedy_schedule(big, 1000)).peak_memory <= simulate_schedule(big, sqrt_schedule(big)).peak_memory);
}
