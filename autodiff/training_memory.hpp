// Contract: the device memory of a training step beyond the budgeted activations.
//  - weights: every parameter (frozen or not) and persistent op state, as allocated;
//  - parameter_gradients: one gradient per trainable parameter, in its dtype
//    (frozen parameters have none);
//  - optimizer_state: SGD keeps none; Adam keeps two moments (first and second) per
//    trainable element, in the master dtype when master weights are kept, else in
//    the parameter's dtype (Kingma and Ba 2015, Algorithm 1);
//  - master_weights: with `master` set, a copy in that dtype of every trainable
//    parameter stored in another dtype (f32 masters of bf16 weights, Micikevicius et
//    al. 2018); zero otherwise.
// The activation peak is what the plan's simulation meters (budgeted bytes); total()
// adds them up. With a budget on the total, activation_budget() is what is left for
// the plan, or an Error naming the fixed figures when they alone exceed it.
#pragma once

#include "autodiff/executor.hpp"

#include <optional>
#include <string>

namespace remat {

enum class Optimizer : std::uint8_t { sgd, adam };
// "sgd" or "adam"; an Error "[source] ..." otherwise.
Optimizer optimizer_from_name(const std::string& name, const std::string& source);
const char* optimizer_name(Optimizer optimizer);

struct TrainingMemory {
  std::size_t weights = 0;
  std::size_t parameter_gradients = 0;
  std::size_t optimizer_state = 0;
  std::size_t master_weights = 0;
  std::size_t activation_peak = 0;
  std::int64_t trainable_elements = 0;
  std::int64_t frozen_elements = 0;
  std::size_t fixed() const { return weights + parameter_gradients + optimizer_state + master_weights; }
  std::size_t total() const { return fixed() + activation_peak; }
};

// The fixed parts for `tape` (activation_peak left 0); `step` is a simulated or
// measured report of any program on the tape (its parameter and gradient bytes).
TrainingMemory training_memory(const Tape& tape, const StepReport& step, Optimizer optimizer,
                               std::optional<DType> master = std::nullopt);

// total_budget minus the fixed parts, or an Error "[source] ..." naming them.
std::size_t activation_budget(const TrainingMemory& fixed, std::size_t total_budget, const std::string& source);

}  // namespace remat
