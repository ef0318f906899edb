// Contract: what an op is. Each op is one class, defined once (ops/<family>.cpp):
//  - name() and attributes(): for messages and the printed tape;
//  - infer(): output shape and dtype from input metas, or an Error "[name] ..." that
//    names the shapes; called at record time, before any compute;
//  - forward(): calls backend kernels only (ops know no device);
//  - vjp(): writes the gradient contribution of every input that wants one;
//  - saves(): which values the vjp reads (inputs, output, or none): exactly what a
//    strategy must keep, or recompute, before running the vjp;
//  - cost(): flops and bytes moved, for the planners' analytic cost model (and
//    vjp_cost() where the vjp is not about twice the forward);
//  - *_workspace_bytes(): upper bounds of the scratch each phase allocates
//    (metered as workspace; the stage model adds them to a stage's peak).
// Ops with state updated by forward (batchnorm) declare it with initial_state()
// and update it in commit_state(), which the executor calls exactly once per step
// and node, on the first forward, never on a recomputation.
#pragma once

#include "autodiff/backend.hpp"

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace remat {

struct Cost {
  double flops = 0;
  double bytes_read = 0;
  double bytes_written = 0;
};

// What a vjp reads. inputs[i] is true when input i must be resident for the vjp.
struct SavedValues {
  std::vector<bool> inputs;
  bool output = false;
};

// Identifies a forward execution for counter-based randomness: (seed, node).
struct OpContext {
  std::uint64_t seed = 0;
  std::uint64_t node = 0;
};

struct ForwardArgs {
  Backend& backend;
  std::span<const Tensor> inputs;
  Tensor& output;  // allocated by the executor with the inferred meta
  OpContext context;
};

struct VjpArgs {
  Backend& backend;
  std::vector<const Tensor*> inputs;  // null where saves() did not ask for it
  const Tensor* output;               // null unless saves().output
  const Tensor& grad_output;
  std::vector<Tensor*> grad_inputs;   // null where no gradient is wanted; overwrite, never add
  OpContext context;
};

struct NamedState {
  std::string name;
  HostArray initial;
};

class Op {
 public:
  virtual ~Op() = default;
  virtual std::string name() const = 0;
  virtual std::string attributes() const { return {}; }
  virtual TensorMeta infer(std::span<const TensorMeta> inputs) const = 0;
  virtual void forward(const ForwardArgs& args) const = 0;
  virtual void vjp(const VjpArgs& args) const = 0;
  virtual SavedValues saves(std::size_t input_count) const = 0;
  virtual Cost cost(std::span<const TensorMeta> inputs, const TensorMeta& output) const;
  // The vjp's cost when it is not about twice the forward's (an op that recomputes
  // inside its vjp, like fused attention); empty: the cost model takes twice cost().
  virtual std::optional<Cost> vjp_cost(std::span<const TensorMeta>, const TensorMeta&) const { return std::nullopt; }
  virtual std::size_t forward_workspace_bytes(std::span<const TensorMeta>, const TensorMeta&) const { return 0; }
  virtual std::size_t vjp_workspace_bytes(std::span<const TensorMeta>, const TensorMeta&) const { return 0; }
  // False for integer inputs such as labels and ids.
  virtual bool differentiable_input(std::size_t /*index*/) const { return true; }

  virtual std::vector<NamedState> initial_state(std::span<const TensorMeta> /*inputs*/) const { return {}; }
  virtual void commit_state(Backend& /*backend*/, std::span<const Tensor> /*inputs*/,
                            std::span<Tensor> /*state*/) const {}
};

// Shared helpers for ops' infer() and cost().
[[noreturn]] void throw_op_error(const std::string& op, const std::string& message);
void expect_rank(const std::string& op, const TensorMeta& meta, int rank, const char* what);
void expect_floating(const std::string& op, const TensorMeta& meta, const char* what);
void expect_same_dtype(const std::string& op, std::span<const TensorMeta> inputs);
// The NumPy broadcast of two shapes, or an Error naming op and shapes.
Shape broadcast_shapes(const std::string& op, const Shape& a, const Shape& b);
// Elementwise cost: flops_per_element * numel(out), all inputs read, output written.
Cost elementwise_cost(std::span<const TensorMeta> inputs, const TensorMeta& output, double flops_per_element);

}  // namespace remat
