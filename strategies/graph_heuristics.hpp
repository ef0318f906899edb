// Contract: heuristic schedules on a training graph (training_graph.hpp), used as warm
// starts and fallbacks of checkmate and as the "greedy" baseline on graphs that come
// without a tape. Each returns a valid schedule; none touches a tensor.
//
//  checkpoint_schedule  Checkmate's baseline construction (Jain et al. 2020, Sec. 6.1, its
//                       gen_s_matrix_fixed_checkpoints + solve_r_opt): choose which values
//                       stay resident between stages (S), then compute in each stage t exactly
//                       the nodes v_t needs that are not resident (the least R for that S).
//                       A value stays when it belongs to a non-recomputable node (it must),
//                       when it is a checkpoint, while a later forward node still reads it
//                       (keep_forward: the forward sweep does not recompute), or once it has
//                       been recomputed (cache_recomputed: Chen's "recompute each segment
//                       once"); it leaves after its last reader. Always in stage form.
//  chen_checkpoints     Chen et al. 2016 (arXiv:1604.06174) Alg. 3 on the forward values in
//                       the graph's order: add sizes; when the running total passes the
//                       threshold, the value becomes a checkpoint and the total restarts.
//  dtr_schedule         Kirisame et al. 2021 (arXiv:2006.09616) Sec. 3-4 on the graph: replay
//                       the graph's order; before a computation, recompute evicted inputs;
//                       when it would pass the budget, evict the resident value with the least
//                       h = (c + c of evicted producers of its producer's inputs) / (m * s)
//                       (s: steps since last access). Values of non-recomputable nodes are
//                       never evicted. Not in stage form (to_stage_form regroups it).
//  best_heuristic_schedule  the cheapest, in stage form, of the checkpoint family (Chen
//                       thresholds, no checkpoints, all checkpoints; each with and without
//                       keep_forward and cache_recomputed) and of dtr_schedule regrouped,
//                       whose peak fits the budget.
#pragma once

#include "strategies/training_graph.hpp"

#include <optional>
#include <string>

namespace remat {

struct CheckpointPolicy {
  std::vector<char> checkpoint;  // per value: kept from its first computation to its last reader
  bool keep_forward = true;
  bool cache_recomputed = false;
};

GraphSchedule checkpoint_schedule(const TrainingGraph& graph, const CheckpointPolicy& policy);
// Checkpoint flags (per value) from Chen's Alg. 3 with a threshold in bytes.
std::vector<char> chen_checkpoints(const TrainingGraph& graph, std::int64_t threshold);
// A schedule whose peak fits `budget`, or nothing when an instruction's pinned values do not
// fit or recomputation thrashes (more than 50 n + 1000 recomputations).
std::optional<GraphSchedule> dtr_schedule(const TrainingGraph& graph, std::int64_t budget);

struct HeuristicSchedule {
  GraphSchedule schedule;  // stage form
  GraphScheduleStats stats;
  std::string name;        // which member of the family, e.g. "chen(threshold=4096)"
};
std::optional<HeuristicSchedule> best_heuristic_schedule(const TrainingGraph& graph, std::int64_t budget);
// The least peak over the family: a budget every graph schedule search can certify.
HeuristicSchedule least_memory_heuristic_schedule(const TrainingGraph& graph);

}  // namespace remat
