// Contract: the teaching views of one plan (see explain.hpp): one JSON document built
// from the tape, the chain view and stage schedule behind the plan (PlanReport), its
// Program, and the executor's own trace on the metering backend (live bytes by
// category, the peak within each instruction, the resident buffers); with bindings,
// also a real CPU run that records each value and gradient for the reverse sweep. A
// text view and a CSV on top of it. Errors are prefixed "[explain]".
#include "strategies/explain.hpp"

#include "autodiff/cpu/cpu_backend.hpp"
#include "autodiff/memory_policy.hpp"
#include "autodiff/metering_backend.hpp"
#include "strategies/stage_schedules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
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
                      {"cbw", ch.cbw[u]},         // the rotor array, same index as costs.cbw
                      {"tape_bytes", ch.cbw[u + 1]},  // xbar(i+1): what F_all i keeps
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


// "x3": a node's value in the equations; "x̄3" its gradient.
std::string x_of(int id) { return "x" + std::to_string(id); }
std::string g_of(int id) { return "x\u0304" + std::to_string(id); }

// One sentence per stage action, in the words of the checkpointing literature.
std::string timeline_sentence(const StageAction& a, int L, bool recompute) {
  const std::string again = recompute ? " (recomputation)" : "";
  switch (a.kind) {
    case StageActionKind::forward_checkpoint:
      return fmt::format("forward {} -> {}, keeping its input x({}) as a checkpoint{}", a.stage, a.stage + 1, a.stage, again);
    case StageActionKind::forward_none:
      return fmt::format("forward {} -> {}, keeping nothing but x({}){}", a.stage, a.stage + 1, a.stage + 1, again);
    case StageActionKind::forward_taped:
      return fmt::format("forward {} -> {}, keeping everything its backward needs (the tape xbar({})){}", a.stage,
                         a.stage + 1, a.stage + 1, again);
    case StageActionKind::backward:
      return a.stage == L ? std::string("reverse the loss: seed its gradient with 1")
                          : fmt::format("reverse {} <- {}: the gradient of x({}) from that of x({}), freeing the tape",
                                        a.stage, a.stage + 1, a.stage, a.stage + 1);
    case StageActionKind::discard: return fmt::format("drop the checkpoint x({})", a.stage);
  }
  return "?";
}

// The first `limit` elements of a host array, for printing.
Json head_of(const HostArray& a, std::size_t limit) {
  Json v = Json::array();
  for (std::int64_t k = 0; k < a.numel() && static_cast<std::size_t>(k) < limit; ++k) v.push_back(a.at(k));
  return v;
}
}  // namespace

Json explain_plan(const Tape& tape, int loss, const Strategy& strategy, const Budget& budget, const NodeCosts* costs,
                  const std::optional<ExplainValues>& values) {
  const PlanReport report = plan(strategy, PlanRequest{tape, loss, budget, costs});  // InfeasibleBudget propagates
  const Program& program = report.program;
  const std::vector<bool> is_saved = values_read_by_backward(tape, program);

  // The executor's own trace on the metering backend: live budgeted bytes after each
  // instruction, by category, and the most held while it ran (from the meter).
  MeteringBackend metering;
  Executor executor(tape, metering);
  RunOptions trace_options;
  trace_options.record_trace = true;
  trace_options.record_resident = true;
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
                         {"timeline", timeline_sentence(a, view->chain.length(), recompute)},
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
  std::vector<int> resident_computed(tape.size(), 0);  // forwards so far, for the resident labels
  std::vector<bool> is_checkpoint(tape.size(), false);
  if (report.stage)
    for (int b : view->boundary)
      if (b >= 0) is_checkpoint[static_cast<std::size_t>(b)] = true;
  for (std::size_t i = 0; i < program.instructions.size(); ++i) {
    const Instruction& ins = program.instructions[i];
    const Node& n = tape.node(ins.node);
    if (ins.kind == InstructionKind::compute) ++resident_computed[static_cast<std::size_t>(ins.node)];
    bool recompute = false;  // every recomputation, a placeholder's re-binding too
    if (ins.kind == InstructionKind::compute && n.kind != NodeKind::parameter)
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
             {"rebind", recompute && n.kind == NodeKind::placeholder},  // an input copied in again, not an op run
             {"live_bytes", trace.live_bytes[i]},
             {"peak_bytes", peak}};
    for (MemoryCategory c : shown_categories)
      row[memory_category_name(c)] =
          c == MemoryCategory::workspace ? workspace : trace.live_by_category[i][static_cast<std::size_t>(c)];
    // Which budgeted buffers are resident after it, by teaching category.
    Json resident = Json::array();
    for (const auto& r : trace.resident[i]) {
      if (!is_budgeted(r.category)) continue;
      const char* what = r.gradient ? "gradient"
                         : resident_computed[static_cast<std::size_t>(r.node)] > 1 ? "recomputed"
                         : tape.node(r.node).kind == NodeKind::placeholder ? "input"
                         : is_checkpoint[static_cast<std::size_t>(r.node)] ? "checkpoint"
                                                                           : "kept";
      resident.push_back({{"node", r.node}, {"category", what}, {"bytes", r.bytes}});
    }
    row["resident"] = std::move(resident);
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

  // The reverse sweep with numbers: the same Program on the CPU backend, observed.
  Json sweep = nullptr;
  if (values) {
    CpuBackend cpu;
    Executor real(tape, cpu);
    const std::size_t limit = values->max_elements;
    Json steps = Json::array();
    std::map<int, Json> value_of, gradient_of;
    RunOptions ro;
    ro.observer = [&](std::size_t index, const Instruction& ins, const std::vector<Tensor>& vals,
                      const std::vector<Tensor>& grads) {
      const auto id = static_cast<std::size_t>(ins.node);
      if (ins.kind == InstructionKind::compute && vals[id].defined() && !value_of.count(ins.node))
        value_of[ins.node] = head_of(cpu.download(vals[id]), limit);
      if (ins.kind == InstructionKind::seed_grad)
        steps.push_back({{"index", index}, {"node", ins.node}, {"equation", g_of(ins.node) + " = 1 (the seed)"},
                         {"gradient", head_of(cpu.download(grads[id]), limit)}, {"inputs", Json::array()}});
      if (ins.kind != InstructionKind::backward) return;
      const Node& n = tape.node(ins.node);
      gradient_of[ins.node] = head_of(cpu.download(grads[id]), limit);  // complete: its vjp reads it
      Json inputs = Json::array();
      for (std::size_t k = 0; k < n.inputs.size(); ++k) {
        const auto in = static_cast<std::size_t>(n.inputs[k]);
        if (!receives_gradient(tape, n, k) || !grads[in].defined()) continue;
        inputs.push_back({{"node", n.inputs[k]}, {"gradient_so_far", head_of(cpu.download(grads[in]), limit)}});
      }
      steps.push_back({{"index", index}, {"node", ins.node}, {"equation", adjoint_equation(tape, ins.node)},
                       {"gradient", gradient_of[ins.node]}, {"inputs", inputs}});
    };
    StepResult r = real.run(program, values->bindings, ro);
    for (auto& [id, t] : r.gradients) gradient_of[id] = head_of(cpu.download(t), limit);
    Json nodes = Json::array();
    for (const Node& n : tape.nodes()) {
      Json v = n.kind == NodeKind::parameter ? head_of(tape.parameter_initial(n.id), limit)
               : value_of.count(n.id)         ? value_of[n.id]
                                              : Json(nullptr);
      nodes.push_back({{"node", n.id}, {"label", n.label()}, {"shape", n.meta.shape}, {"value", v},
                       {"gradient", gradient_of.count(n.id) ? gradient_of[n.id] : Json(nullptr)}});
    }
    sweep = {{"steps", steps}, {"nodes", nodes}, {"loss", r.loss ? head_of(*r.loss, 1) : Json(nullptr)},
             {"max_elements", limit}};
  }

  Json doc{{"strategy", strategy.name()},
           {"budget_bytes", budget.bytes ? Json(*budget.bytes) : Json(nullptr)},
           {"loss", loss},
           {"tape", tape_json(tape, loss, is_saved)},
           {"chain", chain},
           {"schedule", schedule_doc},
           {"program", {{"strategy", program.strategy}, {"loss", program.loss}, {"grad_targets", program.grad_targets},
                        {"instructions", instructions}}},
           {"live_bytes", trace.live_bytes},
           {"summary", summary},
           {"sweep", sweep}};
  if (!chain_note.empty()) doc["chain_note"] = chain_note;
  return doc;
}

std::string adjoint_equation(const Tape& tape, int id) {
  const Node& n = tape.node(id);
  if (n.kind != NodeKind::op) return "";
  const std::string op = n.op->name(), o = g_of(id), attrs = n.op->attributes();
  auto in = [&](std::size_t k) { return k < n.inputs.size() ? n.inputs[k] : -1; };
  auto X = [&](std::size_t k) { return x_of(in(k)); };
  auto G = [&](std::size_t k) { return g_of(in(k)); };
  auto wants = [&](std::size_t k) { return k < n.inputs.size() && receives_gradient(tape, n, k); };
  std::vector<std::string> terms;
  auto term = [&](std::size_t k, const std::string& t) {
    if (wants(k)) terms.push_back(G(k) + " += " + t);
  };
  if (op == "add") { term(0, o); term(1, o); }
  else if (op == "sub") { term(0, o); term(1, "-" + o); }
  else if (op == "mul") { term(0, o + " * " + X(1)); term(1, o + " * " + X(0)); }
  else if (op == "div") { term(0, o + " / " + X(1)); term(1, "-" + o + " * " + X(0) + " / " + X(1) + "\u00b2"); }
  else if (op == "neg") term(0, "-" + o);
  else if (op == "exp") term(0, o + " * exp(" + X(0) + ")");
  else if (op == "log") term(0, o + " / " + X(0));
  else if (op == "tanh") term(0, o + " * (1 - tanh\u00b2(" + X(0) + "))");
  else if (op == "sigmoid") term(0, o + " * \u03c3(" + X(0) + ") (1 - \u03c3(" + X(0) + "))");
  else if (op == "relu") term(0, o + " * [" + X(0) + " > 0]");
  else if (op == "gelu") term(0, o + " * gelu'(" + X(0) + ")");
  else if (op == "square") term(0, o + " * 2 " + X(0));
  else if (op == "pow") term(0, o + " * p " + X(0) + "^(p-1)  [" + attrs + "]");
  else if (op == "scale") term(0, o + " * f  [" + attrs + "]");
  else if (op == "sum") term(0, "broadcast(" + o + ")");
  else if (op == "mean") term(0, "broadcast(" + o + ") / count");
  else if (op == "max") term(0, o + " routed to the first maximum of " + X(0));
  else if (op == "matmul") { term(0, o + " @ " + X(1) + "\u1d40"); term(1, X(0) + "\u1d40 @ " + o); }
  else if (op == "linear") { term(0, o + " @ " + X(1)); term(1, o + "\u1d40 @ " + X(0)); term(2, "\u03a3 rows of " + o); }
  else if (op == "softmax") term(0, x_of(id) + " * (" + o + " - \u03a3(" + o + " * " + x_of(id) + "))");
  else if (op == "log_softmax") term(0, o + " - softmax(" + X(0) + ") \u03a3 " + o);
  else if (op == "cross_entropy") term(0, o + " * (softmax(" + X(0) + ") - onehot(" + X(1) + ")) / N");
  else if (op == "mse") { term(0, o + " * 2 (" + X(0) + " - " + X(1) + ") / n"); term(1, "-" + o + " * 2 (" + X(0) + " - " + X(1) + ") / n"); }
  else if (op == "dropout") term(0, o + " * mask / (1 - p)  (the same Philox mask as the forward)");
  else if (op == "reshape" || op == "permute" || op == "slice" || op == "concat" || op == "upsample_nearest") {
    for (std::size_t k = 0; k < n.inputs.size(); ++k) term(k, op + "\u207b\u00b9(" + o + ")  (the inverse index map)");
  } else {
    for (std::size_t k = 0; k < n.inputs.size(); ++k) term(k, "(\u2202" + op + "/\u2202" + X(k) + ")\u1d40 " + o);
  }
  if (terms.empty()) return "(no input wants a gradient)";
  std::string out;
  for (const auto& t : terms) out += (out.empty() ? "" : ";  ") + t;
  return out;
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
    out << fmt::format("  {:<6} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}  {}\n", "stage", "fw", "bw", "cw=x(i)", "cbw[i+1]", "ftmp",
                       "btmp", "nodes");
    for (const auto& s : chain.at("stages")) {
      std::vector<std::string> names;
      for (const auto& id : s.at("nodes")) names.push_back(fmt::format("n{} {}", id.get<int>(), tape.at(id.get<std::size_t>()).at("name").get<std::string>()));
      out << fmt::format("  {:<6} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}  {}\n", s.at("stage").get<int>(), s.at("fw").get<std::int64_t>(),
                         s.at("bw").get<std::int64_t>(), s.at("cw").get<std::int64_t>(), s.at("tape_bytes").get<std::int64_t>(),
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
    out << fmt::format("  {:<5} {:<10} {:>13}  {}\n", "step", "action", "model after", "timeline");
    for (const auto& a : schedule.at("actions"))
      out << fmt::format("  {:<5} {:<10} {:>13}  {}\n", a.at("step").get<int>(),
                         fmt::format("{} {}", a.at("action").get<std::string>(), a.at("stage").get<int>()),
                         a.at("memory_after").get<std::int64_t>(), a.at("timeline").get<std::string>());
  }

  // 4. The program with the live bytes after every instruction.
  const Json& instructions = doc.at("program").at("instructions");
  out << fmt::format("\n== Program: {} instructions; budgeted bytes live after each, by category ==\n", instructions.size());
  out << "  (ws = workspace held while the instruction runs; peak = live + ws; R = recomputation, re-bound inputs too;\n"
         "   under each row, what stays resident: value n<k> or gradient g<k> with its category)\n";
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
    std::vector<std::string> held;
    for (const auto& v : r.at("resident")) {
      const std::string c = v.at("category").get<std::string>();
      held.push_back(fmt::format("{}{} {}", c == "gradient" ? "g" : "n", v.at("node").get<int>(), c));
    }
    out << fmt::format("  {:>7}resident: {}\n", "", held.empty() ? std::string("nothing") : fmt::format("{}", fmt::join(held, ", ")));
    if (r.at("kind") == "free" && r.at("node").get<int>() == doc.at("loss").get<int>())
      out << fmt::format("  {:>7}(the loss value is freed before its gradient is seeded: nothing reads it, the seed is "
                         "a new buffer of ones)\n", "");
  }

  // The reverse sweep with numbers, when the explanation was made with values.
  if (doc.contains("sweep") && !doc.at("sweep").is_null()) {
    const Json& sweep = doc.at("sweep");
    auto numbers = [](const Json& v) {
      if (v.is_null()) return std::string("-");
      std::vector<std::string> parts;
      for (const auto& x : v) parts.push_back(fmt::format("{:.6g}", x.get<double>()));
      return fmt::format("[{}]", fmt::join(parts, ", "));
    };
    out << fmt::format("\n== Reverse sweep: each backward instruction's adjoint equation, with the numbers (first {} "
                       "elements) ==\n", sweep.at("max_elements").get<std::size_t>());
    for (const auto& st : sweep.at("steps")) {
      out << fmt::format("  {:>5}  {}\n", st.at("index").get<std::size_t>(), st.at("equation").get<std::string>());
      out << fmt::format("  {:>7}x\u0304{} = {}\n", "", st.at("node").get<int>(), numbers(st.at("gradient")));
      for (const auto& in : st.at("inputs"))
        out << fmt::format("  {:>7}-> x\u0304{} = {}\n", "", in.at("node").get<int>(), numbers(in.at("gradient_so_far")));
    }
    out << "\n== Values and gradients of every node (like micrograd's node.data and node.grad) ==\n";
    for (const auto& n : sweep.at("nodes"))
      out << fmt::format("  {:<20} value {}  gradient {}\n", n.at("label").get<std::string>(), numbers(n.at("value")),
                         numbers(n.at("gradient")));
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

}  // namespace remat
