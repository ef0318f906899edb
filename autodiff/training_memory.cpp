// Contract: the fixed memory of a training step (see training_memory.hpp).
#include "autodiff/training_memory.hpp"

#include <fmt/format.h>

namespace remat {

Optimizer optimizer_from_name(const std::string& name, const std::string& source) {
  if (name == "sgd") return Optimizer::sgd;
  if (name == "adam") return Optimizer::adam;
  throw Error(fmt::format("[{}] --optimizer must be sgd or adam, got '{}'", source, name));
}

const char* optimizer_name(Optimizer optimizer) { return optimizer == Optimizer::adam ? "adam" : "sgd"; }

TrainingMemory training_memory(const Tape& tape, const StepReport& step, Optimizer optimizer,
                               std::optional<DType> master) {
  TrainingMemory m;
  m.weights = step.parameter_bytes;
  m.parameter_gradients = step.parameter_gradient_bytes;
  for (int id : tape.parameters()) {
    const Node& n = tape.node(id);
    const std::int64_t count = n.meta.numel();
    if (!n.requires_grad) {
      m.frozen_elements += count;
      continue;
    }
    m.trainable_elements += count;
    const DType state_dtype = master.value_or(n.meta.dtype);
    if (master && *master != n.meta.dtype) m.master_weights += TensorMeta{n.meta.shape, *master}.bytes();
    if (optimizer == Optimizer::adam) m.optimizer_state += 2 * TensorMeta{n.meta.shape, state_dtype}.bytes();
  }
  return m;
}

std::size_t activation_budget(const TrainingMemory& fixed, std::size_t total_budget, const std::string& source) {
  if (fixed.fixed() > total_budget)
    throw Error(fmt::format("[{}] the total budget {} bytes is below the fixed memory alone: weights {} + parameter "
                            "gradients {} + optimizer state {} + master weights {} = {} bytes",
                            source, total_budget, fixed.weights, fixed.parameter_gradients, fixed.optimizer_state,
                            fixed.master_weights, fixed.fixed()));
  return total_budget - fixed.fixed();
}

}  // namespace remat
