// Contract: Schedule printing and simulate_schedule(), the stage memory model
// every schedule generator is checked against. The model is the one behind the
// rotor dynamic program (Beaumont et al. 2019, arXiv:1911.13214: the chain model
// and the opt[m][i][l] recurrence of docs/papers.md); for the loss stage L, fw[L] =
// ftmp[L] = 0 and cw[L+1] = cbw[L+1] = 0.
//
// State: x_plain[j] (a stored x(j), cw[j] bytes), xbar[j] (the tape of stage j-1,
// cbw[j] bytes, it includes x(j)), delta[j] (the gradient of x(j), cw[j] bytes).
// x(j) is available when x_plain[j] or xbar[j]. Initially x_plain[0] is set and
// counts against the budget. Per action (mem = live bytes before it):
//   F_ck i   needs x(i); sets x_plain[i+1]; keeps x(i).        peak mem + cw[i+1] + ftmp[i]
//   F_n i    as F_ck, then clears x_plain[i] (never xbar[i]).   peak mem + cw[i+1] + ftmp[i],
//            or, when it drops a plain x(i) no tape holds, mem - cw[i] + fdrop[i]
//            (Chain::forward_drop_peak: x(i) dies at its last read in the stage)
//   F_all i  needs x(i); sets xbar[i+1] (dropping x_plain[i+1], which it
//            includes); keeps x(i).                              peak mem + cbw[i+1] + ftmp[i]
//   B i<L    needs xbar[i+1], delta[i+1] and x(i) (the backward of a stage reads
//            its input, as in rotor's model, where x(i) is held outside the
//            memory m of opt[m][i][i]); makes delta[i]; then clears xbar[i+1],
//            delta[i+1] and x_plain[i].                          peak mem + cw[i] + btmp[i]
//   B L      needs x(L); makes delta[L]; clears x_plain[L] (an x(L) inside
//            xbar[L] stays until B L-1).                         peak mem + cw[L] + btmp[L]
//   discard i  clears x_plain[i].
// Rules (each violation throws Error "[schedule] action k (F_n 3): ...", k
// counted from 0): stages in range; backwards exactly once each, in the order
// L, L-1, ..., 0; no action after B 0 and the schedule must reach B 0; no
// forward of a stage already back-propagated; F_ck/F_n may not produce an x(i+1)
// that is already available or no longer needed (B i+1 done); F_all may not
// re-tape a taped stage. Hence nothing leaks: after B 0 only delta[0] is live.
// Stats: forward_steps (F_* actions), recomputed_steps = forward_steps - L,
// makespan = sum fw[i] over forwards + sum bw[i] over backwards, peak_memory =
// max over the initial state, every transient and every state, memory_after.
#include "strategies/schedule.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace remat {

const char* stage_action_name(StageActionKind kind) {
  switch (kind) {
    case StageActionKind::forward_none: return "F_n";
    case StageActionKind::forward_checkpoint: return "F_ck";
    case StageActionKind::forward_taped: return "F_all";
    case StageActionKind::backward: return "B";
    case StageActionKind::discard: return "discard";
  }
  return "?";
}

std::string Schedule::to_string() const {
  std::string s;
  s.reserve(actions.size() * 8);
  for (const auto& a : actions) {
    s += stage_action_name(a.kind);
    s += ' ';
    s += std::to_string(a.stage);
    s += '\n';
  }
  return s;
}

ScheduleStats simulate_schedule(const Chain& chain, const Schedule& schedule) {
  chain.validate();
  const int L = chain.length();
  // Extended arrays: index L+1 of cw/cbw is the (empty) gradient input of the loss.
  auto cw = [&](int j) { return j <= L ? chain.cw[j] : std::int64_t{0}; };
  auto cbw = [&](int j) { return j <= L ? chain.cbw[j] : std::int64_t{0}; };
  auto ftmp = [&](int i) { return i < L ? chain.ftmp[i] : std::int64_t{0}; };

  std::vector<char> x_plain(L + 2, 0), xbar(L + 2, 0);
  x_plain[0] = 1;
  int next_back = L;  // the next stage to back-propagate; -1 when done
  // 128-bit sums: a chain's values are at most 2^50 and its stages at most 10^7
  // (chain.hpp), so no sum here can overflow; a result beyond 64 bits is refused.
  using Wide = __int128;
  Wide mem = cw(0), makespan = 0, peak = mem;
  constexpr Wide limit = std::numeric_limits<std::int64_t>::max();
  auto narrow = [&](Wide v, std::size_t k, const char* what) {
    if (v > limit)
      throw Error(fmt::format("[schedule] chain {}: the {} passes 2^63 at action {}; the chain's costs are too large",
                              chain.name, what, k));
    return static_cast<std::int64_t>(v);
  };

  ScheduleStats stats;
  stats.memory_after.reserve(schedule.actions.size());

  for (std::size_t k = 0; k < schedule.actions.size(); ++k) {
    const StageAction a = schedule.actions[k];
    const int i = a.stage;
    auto fail = [&](const std::string& why) {
      throw Error(fmt::format("[schedule] action {} ({} {}): {}", k, stage_action_name(a.kind), i, why));
    };
    auto avail = [&](int j) { return x_plain[j] || xbar[j]; };
    if (next_back < 0) fail("the schedule continues after backward 0");
    Wide transient = mem;
    switch (a.kind) {
      case StageActionKind::forward_none:
      case StageActionKind::forward_checkpoint:
      case StageActionKind::forward_taped: {
        if (i < 0 || i >= L) fail(fmt::format("stage {} is not a forward stage (0 <= i < L = {})", i, L));
        if (i > next_back) fail(fmt::format("stage {} was already back-propagated", i));
        if (!avail(i)) fail(fmt::format("x({}) is not available", i));
        if (a.kind == StageActionKind::forward_taped) {
          if (xbar[i + 1]) fail(fmt::format("xbar({}) is already taped", i + 1));
          transient = mem + cbw(i + 1) + ftmp(i);
          mem += cbw(i + 1);
          xbar[i + 1] = 1;
          if (x_plain[i + 1]) {
            x_plain[i + 1] = 0;
            mem -= cw(i + 1);
          }
        } else {
          if (avail(i + 1)) fail(fmt::format("x({}) is already available", i + 1));
          if (i + 1 > next_back) fail(fmt::format("x({}) is no longer needed: stage {} was back-propagated", i + 1, i + 1));
          const bool drops = a.kind == StageActionKind::forward_none && x_plain[i];
          // Dropping a plain x(i) (and no tape holds it): x(i) lives only until its last
          // read inside the stage (Chain::forward_drop_peak).
          transient = drops && !xbar[i] ? mem - cw(i) + chain.forward_drop_peak(i) : mem + cw(i + 1) + ftmp(i);
          mem += cw(i + 1);
          x_plain[i + 1] = 1;
          if (drops) {
            x_plain[i] = 0;
            mem -= cw(i);
          }
        }
        ++stats.forward_steps;
        makespan += chain.fw[i];
        break;
      }
      case StageActionKind::backward: {
        if (i < 0 || i > L) fail(fmt::format("stage {} is out of range (0 <= i <= L = {})", i, L));
        if (i != next_back)
          fail(i > next_back ? fmt::format("stage {} was already back-propagated", i)
                             : fmt::format("out of order: backward {} must come first", next_back));
        if (!avail(i)) fail(fmt::format("x({}) is not available", i));
        if (i < L && !xbar[i + 1]) fail(fmt::format("xbar({}) is not taped (run F_all {} first)", i + 1, i));
        transient = mem + cw(i) + chain.btmp[i];
        mem += cw(i);  // delta(i)
        if (i < L) {
          xbar[i + 1] = 0;
          mem -= cbw(i + 1) + cw(i + 1);  // the tape and delta(i+1)
        }
        if (x_plain[i]) {
          x_plain[i] = 0;
          mem -= cw(i);
        }
        makespan += chain.bw[i];
        --next_back;
        break;
      }
      case StageActionKind::discard: {
        if (i < 0 || i > L) fail(fmt::format("stage {} is out of range (0 <= i <= L = {})", i, L));
        if (!x_plain[i]) fail(fmt::format("x({}) is not stored as a checkpoint", i));
        x_plain[i] = 0;
        mem -= cw(i);
        break;
      }
      default: fail("unknown action kind");
    }
    peak = std::max({peak, transient, mem});
    stats.memory_after.push_back(narrow(mem, k, "memory"));
  }
  stats.peak_memory = narrow(peak, schedule.actions.size(), "peak memory");
  stats.makespan = narrow(makespan, schedule.actions.size(), "makespan");
  if (next_back >= 0)
    throw Error(fmt::format("[schedule] the schedule ends after {} actions, before backward 0 (next expected: backward {})",
                            schedule.actions.size(), next_back));
  stats.recomputed_steps = stats.forward_steps - L;
  return stats;
}

}  // namespace remat
