// Contract: the Chain view of a recorded graph, and the lowering of a stage-level
// Schedule to a node-level Program.
// chain_view() cuts the graph at values every path passes through (or, when the
// user marked stages with Tape::mark_stage, at those marks, which must be such
// cuts) and fills the rotor cost arrays:
//   cw[i]   bytes of x(i), the boundary value entering stage i;
//   cbw[i+1] bytes of everything stage i's backward reads, x(i+1) included;
//   ftmp[i] the most bytes a forward of stage i holds beyond x(i+1) (kept plain) or
//           beyond xbar(i+1) (kept taped), whichever is larger;
//   btmp[i] the most bytes the backward of stage i holds beyond its inputs (xbar,
//           delta(i+1), x(i)), minus delta(i): internal gradients, accumulation
//           temporaries and scratch;
//   fw/bw   from a NodeCosts table (autodiff/costs.hpp: analytic by default, or
//           profiled on the device that will run the plan, passed in as data).
// ftmp and btmp come from replaying each stage's instructions alone with the memory
// policy (autodiff/memory_policy.hpp) and the frees insert_frees() would place, so
// they are the exact transients of the lowered stage; the stage model only keeps
// more than the node level does (x(i) until B i, xbar until B i ends). Hence the
// node-level peak of a lowered schedule never exceeds its stage-model peak (a test
// checks it on every strategy and model). Planners may search with the stage model;
// a budget is accepted on the simulated peak of the lowered Program.
// lower_schedule() emits the nodes of each stage for F_*, their vjps for B, the
// seed for B(L), and lets insert_frees() release every value as early as possible.
#pragma once

#include "autodiff/costs.hpp"
#include "autodiff/executor.hpp"
#include "strategies/schedule.hpp"

namespace remat {

struct ChainView {
  Chain chain;
  int loss = -1;
  std::vector<int> boundary;                  // L+1 node ids: x(0) = -1 (placeholders are re-bound inside stage 0), x(1) .. x(L) = loss
  std::vector<std::vector<int>> stage_nodes;  // nodes computed by a forward of stage i, in order
  std::vector<std::vector<int>> stage_backward;  // nodes whose vjp runs in B(i), in execution order
  std::vector<int> grad_targets;              // parameters reached by the loss
};

struct ChainViewOptions {
  const NodeCosts* costs = nullptr;  // per-node times; null: analytic_node_costs(tape)
  bool use_marks = true;             // cut at Tape::mark_stage marks when there are any
};

ChainView chain_view(const Tape& tape, int loss, const ChainViewOptions& options = {});
// Analytic time of a whole program (program_time under analytic_node_costs).
std::int64_t analytic_program_time(const Tape& tape, const Program& program);
Program lower_schedule(const Tape& tape, const ChainView& view, const Schedule& schedule, const std::string& strategy);

}  // namespace remat
