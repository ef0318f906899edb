// Contract: the promise check (see promises.hpp).
#include "autodiff/promises.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

namespace remat {

ReferenceStep reference_step(const Tape& tape, int loss, Backend& backend, const Bindings& bindings,
                             const RunOptions& options) {
  Executor ex(tape, backend);
  StepResult r = ex.run(store_all_program(tape, loss), bindings, options);
  ReferenceStep ref;
  for (auto& [id, t] : r.gradients) ref.gradients.emplace(id, backend.download(t));
  ref.loss = std::move(r.loss);
  return ref;
}

PromiseCheck check_promises(const Tape& tape, Backend& backend, const StepResult& run, const StepReport& predicted,
                            const ReferenceStep& reference, std::optional<std::size_t> budget) {
  PromiseCheck c;
  if (run.gradients.size() != reference.gradients.size()) {
    c.gradients_bitwise_equal = false;
    c.broken.push_back(fmt::format("{} gradients returned, store-all returns {}", run.gradients.size(),
                                   reference.gradients.size()));
  }
  for (const auto& [id, t] : run.gradients) {
    auto it = reference.gradients.find(id);
    if (it == reference.gradients.end()) {
      c.gradients_bitwise_equal = false;
      c.broken.push_back(fmt::format("a gradient of {} that store-all does not return", tape.node(id).label()));
      continue;
    }
    HostArray g = backend.download(t);
    const HostArray& ref = it->second;
    bool equal = g.bytes.size() == ref.bytes.size() && std::memcmp(g.bytes.data(), ref.bytes.data(), g.bytes.size()) == 0;
    double diff = 0;
    if (g.meta == ref.meta)
      for (std::int64_t i = 0; i < g.numel(); ++i) diff = std::max(diff, std::abs(g.at(i) - ref.at(i)));
    c.gradient_max_abs_diff = std::max(c.gradient_max_abs_diff, diff);
    if (!equal) {
      c.gradients_bitwise_equal = false;
      c.broken.push_back(fmt::format("the gradient of {} differs from store-all's (max |diff| {:.3g})",
                                     tape.node(id).label(), diff));
    }
  }
  if (reference.loss && run.loss &&
      (reference.loss->bytes.size() != run.loss->bytes.size() ||
       std::memcmp(reference.loss->bytes.data(), run.loss->bytes.data(), run.loss->bytes.size()) != 0)) {
    c.gradients_bitwise_equal = false;
    c.broken.push_back("the loss differs from store-all's");
  }
  if (run.report.peak_bytes != predicted.peak_bytes) {
    c.peak_equals_plan = false;
    c.broken.push_back(fmt::format("measured peak {} bytes != planned peak {} bytes", run.report.peak_bytes,
                                   predicted.peak_bytes));
  }
  if (run.report.recomputed_ops != predicted.recomputed_ops) {
    c.recomputed_equals_plan = false;
    c.broken.push_back(fmt::format("measured recomputed ops {} != planned {}", run.report.recomputed_ops,
                                   predicted.recomputed_ops));
  }
  if (budget && run.report.peak_bytes > *budget) {
    c.within_budget = false;
    c.broken.push_back(fmt::format("measured peak {} bytes exceeds the budget of {} bytes", run.report.peak_bytes, *budget));
  }
  return c;
}

}  // namespace remat
