// Contract: Revolve, binomial checkpointing (Griewank 1992, Optim. Methods Softw.
// 1:35-54; Griewank & Walther 2000, "Algorithm 799: revolve", ACM TOMS 26(1):19-45,
// doi:10.1145/347837.347846; docs/papers.md "Revolve").
//  - beta(s, r) = C(s + r, s) (G&W 2000, the binomial bound: the number of steps s slots
//    reverse with at most r advances per step), saturated at 2^62.
//  - p(n, s) = r n - beta(s + 1, r - 1) with beta(s, r - 1) < n <= beta(s, r)
//    (G&W 2000, the minimal repetition count; docs/papers.md): the least number
//    of recomputed (untaped) forward steps for n steps with s slots, slot 0 = x(0).
//  - The schedule follows the recursion p(n, s) = min_i [i + p(i, s) + p(n - i, s - 1)]
//    with an optimal i in closed form (revolve_split): advance i steps from the
//    stored x(a) (F_ck a, then F_n), store x(a + i), reverse the last n - i steps with
//    s - 1 slots, then the first i with s slots. With s = 1 the state advances from
//    x(a) to each step in turn (n(n-1)/2 advances). Each reversal of a step a is
//    the "turn": F_all a, B a (and B L right after F_all L-1, the loss).
//  - Hence forward_steps = p(L, s) + L exactly; the generator is iterative (an
//    explicit work stack, splits from one flat binomial table), writes each action in
//    place, O(1) per action: n = 10^6, s = 20 is 8.8 million actions, whose time is
//    mostly the first touch of their 70 MB.
//  - revolve_stats walks the same recursion without actions; on a chain of alike
//    stages (Chain::uniform, any chain whose stages share their costs) it evaluates
//    each distinct task (n, s, holds the last stage) once instead: 188 tasks for
//    n = 10^6, s = 20, so plan_chain is bound by the O(L) checks of the chain.
//  - Stage memory (schedule.cpp): at most s stored x values plus the working state,
//    the tape of the step being reversed and two gradients. On Chain::uniform that
//    is a peak of at most s + 5 (s + 1 x's of 1, xbar of 2, delta(i+1) and delta(i)).
#include "strategies/stage_schedules.hpp"

#include "strategies/chain_planner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>

namespace remat {

namespace {

constexpr std::int64_t saturation = std::int64_t{1} << 62;

// r with beta(s, r-1) < n <= beta(s, r), for n >= 1, s >= 1.
// b * m / d, exact (d divides b * m here), in 64 bits unless the product needs more.
std::uint64_t mul_div(std::uint64_t b, std::uint64_t m, std::uint64_t d) {
  std::uint64_t product = 0;
  if (!__builtin_mul_overflow(b, m, &product)) return product / d;
  return static_cast<std::uint64_t>(static_cast<unsigned __int128>(b) * m / d);
}

std::int64_t repetition_number(std::int64_t n, std::int64_t s) {
  std::int64_t r = 0;
  std::uint64_t beta = 1;  // beta(s, 0)
  while (beta < static_cast<std::uint64_t>(n)) {
    ++r;
    beta = mul_div(beta, static_cast<std::uint64_t>(s + r), static_cast<std::uint64_t>(r));  // C(s+r, r), exact
    if (beta > static_cast<std::uint64_t>(saturation)) beta = saturation;
  }
  return r;
}

void check_ns(const char* what, std::int64_t n, std::int64_t s) {
  if (n < 1 || s < 1) throw Error(fmt::format("[revolve] {}: n = {} steps and s = {} slots must both be >= 1", what, n, s));
}

// beta(s, r) for 2 <= s <= max_s and r = 0.. until beta reaches max_n, all rows in one
// flat array (row s at begin_[s]..begin_[s + 1]): revolve_split in a binary search and
// two lookups instead of a loop of exact binomials per call.
class BetaTable {
 public:
  BetaTable(std::int64_t max_n, std::int64_t max_s) : begin_(static_cast<std::size_t>(std::max<std::int64_t>(max_s, 1)) + 2, 0) {
    for (std::int64_t s = 2; s <= max_s; ++s) {
      for (std::int64_t r = 0;; ++r) {
        values_.push_back(revolve_beta(s, r));
        if (values_.back() >= max_n) break;
      }
      begin_[static_cast<std::size_t>(s) + 1] = values_.size();
    }
    for (std::size_t s = 3; s < begin_.size(); ++s) begin_[s] = std::max(begin_[s], begin_[s - 1]);
  }
  // beta(s, r), r >= -1 (0 for r = -1; saturated past the table, never read there).
  std::int64_t beta(std::int64_t s, std::int64_t r) const {
    if (r < 0) return 0;
    if (s == 1) return r + 1;  // C(1 + r, 1)
    const std::size_t first = begin_[static_cast<std::size_t>(s)], size = begin_[static_cast<std::size_t>(s) + 1] - first;
    return r < static_cast<std::int64_t>(size) ? values_[first + static_cast<std::size_t>(r)] : saturation;
  }
  // revolve_split(n, s) for 2 <= n <= max_n, 2 <= s <= max_s.
  std::int64_t split(std::int64_t n, std::int64_t s) const {
    const auto row = values_.begin() + static_cast<std::ptrdiff_t>(begin_[static_cast<std::size_t>(s)]);
    const auto row_end = values_.begin() + static_cast<std::ptrdiff_t>(begin_[static_cast<std::size_t>(s) + 1]);
    const std::int64_t r = std::lower_bound(row, row_end, n) - row;  // beta(s, r-1) < n <= beta(s, r)
    const std::int64_t lower = r >= 2 ? row[r - 2] : 0;
    return std::max({lower, n - beta(s - 1, r), std::int64_t{1}});
  }

 private:
  std::vector<std::size_t> begin_;  // row s starts at begin_[s]; begin_[s + 1] ends it
  std::vector<std::int64_t> values_;
};

// Revolve's recursion (revolve_split) walked with an explicit stack, as both the
// schedule generator and the stats walk need it: advance(a, k) makes k forward steps
// from the checkpoint at a, turn(a) reverses stage a; tasks are (first stage, stages,
// slots), the later half pushed first so the nearer half runs now.
template <class Index, class Advance, class Turn>
void walk_revolve(Index L, Index s0, const BetaTable& betas, Advance&& advance, Turn&& turn) {
  struct Task { Index a, n, s; };
  std::vector<Task> stack{{0, L, s0}};
  stack.reserve(static_cast<std::size_t>(s0) + 64);
  while (!stack.empty()) {
    const Task t = stack.back();
    stack.pop_back();
    if (t.n == 1) {
      turn(t.a);
    } else if (t.s == 1) {
      for (Index k = t.n - 1; k >= 1; --k) {
        advance(t.a, k);
        turn(t.a + k);
      }
      turn(t.a);
    } else {
      const auto i = static_cast<Index>(betas.split(t.n, t.s));
      advance(t.a, i);
      stack.push_back({t.a, i, t.s});                // the first i steps, later
      stack.push_back({t.a + i, t.n - i, t.s - 1});  // the last n-i steps, now
    }
  }
}

}  // namespace

std::int64_t revolve_beta(std::int64_t s, std::int64_t r) {
  if (s < 0 || r < -1) throw Error(fmt::format("[revolve] beta({}, {}) is undefined", s, r));
  if (r == -1) return 0;
  const std::int64_t k = std::min(s, r);  // C(s+r, k)
  std::uint64_t b = 1;
  for (std::int64_t t = 1; t <= k; ++t) {
    b = mul_div(b, static_cast<std::uint64_t>(s + r - k + t), static_cast<std::uint64_t>(t));  // C(s+r-k+t, t), exact
    if (b > static_cast<std::uint64_t>(saturation)) return saturation;
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
  // Written in place into the exact number of actions (total), by the same recursion as
  // revolve_split with its binomials from one table; tests/revolve_tests.cpp compares the
  // sequence with a plain transcription of the recursion.
  Schedule schedule;
  schedule.actions.resize(static_cast<std::size_t>(total));
  StageAction* out = schedule.actions.data();
  auto advance = [&](int a, int steps) {  // from the stored x(a) to x(a+steps), keeping x(a)
    *out++ = {StageActionKind::forward_checkpoint, a};
    for (int j = a + 1; j < a + steps; ++j) *out++ = {StageActionKind::forward_none, j};
  };
  auto turn = [&](int a) {  // reverse step a from x(a)
    *out++ = {StageActionKind::forward_taped, a};
    if (a == L - 1) *out++ = {StageActionKind::backward, L};
    *out++ = {StageActionKind::backward, a};
  };
  const int s0 = std::min(slots, L);  // s > L slots behave as s = L
  walk_revolve<int>(L, s0, BetaTable(L, s0), advance, turn);
  if (out != schedule.actions.data() + schedule.actions.size())
    throw Error(fmt::format("[revolve] internal: {} stages with {} slots emitted {} actions, expected {}", L, slots,
                            out - schedule.actions.data(), total));
  return schedule;
}

namespace {

// The largest of v[lo..hi] (inclusive) in O(1) after an O(n log n) build, or O(1) when
// every value is the same (a uniform chain needs no table).
class RangeMax {
 public:
  // The values are f(0..n-1); a constant f needs no table (a uniform chain).
  template <class F>
  RangeMax(std::int64_t n, F&& f) {
    value_ = n > 0 ? f(0) : 0;
    constant_ = true;
    for (std::int64_t k = 1; k < n && constant_; ++k) constant_ = f(k) == value_;
    if (constant_) return;
    std::vector<std::int64_t> v(static_cast<std::size_t>(n));
    for (std::int64_t k = 0; k < n; ++k) v[static_cast<std::size_t>(k)] = f(k);
    levels_.push_back(std::move(v));
    for (std::size_t w = 1; 2 * w <= levels_[0].size(); w *= 2) {
      const auto& prev = levels_.back();
      std::vector<std::int64_t> next(prev.size() - w);
      for (std::size_t k = 0; k < next.size(); ++k) next[k] = std::max(prev[k], prev[k + w]);
      levels_.push_back(std::move(next));
    }
  }
  std::int64_t max(std::int64_t lo, std::int64_t hi) const {  // lo <= hi
    if (constant_) return value_;
    const auto n = static_cast<std::uint64_t>(hi - lo + 1);
    const int level = 63 - __builtin_clzll(n);
    const auto& row = levels_[static_cast<std::size_t>(level)];
    return std::max(row[static_cast<std::size_t>(lo)], row[static_cast<std::size_t>(hi - (std::int64_t{1} << level) + 1)]);
  }

 private:
  bool constant_ = false;
  std::int64_t value_ = 0;
  std::vector<std::vector<std::int64_t>> levels_;
};

}  // namespace

namespace {

// The walk below on a chain whose stages are alike: cw, btmp, ftmp and fw equal on
// stages 0..L-1, cbw on 1..L-1, forward_drop_peak on 1..L-2 (stage L, the loss, and
// cw[L], cbw[L], btmp[L] may differ: only the turn of stage L-1 reads them). There a
// task's figures relative to the memory it starts from depend only on (n, s, whether
// it holds stage L-1), and the recursion meets few distinct tasks (188 for n = 10^6,
// s = 20), so each is evaluated once. The walk's own arithmetic, piece by piece:
// peaks are the transients the walk takes its maximum over, never the states between.
template <class Wide>
class UniformRevolve {
 public:
  struct Piece {
    std::int64_t forward_steps = 0;
    Wide peak = -(Wide{1} << 62);  // the largest transient, relative to the starting memory
    Wide delta = 0;                // memory after, relative to the starting memory
  };

  static bool applies(const Chain& c) {
    const int L = c.length();
    auto same = [](const std::vector<std::int64_t>& v, int lo, int hi) {  // v[lo..hi) all equal
      for (int j = lo + 1; j < hi; ++j)
        if (v[static_cast<std::size_t>(j)] != v[static_cast<std::size_t>(lo)]) return false;
      return true;
    };
    if (!same(c.cw, 0, L) || !same(c.btmp, 0, L) || !same(c.ftmp, 0, L) || !same(c.fw, 0, L) || !same(c.cbw, 1, L))
      return false;
    for (int j = 2; j < L - 1; ++j)
      if (c.forward_drop_peak(j) != c.forward_drop_peak(1)) return false;
    return true;
  }

  UniformRevolve(const Chain& c, const BetaTable& betas)
      : betas_(betas),
        cw_(c.cw[0]),
        cbw_(c.length() >= 2 ? c.cbw[1] : 0),
        btmp_(c.btmp[0]),
        ftmp_(c.ftmp[0]),
        fdrop_(c.length() >= 3 ? c.forward_drop_peak(1) : 0),
        cw_last_(c.cw.back()),
        cbw_last_(c.cbw.back()),
        btmp_last_(c.btmp.back()) {}

  // The figures of the task (n, s, last), or nothing when it meets more distinct tasks
  // than `max_tasks` (slots near n: the caller walks instead).
  std::optional<Piece> evaluate(int n, int s, bool last, std::size_t max_tasks) {
    max_tasks_ = max_tasks;
    try {
      return task(n, s, last);
    } catch (const TooMany&) {
      return std::nullopt;
    }
  }

 private:
  struct TooMany {};
  static void append(Piece& into, const Piece& next) {
    into.peak = std::max(into.peak, into.delta + next.peak);
    into.delta += next.delta;
    into.forward_steps += next.forward_steps;
  }
  // advance(a, k) of the walk: F_ck a, F_n a+1 .. a+k-1 (a + k <= L - 1).
  Piece advance(std::int64_t k) const {
    Piece p;
    p.forward_steps = k;
    p.peak = Wide{cw_} + ftmp_;
    if (k > 1) p.peak = std::max(p.peak, Wide{fdrop_});
    p.delta = cw_;
    return p;
  }
  // turn(a) of the walk; `last`: a = L - 1.
  Piece turn(bool last) const {
    const std::int64_t cbw = last ? cbw_last_ : cbw_, cw_next = last ? cw_last_ : cw_;
    Piece p;
    p.forward_steps = 1;
    p.peak = Wide{cbw} + ftmp_;
    Wide mem = cbw;
    if (last) {
      p.peak = std::max(p.peak, mem + cw_last_ + btmp_last_);
      mem += cw_last_;
    }
    p.peak = std::max(p.peak, mem + cw_ + btmp_);
    mem += Wide{cw_} - cbw - cw_next - cw_;
    p.delta = mem;
    return p;
  }
  Piece task(int n, int s, bool last) {
    if (n == 1) return turn(last);
    const std::uint64_t key = (static_cast<std::uint64_t>(n) << 33) | (static_cast<std::uint64_t>(s) << 1) | last;
    if (auto it = memo_.find(key); it != memo_.end()) return it->second;
    // Too many distinct tasks, or a recursion deeper than a safe stack allows (slots
    // close to n nest one task per stage): the caller falls back to the iterative walk.
    if (memo_.size() >= max_tasks_ || depth_ >= max_depth) throw TooMany{};
    struct Nesting {
      int& depth;
      explicit Nesting(int& d) : depth(++d) {}
      ~Nesting() { --depth; }
    } nesting(depth_);
    Piece p;
    if (s == 1) {
      for (int k = n - 1; k >= 1; --k) {
        append(p, advance(k));
        append(p, turn(last && k == n - 1));
      }
      append(p, turn(false));
    } else {
      const int i = static_cast<int>(betas_.split(n, s));
      append(p, advance(i));
      append(p, task(n - i, s - 1, last));  // the last n-i steps, then the first i
      append(p, task(i, s, false));
    }
    memo_.emplace(key, p);
    return p;
  }

  const BetaTable& betas_;
  std::int64_t cw_, cbw_, btmp_, ftmp_, fdrop_, cw_last_, cbw_last_, btmp_last_;
  std::unordered_map<std::uint64_t, Piece> memo_;
  std::size_t max_tasks_ = 0;
  static constexpr int max_depth = 512;
  int depth_ = 0;
};

// The figures from the forward count, the peak and the forward executions per stage as
// a difference array (`runs`, empty when every stage's fw is the same).
template <class Wide>
ScheduleStats revolve_stats_from(const Chain& chain, std::int64_t forward_steps, Wide peak, const std::vector<std::int64_t>& runs) {
  const int L = chain.length();
  ScheduleStats stats;
  __int128 makespan = 0;
  if (runs.empty()) {
    makespan = static_cast<__int128>(forward_steps) * chain.fw[0];
  } else {
    std::int64_t running = 0;
    for (int j = 0; j < L; ++j) {
      running += runs[static_cast<std::size_t>(j)];
      makespan += static_cast<__int128>(running) * chain.fw[static_cast<std::size_t>(j)];
    }
  }
  for (int j = 0; j <= L; ++j) makespan += chain.bw[static_cast<std::size_t>(j)];
  constexpr __int128 limit = std::numeric_limits<std::int64_t>::max();
  if (makespan > limit || static_cast<__int128>(peak) > limit)
    throw Error(fmt::format("[revolve] chain {}: the makespan or peak passes 2^63; the chain's costs are too large",
                            chain.name));
  stats.forward_steps = forward_steps;
  stats.recomputed_steps = forward_steps - L;
  stats.makespan = static_cast<std::int64_t>(makespan);
  stats.peak_memory = static_cast<std::int64_t>(peak);
  return stats;
}

// Wide: int64 when every sum of memory values fits (checked by the caller), else __int128.
template <class Wide>
ScheduleStats revolve_stats_in(const Chain& chain, int slots) {
  const int L = chain.length();
  // Forward executions per stage as a difference array (an advance over [a, a+k) adds 1),
  // needed only when the stages' forward times differ.
  const bool uniform_fw = std::all_of(chain.fw.begin(), chain.fw.end(), [&](std::int64_t f) { return f == chain.fw[0]; });
  const std::int64_t s0 = std::min<std::int64_t>(slots, L);
  const BetaTable betas(L, s0);
  std::optional<typename UniformRevolve<Wide>::Piece> alike;
  if (uniform_fw && UniformRevolve<Wide>::applies(chain))
    alike = UniformRevolve<Wide>(chain, betas).evaluate(L, static_cast<int>(s0), true, std::size_t{1} << 14);
  if (alike) return revolve_stats_from(chain, alike->forward_steps, std::max(Wide{chain.cw[0]}, chain.cw[0] + alike->peak), {});
  std::vector<std::int64_t> runs(uniform_fw ? 0 : static_cast<std::size_t>(L) + 1, 0);
  const RangeMax fdrop_max(L, [&](std::int64_t j) { return chain.forward_drop_peak(static_cast<int>(j)); });
  auto cw = [&](std::int64_t j) { return j <= L ? chain.cw[static_cast<std::size_t>(j)] : std::int64_t{0}; };
  Wide mem = cw(0), peak = mem;
  std::int64_t forward_steps = 0;
  // advance(a, k): F_ck a, F_n a+1 .. a+k-1, from a stored x(a) (schedule.cpp's memory):
  // each F_n j drops the plain x(j) it read and holds fdrop[j] beyond the rest.
  auto advance = [&](std::int64_t a, std::int64_t k) {
    if (!uniform_fw) {
      ++runs[static_cast<std::size_t>(a)];
      --runs[static_cast<std::size_t>(a + k)];
    }
    forward_steps += k;
    Wide top = mem + cw(a + 1) + chain.ftmp[static_cast<std::size_t>(a)];
    if (k > 1) top = std::max(top, mem + fdrop_max.max(a + 1, a + k - 1));
    peak = std::max(peak, top);
    mem += cw(a + k);
  };
  // turn(a): F_all a, (B L), B a, with x(a) plain and delta(a+1) held (but before B L).
  auto turn = [&](std::int64_t a) {
    if (!uniform_fw) {
      ++runs[static_cast<std::size_t>(a)];
      --runs[static_cast<std::size_t>(a + 1)];
    }
    ++forward_steps;
    const std::int64_t cbw = chain.cbw[static_cast<std::size_t>(a + 1)];
    peak = std::max(peak, mem + cbw + chain.ftmp[static_cast<std::size_t>(a)]);
    mem += cbw;
    if (a == L - 1) {  // B L seeds delta(L)
      peak = std::max(peak, mem + cw(L) + chain.btmp[static_cast<std::size_t>(L)]);
      mem += cw(L);
    }
    peak = std::max(peak, mem + cw(a) + chain.btmp[static_cast<std::size_t>(a)]);
    mem += cw(a) - cbw - cw(a + 1) - cw(a);  // delta(a) in; the tape, delta(a+1) and x(a) out
  };
  walk_revolve<std::int64_t>(L, s0, betas, advance, turn);
  return revolve_stats_from(chain, forward_steps, peak, runs);
}

ScheduleStats revolve_stats_of_valid(const Chain& chain, int slots) {
  check_ns("stats", chain.length(), slots);
  // Memory: every live value at once is at most the sum of all memory values; time: the
  // makespan is accumulated wide regardless below (forward counts times fw).
  __int128 total = 0;
  for (const auto* f : {&chain.cw, &chain.cbw, &chain.ftmp, &chain.btmp, &chain.fdrop})
    for (auto v : *f) total += v;
  if (total < (static_cast<__int128>(1) << 61)) return revolve_stats_in<std::int64_t>(chain, slots);
  return revolve_stats_in<__int128>(chain, slots);
}

}  // namespace

ScheduleStats revolve_stats(const Chain& chain, int slots) {
  chain.validate();
  return revolve_stats_of_valid(chain, slots);
}

std::int64_t revolve_peak_memory(const Chain& chain, int slots) { return revolve_stats(chain, slots).peak_memory; }

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

  // --slots, checked against the chain's length.
  int checked_slots(int L) const {
    const int s = *options_.slots;
    if (s < 1 || s > L)
      throw Error(fmt::format("[revolve] --slots = {} must be in 1..{} (slot 0 holds x(0); the chain has {} stages, so "
                              "more slots than stages are never used)",
                              s, L, L));
    return s;
  }

  // A chain file: the same family and rule as ChainPlanner's, with each candidate's
  // figures from revolve_stats (no schedule is materialised to choose); the chosen
  // schedule is materialised only up to 2^16 actions (beyond, its figures stand alone).
  StagePlan plan_chain(const Chain& chain, const Budget& budget) const override {
    chain.validate();
    const int L = chain.length();
    std::vector<int> candidates;
    if (options_.slots) {
      candidates = {checked_slots(L)};
    } else if (!budget.bytes) {
      candidates = {std::min(L, std::max(1, static_cast<int>(std::ceil(std::log(static_cast<double>(L)) / std::log(4.0)))))};
    } else {
      candidates = revolve_slot_family(L);
    }
    std::vector<ScheduleStats> stats;
    for (int s : candidates) stats.push_back(revolve_stats_of_valid(chain, s));
    std::vector<std::size_t> order(candidates.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return stats[a].makespan < stats[b].makespan; });
    const std::int64_t B = budget.bytes ? static_cast<std::int64_t>(std::min<std::size_t>(*budget.bytes, std::size_t{1} << 62))
                                        : std::numeric_limits<std::int64_t>::max();
    std::int64_t least = std::numeric_limits<std::int64_t>::max();
    for (std::size_t k : order) {
      least = std::min(least, stats[k].peak_memory);
      if (stats[k].peak_memory > B) continue;
      StagePlan plan;
      plan.stats = stats[k];
      const int s = candidates[k];
      plan.note = fmt::format("{} slot{}", s, s == 1 ? "" : "s");
      if (stats[k].forward_steps + L + 1 <= (std::int64_t{1} << 16)) {
        plan.schedule = revolve_schedule(chain, s);
        plan.stats = simulate_schedule(chain, plan.schedule);
      } else {
        plan.note += fmt::format(" (schedule of {} actions not materialised; figures from the recursion)",
                                 stats[k].forward_steps + L + 1);
      }
      return plan;
    }
    if (budget.bytes) {  // the end of every family
      StagePlan plan;
      plan.schedule = store_all_schedule(chain);
      plan.stats = simulate_schedule(chain, plan.schedule);
      if (plan.stats.peak_memory <= B) {
        plan.note = "store-all (no schedule of the family fits)";
        return plan;
      }
      least = std::min(least, plan.stats.peak_memory);
    }
    throw InfeasibleBudget(fmt::format("[revolve] budget {} is infeasible for chain {}: the least peak of its {} candidate "
                                       "schedules is {}, the smallest feasible budget",
                                       *budget.bytes, chain.name, candidates.size() + 1, least),
                           static_cast<std::size_t>(least));
  }

 protected:
  // --slots s: that schedule. No budget: Griewank and Walther's adjust(), about log4(L)
  // slots. A budget: every s in 1..L (past 256 stages: 1..64 and then every 25% more),
  // the fastest that fits.
  std::vector<NamedSchedule> family(const Chain& chain, bool budgeted) const override {
    const int L = chain.length();
    auto named = [&](int s) { return NamedSchedule{fmt::format("{} slot{}", s, s == 1 ? "" : "s"), revolve_schedule(chain, s)}; };
    if (options_.slots) {
      return {named(checked_slots(L))};
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
