// Contract: recording (see tape.hpp). Shape errors surface here, at record time.
#include "autodiff/tape.hpp"

#include <algorithm>

namespace remat {

const TensorMeta& Value::meta() const {
  if (!tape) throw Error("[Value] used before it was recorded on a tape");
  return tape->node(id).meta;
}

std::string Node::label() const {
  return "n" + std::to_string(id) + " " + (kind == NodeKind::op ? op->name() : name);
}

Value Tape::add_node(Node node) {
  node.id = static_cast<int>(nodes_.size());
  nodes_.push_back(std::move(node));
  return Value{this, nodes_.back().id};
}

Value Tape::placeholder(std::string name, TensorMeta meta) {
  for (auto d : meta.shape)
    if (d < 0) throw Error("[tape] placeholder '" + name + "' has a negative extent in " + shape_string(meta.shape));
  Node n;
  n.kind = NodeKind::placeholder;
  n.name = std::move(name);
  n.meta = std::move(meta);
  return add_node(std::move(n));
}

Value Tape::add_parameter(std::string name, TensorMeta meta, bool trainable, std::shared_ptr<Initial> initial) {
  if (!is_floating(meta.dtype)) throw Error("[tape] parameter '" + name + "' must be floating (f32, f64, bf16 or f16)");
  for (auto d : meta.shape)
    if (d < 0) throw Error("[tape] parameter '" + name + "' has a negative extent in " + shape_string(meta.shape));
  Node n;
  n.kind = NodeKind::parameter;
  n.name = std::move(name);
  n.meta = std::move(meta);
  n.requires_grad = trainable;
  Value v = add_node(std::move(n));
  parameter_initial_[v.id] = std::move(initial);
  return v;
}

Value Tape::parameter(std::string name, HostArray initial, bool trainable) {
  TensorMeta meta = initial.meta;
  auto slot = std::make_shared<Initial>();
  slot->value = std::move(initial);
  return add_parameter(std::move(name), std::move(meta), trainable, std::move(slot));
}

Value Tape::parameter(std::string name, TensorMeta meta, std::function<HostArray()> init, bool trainable) {
  if (!init) throw Error("[tape] parameter '" + name + "' has no initialiser");
  auto slot = std::make_shared<Initial>();
  slot->make = std::move(init);
  return add_parameter(std::move(name), std::move(meta), trainable, std::move(slot));
}

Value Tape::input(std::string name, HostArray value) {
  Value v = placeholder(std::move(name), value.meta);
  defaults_[v.id] = std::move(value);
  return v;
}

Value Tape::record(std::shared_ptr<const Op> op, std::vector<Value> inputs) {
  std::vector<TensorMeta> metas;
  Node n;
  n.kind = NodeKind::op;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = inputs[i];
    if (v.tape != this)
      throw Error("[" + op->name() + "] input " + std::to_string(i) + " was recorded on another tape");
    metas.push_back(node(v.id).meta);
    n.inputs.push_back(v.id);
    if (node(v.id).requires_grad && op->differentiable_input(i)) n.requires_grad = true;
  }
  n.meta = op->infer(metas);
  if (!is_floating(n.meta.dtype)) n.requires_grad = false;
  n.op = std::move(op);
  return add_node(std::move(n));
}

void Tape::mark_stage(Value v) {
  if (v.tape != this) throw Error("[mark_stage] the value was recorded on another tape (or none)");
  if (v.id < 0 || static_cast<std::size_t>(v.id) >= nodes_.size()) throw Error("[mark_stage] no such node on this tape");
  nodes_[static_cast<std::size_t>(v.id)].stage_mark = true;
}

const Node& Tape::node(int id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= nodes_.size())
    throw Error("[tape] no node n" + std::to_string(id) + " (the tape has " + std::to_string(nodes_.size()) +
                " nodes)");
  return nodes_[static_cast<std::size_t>(id)];
}

std::vector<int> Tape::parameters() const {
  std::vector<int> ids;
  for (const auto& n : nodes_)
    if (n.kind == NodeKind::parameter) ids.push_back(n.id);
  return ids;
}

std::vector<int> Tape::placeholders() const {
  std::vector<int> ids;
  for (const auto& n : nodes_)
    if (n.kind == NodeKind::placeholder) ids.push_back(n.id);
  return ids;
}

const HostArray& Tape::parameter_initial(int id) const {
  auto it = parameter_initial_.find(id);
  if (it == parameter_initial_.end()) throw Error("[tape] n" + std::to_string(id) + " is not a parameter");
  Initial& slot = *it->second;
  std::call_once(slot.once, [&] {
    if (!slot.make) return;
    HostArray made = slot.make();
    const Node& n = node(id);
    if (!(made.meta == n.meta))
      throw Error("[tape] the initialiser of parameter '" + n.name + "' made " + shape_string(made.meta.shape) + " " +
                  dtype_name(made.meta.dtype) + ", expected " + shape_string(n.meta.shape) + " " + dtype_name(n.meta.dtype));
    slot.value = std::move(made);
    slot.make = nullptr;
  });
  return slot.value;
}

std::vector<int> Tape::ancestors(int target) const {
  std::vector<bool> needed(nodes_.size(), false);
  needed[static_cast<std::size_t>(node(target).id)] = true;
  for (int i = target; i >= 0; --i) {
    if (!needed[static_cast<std::size_t>(i)]) continue;
    for (int in : nodes_[static_cast<std::size_t>(i)].inputs) needed[static_cast<std::size_t>(in)] = true;
  }
  std::vector<int> ids;
  for (int i = 0; i <= target; ++i)
    if (needed[static_cast<std::size_t>(i)]) ids.push_back(i);
  return ids;
}

}  // namespace remat
