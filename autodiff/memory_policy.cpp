// Contract: the memory policy's rules (see memory_policy.hpp), in one place.
#include "autodiff/memory_policy.hpp"

#include "autodiff/program.hpp"

namespace remat {

MemoryCategory value_category(const Node& node, bool read_by_a_backward) {
  if (node.kind == NodeKind::placeholder) return MemoryCategory::input;
  if (node.kind == NodeKind::parameter) return MemoryCategory::parameter;
  return read_by_a_backward ? MemoryCategory::saved : MemoryCategory::activation;
}

std::vector<bool> values_read_by_backward(const Tape& tape, const Program& program) {
  std::vector<bool> read(tape.size(), false);
  for (const auto& ins : program.instructions)
    if (ins.kind == InstructionKind::backward && ins.node >= 0 && static_cast<std::size_t>(ins.node) < tape.size())
      for_each_saved_value(tape, ins.node, [&](int v) { read[static_cast<std::size_t>(v)] = true; });
  return read;
}

bool receives_gradient(const Tape& tape, const Node& node, std::size_t slot) {
  return node.kind == NodeKind::op && tape.node(node.inputs[slot]).requires_grad && node.op->differentiable_input(slot);
}

std::vector<GradientWrite> gradient_writes(const Tape& tape, int id, const std::vector<bool>& has_gradient) {
  std::vector<GradientWrite> writes;
  gradient_writes(tape, id, has_gradient, writes);
  return writes;
}

void gradient_writes(const Tape& tape, int id, const std::vector<bool>& has_gradient, std::vector<GradientWrite>& writes) {
  const Node& node = tape.node(id);
  writes.clear();
  for (std::size_t slot = 0; slot < node.inputs.size(); ++slot) {
    if (!receives_gradient(tape, node, slot)) continue;
    const Node& input = tape.node(node.inputs[slot]);
    bool repeated = false;
    for (const auto& w : writes) repeated |= w.input == input.id;
    GradientWrite w;
    w.slot = slot;
    w.input = input.id;
    w.bytes = input.meta.bytes();
    w.in_place = !has_gradient[static_cast<std::size_t>(input.id)] && !repeated;
    w.category = !w.in_place                          ? MemoryCategory::workspace
                 : input.kind == NodeKind::parameter ? MemoryCategory::parameter_gradient
                                                      : MemoryCategory::gradient;
    writes.push_back(w);
  }
}

namespace {
std::vector<TensorMeta> input_metas(const Tape& tape, const Node& node) {
  std::vector<TensorMeta> metas;
  metas.reserve(node.inputs.size());
  for (int in : node.inputs) metas.push_back(tape.node(in).meta);
  return metas;
}
}  // namespace

std::size_t forward_workspace_bytes(const Tape& tape, int id) {
  const Node& node = tape.node(id);
  return node.kind == NodeKind::op ? node.op->forward_workspace_bytes(input_metas(tape, node), node.meta) : 0;
}

std::size_t vjp_workspace_bytes(const Tape& tape, int id) {
  const Node& node = tape.node(id);
  return node.kind == NodeKind::op ? node.op->vjp_workspace_bytes(input_metas(tape, node), node.meta) : 0;
}

InstructionBytes compute_bytes(const Tape& tape, int id) {
  const Node& node = tape.node(id);
  if (node.kind == NodeKind::parameter) return {};
  const auto bytes = node.meta.bytes();
  return {static_cast<std::int64_t>(bytes), bytes + forward_workspace_bytes(tape, id)};
}

InstructionBytes seed_grad_bytes(const Tape& tape, int id) {
  const auto bytes = tape.node(id).meta.bytes();
  return {static_cast<std::int64_t>(bytes), bytes};
}

void mark_gradients(const Tape& tape, int id, std::vector<bool>& has_gradient) {
  const Node& node = tape.node(id);
  for (std::size_t slot = 0; slot < node.inputs.size(); ++slot)
    if (receives_gradient(tape, node, slot)) has_gradient[static_cast<std::size_t>(node.inputs[slot])] = true;
}

InstructionBytes backward_bytes(const Tape& tape, int id, const std::vector<bool>& has_gradient) {
  InstructionBytes b;
  std::size_t held = vjp_workspace_bytes(tape, id);
  for (const auto& w : gradient_writes(tape, id, has_gradient)) {
    if (!is_budgeted(w.category)) continue;
    held += w.bytes;
    if (w.in_place) b.stays += static_cast<std::int64_t>(w.bytes);
  }
  b.peak_extra = held;
  return b;
}

}  // namespace remat
