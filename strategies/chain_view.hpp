// Contract: the Chain view of a recorded graph, and the lowering of a stage-level
// Schedule to a node-level Program.
// chain_view() cuts the graph at values every path passes through (or, when the
// user marked stages with Tape::mark_stage, at those marks, which must be such
// cuts) and fills the rotor cost arrays:
//   cw[i]   bytes of x(i), the boundary value entering stage i;
//   cbw[i+1] bytes of everything stage i's backward reads, x(i+1) included;
//   ftmp[i] bytes of all other values stage i computes plus its largest forward workspace;
//   btmp[i] bytes of the gradients of stage i's internal values plus its largest
//           vjp workspace and accumulation temporaries;
//   fw/bw   analytic (a roofline of each op's Cost) or measured (a profiled store-all run).
// These bounds are conservative: the node-level peak of a lowered schedule never
// exceeds the stage model's peak (a test checks it on every strategy and model).
// lower_schedule() emits the nodes of each stage for F_*, their vjps for B, the
// seed for B(L), and lets insert_frees() release every value as early as possible.
#pragma once

#include "autodiff/executor.hpp"
#include "strategies/schedule.hpp"

namespace remat {

enum class CostSource : std::uint8_t { analytic, measured };

struct ChainView {
  Chain chain;
  int loss = -1;
  std::vector<int> boundary;                  // L+1 node ids: x(0) (-1 when the chain has no single input) .. x(L) = loss
  std::vector<std::vector<int>> stage_nodes;  // nodes computed by a forward of stage i, in order
  std::vector<std::vector<int>> stage_backward;  // nodes whose vjp runs in B(i), in execution order
  std::vector<int> grad_targets;              // parameters reached by the loss
};

struct ChainViewOptions {
  CostSource costs = CostSource::analytic;
  const Bindings* bindings = nullptr;  // needed for measured costs
  bool use_marks = true;               // cut at Tape::mark_stage marks when there are any
};

ChainView chain_view(const Tape& tape, int loss, const ChainViewOptions& options = {});
// Roofline time of one node's forward in nanoseconds (20 GFLOP/s, 10 GB/s), at least 1.
std::int64_t analytic_node_time(const Tape& tape, int node);
// Analytic time of a whole program: forwards plus backwards at twice their forward.
std::int64_t analytic_program_time(const Tape& tape, const Program& program);
Program lower_schedule(const Tape& tape, const ChainView& view, const Schedule& schedule, const std::string& strategy);

}  // namespace remat
