// Contract: the one check of remat's three promises on a real run, used by the CLI's
// run and compare, the paper drivers, the benchmarks and the tests:
//   1. exact: every parameter gradient (and the loss) is bitwise equal to store-all's
//      on the same backend and batch;
//   2. measured equals planned: the measured peak of budgeted bytes and the number of
//      recomputed ops equal the prediction (simulate());
//   3. within budget: the measured peak is at most the budget.
// reference_step() runs store-all once for the reference; check_promises() compares a
// run with it and names every broken promise ("gradient of n3 w1 differs from
// store-all (max |diff| 1.2e-07)", ...).
#pragma once

#include "autodiff/executor.hpp"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace remat {

struct ReferenceStep {
  std::map<int, HostArray> gradients;  // parameter id -> store-all gradient
  std::optional<HostArray> loss;
};
ReferenceStep reference_step(const Tape& tape, int loss, Backend& backend, const Bindings& bindings,
                             const RunOptions& options = {});

struct PromiseCheck {
  bool gradients_bitwise_equal = true;
  double gradient_max_abs_diff = 0;
  bool peak_equals_plan = true;
  bool recomputed_equals_plan = true;
  bool within_budget = true;
  std::vector<std::string> broken;  // one message per broken promise
  bool ok() const { return broken.empty(); }
};

PromiseCheck check_promises(const Tape& tape, Backend& backend, const StepResult& run, const StepReport& predicted,
                            const ReferenceStep& reference, std::optional<std::size_t> budget);

}  // namespace remat
