// Contract: `remat explain` (see explain.hpp): one JSON document built from the
// tape, the chain view, the strategy's schedule and Program, the executor's trace
// on the metering backend (live bytes by category, peak within each instruction); a text view,
// a CSV and the command on top of it. Errors are prefixed "[explain]".
#include "experiments/cli/explain.hpp"

#include "autodiff/memory_policy.hpp"
#include "experiments/cli/commands.hpp"
#include "experiments/common/output_file.hpp"
#include "strategies/stage_schedules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <ostream>

namespace remat {
namespace {

using Json = nlohmann::json;

// The budgeted categories, in the order they are printed and stacked in plots.
constexpr std::array<MemoryCategory, 5> shown_categories{MemoryCategory::input, MemoryCategory::activation,
                                                         MemoryCategory::saved, MemoryCategory::gradient,
                                                         MemoryCategory::workspace};

// "linear(n0, n2, n3)", "scale[factor=2](n7)", "placeholder 'x'".
std::string node_expression(const Node& n) {
  if (n.kind == NodeKind::placeholder) return "placeholder '" + n.name + "'";
  if (n.kind == NodeKind::parameter) return "parameter '" + n.name + "'";
  std::vector<std::string> ins;
  for (int in : n.inputs) ins.push_back("n" + std::to_string(in));
  std::string attrs = n.op->attributes();
  return fmt::format("{}{}({})", n.op->name(), attrs.empty() ? "" : "[" + attrs + "]", fmt::join(ins, ", "));
}

Json tape_json(const Tape& tape, int loss, const std::vector<bool>& is_saved) {
  Json nodes = Json::array();
  std::vector<bool> needed(tape.size(), false);
  for (int id : forward_order(tape, loss)) needed[static_cast<std::size_t>(id)] = true;
  for (const Node& n : tape.nodes()) {
    Json saves = Json::array();
    bool saves_output = false;
    if (n.kind == NodeKind::op) {
      for (int s : saved_for_backward(tape, n.id)) {
        if (s == n.id) saves_output = true;
        else saves.push_back(s);
      }
    }
    const char* category = n.kind == NodeKind::placeholder ? "input"
                           : n.kind == NodeKind::parameter ? "parameter"
                           : is_saved[static_cast<std::size_t>(n.id)] ? "saved"
                                                                      : "activation";
    nodes.push_back({{"id", n.id},
                     {"kind", n.kind == NodeKind::op ? "op" : n.kind == NodeKind::parameter ? "parameter" : "placeholder"},
                     {"name", n.kind == NodeKind::op ? n.op->name() : n.name},
                     {"attributes", n.kind == NodeKind::op ? n.op->attributes() : std::string()},
                     {"expression", node_expression(n)},
                     {"inputs", n.inputs},
                     {"shape", n.meta.shape},
                     {"dtype", dtype_name(n.meta.dtype)},
                     {"bytes", n.meta.bytes()},
                     {"requires_grad", n.requires_grad},
                     {"stage_mark", n.stage_mark},
                     {"needed", static_cast<bool>(needed[static_cast<std::size_t>(n.id)])},
                     {"saves_inputs", saves},
                     {"saves_output", saves_output},
                     {"category", category}});
  }
  return nodes;
}

Json chain_json(const Tape& tape, const ChainView& view) {
  const Chain& ch = view.chain;
  const int L = ch.length();
  bool marks = false;
  for (const Node& n : tape.nodes()) marks |= n.stage_mark;
  Json stages = Json::array();
  for (int i = 0; i < L; ++i) {
    auto u = static_cast<std::size_t>(i);
    stages.push_back({{"stage", i},
                      {"nodes", view.stage_nodes[u]},
                      {"backward", view.stage_backward[u]},
                      {"fw", ch.fw[u]},
                      {"bw", ch.bw[u]},
                      {"cw", ch.cw[u]},
                      {"cbw", ch.cbw[u + 1]},
                      {"ftmp", ch.ftmp[u]},
                      {"btmp", ch.btmp[u]}});
  }
  auto uL = static_cast<std::size_t>(L);
  return {{"length", L},
          {"cut_at", marks ? "stage marks" : "cut vertices"},
          {"boundary", view.boundary},
          {"stages", stages},
          {"loss_stage", {{"stage", L}, {"node", view.loss}, {"bw", ch.bw[uL]}, {"cw", ch.cw[uL]}, {"btmp", ch.btmp[uL]}}},
          {"costs", ch.to_json()}};
}

// The node-level instruction sequence lower_schedule() emits for `schedule`
// (frees aside), with the action each instruction comes from (-1: x(0)).
std::vector<std::pair<Instruction, int>> expand_schedule(const ChainView& view, const Schedule& schedule) {
  std::vector<std::pair<Instruction, int>> out;
  const int L = view.chain.length();
  if (view.boundary[0] >= 0) out.push_back({{InstructionKind::compute, view.boundary[0]}, -1});
  for (std::size_t k = 0; k < schedule.actions.size(); ++k) {
    const StageAction& a = schedule.actions[k];
    const auto s = static_cast<std::size_t>(a.stage);
    const int action = static_cast<int>(k);
    if (a.kind == StageActionKind::backward) {
      if (a.stage == L) out.push_back({{InstructionKind::seed_grad, view.loss}, action});
      else for (int id : view.stage_backward.at(s)) out.push_back({{InstructionKind::backward, id}, action});
    } else if (a.kind != StageActionKind::discard) {
      for (int id : view.stage_nodes.at(s)) out.push_back({{InstructionKind::compute, id}, action});
    }
  }
  return out;
}


std::string ids_text(const Json& ids) {
  std::vector<std::string> parts;
  for (const auto& id : ids) parts.push_back("n" + std::to_string(id.get<int>()));
  return parts.empty() ? "-" : fmt::format("{}", fmt::join(parts, " "));
}

std::string shape_text(const Json& shape) { return shape_string(shape.get<Shape>()); }

}  // namespace

Json explain_plan(const Tape& tape, int loss, const Strategy& strategy, const Budget& budget, const NodeCosts* costs) {
  const PlanReport report = plan(strategy, PlanRequest{tape, loss, budget, costs});  // InfeasibleBudget propagates
  const Program& program = report.program;
  const std::vector<bool> is_saved = values_read_by_backward(tape, program);

  // The executor's own trace on the metering backend: live budgeted bytes after each
  // instruction, by category, and the most held while it ran (from the meter).
  MeteringBackend metering;
  Executor executor(tape, metering);
  RunOptions trace_options;
  trace_options.record_trace = true;
  StepReport trace = executor.run(program, {}, trace_options).report;

  // The chain view (and, for chain strategies, the stage schedule behind the program).
  std::optional<ChainView> own_view;
  const ChainView* view = report.stage ? report.stage->view.get() : nullptr;
  Json chain = nullptr, schedule_doc = nullptr;
  std::string chain_note;
  if (!view) {
    try {
      ChainViewOptions vo;
      vo.costs = costs;
      own_view = chain_view(tape, loss, vo);
      view = &*own_view;
    } catch (const Error& e) {
      chain_note = e.what();  // a node-level strategy works on graphs that are no chain
    }
  }
  if (view) chain = chain_json(tape, *view);
  std::vector<int> stage_of(tape.size(), -1);
  if (view)
    for (std::size_t s = 0; s < view->stage_nodes.size(); ++s)
      for (int id : view->stage_nodes[s]) stage_of[static_cast<std::size_t>(id)] = static_cast<int>(s);

  std::vector<int> action_of(program.instructions.size(), -1);
  bool mapped = false;
  if (report.stage) {
    const Schedule& schedule = report.stage->schedule;
    const ScheduleStats& stats = report.stage->stats;
    Json actions = Json::array();
    std::vector<bool> forwarded(static_cast<std::size_t>(view->chain.length()), false);
    for (std::size_t k = 0; k < schedule.actions.size(); ++k) {
      const StageAction& a = schedule.actions[k];
      bool forward = a.kind == StageActionKind::forward_none || a.kind == StageActionKind::forward_checkpoint ||
                     a.kind == StageActionKind::forward_taped;
      bool recompute = forward && forwarded[static_cast<std::size_t>(a.stage)];
      if (forward) forwarded[static_cast<std::size_t>(a.stage)] = true;
      actions.push_back({{"step", k},
                         {"action", stage_action_name(a.kind)},
                         {"stage", a.stage},
                         {"recompute", recompute},
                         {"memory_after", stats.memory_after[k]}});
    }
    schedule_doc = {{"actions", actions},
                    {"setting", report.setting},
                    {"forward_steps", stats.forward_steps},
                    {"recomputed_steps", stats.recomputed_steps},
                    {"makespan", stats.makespan},
                    {"planner_internal_bound_bytes", stats.peak_memory}};
    // Which action each instruction comes from, when the program is the lowered schedule.
    auto expected = expand_schedule(*view, schedule);
    std::size_t e = 0;
    mapped = true;
    for (std::size_t i = 0; i < program.instructions.size() && mapped; ++i) {
      const Instruction& ins = program.instructions[i];
      if (ins.kind == InstructionKind::free || ins.kind == InstructionKind::free_grad) {
        action_of[i] = i > 0 ? action_of[i - 1] : -1;
        continue;
      }
      if (e >= expected.size() || !(expected[e].first == ins)) mapped = false;
      else action_of[i] = expected[e++].second;
    }
    mapped = mapped && e == expected.size();
    if (!mapped) std::fill(action_of.begin(), action_of.end(), -1);
  }

  // The program, one row per instruction.
  Json instructions = Json::array();
  std::vector<int> computed(tape.size(), 0);
  for (std::size_t i = 0; i < program.instructions.size(); ++i) {
    const Instruction& ins = program.instructions[i];
    const Node& n = tape.node(ins.node);
    bool recompute = false;
    if (ins.kind == InstructionKind::compute && n.kind == NodeKind::op)
      recompute = computed[static_cast<std::size_t>(ins.node)]++ > 0;
    const std::size_t live_before = i > 0 ? trace.live_bytes[i - 1] : 0;
    // Held only while it ran (scratch and accumulation temporaries): the meter's peak
    // within the instruction beyond what was live before and after it.
    const std::size_t workspace = trace.peak_bytes_within[i] - std::max(live_before, trace.live_bytes[i]);
    const std::size_t peak = trace.live_bytes[i] + workspace;
    Json row{{"index", i},
             {"kind", instruction_kind_name(ins.kind)},
             {"node", ins.node},
             {"label", n.label()},
             {"shape", n.meta.shape},
             {"stage", ins.kind == InstructionKind::seed_grad && view ? view->chain.length()  // B L, the loss stage
                                                                      : stage_of[static_cast<std::size_t>(ins.node)]},
             {"action", mapped && action_of[i] >= 0 ? Json(action_of[i]) : Json(nullptr)},
             {"recompute", recompute},
             {"live_bytes", trace.live_bytes[i]},
             {"peak_bytes", peak}};
    for (MemoryCategory c : shown_categories)
      row[memory_category_name(c)] =
          c == MemoryCategory::workspace ? workspace : trace.live_by_category[i][static_cast<std::size_t>(c)];
    instructions.push_back(std::move(row));
  }

  Json peak_by_category = Json::object();
  for (std::size_t c = 0; c < memory_category_count; ++c)
    peak_by_category[memory_category_name(static_cast<MemoryCategory>(c))] = trace.peak_by_category[c];
  std::size_t max_live = trace.live_bytes.empty() ? 0 : *std::max_element(trace.live_bytes.begin(), trace.live_bytes.end());
  Json summary{{"instructions", program.instructions.size()},
               {"peak_bytes", trace.peak_bytes},
               {"max_live_bytes", max_live},
               {"live_bytes_at_end", trace.live_bytes.empty() ? 0 : trace.live_bytes.back()},
               {"peak_by_category", peak_by_category},
               {"forward_ops", trace.forward_ops},
               {"recomputed_ops", trace.recomputed_ops},
               {"backward_ops", trace.backward_ops},
               {"parameter_bytes", trace.parameter_bytes},
               {"parameter_gradient_bytes", trace.parameter_gradient_bytes},
               {"store_all_peak_bytes", report.store_all_peak},
               {"planned_time", report.planned_time},
               {"store_all_planned_time", report.store_all_time},
               {"cost_source", report.cost_source},
               {"setting", report.setting},
               {"notes", report.notes}};

  Json doc{{"strategy", strategy.name()},
           {"budget_bytes", budget.bytes ? Json(*budget.bytes) : Json(nullptr)},
           {"loss", loss},
           {"tape", tape_json(tape, loss, is_saved)},
           {"chain", chain},
           {"schedule", schedule_doc},
           {"program", {{"strategy", program.strategy}, {"loss", program.loss}, {"grad_targets", program.grad_targets},
                        {"instructions", instructions}}},
           {"live_bytes", trace.live_bytes},
           {"summary", summary}};
  if (!chain_note.empty()) doc["chain_note"] = chain_note;
  return doc;
}

Json explain(const ExplainOptions& o) {
  if (o.model.empty()) throw Error("[explain] --model SPEC is required");
  if (o.format != "text" && o.format != "json") throw Error("[explain] --format must be text or json, got '" + o.format + "'");
  const StrategyInfo& info = strategy_info(o.strategy);
  auto strategy = info.make(strategy_options_for("explain", info, o.slots, o.heuristic, o.dp_slots, o.time_limit));
  Model m = build_model(o.model);
  Budget budget;
  if (o.budget) budget.bytes = o.budget->resolve(simulate(*m.tape, store_all_program(*m.tape, m.loss.id)).peak_bytes);
  Json doc = explain_plan(*m.tape, m.loss.id, *strategy, budget);
  doc["model"] = m.spec;
  if (o.strategy == "greedy") doc["heuristic"] = o.heuristic.value_or("dtr");
  return doc;
}

void print_explanation(const Json& doc, std::ostream& out) {
  const Json& summary = doc.at("summary");
  std::string budget = doc.at("budget_bytes").is_null() ? "none" : bytes_text(doc.at("budget_bytes").get<std::size_t>());
  out << fmt::format("remat explain: {} on {} (budget {})\n", doc.at("strategy").get<std::string>(),
                     doc.value("model", std::string("a tape")), budget);

  // 1. The tape.
  const Json& tape = doc.at("tape");
  out << fmt::format("\n== Tape: the Wengert list ({} nodes; the vjp keeps what its backward reads) ==\n", tape.size());
  out << fmt::format("  {:<5} {:<34} {:<14} {:<5} {:>9}  {}\n", "id", "value", "shape", "dtype", "bytes", "vjp keeps");
  for (const auto& n : tape) {
    std::string keeps = "-";
    if (n.at("kind") == "op") {
      std::string s = n.at("saves_inputs").empty() ? "" : ids_text(n.at("saves_inputs"));
      if (n.at("saves_output").get<bool>()) s += std::string(s.empty() ? "" : " ") + "its output";
      keeps = s.empty() ? "nothing" : s;
    }
    std::string value = fmt::format("{}{}", n.at("expression").get<std::string>(), n.at("stage_mark").get<bool>() ? "  |" : "");
    out << fmt::format("  n{:<4} {:<34} {:<14} {:<5} {:>9}  {}\n", n.at("id").get<int>(), value, shape_text(n.at("shape")),
                       n.at("dtype").get<std::string>(), n.at("bytes").get<std::size_t>(), keeps);
  }
  out << "  (| marks a stage boundary placed by the model)\n";

  // 2. The chain.
  const Json& chain = doc.at("chain");
  if (chain.is_null()) {
    out << "\n== Chain: none (" << doc.value("chain_note", std::string("no chain view")) << ") ==\n";
  } else {
    out << fmt::format("\n== Chain: {} stages cut at {}; x(i) enters stage i (rotor notation, bytes and ns) ==\n",
                       chain.at("length").get<int>(), chain.at("cut_at").get<std::string>());
    out << fmt::format("  {:<6} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}  {}\n", "stage", "fw", "bw", "cw=x(i)", "cbw=tape", "ftmp",
                       "btmp", "nodes");
    for (const auto& s : chain.at("stages")) {
      std::vector<std::string> names;
      for (const auto& id : s.at("nodes")) names.push_back(fmt::format("n{} {}", id.get<int>(), tape.at(id.get<std::size_t>()).at("name").get<std::string>()));
      out << fmt::format("  {:<6} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}  {}\n", s.at("stage").get<int>(), s.at("fw").get<std::int64_t>(),
                         s.at("bw").get<std::int64_t>(), s.at("cw").get<std::int64_t>(), s.at("cbw").get<std::int64_t>(),
                         s.at("ftmp").get<std::int64_t>(), s.at("btmp").get<std::int64_t>(), fmt::join(names, ", "));
    }
    const Json& ls = chain.at("loss_stage");
    out << fmt::format("  {:<6} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}  the loss n{} (backward only: seeds its gradient)\n",
                       ls.at("stage").get<int>(), "-", ls.at("bw").get<std::int64_t>(), ls.at("cw").get<std::int64_t>(), "-", "-",
                       ls.at("btmp").get<std::int64_t>(), ls.at("node").get<int>());
  }

  // 3. The stage schedule.
  const Json& schedule = doc.at("schedule");
  if (schedule.is_null()) {
    out << "\n== Schedule: none at stage level (" << doc.at("strategy").get<std::string>()
        << " plans node by node; its Program follows) ==\n";
  } else {
    out << fmt::format("\n== Schedule ({}): {} stage actions, {} forward steps ({} recomputed) ==\n",
                       schedule.at("setting").get<std::string>(), schedule.at("actions").size(),
                       schedule.at("forward_steps").get<std::int64_t>(), schedule.at("recomputed_steps").get<std::int64_t>());
    out << fmt::format("  the stage model's memory below is the planner's internal bound ({} B at most); the plan's peak\n"
                       "  is the program's, measured on the metering backend (section 4)\n",
                       schedule.at("planner_internal_bound_bytes").get<std::int64_t>());
    out << "  F_ck i: run stage i keeping its input as a checkpoint; F_n i: run it keeping nothing;\n"
           "  F_all i: run it keeping its tape; B i: back-propagate it (B L seeds the loss gradient)\n";
    out << fmt::format("  {:<5} {:<10} {:>13}\n", "step", "action", "model after");
    for (const auto& a : schedule.at("actions"))
      out << fmt::format("  {:<5} {:<10} {:>13}{}\n", a.at("step").get<int>(),
                         fmt::format("{} {}", a.at("action").get<std::string>(), a.at("stage").get<int>()),
                         a.at("memory_after").get<std::int64_t>(), a.at("recompute").get<bool>() ? "  recompute" : "");
  }

  // 4. The program with the live bytes after every instruction.
  const Json& instructions = doc.at("program").at("instructions");
  out << fmt::format("\n== Program: {} instructions; budgeted bytes live after each, by category ==\n", instructions.size());
  out << "  (ws = workspace held while the instruction runs; peak = live + ws; R = recomputation)\n";
  out << fmt::format("  {:>5}  {:<9} {:<16} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "i", "kind", "node", "stage",
                     "input", "activ.", "saved", "gradient", "ws", "live", "peak");
  const Json* actions = schedule.is_null() ? nullptr : &schedule.at("actions");
  int last_action = -2;
  for (const auto& r : instructions) {
    if (actions && !r.at("action").is_null() && r.at("action").get<int>() != last_action) {
      last_action = r.at("action").get<int>();
      const Json& a = actions->at(static_cast<std::size_t>(last_action));
      out << fmt::format("  -- step {}: {} {} --\n", last_action, a.at("action").get<std::string>(), a.at("stage").get<int>());
    }
    int stage = r.at("stage").get<int>();
    out << fmt::format("  {:>5}  {:<9} {:<16} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}{}\n", r.at("index").get<std::size_t>(),
                       r.at("kind").get<std::string>(), r.at("label").get<std::string>(), stage < 0 ? std::string("-") : std::to_string(stage),
                       r.at("input").get<std::size_t>(), r.at("activation").get<std::size_t>(), r.at("saved").get<std::size_t>(),
                       r.at("gradient").get<std::size_t>(), r.at("workspace").get<std::size_t>(), r.at("live_bytes").get<std::size_t>(),
                       r.at("peak_bytes").get<std::size_t>(), r.at("recompute").get<bool>() ? "  R" : "");
  }

  // 5. Summary.
  const std::size_t peak = summary.at("peak_bytes").get<std::size_t>();
  out << "\n== Summary ==\n";
  out << fmt::format("  planned peak (simulate, what a run measures): {}   store-all: {}\n", bytes_text(peak),
                     bytes_text(summary.at("store_all_peak_bytes").get<std::size_t>()));
  std::vector<std::string> cats;
  for (auto& [name, v] : summary.at("peak_by_category").items())
    if (v.get<std::size_t>() > 0 && name != "parameter" && name != "parameter_gradient") cats.push_back(fmt::format("{} {}", name, v.get<std::size_t>()));
  out << fmt::format("  each category's own peak: {}\n", fmt::join(cats, ", "));
  out << fmt::format("  ops: {} forward ({} recomputed), {} backward; planned time {} ns (store-all {} ns, {} costs)\n",
                     summary.at("forward_ops").get<std::int64_t>(), summary.at("recomputed_ops").get<std::int64_t>(),
                     summary.at("backward_ops").get<std::int64_t>(), summary.at("planned_time").get<std::int64_t>(),
                     summary.at("store_all_planned_time").get<std::int64_t>(), summary.at("cost_source").get<std::string>());
  for (const auto& n : summary.at("notes")) out << "  note: " << n.get<std::string>() << "\n";
  out << fmt::format("  not budgeted: parameters {}, their gradients {}\n", bytes_text(summary.at("parameter_bytes").get<std::size_t>()),
                     bytes_text(summary.at("parameter_gradient_bytes").get<std::size_t>()));
  if (const auto left = summary.at("live_bytes_at_end").get<std::size_t>(); left > 0)
    out << fmt::format("  note: {} are still live after the last instruction (values the program never frees)\n",
                       bytes_text(left));
}

void write_memory_csv(const Json& doc, std::ostream& out) {
  out << "index,kind,node,label,stage,recompute,input,activation,saved,gradient,workspace,live_bytes,peak_bytes\n";
  for (const auto& r : doc.at("program").at("instructions"))
    out << fmt::format("{},{},{},\"{}\",{},{},{},{},{},{},{},{},{}\n", r.at("index").get<std::size_t>(),
                       r.at("kind").get<std::string>(), r.at("node").get<int>(), r.at("label").get<std::string>(),
                       r.at("stage").get<int>(), r.at("recompute").get<bool>() ? 1 : 0, r.at("input").get<std::size_t>(),
                       r.at("activation").get<std::size_t>(), r.at("saved").get<std::size_t>(),
                       r.at("gradient").get<std::size_t>(), r.at("workspace").get<std::size_t>(),
                       r.at("live_bytes").get<std::size_t>(), r.at("peak_bytes").get<std::size_t>());
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
