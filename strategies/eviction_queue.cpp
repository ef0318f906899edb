// Contract: the kinetic tournament of eviction_queue.hpp. Node n (1-based) has
// children 2n and 2n+1; the leaf of slot s is node leaves_ + s, so every slot under a
// left child is smaller than every slot under its sibling and a left winner keeps a tie.
// Notation for two candidates x (staleness mode) at clock T:
//   D_x(T) = m_x (T - la_x + 1)    exact (the precondition m (horizon + 1) <= 2^53)
//   F_x(T) = a_x / D_x(T)          the real quotient; the score is h_x = fl(F_x), since
//                                  IEEE division rounds the exact quotient of exact operands
// Rounding is monotone, so F_x <= F_y implies h_x <= h_y, and F_x == F_y gives h_x == h_y.
#include "strategies/eviction_queue.hpp"

#include <algorithm>
#include <cmath>

namespace remat {
namespace {

// x1 y1 <= x2 y2, exactly, for finite non-negative operands whose non-zero products
// are at least 2^-900 (so the rounding error of each product is itself a double).
// With h = fl(x y) and e = fma(x, y, -h) = x y - h exactly: since rounding is monotone,
// h1 < h2 implies x1 y1 < x2 y2 (x1 y1 >= x2 y2 would give h1 >= h2), and h1 == h2
// leaves the difference of the products e1 - e2, exactly.
bool product_le(double x1, double y1, double x2, double y2) {
  const double h1 = x1 * y1, h2 = x2 * y2;
  if (h1 != h2) return h1 < h2;
  return std::fma(x1, y1, -h1) <= std::fma(x2, y2, -h2);
}

// A ratio computed in double within this of 1 leaves the scores' order to rounding.
constexpr double margin = 1.0 - 0x1p-49;

}  // namespace

void EvictionQueue::reset(std::size_t slots, Mode mode, std::int64_t horizon) {
  mode_ = mode;
  horizon_ = horizon;
  leaves_ = 1;
  while (leaves_ < slots) leaves_ *= 2;
  winner_.assign(2 * leaves_, -1);
  due_.assign(2 * leaves_, never);
  a_.assign(leaves_, 0);
  m_.assign(leaves_, 1);
  la_.assign(leaves_, 0);
}

bool EvictionQueue::staleness_exact(double max_m, std::int64_t horizon) {
  constexpr std::uint64_t limit = std::uint64_t{1} << 53;
  if (!(max_m >= 1) || max_m > static_cast<double>(limit) || horizon < 0) return false;
  const auto m = static_cast<std::uint64_t>(max_m);
  if (static_cast<double>(m) != max_m) return false;  // not an integer
  return static_cast<std::uint64_t>(horizon) + 1 <= limit / m;
}

void EvictionQueue::set(std::size_t slot, double a, double m, std::int64_t la) {
  const std::size_t leaf = leaves_ + slot;
  const int s = static_cast<int>(slot);
  if (winner_[leaf] == s && a_[slot] == a && m_[slot] == m && la_[slot] == la) return;
  a_[slot] = a;
  m_[slot] = m;
  la_[slot] = la;
  winner_[leaf] = s;
  mark(leaf);
}

void EvictionQueue::clear(std::size_t slot) {
  const std::size_t leaf = leaves_ + slot;
  if (winner_[leaf] < 0) return;
  winner_[leaf] = -1;
  mark(leaf);
}

// Every ancestor of a dirty node is dirty (marking climbs until it meets one, and
// refresh() cleans the whole dirty region at once), so the climb may stop there.
void EvictionQueue::mark(std::size_t leaf) {
  for (std::size_t n = leaf / 2; n >= 1 && due_[n] != dirty; n /= 2) due_[n] = dirty;
}

int EvictionQueue::top(std::int64_t clock) {
  refresh(1, clock);
  return winner_[1];
}

double EvictionQueue::score(int slot, std::int64_t clock) const {
  const auto s = static_cast<std::size_t>(slot);
  if (mode_ == Mode::fixed) return a_[s];
  return a_[s] / (m_[s] * static_cast<double>(clock - la_[s] + 1));
}

void EvictionQueue::refresh(std::size_t node, std::int64_t clock) {
  if (node >= leaves_ || due_[node] > clock) return;
  refresh(2 * node, clock);
  refresh(2 * node + 1, clock);
  ++replays_;
  const int left = winner_[2 * node], right = winner_[2 * node + 1];
  std::int64_t cert = never;
  if (left < 0 || right < 0) {
    winner_[node] = left < 0 ? right : left;
  } else if (score(left, clock) <= score(right, clock)) {  // the scan keeps the earlier slot on a tie
    winner_[node] = left;
    cert = certify(left, right, clock);
  } else {
    winner_[node] = right;
    cert = certify(right, left, clock);
  }
  due_[node] = std::min({cert, due_[2 * node], due_[2 * node + 1]});
}

// A sufficient condition, at clock T, for w to beat l (w wins at T whenever it holds):
//  - w < l (w keeps ties): F_w <= F_l, decided exactly by product_le(a_w, D_l, a_l, D_w);
//  - w > l (w must be strictly smaller): r = fl(fl(a_w D_l) / fl(a_l D_w)) <= 1 - 2^-49.
//    Three roundings put the exact ratio R = F_w / F_l below (1 - 2^-49)(1 + 2^-53)/(1 - 2^-53)^2
//    < 1 - 2^-50, so h_w <= F_w (1 + 2^-53) < F_l (1 - 2^-50)(1 + 2^-53) < F_l (1 - 2^-53) <= h_l.
// Either way the condition implies Q(T): R(T) <= 1, resp. R(T) < 1 - 2^-50, and Q implies
// that w wins.
bool EvictionQueue::certified(int w, int l, std::int64_t clock) const {
  const auto i = static_cast<std::size_t>(w), j = static_cast<std::size_t>(l);
  const double dw = m_[i] * static_cast<double>(clock - la_[i] + 1);
  const double dl = m_[j] * static_cast<double>(clock - la_[j] + 1);
  if (w < l) return product_le(a_[i], dl, a_[j], dw);
  if (a_[j] == 0) return false;
  return (a_[i] * dl) / (a_[j] * dw) <= margin;
}

// The first clock after `clock` at which w (the winner now) may stop beating l; never
// when it beats l up to the horizon. R(T) = (a_w m_l / (a_l m_w)) (T + 1 - la_l) / (T + 1 - la_w)
// is monotone in T: non-increasing when la_w >= la_l, else increasing towards its limit
// K = a_w m_l / (a_l m_w). So Q(T) (see certified()) holds on an interval of clocks, and
// certified() at two clocks proves Q, hence w's win, at every clock between them: the
// certificate returned is one past a clock where certified() was checked, never late.
std::int64_t EvictionQueue::certify(int w, int l, std::int64_t clock) const {
  if (mode_ == Mode::fixed) return never;
  if (!certified(w, l, clock)) return clock + 1;  // within rounding of a tie: look again next tick
  const auto i = static_cast<std::size_t>(w), j = static_cast<std::size_t>(l);
  if (la_[i] >= la_[j]) return never;  // R never increases
  // R rises towards K: when K itself satisfies Q, Q holds for ever (R < K).
  const bool limit_holds = w < l ? product_le(a_[i], m_[j], a_[j], m_[i])
                                 : a_[j] > 0 && (a_[i] * m_[j]) / (a_[j] * m_[i]) <= margin;
  if (limit_holds) return never;
  // Estimate the last clock with R(T) <= theta: a_w m_l (T + 1 - la_l) = theta a_l m_w (T + 1 - la_w),
  // then check it (and step back, or bisect, when rounding put the estimate past it).
  const double theta = w < l ? 1.0 : margin;
  const double p = a_[i] * m_[j], q = theta * a_[j] * m_[i];
  const double t_star = (p * static_cast<double>(la_[j] - 1) - q * static_cast<double>(la_[i] - 1)) / (p - q);
  std::int64_t last = horizon_;
  if (p > q && t_star > static_cast<double>(clock) && t_star < static_cast<double>(horizon_))
    last = static_cast<std::int64_t>(std::floor(t_star));
  for (int step = 0; step < 3 && last - step > clock; ++step)
    if (certified(w, l, last - step)) return last - step >= horizon_ ? never : last - step + 1;
  std::int64_t good = clock, bad = std::max(clock + 1, last - 2);  // certified at good; not at bad
  if (bad > horizon_) return never;  // (only when clock == horizon)
  while (bad - good > 1) {
    const std::int64_t mid = good + (bad - good) / 2;
    (certified(w, l, mid) ? good : bad) = mid;
  }
  return good + 1;
}

}  // namespace remat
