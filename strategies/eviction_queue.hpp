// Contract: EvictionQueue, budget-greedy's choice of victim (budget_greedy.cpp) in
// O(log n) amortised per change instead of a scan of every resident value.
// Slots 0..n-1 (the planner's resident-list positions) are each empty or hold one
// candidate; top(T) returns the candidate with the smallest score at clock T, ties to
// the smallest slot: exactly what a scan in slot order keeping `score < best` picks.
// Scores are computed in double, as the planner's formulas have them:
//   fixed      score = key                                 (lru, size, msps)
//   staleness  score = a / (m * double(T - la + 1))        (dtr, dtr-eq, dtr-local)
// A staleness score falls as the clock advances, at a rate of its own, so the order of
// two candidates can change with T alone. The queue is a kinetic tournament (Basch,
// Guibas and Hershberger, "Data structures for mobile data", J. Algorithms 31(1),
// 1999): a tournament tree over the slots whose internal nodes keep their winner and a
// certificate, the first clock at which their comparison may differ; top(T) replays,
// bottom-up, the nodes whose subtree holds a changed leaf or an expired certificate.
// Certificates are conservative, never late: they are derived from exact comparisons
// of products (see certify() in the .cpp for the proof), and at worst a node is
// replayed one clock tick at a time while two scores are within an ulp of each other.
// Preconditions (staleness; the planner checks them and scans otherwise):
// a == 0 or 2^-900 <= a <= 2^900; m an integer in [1, 2^53]; la <= T <= horizon
// for every top(T) while the slot holds it; m * (horizon + 1) <= 2^53, so that
// m * (T - la + 1) is exact (staleness_exact()). Fixed keys are finite.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace remat {

class EvictionQueue {
 public:
  enum class Mode : std::uint8_t { fixed, staleness };
  static constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();

  // Empties the queue: `slots` slots, top() asked at clocks up to `horizon`.
  void reset(std::size_t slots, Mode mode, std::int64_t horizon);
  // Slot holds a candidate: fixed: score `a`; staleness: a / (m (T - la + 1)).
  void set(std::size_t slot, double a, double m, std::int64_t la);
  void clear(std::size_t slot);
  // The slot of the smallest (score at `clock`, slot), or -1 when every slot is empty.
  // Clocks passed to top() never decrease.
  int top(std::int64_t clock);

  // Whether every m * (T - la + 1) with m <= max_m, 0 <= la <= T <= horizon is exact in double.
  static bool staleness_exact(double max_m, std::int64_t horizon);

  // Node replays so far (for benchmarks and tests of the amortised cost).
  std::int64_t replays() const { return replays_; }

 private:
  static constexpr std::int64_t dirty = std::numeric_limits<std::int64_t>::min();
  double score(int slot, std::int64_t clock) const;
  void mark(std::size_t leaf);
  void refresh(std::size_t node, std::int64_t clock);
  std::int64_t certify(int winner, int loser, std::int64_t clock) const;
  bool certified(int winner, int loser, std::int64_t clock) const;

  Mode mode_ = Mode::fixed;
  std::int64_t horizon_ = 0;
  std::size_t leaves_ = 1;         // a power of two; leaf of slot s is node leaves_ + s
  std::vector<int> winner_;        // per tree node (1-based): winning slot of its subtree, -1 if none
  std::vector<std::int64_t> due_;  // per node: least certificate in its subtree; `dirty` to replay
  std::vector<double> a_, m_;      // per slot
  std::vector<std::int64_t> la_;   // per slot
  std::int64_t replays_ = 0;
};

}  // namespace remat
