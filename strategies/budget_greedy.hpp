// Contract: one run of the budget-greedy planner (budget_greedy.cpp) at one internal
// budget, below the strategy's acceptance rule: for the tests that compare its choices
// with an independent scan and for the benchmarks that time one run. Strategies and
// callers plan through make_strategy("greedy") and plan(); this is not that entry point.
//   run_budget_greedy(tape, loss, budget, heuristic, costs, selection)
// replays store-all's instruction stream, evicting on demand (the heuristics and the
// rules are in budget_greedy.cpp). The selection says how each victim is found; the
// Programs are the same whichever it is (tests/greedy_tests.cpp checks every one
// against a copy of the planner as it was before the EvictionQueue):
//   automatic  the EvictionQueue, or a scan of the cached scores when many changed at once
//   queue      always the EvictionQueue (for tests)
//   cached     always the scan of cached scores (for tests)
//   scan       every score from scratch at every choice, as the planner used to
// The first three need the queue's preconditions (non-negative costs below 2^52, exact
// products of sizes and clocks); without them a run scans (used_queue is then false).
#pragma once

#include "autodiff/costs.hpp"
#include "autodiff/program.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace remat {

enum class GreedySelection : std::uint8_t { automatic, queue, cached, scan };

struct GreedyRun {
  enum class Outcome : std::uint8_t { planned, infeasible, thrashing };
  Outcome outcome = Outcome::planned;
  Program program;                 // when planned; else the instructions emitted before the failure
  std::size_t peak = 0;            // when planned: the accounted (and simulated) peak
  std::size_t upper = 0;           // when planned: every budget in [peak, upper] gives this plan
  std::size_t needed = 0;          // when infeasible: the bytes the failing instruction needed
  std::int64_t recomputations = 0;
  bool used_queue = false;         // the cached scores and the queue were kept (see above)
};

// Errors: "[greedy] unknown heuristic ..." for a heuristic not in greedy_heuristics().
GreedyRun run_budget_greedy(const Tape& tape, int loss, std::size_t budget, const std::string& heuristic,
                            const NodeCosts& costs, GreedySelection selection = GreedySelection::automatic);

}  // namespace remat
