// Contract: a Program is data, the node-level instruction list a strategy emits
// and the executor runs:
//   compute n    allocate n's value and run its forward (placeholders: copy the binding)
//   free n       release n's value
//   seed_grad n  allocate n's gradient, filled with ones (n is the loss)
//   backward n   run n's vjp, adding into the gradients of its inputs
//   free_grad n  release n's gradient
// It can be printed (the teaching view), saved as JSON, simulated and executed.
// insert_frees() adds every Free/FreeGrad at the earliest point after which the
// value is not read before it is next computed, so a strategy only decides what is
// (re)computed when; store_all_program() is the baseline schedule.
#pragma once

#include "autodiff/tape.hpp"

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace remat {

enum class InstructionKind : std::uint8_t { compute, free, seed_grad, backward, free_grad };
const char* instruction_kind_name(InstructionKind kind);

struct Instruction {
  InstructionKind kind;
  int node;
  bool operator==(const Instruction&) const = default;
};

struct Program {
  std::string strategy;
  int loss = -1;                   // the node whose gradient is seeded
  std::vector<int> grad_targets;   // parameters whose gradients are returned
  std::vector<Instruction> instructions;

  std::string to_string(const Tape& tape) const;
  nlohmann::json to_json() const;
  static Program from_json(const nlohmann::json& json);
};

// Calls visit(id) for each value the vjp of `node` reads, by Op::saves: the inputs it
// marks, in slot order (an input in two marked slots is visited twice), then the node's
// own output when marked. Nothing for a node that is no op.
template <class Visit>
void for_each_saved_value(const Tape& tape, int node, Visit&& visit) {
  const Node& n = tape.node(node);
  if (n.kind != NodeKind::op) return;
  const SavedValues s = n.op->saves(n.inputs.size());
  for (std::size_t i = 0; i < n.inputs.size() && i < s.inputs.size(); ++i)
    if (s.inputs[i]) visit(n.inputs[i]);
  if (s.output) visit(node);
}

// Values the vjp of `node` reads (for_each_saved_value, each once), as node ids.
std::vector<int> saved_for_backward(const Tape& tape, int node);
// Nodes whose backward runs in a full reverse sweep from `loss`, in execution order.
std::vector<int> backward_order(const Tape& tape, int loss);
// Nodes needed to compute `loss`, in recording order (parameters included).
std::vector<int> forward_order(const Tape& tape, int loss);
// The same without parameters: the nodes a Program computes (parameters are
// always resident; compute and free of a parameter are no-ops).
std::vector<int> compute_order(const Tape& tape, int loss);

// Checks that `program` can run on `tape` before anything runs: every node id is in
// range, the loss is a node (and scalar when its gradient is seeded, which only the
// loss may be), grad_targets are distinct parameters. Throws Error "[program] ...".
void validate_program(const Tape& tape, const Program& program);

// Checks that `loss` can be the loss of a training step: an op node of this tape with
// a scalar value that depends on some parameter. Throws Error "[source] ...".
void check_loss(const Tape& tape, int loss, const char* source);

// Adds free/free_grad instructions (existing ones are dropped first). Parameter
// gradients and the gradients of grad_targets are never freed.
Program insert_frees(const Tape& tape, Program program);
// Store-all: forward every needed node once, then the reverse sweep.
Program store_all_program(const Tape& tape, int loss);

}  // namespace remat
