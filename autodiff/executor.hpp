// Contract: the Executor runs a Program on a Backend for one training step and
// reports what it measured. The same code runs on the metering-only backend,
// which makes simulate() the planner's prediction: the only way measured and
// predicted peaks can differ is an allocation nobody declared.
//  - Memory follows the one memory policy (autodiff/memory_policy.hpp): which
//    category each buffer is metered in, in-place gradients and accumulation
//    temporaries. Parameters and op state are allocated once (category parameter).
//  - Op state (batchnorm running statistics) is committed on a node's first
//    forward in a step and never on a recomputation, whatever the Program says.
//  - The Program is checked before it runs (validate_program: ids, loss,
//    grad_targets) and as it runs: a compute whose input is not resident, a
//    backward missing a saved value, or a double free is an Error naming the
//    instruction.
//  - Traces come from the meter and the executor's own state, never from a replay:
//    with record_trace, live bytes after each instruction (total and by category)
//    and the peak within it; with record_resident, which buffers are resident.
#pragma once

#include "autodiff/program.hpp"

#include <array>
#include <functional>
#include <map>
#include <optional>
#include <vector>

namespace remat {

struct StepReport {
  std::size_t peak_bytes = 0;  // budgeted bytes (everything but parameters and their gradients)
  std::array<std::size_t, memory_category_count> peak_by_category{};
  std::size_t parameter_bytes = 0;
  std::size_t parameter_gradient_bytes = 0;
  std::int64_t forward_ops = 0;     // op-node forward executions, recomputations included
  std::int64_t recomputed_ops = 0;  // forward executions beyond each node's first
  std::int64_t backward_ops = 0;
  std::int64_t allocations = 0;
  double seconds = 0;
  // With record_trace, one entry per instruction:
  std::vector<std::size_t> live_bytes;      // budgeted bytes live after it
  std::vector<std::size_t> peak_bytes_within;  // the most budgeted bytes live while it ran
  std::vector<std::array<std::size_t, memory_category_count>> live_by_category;  // after it
  std::vector<double> instruction_seconds;  // wall time of each instruction (with record_times)
  // With record_resident: the buffers resident after each instruction.
  struct Resident {
    int node = -1;
    bool gradient = false;  // the node's gradient buffer (else its value)
    MemoryCategory category{};
    std::size_t bytes = 0;
  };
  std::vector<std::vector<Resident>> resident;
};

// Called after every instruction with the executor's resident values and gradients
// (indexed by node id; undefined tensors are not resident): for teaching views that show
// numbers (explain --values). It must not keep the tensors past the call.
using InstructionObserver = std::function<void(std::size_t index, const Instruction& instruction,
                                               const std::vector<Tensor>& values, const std::vector<Tensor>& gradients)>;

struct RunOptions {
  std::uint64_t seed = 0;     // keys dropout masks together with the node id
  bool record_trace = false;  // fill StepReport::live_bytes, peak_bytes_within, live_by_category
  bool record_resident = false;  // fill StepReport::resident (small tapes: one list per instruction)
  bool check_finite = false;  // error naming the first node that produced NaN or Inf
  bool record_times = false;  // fill StepReport::instruction_seconds (profiled chain costs)
  InstructionObserver observer;  // when set, called after every instruction
};

struct StepResult {
  StepReport report;
  const void* executor = nullptr;    // the Executor that produced it (sgd_step checks it)
  std::optional<HostArray> loss;     // the loss value at its first computation
  std::map<int, Tensor> gradients;   // parameter id -> gradient (category parameter_gradient)
};

class Executor {
 public:
  Executor(const Tape& tape, Backend& backend);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  StepResult run(const Program& program, const Bindings& bindings = {}, const RunOptions& options = {});

  Backend& backend() { return backend_; }
  const Tape& tape() const { return tape_; }
  Tensor& parameter(int id);
  HostArray read_parameter(int id) const;
  void write_parameter(int id, const HostArray& value);
  // Persistent op state of a node (e.g. batchnorm running mean and variance).
  const std::vector<Tensor>& state(int node) const;
  // parameter -= learning_rate * gradient, for every gradient in the result. The result
  // must come from this executor's run(); the learning rate must be finite.
  void sgd_step(const StepResult& result, double learning_rate);

 private:
  const Tape& tape_;
  Backend& backend_;
  const Tensor* find_parameter(int id) const;  // null unless id is a parameter
  std::vector<Tensor> parameters_;  // by node id; undefined where the node is no parameter
  std::map<int, std::vector<Tensor>> state_;
};

// Runs the program on the metering-only backend: the predicted report.
StepReport simulate(const Tape& tape, const Program& program);

// Store-all gradients of `loss` with respect to every parameter, for one step.
StepResult grad(Executor& executor, Value loss, const Bindings& bindings = {}, const RunOptions& options = {});

}  // namespace remat
