// Contract: the strategy interface the core exposes. A Strategy reads a recorded
// tape (shapes, costs, what each vjp saves) and emits a Program; it never
// touches a tensor. strategies/ implements it; the core never includes a strategy.
#pragma once

#include "autodiff/program.hpp"

#include <optional>
#include <string>

namespace remat {

struct Budget {
  std::optional<std::size_t> bytes;  // none: unlimited
};

// Thrown before any compute when no plan fits the budget.
struct InfeasibleBudget : Error {
  InfeasibleBudget(const std::string& message, std::size_t smallest_feasible)
      : Error(message), min_feasible_bytes(smallest_feasible) {}
  std::size_t min_feasible_bytes;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  // A Program whose simulated peak (budgeted bytes) is within budget, or InfeasibleBudget.
  virtual Program plan(const Tape& tape, int loss, const Budget& budget) const = 0;
};

}  // namespace remat
