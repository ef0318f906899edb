// Contract: a stage-level Schedule, the vocabulary of the literature, as small
// action values (the checkpoint_schedules idea):
//   forward_none(i)        F_n:   run stage i, keep nothing but its output x(i+1)
//   forward_checkpoint(i)  F_ck:  run stage i, keep its input x(i) as a checkpoint
//   forward_taped(i)       F_all: run stage i keeping xbar(i+1), all its backward needs
//   backward(i)            B:     back-propagate stage i (i = L is the loss)
//   discard(i)             drop the checkpoint x(i)
// simulate_schedule() replays a schedule on a Chain, checks after every action
// that each action finds what it needs, and returns forward counts, makespan and
// the peak memory of the stage model (memory semantics in schedule.cpp).
// lower_schedule() (chain_view.hpp) turns it into a node-level Program.
#pragma once

#include "strategies/chain.hpp"

#include <string>
#include <vector>

namespace remat {

enum class StageActionKind : std::uint8_t { forward_none, forward_checkpoint, forward_taped, backward, discard };
const char* stage_action_name(StageActionKind kind);

struct StageAction {
  StageActionKind kind;
  int stage;
  bool operator==(const StageAction&) const = default;
};

struct Schedule {
  std::vector<StageAction> actions;
  std::string to_string() const;  // one action a line: "F_ck 3", "B 7", ...
};

struct ScheduleStats {
  std::int64_t forward_steps = 0;     // every stage forward (taped ones and recomputations)
  std::int64_t recomputed_steps = 0;  // forward_steps - L
  std::int64_t makespan = 0;          // sum of fw and bw over all actions
  std::int64_t peak_memory = 0;       // stage-model peak, x(0) included
  std::vector<std::int64_t> memory_after;  // live memory after each action
};

// Replays `schedule` on `chain`; throws Error "[schedule] action k (F_n 3): ..." when
// an action lacks its input, a stage is back-propagated twice or out of order, or
// the schedule ends before backward(0).
ScheduleStats simulate_schedule(const Chain& chain, const Schedule& schedule);

}  // namespace remat
