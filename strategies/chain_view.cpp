// Contract: cutting a tape into a chain, stage costs, and lowering (see chain_view.hpp).
#include "strategies/chain_view.hpp"

#include "autodiff/cpu/cpu_backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace remat {
namespace {

// Roofline time of a node in nanoseconds: 20 GFLOP/s and 10 GB/s, at least 1.
std::int64_t analytic_time(const Tape& tape, const Node& n) {
  if (n.kind != NodeKind::op) return std::max<std::int64_t>(1, static_cast<std::int64_t>(n.meta.bytes() / 10));
  std::vector<TensorMeta> metas;
  for (int in : n.inputs) metas.push_back(tape.node(in).meta);
  Cost c = n.op->cost(metas, n.meta);
  double ns = std::max(c.flops / 20.0, (c.bytes_read + c.bytes_written) / 10.0);
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(ns)));
}

std::int64_t bytes_of(const Tape& tape, int id) { return static_cast<std::int64_t>(tape.node(id).meta.bytes()); }

bool receives_gradient(const Tape& tape, const Node& consumer, std::size_t slot) {
  return tape.node(consumer.inputs[slot]).requires_grad && consumer.op->differentiable_input(slot);
}

}  // namespace

std::int64_t analytic_node_time(const Tape& tape, int node) { return analytic_time(tape, tape.node(node)); }

std::int64_t analytic_program_time(const Tape& tape, const Program& program) {
  std::int64_t t = 0;
  for (const auto& ins : program.instructions) {
    if (ins.kind == InstructionKind::compute && tape.node(ins.node).kind != NodeKind::parameter)
      t += analytic_node_time(tape, ins.node);
    if (ins.kind == InstructionKind::backward) t += 2 * analytic_node_time(tape, ins.node);
  }
  return t;
}

ChainView chain_view(const Tape& tape, int loss, const ChainViewOptions& options) {
  const Node& loss_node = tape.node(loss);
  if (!loss_node.requires_grad) throw Error("[chain] the loss " + loss_node.label() + " does not depend on any parameter");

  // Forward order with each placeholder moved right before its first consumer.
  std::vector<int> ops, order;
  std::set<int> placed;
  for (int id : compute_order(tape, loss)) {
    const Node& n = tape.node(id);
    if (n.kind != NodeKind::op) continue;
    for (int in : n.inputs)
      if (tape.node(in).kind == NodeKind::placeholder && placed.insert(in).second) order.push_back(in);
    order.push_back(id);
  }
  if (order.empty() || order.back() != loss) throw Error("[chain] the loss must be computed by an op");
  std::vector<int> pos(tape.size(), -1);
  for (std::size_t p = 0; p < order.size(); ++p) pos[static_cast<std::size_t>(order[p])] = static_cast<int>(p);

  // span[p] > 0 when some value produced before p is read after p.
  std::vector<int> span(order.size() + 1, 0);
  for (int id : order) {
    const Node& n = tape.node(id);
    for (int in : n.inputs) {
      if (tape.node(in).kind == NodeKind::parameter) continue;
      int a = pos[static_cast<std::size_t>(in)] + 1, b = pos[static_cast<std::size_t>(id)];
      if (a < b) {
        span[static_cast<std::size_t>(a)] += 1;
        span[static_cast<std::size_t>(b)] -= 1;
      }
    }
  }
  std::vector<bool> is_cut(order.size(), false);
  int running = 0;
  for (std::size_t p = 0; p < order.size(); ++p) {
    running += span[p];
    is_cut[p] = running == 0;
  }

  bool any_marks = false;
  if (options.use_marks)
    for (int id : order) any_marks |= tape.node(id).stage_mark && id != loss;
  std::vector<int> cuts;  // positions ending a stage
  for (std::size_t p = 0; p + 1 < order.size(); ++p) {
    const Node& n = tape.node(order[p]);
    if (n.kind != NodeKind::op) continue;
    if (any_marks) {
      if (!n.stage_mark) continue;
      if (!is_cut[p])
        throw Error(fmt::format("[chain] the value {} marked as a stage boundary is not a cut: a value computed "
                                "before it is used after it",
                                n.label()));
      cuts.push_back(static_cast<int>(p));
    } else if (is_cut[p]) {
      cuts.push_back(static_cast<int>(p));
    }
  }
  cuts.push_back(static_cast<int>(order.size()) - 1);

  ChainView view;
  view.loss = loss;
  bool input_is_boundary = tape.node(order[0]).kind == NodeKind::placeholder && is_cut[0] &&
                           (cuts.empty() || cuts[0] > 0);
  view.boundary.push_back(input_is_boundary ? order[0] : -1);
  int begin = input_is_boundary ? 1 : 0;
  for (int c : cuts) {
    std::vector<int> nodes(order.begin() + begin, order.begin() + c + 1);
    view.stage_nodes.push_back(std::move(nodes));
    view.boundary.push_back(order[static_cast<std::size_t>(c)]);
    begin = c + 1;
  }
  const int L = static_cast<int>(view.stage_nodes.size());

  // Backward nodes per stage, in reverse-sweep order.
  std::vector<int> stage_of(tape.size(), -1);
  for (int i = 0; i < L; ++i)
    for (int id : view.stage_nodes[static_cast<std::size_t>(i)]) stage_of[static_cast<std::size_t>(id)] = i;
  view.stage_backward.assign(static_cast<std::size_t>(L), {});
  for (int id : backward_order(tape, loss)) view.stage_backward[static_cast<std::size_t>(stage_of[static_cast<std::size_t>(id)])].push_back(id);
  for (int id : forward_order(tape, loss))
    if (tape.node(id).kind == NodeKind::parameter) view.grad_targets.push_back(id);

  // Per-node times.
  std::vector<std::int64_t> fw_time(tape.size(), 0), bw_time(tape.size(), 0);
  if (options.costs == CostSource::measured) {
    if (!options.bindings) throw Error("[chain] measured costs need input bindings for a profiled run");
    Program p = store_all_program(tape, loss);
    CpuBackend cpu;
    Executor ex(tape, cpu);
    RunOptions ro;
    ro.record_times = true;
    ex.run(p, *options.bindings, ro);  // warm-up
    StepReport r = ex.run(p, *options.bindings, ro).report;
    for (std::size_t k = 0; k < p.instructions.size(); ++k) {
      const auto& ins = p.instructions[k];
      auto ns = std::max<std::int64_t>(1, static_cast<std::int64_t>(r.instruction_seconds[k] * 1e9));
      if (ins.kind == InstructionKind::compute) fw_time[static_cast<std::size_t>(ins.node)] = ns;
      if (ins.kind == InstructionKind::backward) bw_time[static_cast<std::size_t>(ins.node)] = ns;
    }
  } else {
    for (int id : order) {
      fw_time[static_cast<std::size_t>(id)] = analytic_time(tape, tape.node(id));
      bw_time[static_cast<std::size_t>(id)] = 2 * fw_time[static_cast<std::size_t>(id)];  // backward ~ 2x forward
    }
  }

  Chain& ch = view.chain;
  ch.name = "graph";
  ch.cw.push_back(view.boundary[0] >= 0 ? bytes_of(tape, view.boundary[0]) : 0);
  ch.cbw.push_back(ch.cw[0]);
  for (int i = 0; i < L; ++i) {
    const auto& nodes = view.stage_nodes[static_cast<std::size_t>(i)];
    const int out = view.boundary[static_cast<std::size_t>(i + 1)];
    std::int64_t fw = 0, bw = 0, all_outputs = 0, fw_ws = 0, bw_extra = 0, grads = 0;
    std::set<int> saved{out};
    for (int id : nodes) {
      const Node& n = tape.node(id);
      fw += fw_time[static_cast<std::size_t>(id)];
      all_outputs += bytes_of(tape, id);
      if (n.kind != NodeKind::op) continue;
      std::vector<TensorMeta> metas;
      for (int in : n.inputs) metas.push_back(tape.node(in).meta);
      fw_ws = std::max(fw_ws, static_cast<std::int64_t>(n.op->forward_workspace_bytes(metas, n.meta)));
    }
    for (int id : view.stage_backward[static_cast<std::size_t>(i)]) {
      const Node& n = tape.node(id);
      bw += bw_time[static_cast<std::size_t>(id)];
      for (int s : saved_for_backward(tape, id))
        if (stage_of[static_cast<std::size_t>(s)] == i) saved.insert(s);
      std::vector<TensorMeta> metas;
      std::int64_t temporaries = 0;
      for (std::size_t k = 0; k < n.inputs.size(); ++k) {
        metas.push_back(tape.node(n.inputs[k]).meta);
        if (receives_gradient(tape, n, k) && tape.node(n.inputs[k]).kind != NodeKind::parameter)
          temporaries += bytes_of(tape, n.inputs[k]);
      }
      bw_extra = std::max(bw_extra, temporaries + static_cast<std::int64_t>(n.op->vjp_workspace_bytes(metas, n.meta)));
      if (id != out) grads += bytes_of(tape, id);
    }
    std::int64_t saved_bytes = 0;
    for (int s : saved) saved_bytes += bytes_of(tape, s);
    ch.fw.push_back(fw);
    ch.bw.push_back(bw);
    ch.cw.push_back(bytes_of(tape, out));
    ch.cbw.push_back(saved_bytes);
    ch.ftmp.push_back(all_outputs - bytes_of(tape, out) + fw_ws);
    ch.btmp.push_back(grads + bw_extra);
  }
  ch.bw.push_back(0);    // the loss stage: seeding its gradient costs nothing
  ch.btmp.push_back(0);
  ch.validate();
  return view;
}

Program lower_schedule(const Tape& tape, const ChainView& view, const Schedule& schedule, const std::string& strategy) {
  Program p;
  p.strategy = strategy;
  p.loss = view.loss;
  p.grad_targets = view.grad_targets;
  const int L = view.chain.length();
  if (view.boundary[0] >= 0) p.instructions.push_back({InstructionKind::compute, view.boundary[0]});
  for (const StageAction& a : schedule.actions) {
    switch (a.kind) {
      case StageActionKind::forward_none:
      case StageActionKind::forward_checkpoint:
      case StageActionKind::forward_taped:
        for (int id : view.stage_nodes.at(static_cast<std::size_t>(a.stage)))
          p.instructions.push_back({InstructionKind::compute, id});
        break;
      case StageActionKind::backward:
        if (a.stage == L) {
          p.instructions.push_back({InstructionKind::seed_grad, view.loss});
        } else {
          for (int id : view.stage_backward.at(static_cast<std::size_t>(a.stage)))
            p.instructions.push_back({InstructionKind::backward, id});
        }
        break;
      case StageActionKind::discard:
        break;  // liveness frees a checkpoint after its last use
    }
  }
  return insert_frees(tape, std::move(p));
}

}  // namespace remat
