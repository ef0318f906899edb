// Contract: the one memory policy of remat: what each byte of a training step is,
// and when it is allocated and freed. The executor allocates by these rules; the
// planners that account memory themselves (budget-greedy, the chain view's stage
// costs, Checkmate's training graph) ask the same functions, so no copy of the
// rules exists anywhere else. The executor on the metering-only backend stays the
// only judge of a plan's peak (simulate()).
//
// The rules, instruction by instruction (a Program, autodiff/program.hpp):
//   compute n     placeholder: a buffer of n's bytes, category `input` (the binding is
//                 copied in). Op: a buffer of n's bytes, category `saved` when some
//                 backward instruction of the program reads n (Op::saves), else
//                 `activation`; while the forward runs the op may hold declared
//                 scratch (`workspace`, at most Op::forward_workspace_bytes).
//                 Parameter: nothing (parameters are allocated once by the executor,
//                 category `parameter`, not budgeted).
//   free n        releases n's value buffer.
//   seed_grad n   a gradient buffer of n's bytes (`gradient`), filled with ones.
//   backward n    for each input slot that receives a gradient (the input requires
//                 one and the op differentiates that slot), in slot order:
//                   - the first contribution to an input with no gradient buffer is
//                     written in place into a new buffer (`gradient`, or
//                     `parameter_gradient` for a parameter, not budgeted);
//                   - any other contribution (the gradient exists, or the same input
//                     appears again in an earlier slot of this node) is written into a
//                     `workspace` temporary of the input's bytes, accumulated into
//                     the existing buffer in program order, and freed before the
//                     instruction ends;
//                 while the vjp runs the op may hold declared scratch (`workspace`,
//                 at most Op::vjp_workspace_bytes).
//   free_grad n   releases n's gradient buffer.
// Budgeted bytes are every category but `parameter` and `parameter_gradient`.
#pragma once

#include "autodiff/tape.hpp"

#include <cstddef>
#include <vector>

namespace remat {

struct Program;

// Category of the buffer `compute n` allocates (n a placeholder or an op).
MemoryCategory value_category(const Node& node, bool read_by_a_backward);

// Values (node ids) that some backward instruction of `program` reads: these are
// metered as `saved`; indexed by node id.
std::vector<bool> values_read_by_backward(const Tape& tape, const Program& program);

// Whether input slot `slot` of op node `node` receives a gradient in the reverse sweep.
bool receives_gradient(const Tape& tape, const Node& node, std::size_t slot);

// One gradient contribution of `backward node`.
struct GradientWrite {
  std::size_t slot = 0;
  int input = -1;               // the node whose gradient receives it
  bool in_place = false;        // a new gradient buffer (else a workspace temporary)
  MemoryCategory category{};    // of the buffer this write allocates
  std::size_t bytes = 0;
};
// The contributions of `backward node`, in slot order, given which nodes already have
// a gradient buffer (has_gradient[id]; size tape.size()).
std::vector<GradientWrite> gradient_writes(const Tape& tape, int node, const std::vector<bool>& has_gradient);
// The same into `writes` (cleared first): the executor reuses one list for every backward.
void gradient_writes(const Tape& tape, int node, const std::vector<bool>& has_gradient, std::vector<GradientWrite>& writes);

// Declared scratch of an op node's forward / vjp (0 for placeholders and parameters).
std::size_t forward_workspace_bytes(const Tape& tape, int node);
std::size_t vjp_workspace_bytes(const Tape& tape, int node);

// Budgeted bytes of one instruction: what it leaves allocated (`stays`, negative for
// a free) and the most it holds beyond the live bytes before it while it runs
// (`peak_extra`: the buffer it allocates plus its temporaries and declared scratch).
struct InstructionBytes {
  std::int64_t stays = 0;
  std::size_t peak_extra = 0;
};
// For compute, seed_grad and backward (frees are the caller's: they release what they
// name). `has_gradient` as for gradient_writes; mark_gradients() sets the entries a
// backward creates.
InstructionBytes compute_bytes(const Tape& tape, int node);
InstructionBytes seed_grad_bytes(const Tape& tape, int node);
InstructionBytes backward_bytes(const Tape& tape, int node, const std::vector<bool>& has_gradient);
void mark_gradients(const Tape& tape, int node, std::vector<bool>& has_gradient);

}  // namespace remat
