// Contract: Program helpers: liveness (insert_frees), the store-all baseline,
// printing and JSON. See program.hpp.
#include "autodiff/program.hpp"

#include "autodiff/memory_policy.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <unordered_map>

namespace remat {

const char* instruction_kind_name(InstructionKind kind) {
  switch (kind) {
    case InstructionKind::compute: return "compute";
    case InstructionKind::free: return "free";
    case InstructionKind::seed_grad: return "seed_grad";
    case InstructionKind::backward: return "backward";
    case InstructionKind::free_grad: return "free_grad";
  }
  return "?";
}

std::vector<int> saved_for_backward(const Tape& tape, int id) {
  std::vector<int> ids;
  for_each_saved_value(tape, id, [&](int v) {
    if (std::find(ids.begin(), ids.end(), v) == ids.end()) ids.push_back(v);
  });
  return ids;
}

std::vector<int> forward_order(const Tape& tape, int loss) { return tape.ancestors(loss); }

std::vector<int> compute_order(const Tape& tape, int loss) {
  std::vector<int> ids;
  for (int id : tape.ancestors(loss))
    if (tape.node(id).kind != NodeKind::parameter) ids.push_back(id);
  return ids;
}

static bool gradient_flows(const Tape& tape, const Node& n, std::size_t i) { return receives_gradient(tape, n, i); }

void validate_program(const Tape& tape, const Program& program) {
  const auto n = static_cast<int>(tape.size());
  auto in_range = [&](int id) { return id >= 0 && id < n; };
  if (!in_range(program.loss))
    throw Error(fmt::format("[program] '{}': the loss n{} is not a node of this tape (it has {} nodes)", program.strategy,
                            program.loss, n));
  std::vector<bool> target(tape.size(), false);
  for (int p : program.grad_targets) {
    if (!in_range(p) || tape.node(p).kind != NodeKind::parameter)
      throw Error(fmt::format("[program] '{}': grad target n{} is not a parameter of this tape", program.strategy, p));
    if (target[static_cast<std::size_t>(p)])
      throw Error(fmt::format("[program] '{}': grad target {} is listed twice", program.strategy, tape.node(p).label()));
    target[static_cast<std::size_t>(p)] = true;
  }
  for (std::size_t i = 0; i < program.instructions.size(); ++i) {
    const Instruction& ins = program.instructions[i];
    if (static_cast<unsigned>(ins.kind) > static_cast<unsigned>(InstructionKind::free_grad))
      throw Error(fmt::format("[program] '{}': instruction {} has an unknown kind", program.strategy, i));
    if (!in_range(ins.node))
      throw Error(fmt::format("[program] '{}': instruction {} ({}) names n{}, which is not a node of this tape",
                              program.strategy, i, instruction_kind_name(ins.kind), ins.node));
    if (ins.kind == InstructionKind::seed_grad) {
      if (ins.node != program.loss)
        throw Error(fmt::format("[program] '{}': instruction {} seeds the gradient of {}, which is not the loss n{}",
                                program.strategy, i, tape.node(ins.node).label(), program.loss));
      if (tape.node(ins.node).meta.numel() != 1)
        throw Error(fmt::format("[program] '{}': the loss {} has shape {}; a loss must be a scalar (reduce it, e.g. "
                                "with mean or sum)",
                                program.strategy, tape.node(ins.node).label(), shape_string(tape.node(ins.node).meta.shape)));
    }
  }
}

void check_loss(const Tape& tape, int loss, const char* source) {
  if (loss < 0 || static_cast<std::size_t>(loss) >= tape.size())
    throw Error(fmt::format("[{}] the loss n{} is not a node of this tape (it has {} nodes)", source, loss, tape.size()));
  const Node& l = tape.node(loss);
  if (l.kind != NodeKind::op)
    throw Error(fmt::format("[{}] the loss {} is a {}; a loss must be computed by an op", source, l.label(),
                            l.kind == NodeKind::parameter ? "parameter" : "placeholder"));
  if (l.meta.numel() != 1)
    throw Error(fmt::format("[{}] the loss {} has shape {}; a loss must be a scalar (reduce it, e.g. with mean or sum)",
                            source, l.label(), shape_string(l.meta.shape)));
  if (!l.requires_grad) throw Error(fmt::format("[{}] the loss {} does not depend on any parameter", source, l.label()));
}

std::vector<int> backward_order(const Tape& tape, int loss) {
  std::vector<int> order;
  std::vector<bool> reached(tape.size(), false);
  reached[static_cast<std::size_t>(loss)] = true;
  for (int id = loss; id >= 0; --id) {
    const Node& n = tape.node(id);
    if (!reached[static_cast<std::size_t>(id)] || n.kind != NodeKind::op) continue;
    bool any = false;
    for (std::size_t i = 0; i < n.inputs.size(); ++i)
      if (gradient_flows(tape, n, i)) {
        reached[static_cast<std::size_t>(n.inputs[i])] = true;
        any = true;
      }
    if (any) order.push_back(id);
  }
  return order;
}

Program insert_frees(const Tape& tape, Program program) {
  std::vector<Instruction> body;
  for (const auto& ins : program.instructions)
    if (ins.kind != InstructionKind::free && ins.kind != InstructionKind::free_grad) body.push_back(ins);

  std::vector<bool> keep_grad(tape.size(), false);
  for (int p : tape.parameters()) keep_grad[static_cast<std::size_t>(p)] = true;
  for (int p : program.grad_targets) keep_grad[static_cast<std::size_t>(p)] = true;

  // Touches of values and gradients by one instruction: (id, is_definition), written
  // into buffers reused across instructions (no allocation per instruction).
  struct Touch { int id; bool defines; };
  std::vector<Touch> vt, gt;
  auto value_touches = [&](const Instruction& ins) {
    vt.clear();
    const Node& n = tape.node(ins.node);
    if (ins.kind == InstructionKind::compute) {
      for (int in : n.inputs) vt.push_back({in, false});
      vt.push_back({ins.node, true});
    } else if (ins.kind == InstructionKind::backward) {
      for (int s : saved_for_backward(tape, ins.node)) vt.push_back({s, false});
    }
    // Parameters are always resident: the executor owns them, nothing frees them.
    std::erase_if(vt, [&](const Touch& x) { return tape.node(x.id).kind == NodeKind::parameter; });
  };
  auto grad_touches = [&](const Instruction& ins) {
    gt.clear();
    const Node& n = tape.node(ins.node);
    if (ins.kind == InstructionKind::seed_grad) gt.push_back({ins.node, true});
    if (ins.kind == InstructionKind::backward) {
      gt.push_back({ins.node, false});
      for (std::size_t i = 0; i < n.inputs.size(); ++i)
        if (gradient_flows(tape, n, i)) gt.push_back({n.inputs[i], false});
    }
  };

  // Reverse scan: a value dies after instruction i when its next event is not a read.
  // Blocks of frees are appended from the last instruction to the first: those after
  // instruction i are free_values[value_begin[i + 1], value_begin[i]) (free_grads alike).
  enum class Next : std::uint8_t { none, read, define };
  std::vector<Next> next_value(tape.size(), Next::none), next_grad(tape.size(), Next::none);
  std::vector<int> free_values, free_grads;
  std::vector<std::size_t> value_begin(body.size() + 1), grad_begin(body.size() + 1);
  for (std::size_t i = body.size(); i-- > 0;) {
    value_begin[i + 1] = free_values.size();
    value_touches(body[i]);
    const auto vfirst = static_cast<std::ptrdiff_t>(free_values.size());
    for (const auto& t : vt)
      if (next_value[static_cast<std::size_t>(t.id)] != Next::read &&
          std::find(free_values.begin() + vfirst, free_values.end(), t.id) == free_values.end())
        free_values.push_back(t.id);
    for (const auto& t : vt) if (!t.defines) next_value[static_cast<std::size_t>(t.id)] = Next::read;
    for (const auto& t : vt) if (t.defines) next_value[static_cast<std::size_t>(t.id)] = Next::define;

    grad_begin[i + 1] = free_grads.size();
    grad_touches(body[i]);
    const auto gfirst = static_cast<std::ptrdiff_t>(free_grads.size());
    for (const auto& t : gt)
      if (!keep_grad[static_cast<std::size_t>(t.id)] && next_grad[static_cast<std::size_t>(t.id)] != Next::read &&
          std::find(free_grads.begin() + gfirst, free_grads.end(), t.id) == free_grads.end())
        free_grads.push_back(t.id);
    for (const auto& t : gt)
      next_grad[static_cast<std::size_t>(t.id)] = t.defines ? Next::define : Next::read;
  }
  value_begin[0] = free_values.size();
  grad_begin[0] = free_grads.size();

  program.instructions.clear();
  program.instructions.reserve(body.size() + free_values.size() + free_grads.size());
  for (std::size_t i = 0; i < body.size(); ++i) {
    program.instructions.push_back(body[i]);
    for (std::size_t k = grad_begin[i + 1]; k < grad_begin[i]; ++k)
      program.instructions.push_back({InstructionKind::free_grad, free_grads[k]});
    for (std::size_t k = value_begin[i + 1]; k < value_begin[i]; ++k)
      program.instructions.push_back({InstructionKind::free, free_values[k]});
  }
  return program;
}

Program store_all_program(const Tape& tape, int loss) {
  check_loss(tape, loss, "grad");
  Program p;
  p.strategy = "store-all";
  p.loss = loss;
  for (int id : forward_order(tape, loss)) {
    if (tape.node(id).kind == NodeKind::parameter) {
      if (tape.node(id).requires_grad) p.grad_targets.push_back(id);  // frozen parameters have no gradient
    }
    else p.instructions.push_back({InstructionKind::compute, id});
  }
  p.instructions.push_back({InstructionKind::seed_grad, loss});
  for (int id : backward_order(tape, loss)) p.instructions.push_back({InstructionKind::backward, id});
  return insert_frees(tape, std::move(p));
}

std::string Program::to_string(const Tape& tape) const {
  std::string s = fmt::format("program '{}': {} instructions, loss n{}\n", strategy, instructions.size(), loss);
  for (std::size_t i = 0; i < instructions.size(); ++i) {
    const auto& ins = instructions[i];
    const Node& n = tape.node(ins.node);
    s += fmt::format("{:>6}  {:<9} {:<22} {}\n", i, instruction_kind_name(ins.kind), n.label(),
                     shape_string(n.meta.shape));
  }
  return s;
}

nlohmann::json Program::to_json() const {
  nlohmann::json j;
  j["strategy"] = strategy;
  j["loss"] = loss;
  j["grad_targets"] = grad_targets;
  auto& list = j["instructions"] = nlohmann::json::array();
  for (const auto& ins : instructions) list.push_back({instruction_kind_name(ins.kind), ins.node});
  return j;
}

Program Program::from_json(const nlohmann::json& j) {
  Program p;
  try {
    p.strategy = j.at("strategy").get<std::string>();
    p.loss = j.at("loss").get<int>();
    p.grad_targets = j.at("grad_targets").get<std::vector<int>>();
    for (const auto& item : j.at("instructions")) {
      auto kind = item.at(0).get<std::string>();
      InstructionKind k;
      if (kind == "compute") k = InstructionKind::compute;
      else if (kind == "free") k = InstructionKind::free;
      else if (kind == "seed_grad") k = InstructionKind::seed_grad;
      else if (kind == "backward") k = InstructionKind::backward;
      else if (kind == "free_grad") k = InstructionKind::free_grad;
      else throw Error("[program json] unknown instruction '" + kind + "'");
      p.instructions.push_back({k, item.at(1).get<int>()});
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("[program json] malformed program: ") + e.what());
  }
  return p;
}

}  // namespace remat
