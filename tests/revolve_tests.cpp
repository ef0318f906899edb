// Contract: Revolve (Griewank & Walther 2000, ACM TOMS 26(1), doi:10.1145/347837.347846)
// against three independent forms of p(n, s): the closed form r n - beta(s+1, r-1),
// the recursion p(n, s) = min_i [i + p(i, s) + p(n-i, s-1)] of docs/papers.md, and the
// reference values of docs/papers.md. The schedule generator's forward count is checked on
// the whole grid n = 1..2000, s = 1..32 through revolve_forward_count_table (the
// generator's own recursion and split, without materialising schedules), and full
// schedules are generated and replayed by simulate_schedule on a sub-grid. The generator
// (written in place, splits from a table) emits exactly the action sequence of a plain
// transcription of the recursion kept here (reference_revolve_schedule), and
// revolve_stats on chains whose stages are alike (evaluated per distinct task, not
// walked) equals the replay of the schedule.
#include "strategies/stage_schedules.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <random>

#include <algorithm>
#include <limits>
#include <set>

using namespace remat;

TEST_CASE("revolve: beta and p match the reference values of docs/papers.md") {
  CHECK(revolve_beta(3, 2) == 10);
  CHECK(revolve_beta(5, 0) == 1);
  CHECK(revolve_beta(4, -1) == 0);
  CHECK(revolve_beta(20, 20) == 137846528820LL);
  CHECK(revolve_beta(200, 200) == (std::int64_t{1} << 62));  // saturated
  struct Ref { std::int64_t n, s, p; };
  const Ref refs[] = {{10, 3, 15},     {14, 3, 27},     {100, 1, 4950},   {100, 2, 845},
                      {100, 3, 490},   {100, 5, 316},   {100, 10, 222},   {1000, 5, 6284},
                      {1000, 10, 3636}, {1000, 20, 2747}, {10000, 10, 57624}, {10000, 20, 37976}};
  for (const auto& r : refs) {
    CAPTURE(r.n);
    CAPTURE(r.s);
    CHECK(revolve_recomputations(r.n, r.s) == r.p);
  }
  CHECK(revolve_recomputations(1, 1) == 0);
  CHECK(revolve_recomputations(1, 7) == 0);
  CHECK(revolve_recomputations(5, 100) == 4);  // s >= n - 1: each step but the last advanced once
  CHECK(revolve_recomputations(100000, 1) == 100000LL * 99999 / 2);
  CHECK_THROWS_AS(revolve_recomputations(0, 3), Error);
  CHECK_THROWS_AS(revolve_recomputations(3, 0), Error);
}

TEST_CASE("revolve: closed form, min-recursion and generator counts agree on n = 1..2000, s = 1..32") {
  constexpr int N = 2000, S = 32;
  constexpr std::size_t W = S + 1;
  // The recursion of docs/papers.md, evaluated exhaustively (O(N^2 S)).
  std::vector<std::int64_t> rec((N + 1) * W, 0);
  for (std::int64_t n = 1; n <= N; ++n)
    for (std::int64_t s = 1; s <= S; ++s) {
      std::int64_t& v = rec[n * W + s];
      if (n == 1) v = 0;
      else if (s == 1) v = n * (n - 1) / 2;
      else {
        v = std::numeric_limits<std::int64_t>::max();
        for (std::int64_t i = 1; i < n; ++i) v = std::min(v, i + rec[i * W + s] + rec[(n - i) * W + s - 1]);
      }
    }
  const auto forwards = revolve_forward_count_table(N, S);
  int mismatches = 0;
  for (std::int64_t n = 1; n <= N; ++n)
    for (std::int64_t s = 1; s <= S; ++s) {
      const std::int64_t p = revolve_recomputations(n, s);
      if (p != rec[n * W + s] || forwards[n * W + s] != p + n) {
        if (++mismatches <= 5) {
          CAPTURE(n);
          CAPTURE(s);
          CHECK(p == rec[n * W + s]);
          CHECK(forwards[n * W + s] == p + n);
        }
      }
      if (n >= 2 && s >= 2) {
        const std::int64_t i = revolve_split(n, s);
        if (i < 1 || i >= n) ++mismatches;
      }
    }
  CHECK(mismatches == 0);
}

TEST_CASE("revolve: generated schedules replay with p(L, s) recomputations, each stage reversed once") {
  for (int L = 1; L <= 120; L += (L < 40 ? 1 : 7))
    for (int s = 1; s <= 12; ++s) {
      CAPTURE(L);
      CAPTURE(s);
      const Chain c = Chain::uniform(L);
      const Schedule sched = revolve_schedule(c, s);
      const ScheduleStats st = simulate_schedule(c, sched);
      CHECK(st.recomputed_steps == revolve_recomputations(L, s));
      CHECK(st.forward_steps == revolve_recomputations(L, s) + L);
      CHECK(st.makespan == st.forward_steps + 2 * L);
      // s slots (x(0) included) + the working state, the tape (2), delta(i+1), delta(i).
      CHECK(st.peak_memory <= s + 5);
      std::set<int> back;
      int backs = 0;
      for (const auto& a : sched.actions)
        if (a.kind == StageActionKind::backward) back.insert(a.stage), ++backs;
      CHECK(backs == L + 1);
      CHECK(back.size() == static_cast<std::size_t>(L + 1));
      CHECK(sched.actions.size() == static_cast<std::size_t>(st.forward_steps + L + 1));
    }
  // More slots than steps behaves as s = L.
  const Chain c = Chain::uniform(6);
  CHECK(simulate_schedule(c, revolve_schedule(c, 50)).recomputed_steps == 5);
  CHECK_THROWS_AS(revolve_schedule(c, 0), Error);
}

TEST_CASE("revolve: the smallest cases are the textbook schedules") {
  const Chain c = Chain::uniform(3);
  // s = 1: advance from x(0) to x(2), turn; advance to x(1), turn; turn at 0.
  CHECK(revolve_schedule(c, 1).to_string() ==
        "F_ck 0\nF_n 1\nF_all 2\nB 3\nB 2\nF_ck 0\nF_all 1\nB 1\nF_all 0\nB 0\n");
  CHECK(revolve_schedule(Chain::uniform(1), 1).to_string() == "F_all 0\nB 1\nB 0\n");
}

TEST_CASE("revolve: planning n = 1,000,000 stages with s = 20 slots") {
  const Chain c = Chain::uniform(1000000);
  const Schedule sched = revolve_schedule(c, 20);
  const std::int64_t p = revolve_recomputations(1000000, 20);
  CHECK(p == 6815960);
  CHECK(sched.actions.size() == static_cast<std::size_t>(p + 2 * 1000000 + 1));
  std::int64_t forwards = 0;
  for (const auto& a : sched.actions) forwards += a.kind != StageActionKind::backward;
  CHECK(forwards == p + 1000000);
}

TEST_CASE("revolve: peak memory and slots for a budget on the stage model") {
  const Chain c = Chain::uniform(50);
  for (int s = 1; s <= 10; ++s) {
    CAPTURE(s);
    CHECK(revolve_peak_memory(c, s) == s + 5);
    CHECK(revolve_slots_for_budget(c, s + 5) == s);
  }
  try {
    revolve_slots_for_budget(c, 5);
    FAIL("expected InfeasibleBudget");
  } catch (const InfeasibleBudget& e) {
    CHECK(e.min_feasible_bytes == 6);
    CHECK(std::string(e.what()).find("[revolve]") == 0);
  }
}

TEST_CASE("revolve: revolve_stats and store_all_stats equal the replayed schedules, without materialising them") {
  std::mt19937 rng(77);
  auto r = [&](int lo, int hi) { return static_cast<std::int64_t>(std::uniform_int_distribution<int>(lo, hi)(rng)); };
  for (int trial = 0; trial < 300; ++trial) {
    const int L = 1 + static_cast<int>(r(0, 40));
    Chain c = Chain::uniform(L);
    c.name = "random";
    for (int i = 0; i <= L; ++i) {
      c.cw[static_cast<std::size_t>(i)] = r(0, 9);
      c.cbw[static_cast<std::size_t>(i)] = c.cw[static_cast<std::size_t>(i)] + r(0, 9);
      c.bw[static_cast<std::size_t>(i)] = r(0, 9);
      c.btmp[static_cast<std::size_t>(i)] = r(0, 5);
      if (i < L) {
        c.fw[static_cast<std::size_t>(i)] = r(1, 9);
        c.ftmp[static_cast<std::size_t>(i)] = r(0, 5);
      }
    }
    if (trial % 2)
      for (int i = 0; i < L; ++i) c.fdrop.push_back(r(0, 20));
    CAPTURE(c.to_json().dump());
    for (int s = 1; s <= L; ++s) {
      CAPTURE(s);
      const ScheduleStats want = simulate_schedule(c, revolve_schedule(c, s));
      const ScheduleStats got = revolve_stats(c, s);
      CHECK(got.forward_steps == want.forward_steps);
      CHECK(got.recomputed_steps == want.recomputed_steps);
      CHECK(got.makespan == want.makespan);
      CHECK(got.peak_memory == want.peak_memory);
    }
    const ScheduleStats want = simulate_schedule(c, store_all_schedule(c));
    const ScheduleStats got = store_all_stats(c);
    CHECK(got.makespan == want.makespan);
    CHECK(got.peak_memory == want.peak_memory);
    CHECK(got.forward_steps == want.forward_steps);
  }
  // n = 10^6, s = 20: the figures of Griewank and Walther's closed form, without 10^7 actions.
  const ScheduleStats big = revolve_stats(Chain::uniform(1000000), 20);
  CHECK(big.recomputed_steps == revolve_recomputations(1000000, 20));
  CHECK(big.peak_memory <= 25);
}

namespace {

// The recursion of revolve.cpp's contract written out plainly (revolve_split per task,
// push_back per action): the reference the generator must match action for action.
Schedule reference_revolve_schedule(int L, int slots) {
  Schedule schedule;
  auto& out = schedule.actions;
  auto advance = [&](int a, std::int64_t steps) {
    out.push_back({StageActionKind::forward_checkpoint, a});
    for (std::int64_t k = 1; k < steps; ++k) out.push_back({StageActionKind::forward_none, static_cast<int>(a + k)});
  };
  auto turn = [&](int a) {
    out.push_back({StageActionKind::forward_taped, a});
    if (a == L - 1) out.push_back({StageActionKind::backward, L});
    out.push_back({StageActionKind::backward, a});
  };
  struct Task { int a; std::int64_t n, s; };
  std::vector<Task> stack{{0, L, std::min<std::int64_t>(slots, L)}};
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
      stack.push_back({t.a, i, t.s});
      stack.push_back({static_cast<int>(t.a + i), t.n - i, t.s - 1});
    }
  }
  return schedule;
}

}  // namespace

TEST_CASE("revolve: the generator emits exactly the reference recursion's action sequence") {
  int compared = 0;
  for (int L = 1; L <= 160; L += (L < 64 ? 1 : 5))
    for (int s = 1; s <= std::min(L + 2, 40); ++s) {
      CAPTURE(L);
      CAPTURE(s);
      const Chain c = Chain::uniform(L);
      const Schedule want = reference_revolve_schedule(L, s);
      const Schedule got = revolve_schedule(c, s);
      REQUIRE(got.actions.size() == want.actions.size());
      CHECK(got.actions == want.actions);
      ++compared;
    }
  for (auto [L, s] : {std::pair{10000, 2}, {10000, 3}, {10000, 7}, {10000, 20}, {10000, 10000}, {100000, 20},
                      {65537, 16}, {4097, 4097}}) {
    CAPTURE(L);
    CAPTURE(s);
    const Schedule want = reference_revolve_schedule(L, s);
    const Schedule got = revolve_schedule(Chain::uniform(L), s);
    REQUIRE(got.actions.size() == want.actions.size());
    CHECK(got.actions == want.actions);
    ++compared;
  }
  CHECK(compared > 2000);
}

TEST_CASE("revolve: revolve_stats on chains of alike stages equals the replayed schedule") {
  std::mt19937 rng(2026);
  auto r = [&](int lo, int hi) { return static_cast<std::int64_t>(std::uniform_int_distribution<int>(lo, hi)(rng)); };
  auto alike = [&](int L) {  // equal values on the stages, the loss's own at index L
    Chain c = Chain::uniform(L);
    c.name = "alike";
    const std::int64_t cw = r(0, 9), cbw = cw + r(0, 9), bw = r(0, 9), btmp = r(0, 5), fw = r(1, 9), ftmp = r(0, 5);
    for (int i = 0; i < L; ++i) {
      c.cw[static_cast<std::size_t>(i)] = cw;
      c.cbw[static_cast<std::size_t>(i)] = cbw;
      c.bw[static_cast<std::size_t>(i)] = bw;
      c.btmp[static_cast<std::size_t>(i)] = btmp;
      c.fw[static_cast<std::size_t>(i)] = fw;
      c.ftmp[static_cast<std::size_t>(i)] = ftmp;
    }
    c.cw[static_cast<std::size_t>(L)] = r(0, 9);
    c.cbw[static_cast<std::size_t>(L)] = c.cw[static_cast<std::size_t>(L)] + r(0, 9);
    c.bw[static_cast<std::size_t>(L)] = r(0, 9);
    c.btmp[static_cast<std::size_t>(L)] = r(0, 5);
    if (r(0, 1)) c.fdrop.assign(static_cast<std::size_t>(L), r(0, 20));
    return c;
  };
  auto compare = [](const Chain& c, int s) {
    CAPTURE(c.to_json().dump());
    CAPTURE(s);
    const ScheduleStats want = simulate_schedule(c, revolve_schedule(c, s));
    const ScheduleStats got = revolve_stats(c, s);
    CHECK(got.forward_steps == want.forward_steps);
    CHECK(got.recomputed_steps == want.recomputed_steps);
    CHECK(got.makespan == want.makespan);
    CHECK(got.peak_memory == want.peak_memory);
  };
  for (int trial = 0; trial < 200; ++trial) {
    const Chain c = alike(1 + static_cast<int>(r(0, 60)));
    for (int s = 1; s <= c.length() + 1; ++s) compare(c, s);
  }
  // Larger chains: few distinct tasks (s small against n), and slots near n, where the
  // distinct tasks pass the evaluator's cap and the stats walk the schedule instead.
  for (auto [L, s] : {std::pair{5000, 2}, {5000, 5}, {100000, 20}, {20000, 20000}, {20000, 19000}}) {
    compare(alike(L), s);
    compare(Chain::uniform(L), s);
  }
}
