// Contract: compute costs as data. Planners weigh recomputation by these; they never
// measure anything themselves (strategies never build a backend).
//  - NodeCosts: forward and backward time of every node of a tape, in integer
//    nanoseconds (at least 1 for every node a program computes).
//  - analytic_node_costs: a roofline of each op's Cost (20 GFLOP/s, 10 GB/s; a
//    placeholder's binding is copied at 10 GB/s), backward twice the forward unless
//    the op states its vjp's cost (Op::vjp_cost). It needs shapes only, so it plans
//    models of any size without running them.
//  - profile_node_costs: a profiled store-all step on the backend that will run the
//    plan (one warm-up step, then the median of `repeats` steps per instruction).
//  - program_time: the time of a Program under a cost table (computes of op and
//    placeholder nodes plus backwards): the "planned time" every strategy is
//    compared by.
#pragma once

#include "autodiff/program.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace remat {

class Backend;

struct NodeCosts {
  std::string source = "analytic";  // "analytic" or "measured on <backend>"
  std::vector<std::int64_t> forward_ns, backward_ns;  // indexed by node id
  std::int64_t forward(int node) const { return forward_ns[static_cast<std::size_t>(node)]; }
  std::int64_t backward(int node) const { return backward_ns[static_cast<std::size_t>(node)]; }
};

NodeCosts analytic_node_costs(const Tape& tape);
// Errors: what the executor raises for a bad binding; "[profile] ..." for repeats < 1.
NodeCosts profile_node_costs(const Tape& tape, int loss, Backend& backend, const Bindings& bindings, int repeats = 3);
std::int64_t program_time(const Tape& tape, const Program& program, const NodeCosts& costs);

// The analytic forward time of one node (ns, at least 1), as analytic_node_costs has it.
std::int64_t analytic_node_time(const Tape& tape, int node);

}  // namespace remat
