// Contract: `remat explain` (see explain.hpp): one JSON document built from the
// tape, the chain view, the strategy's schedule and Program, the executor's trace
// on the metering backend (live bytes by category, peak within each instruction); a text view,
// a CSV and the command on top of it. Errors are prefixed "[explain]".
#include "experiments/cli/explain.hpp"
#include "experiments/cli/commands.hpp"

#include "experiments/cli/commands.hpp"
#include "experiments/common/output_file.hpp"
#include "strategies/stage_schedules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <ostream>

namespace remat {

using Json = nlohmann::json;

Json explain(const ExplainOptions& o) {
  if (o.model.empty() && o.onnx.empty()) throw Error("[explain] --model SPEC or --onnx PATH is required");
  if (o.format != "text" && o.format != "json") throw Error("[explain] --format must be text or json, got '" + o.format + "'");
  const StrategyInfo& info = strategy_info(o.strategy);
  auto strategy = info.make(strategy_options_for("explain", info, o.slots, o.heuristic, o.dp_slots, o.time_limit));
  Model m = model_for("explain", o.model, OnnxSource{o.onnx, o.loss, ""});
  Budget budget;
  if (o.budget) budget.bytes = o.budget->resolve(simulate(*m.tape, store_all_program(*m.tape, m.loss.id)).peak_bytes);
  std::optional<ExplainValues> values;
  if (o.values) {
    if (m.tape->size() > 400)
      throw Error(fmt::format("[explain] --values prints every node: the model has {} nodes, at most 400 (a smaller "
                              "spec, e.g. mlp:layers=3,width=4,batch=2)",
                              m.tape->size()));
    values = ExplainValues{m.batch(0)};
  }
  Json doc = explain_plan(*m.tape, m.loss.id, *strategy, budget, nullptr, values);
  doc["model"] = m.spec;
  if (o.strategy == "greedy") doc["heuristic"] = o.heuristic.value_or("dtr");
  return doc;
}

int command_explain(const ExplainOptions& options, std::ostream& out) {
  OutputFile csv("explain", "--memory-csv", options.memory_csv);  // checked before any planning
  Json doc = explain(options);
  if (csv) {
    write_memory_csv(doc, csv.open());
    csv.close();
  }
  if (options.format == "json") out << doc.dump() << "\n";
  else print_explanation(doc, out);
  return 0;
}

}  // namespace remat
