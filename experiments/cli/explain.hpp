// Contract: `remat explain`, the teaching view of one strategy on one zoo model: it
// builds the model and the strategy from ExplainOptions and renders the library's
// explanation (strategies/explain.hpp) as text or JSON, with a memory CSV.
// This file depends on the model zoo and strategies only (not on the CLI's other
// commands), so tests can compile it on its own.
#pragma once

#include "models/models.hpp"
#include "strategies/budget.hpp"
#include "strategies/explain.hpp"
#include "strategies/strategies.hpp"

#include <nlohmann/json.hpp>

#include <iosfwd>
#include <optional>
#include <string>

namespace remat {

struct ExplainOptions {
  std::string model;                         // model SPEC (models)
  std::string onnx, loss;                    // or an ONNX file and its loss (--onnx, --loss)
  std::string strategy;                      // a name from strategy_names()
  std::optional<BudgetSpec> budget;          // bytes or a percentage of store-all's peak
  std::optional<int> slots;                  // revolve: slots; sqrt: segments
  std::optional<std::string> heuristic;      // greedy
  std::optional<int> dp_slots;               // optimal
  double time_limit = 60;                    // seconds of planning
  std::string format = "text";               // text or json
  std::string memory_csv;                    // when set, per-instruction bytes by category go here
  bool values = false;                       // the reverse sweep with numbers (small models)
};

// Builds the model and strategy named in `options` and explains them (adds "model").
nlohmann::json explain(const ExplainOptions& options);

// The command: explain(), then text or JSON on `out`, and the CSV if asked. Returns 0.
int command_explain(const ExplainOptions& options, std::ostream& out);

}  // namespace remat
