// Contract: `remat explain`, the teaching view of one strategy on one model.
// It shows, from one recorded tape:
//   tape      the Wengert list: node id, op and attributes, inputs, output shape,
//             dtype, bytes, and what the node's vjp keeps (Op::saves);
//   chain     the chain view: per stage fw, bw, cw, cbw, ftmp, btmp and its nodes;
//   schedule  for chain strategies, the stage actions (F_ck, F_n, F_all, B) with
//             the stage model's memory after each (simulate_schedule);
//   program   the node-level Program with, after each instruction, the budgeted
//             bytes live split by category (input, activation, saved, gradient),
//             plus the workspace the instruction holds while it runs (its op's
//             scratch and gradient-accumulation temporaries), so peak = live + workspace.
// Every byte figure is the executor's own trace on the metering backend (the
// meter's current bytes by category and its peak within each instruction), so
// explain cannot disagree with simulate().
// The JSON document (explain()) is the single source: the text view, the CSV and
// the plot scripts (experiments/plots/) all read it.
// This file depends on the model zoo and strategies only (not on the CLI's other
// commands), so tests can compile it on its own.
#pragma once

#include "models/models.hpp"
#include "strategies/budget.hpp"
#include "strategies/strategies.hpp"

#include <nlohmann/json.hpp>

#include <iosfwd>
#include <optional>
#include <string>

namespace remat {

struct ExplainOptions {
  std::string model;                         // model SPEC (models)
  std::string strategy;                      // a name from strategy_names()
  std::optional<BudgetSpec> budget;          // bytes or a percentage of store-all's peak
  std::optional<int> slots;                  // revolve: slots; sqrt: segments
  std::optional<std::string> heuristic;      // greedy
  std::optional<int> dp_slots;               // optimal
  double time_limit = 60;                    // seconds of planning
  std::string format = "text";               // text or json
  std::string memory_csv;                    // when set, per-instruction bytes by category go here
};

// The explanation of `strategy` planned on (tape, loss) under `budget`, as one
// JSON object: {strategy, budget_bytes, tape, chain, schedule, program, live_bytes,
// summary}. Throws InfeasibleBudget exactly as plan() does.
nlohmann::json explain_plan(const Tape& tape, int loss, const Strategy& strategy, const Budget& budget,
                            const NodeCosts* costs = nullptr);
// Builds the model and strategy named in `options` and explains them (adds "model").
nlohmann::json explain(const ExplainOptions& options);

// The plain-text view of an explain() document.
void print_explanation(const nlohmann::json& doc, std::ostream& out);
// One CSV row per instruction: index,kind,node,label,stage,recompute,input,
// activation,saved,gradient,workspace,live_bytes,peak_bytes.
void write_memory_csv(const nlohmann::json& doc, std::ostream& out);

// The command: explain(), then text or JSON on `out`, and the CSV if asked. Returns 0.
int command_explain(const ExplainOptions& options, std::ostream& out);

}  // namespace remat
