// Contract: the sweep the promise tests share. for_each_strategy_plan() plans `tape`
// with every strategy remat ships (the MILP solvers excluded: checkmate_tests covers
// them) at each fraction of store-all's simulated peak (0: no budget), skips the
// budgets a strategy refuses with InfeasibleBudget (acceptance is strategy_tests'
// subject) and calls check(program, budget) with the strategy and fraction CAPTUREd.
// It returns how many plans were checked, so a caller can assert the sweep was not empty.
#pragma once

#include "autodiff/remat.hpp"
#include "strategies/strategies.hpp"

#include <doctest/doctest.h>

#include <initializer_list>
#include <optional>

template <class Check>
int for_each_strategy_plan(const remat::Tape& tape, int loss, std::initializer_list<double> fractions, Check&& check) {
  using namespace remat;
  const std::size_t full = simulate(tape, store_all_program(tape, loss)).peak_bytes;
  int planned = 0;
  for (const auto& name : strategy_names(/*include_solvers=*/false))
    for (double fraction : fractions) {
      CAPTURE(name);
      CAPTURE(fraction);
      std::optional<std::size_t> budget;
      if (fraction > 0) budget = static_cast<std::size_t>(fraction * static_cast<double>(full));
      Program program;
      try {
        program = make_strategy(name)->plan(tape, loss, Budget{budget});
      } catch (const InfeasibleBudget&) {
        continue;
      }
      check(program, budget);
      ++planned;
    }
  return planned;
}
