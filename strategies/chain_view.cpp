// Contract: cutting a tape into a chain, stage costs, and lowering (see chain_view.hpp).
#include "strategies/chain_view.hpp"

#include "autodiff/memory_policy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace remat {
namespace {

std::int64_t bytes_of(const Tape& tape, int id) { return static_cast<std::int64_t>(tape.node(id).meta.bytes()); }

// The most bytes a forward of a stage holds, relative to what was live before it,
// when `kept` values stay after it (every other value is freed after its last read
// within the stage, as insert_frees() places the frees).
// With `input` >= 0 (F_n dropping x(i)), the input counts too, until its last read.
std::int64_t forward_peak(const Tape& tape, const std::vector<int>& nodes, const std::vector<int>& stage_of, int stage,
                          const std::set<int>& kept, int input = -1) {
  std::map<int, int> reads;  // remaining reads of each stage value by later stage nodes
  int input_reads = 0;
  for (int id : nodes)
    for (int in : tape.node(id).inputs) {
      if (stage_of[static_cast<std::size_t>(in)] == stage) ++reads[in];
      if (in == input) ++input_reads;
    }
  std::int64_t live = input >= 0 ? bytes_of(tape, input) : 0, peak = live;
  for (int id : nodes) {
    const InstructionBytes b = compute_bytes(tape, id);
    peak = std::max(peak, live + static_cast<std::int64_t>(b.peak_extra));
    live += b.stays;
    std::set<int> seen;
    for (int in : tape.node(id).inputs)
      if (stage_of[static_cast<std::size_t>(in)] == stage && seen.insert(in).second) {
        reads[in] -= static_cast<int>(std::count(tape.node(id).inputs.begin(), tape.node(id).inputs.end(), in));
        if (reads[in] == 0 && !kept.count(in)) live -= bytes_of(tape, in);
      }
    if (input >= 0 && input_reads > 0) {
      input_reads -= static_cast<int>(std::count(tape.node(id).inputs.begin(), tape.node(id).inputs.end(), input));
      if (input_reads == 0) live -= bytes_of(tape, input);
    }
    if (reads[id] == 0 && !kept.count(id)) live -= bytes_of(tape, id);
  }
  return peak;
}

// The most bytes the backward of a stage holds beyond what is live before it, given
// which gradients exist when it starts; saved values of the stage (`saved`) are freed
// after their last read within it, the stage's internal gradients after their vjp.
std::int64_t backward_peak(const Tape& tape, const std::vector<int>& backward, const std::set<int>& saved,
                           std::vector<bool> has_gradient) {
  std::map<int, int> reads;
  for (int b : backward)
    for (int s : saved_for_backward(tape, b))
      if (saved.count(s)) ++reads[s];
  std::int64_t delta = 0, peak = 0;
  for (int b : backward) {
    const InstructionBytes need = backward_bytes(tape, b, has_gradient);
    peak = std::max(peak, delta + static_cast<std::int64_t>(need.peak_extra));
    delta += need.stays;
    mark_gradients(tape, b, has_gradient);
    // b's own gradient is read by nothing after its vjp (for x(i+1), that is delta(i+1)
    // of the baseline; for an internal value, a gradient this stage allocated).
    delta -= bytes_of(tape, b);
    has_gradient[static_cast<std::size_t>(b)] = false;
    for (int s : saved_for_backward(tape, b))
      if (saved.count(s) && --reads[s] == 0) delta -= bytes_of(tape, s);
  }
  return peak;
}

}  // namespace

std::int64_t analytic_program_time(const Tape& tape, const Program& program) {
  return program_time(tape, program, analytic_node_costs(tape));
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
  // Placeholders are never held as x(0): a binding is data, so every forward of the
  // stage that reads it copies it in again (as budget-greedy re-binds an evicted
  // input), and between forwards it takes no memory. The chain's x(0) is empty.
  view.boundary.push_back(-1);
  int begin = 0;
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
    if (tape.node(id).kind == NodeKind::parameter && tape.node(id).requires_grad) view.grad_targets.push_back(id);

  NodeCosts analytic;
  if (!options.costs) analytic = analytic_node_costs(tape);
  const NodeCosts& costs = options.costs ? *options.costs : analytic;
  if (costs.forward_ns.size() != tape.size() || costs.backward_ns.size() != tape.size())
    throw Error(fmt::format("[chain] the cost table has {} entries; the tape has {} nodes", costs.forward_ns.size(),
                            tape.size()));

  // Which nodes have a gradient when B i starts: every input a backward of a later stage
  // wrote (the reverse sweep runs B L-1 .. B 0 in this order).
  std::vector<bool> grad_before(tape.size(), false);
  std::vector<std::vector<bool>> gradients_at(static_cast<std::size_t>(L));
  for (int i = L - 1; i >= 0; --i) {
    std::vector<bool> at = grad_before;
    at[static_cast<std::size_t>(view.boundary[static_cast<std::size_t>(i + 1)])] = true;  // delta(i+1)
    gradients_at[static_cast<std::size_t>(i)] = at;
    for (int b : view.stage_backward[static_cast<std::size_t>(i)]) mark_gradients(tape, b, grad_before);
    // gradients of the stage's own values are freed within it; only x(i) and parameters carry over
    for (int id : view.stage_nodes[static_cast<std::size_t>(i)]) grad_before[static_cast<std::size_t>(id)] = false;
  }

  Chain& ch = view.chain;
  ch.name = "graph";
  ch.cw.push_back(view.boundary[0] >= 0 ? bytes_of(tape, view.boundary[0]) : 0);
  ch.cbw.push_back(ch.cw[0]);
  for (int i = 0; i < L; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const auto& nodes = view.stage_nodes[u];
    const int out = view.boundary[u + 1];
    std::int64_t fw = 0, bw = 0;
    std::set<int> saved{out};
    for (int id : nodes) fw += costs.forward(id);
    for (int id : view.stage_backward[u]) {
      bw += costs.backward(id);
      for (int s : saved_for_backward(tape, id))
        if (stage_of[static_cast<std::size_t>(s)] == i) saved.insert(s);
    }
    std::int64_t saved_bytes = 0;
    for (int s : saved) saved_bytes += bytes_of(tape, s);
    const std::int64_t out_bytes = bytes_of(tape, out);
    const std::int64_t plain = forward_peak(tape, nodes, stage_of, i, {out}) - out_bytes;
    const std::int64_t taped = forward_peak(tape, nodes, stage_of, i, saved) - saved_bytes;
    const std::int64_t input_bytes = ch.cw[u];
    const std::int64_t back = backward_peak(tape, view.stage_backward[u], saved, gradients_at[u]) - input_bytes;
    ch.fw.push_back(fw);
    ch.bw.push_back(bw);
    ch.cw.push_back(out_bytes);
    ch.cbw.push_back(saved_bytes);
    ch.ftmp.push_back(std::max<std::int64_t>({0, plain, taped}));
    const int input = view.boundary[u];
    ch.fdrop.push_back(input >= 0 ? forward_peak(tape, nodes, stage_of, i, {out}, input)
                                  : out_bytes + ch.ftmp.back());
    ch.btmp.push_back(std::max<std::int64_t>(0, back));
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
