// Contract: the teaching views of one plan, as a library (installed with remat, so a
// student's own program and own Strategy get the same views as `remat explain`).
//   tape      the Wengert list: node id, op and attributes, inputs, output shape,
//             dtype, bytes, and what the node's vjp keeps (Op::saves);
//   chain     the chain view: per stage fw, bw, cw, cbw, ftmp, btmp and its nodes
//             (cbw[i] in row i is the tape of stage i, xbar(i+1));
//   schedule  for chain strategies, the stage actions (F_ck, F_n, F_all, B) with the
//             stage model's memory after each (the planner's internal bound) and a text
//             timeline, one sentence per action;
//   program   the node-level Program with, after each instruction, the budgeted bytes
//             live by category, the workspace held while it ran, and the values and
//             gradients resident (`resident`: node ids with a category: input, kept,
//             checkpoint, recomputed, gradient); R marks every recomputation,
//             placeholders included;
//   sweep     with bindings (ExplainValues): each backward instruction's adjoint
//             equation (x̄3 += x̄5 * (1 - tanh²(x3))) and the numbers: every node's value
//             and gradient, from a real CPU run of the same Program.
// Every byte figure is the executor's own trace on the metering backend, so explain
// cannot disagree with simulate(). The JSON document is the single source: the text
// view, the CSV and the plot scripts (experiments/plots/) all read it.
#pragma once

#include "strategies/planning.hpp"

#include <nlohmann/json.hpp>

#include <iosfwd>
#include <optional>
#include <string>

namespace remat {

struct ExplainValues {
  Bindings bindings;          // the batch the sweep is evaluated on (the tape's defaults complete it)
  std::size_t max_elements = 6;  // elements of each tensor printed
};

// The explanation of `strategy` planned on (tape, loss) under `budget`, as one JSON
// object: {strategy, budget_bytes, tape, chain, schedule, program, live_bytes, summary,
// sweep (with values)}. Throws InfeasibleBudget exactly as plan() does.
nlohmann::json explain_plan(const Tape& tape, int loss, const Strategy& strategy, const Budget& budget,
                            const NodeCosts* costs = nullptr, const std::optional<ExplainValues>& values = std::nullopt);

// The plain-text view of an explain document.
void print_explanation(const nlohmann::json& doc, std::ostream& out);
// One CSV row per instruction: index,kind,node,label,stage,recompute,input,
// activation,saved,gradient,workspace,live_bytes,peak_bytes.
void write_memory_csv(const nlohmann::json& doc, std::ostream& out);

// The adjoint equation the backward of `node` applies, in the names x<i> of the nodes
// (x̄ = the gradient): "x̄3 += x̄5 * (1 - tanh²(x3))". Ops without a dedicated form get
// "x̄k += (∂op/∂xk)ᵀ x̄out".
std::string adjoint_equation(const Tape& tape, int node);

}  // namespace remat
