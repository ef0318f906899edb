// Contract: the plan, run and compare commands (see commands.hpp).
//  - plan: one strategy on a chain file or a model; prints the plan report (the
//    planned peak is simulate()'s, which a run measures; the stage model's figure, when
//    printed, is labelled as the planner's internal bound).
//  - run: plans, then runs `repeat` timed training steps on the device after a warm-up,
//    and checks the three promises against a store-all reference (exit 4 if broken).
//  - compare: every strategy of the registry (or --strategies) on one model, at each
//    budget of --budgets or at each strategy's default; one table (stdout, or stderr
//    with --json, where stdout carries exactly one JSON object), CSV and plot.
#include "experiments/cli/commands.hpp"

#include "experiments/common/output_file.hpp"
#include "experiments/common/subprocess.hpp"
#include "strategies/graph_json.hpp"
#include "strategies/graph_planning.hpp"
#include "strategies/stage_schedules.hpp"
#include "gpu/cuda_backend.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

namespace remat {

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  for (char c : s) {
    if (c == sep) {
      if (!item.empty()) out.push_back(item);
      item.clear();
    } else if (c != ' ') {
      item += c;
    }
  }
  if (!item.empty()) out.push_back(item);
  return out;
}

std::string option_flag(StrategyOption o) {
  switch (o) {
    case StrategyOption::slots: return "--slots";
    case StrategyOption::heuristic: return "--heuristic";
    case StrategyOption::dp_slots: return "--dp-slots";
    case StrategyOption::time_limit: return "--time-limit";
  }
  return "?";
}

std::string users_of(StrategyOption o) {
  std::vector<std::string> names;
  for (const auto& row : strategy_registry())
    if (row.uses(o)) names.push_back(row.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

// True when some value of the tape is bf16 or f16.
bool stores_16bit(const Tape& tape) {
  for (const auto& n : tape.nodes())
    if (is_16bit(n.meta.dtype)) return true;
  return false;
}

// The device's backend; on the CPU, a model with 16-bit values runs on
// LowPrecisionCpuBackend (f32 compute), any other on CpuBackend.
std::unique_ptr<Backend> make_backend(const std::string& device, const Tape& tape) {
  if (device == "cpu") {
    if (stores_16bit(tape)) return std::make_unique<LowPrecisionCpuBackend>();
    return std::make_unique<CpuBackend>();
  }
  if (device == "cuda") {
    if (!cuda_built()) return make_cuda_backend();  // throws the built-without-CUDA message
    if (cuda_device_count() == 0) throw Error("[cuda] no CUDA device is present on this machine; use --device cpu");
    return make_cuda_backend();
  }
  throw Error("[remat] --device must be cpu or cuda, got '" + device + "'");
}

void apply_threads(const std::string& command, const std::optional<int>& threads) {
  if (!threads) return;
  if (*threads < 1 || *threads > 4096)
    throw Error(fmt::format("[{}] --threads must be between 1 and 4096, got {}", command, *threads));
  set_cpu_threads(*threads);
}

Json optional_json(const std::optional<std::size_t>& v) { return v ? Json(*v) : Json(nullptr); }

}  // namespace

Model model_for(const std::string& command, const std::string& spec, const OnnxSource& onnx, OnnxModel* imported) {
  if (onnx.path.empty()) {
    if (!onnx.loss.empty()) throw Error(fmt::format("[{}] --loss needs --onnx (a zoo model has its own loss)", command));
    if (!onnx.inputs.empty()) throw Error(fmt::format("[{}] --inputs needs --onnx", command));
    if (spec.empty()) throw Error(fmt::format("[{}] --model SPEC or --onnx PATH is required", command));
    return build_model(spec);
  }
  if (!spec.empty()) throw Error(fmt::format("[{}] give one of --model and --onnx, not both", command));
  OnnxModel om = load_onnx(onnx.path, OnnxImportOptions{onnx.loss.empty() ? "auto" : onnx.loss});
  if (!onnx.inputs.empty()) {
    Bindings fixed = bind_npy_inputs(om, onnx.inputs, om.model.batch(0));
    om.model.batch = [fixed](std::uint64_t) { return fixed; };
  }
  Model m = std::move(om.model);
  if (imported) *imported = std::move(om);
  return m;
}

namespace {

std::size_t store_all_peak_of(const Model& m) { return simulate(*m.tape, store_all_program(*m.tape, m.loss.id)).peak_bytes; }

// The per-node costs a plan is weighed by: analytic, or profiled on `backend`.
std::optional<NodeCosts> costs_for(const std::string& command, const std::string& costs, const Model& m, Backend* backend,
                                   const Bindings& data) {
  if (costs == "analytic") return std::nullopt;
  if (costs != "measured")
    throw Error(fmt::format("[{}] --costs must be analytic or measured, got '{}'", command, costs));
  if (!backend) throw Error(fmt::format("[{}] --costs measured needs a device to profile on", command));
  return profile_node_costs(*m.tape, m.loss.id, *backend, data);
}

Json plan_json(const PlanReport& r) {
  Json j{{"strategy", r.strategy},
         {"setting", r.setting},
         {"peak_bytes", r.predicted.peak_bytes},
         {"forward_ops", r.predicted.forward_ops},
         {"recomputed_ops", r.predicted.recomputed_ops},
         {"backward_ops", r.predicted.backward_ops},
         {"planned_time_ns", r.planned_time},
         {"store_all_time_ns", r.store_all_time},
         {"planned_overhead", r.planned_overhead()},
         {"store_all_peak_bytes", r.store_all_peak},
         {"cost_source", r.cost_source},
         {"candidates_simulated", r.candidates_simulated},
         {"notes", r.notes},
         {"plan_seconds", r.plan_seconds}};
  if (r.solver) j["solver"] = *r.solver;
  if (r.stage) {
    j["stages"] = r.stage->view->chain.length();
    j["forward_steps"] = r.stage->stats.forward_steps;
    j["recomputed_steps"] = r.stage->stats.recomputed_steps;
    j["planner_internal_bound_bytes"] = r.stage->stats.peak_memory;  // the stage model's peak, not the plan's
  } else {
    j["stages"] = nullptr;
    j["forward_steps"] = nullptr;
    j["recomputed_steps"] = nullptr;
    j["planner_internal_bound_bytes"] = nullptr;
  }
  return j;
}

void print_object(const Json& j, std::ostream& out) {
  for (auto& [k, v] : j.items()) out << fmt::format("{:<28} {}\n", k, v.dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace

StrategyOptions strategy_options_for(const std::string& command, const StrategyInfo& info,
                                     const std::optional<int>& slots, const std::optional<std::string>& heuristic,
                                     const std::optional<int>& dp_slots, double time_limit) {
  auto check = [&](bool given, StrategyOption o) {
    if (given && !info.uses(o))
      throw Error(fmt::format("[{}] {} does not apply to strategy '{}' (it applies to: {})", command, option_flag(o),
                              info.name, users_of(o)));
  };
  check(slots.has_value(), StrategyOption::slots);
  check(heuristic.has_value(), StrategyOption::heuristic);
  check(dp_slots.has_value(), StrategyOption::dp_slots);
  StrategyOptions s;
  s.slots = slots;
  if (heuristic) {
    const auto& known = greedy_heuristics();
    if (std::find(known.begin(), known.end(), *heuristic) == known.end())
      throw Error(fmt::format("[greedy] unknown heuristic '{}'; expected one of: {}", *heuristic, fmt::join(known, ", ")));
    s.heuristic = *heuristic;
  }
  if (dp_slots && (*dp_slots < 1 || *dp_slots > 1000000))
    throw Error(fmt::format("[{}] --dp-slots must be between 1 and 1000000, got {}", command, *dp_slots));
  s.dp_slots = dp_slots;
  if (!(time_limit > 0) || time_limit > 1e7)
    throw Error(fmt::format("[{}] --time-limit must be between 0 and 10^7 seconds, got {}", command, time_limit));
  s.time_limit_seconds = time_limit;
  return s;
}

// A graph plan as JSON: the schedule for outside simulators (schedule_to_json) with the
// plan's setting and, for checkmate, the solver's figures. Text output shows the sequence's
// length (the sequence itself is in --json).
Json graph_plan_json(const TrainingGraph& graph, const GraphPlan& p, std::optional<std::int64_t> budget, bool full) {
  Json j = schedule_to_json(graph, p.schedule);
  j["strategy"] = p.strategy;
  j["graph"] = graph.name;
  j["nodes"] = graph.size();
  j["budget"] = optional_json(budget);
  j["setting"] = p.setting;
  j["feasible"] = true;
  j["plan_seconds"] = p.plan_seconds;
  if (!p.solver.is_null()) {
    j["solver"] = p.solver;
    if (!full) j["solver"].erase("sequence");
  }
  if (!full) {
    j["sequence_length"] = j["sequence"].size();
    j.erase("sequence");
  }
  return j;
}

// Plans on a training graph without a tape: a node-link file, or a chain file for a
// node-level strategy.
Json plan_on_graph(const CommonOptions& o, const StrategyInfo& info, const TrainingGraph& graph,
                   const std::optional<BudgetSpec>& spec) {
  if (o.costs != "analytic") throw Error("[plan] --costs measured needs --model (a graph file carries its own costs)");
  if (o.print_program) throw Error("[plan] --program needs --model (a graph file has no node-level program)");
  StrategyOptions so = strategy_options_for("plan", info, o.slots, o.heuristic, o.dp_slots, o.time_limit);
  const std::int64_t topological_peak = simulate_graph_schedule(graph, topological_schedule(graph)).peak;
  std::optional<std::int64_t> budget;
  if (spec) budget = static_cast<std::int64_t>(spec->resolve(static_cast<std::size_t>(topological_peak)));
  return graph_plan_json(graph, plan_graph(info.name, graph, budget, so), budget, o.json);
}

int command_plan(const CommonOptions& o) {
  const int sources = !o.chain.empty() + !o.model.empty() + !o.graph.empty() + !o.onnx.path.empty();
  if (sources != 1) throw Error("[plan] give exactly one of --chain, --model, --onnx or --graph");
  if (o.onnx.path.empty() && (!o.onnx.loss.empty() || !o.onnx.inputs.empty()))
    throw Error("[plan] --loss and --inputs need --onnx");
  if (o.strategy.empty()) throw Error("[plan] --strategy is required");
  const StrategyInfo& info = strategy_info(o.strategy);
  std::optional<BudgetSpec> spec;
  if (!o.budget.empty()) spec = parse_budget(o.budget);
  OutputFile exported("plan", "--export-graph", o.export_graph);
  auto write_graph = [&](const TrainingGraph& g) {
    if (!exported) return;
    exported.open() << to_node_link_json(g).dump(1) << "\n";
    exported.close();
  };
  Json j;

  if ((!o.graph.empty() || !o.chain.empty()) &&
      (o.optimizer != "sgd" || !o.master_weights.empty() || !o.budget_total.empty()))
    throw Error("[plan] --optimizer, --master-weights and --budget-total apply to --model only");
  if (!o.graph.empty()) {
    if (o.graph.rfind("file:", 0) != 0)
      throw Error(fmt::format("[plan] --graph expects file:PATH (node-link JSON), got '{}'", o.graph));
    const TrainingGraph graph = read_node_link_file(o.graph.substr(5));
    write_graph(graph);
    j = plan_on_graph(o, info, graph, spec);
  } else if (!o.chain.empty() && info.level == StrategyLevel::node) {
    Chain chain = Chain::parse_spec(o.chain);
    chain.validate();
    const TrainingGraph graph = training_graph_from_chain(chain);
    write_graph(graph);
    j = plan_on_graph(o, info, graph, spec);
    j["chain"] = chain.name;
  } else if (!o.chain.empty()) {
    auto strategy = info.make(strategy_options_for("plan", info, o.slots, o.heuristic, o.dp_slots, o.time_limit));
    if (o.costs != "analytic") throw Error("[plan] --costs measured needs --model (a chain file carries its own costs)");
    if (o.print_program) throw Error("[plan] --program needs --model (a chain file has no node-level program)");
    if (exported) throw Error("[plan] --export-graph with --chain needs a node-level strategy (greedy, checkmate)");
    Chain chain = Chain::parse_spec(o.chain);
    chain.validate();
    const std::int64_t full = store_all_stats(chain).peak_memory;
    std::optional<std::size_t> budget;
    if (spec) budget = spec->resolve(static_cast<std::size_t>(full));
    auto t0 = Clock::now();
    StagePlan p = strategy->plan_chain(chain, Budget{budget});
    const double plan_seconds = seconds_since(t0);
    j = Json{{"strategy", o.strategy},
             {"chain", chain.name},
             {"budget", optional_json(budget)},
             {"stages", chain.length()},
             {"setting", p.note},
             {"forward_steps", p.stats.forward_steps},
             {"recomputed_steps", p.stats.recomputed_steps},
             {"makespan", p.stats.makespan},
             {"peak", p.stats.peak_memory},
             {"store_all_peak", full},
             {"feasible", true},
             {"plan_seconds", plan_seconds}};
  } else {
    if (o.device != "cpu" && o.costs != "measured")
      throw Error("[plan] --device only chooses where --costs measured profiles (plan runs nothing otherwise)");
    auto strategy = info.make(strategy_options_for("plan", info, o.slots, o.heuristic, o.dp_slots, o.time_limit));
    const auto load_start = Clock::now();
    Model m = model_for("plan", o.model, o.onnx);
    const double load_seconds = seconds_since(load_start);
    std::unique_ptr<Backend> backend;
    Bindings data;
    if (o.costs == "measured") {
      backend = make_backend(o.device, *m.tape);
      data = m.batch(0);
    }
    std::optional<NodeCosts> costs = costs_for("plan", o.costs, m, backend.get(), data);
    const Optimizer optimizer = optimizer_from_name(o.optimizer, "plan");
    std::optional<DType> master;
    if (!o.master_weights.empty()) {
      if (o.master_weights != "f32") throw Error(fmt::format("[plan] --master-weights must be f32, got '{}'", o.master_weights));
      master = DType::f32;
    }
    const StepReport store_all_step = simulate(*m.tape, store_all_program(*m.tape, m.loss.id));
    TrainingMemory memory = training_memory(*m.tape, store_all_step, optimizer, master);
    std::optional<std::size_t> budget;
    if (spec) budget = spec->resolve(store_all_step.peak_bytes);
    if (!o.budget_total.empty()) {
      if (spec) throw Error("[plan] give --budget (activations) or --budget-total (all device memory), not both");
      const BudgetSpec total = parse_budget(o.budget_total);
      if (!total.bytes)
        throw Error(fmt::format("[plan] --budget-total must be bytes (24GiB), not a percentage: '{}'", o.budget_total));
      budget = activation_budget(memory, *total.bytes, "plan");
    }
    if (exported) {
      TapeGraphCosts graph_costs = costs ? tape_graph_costs(*costs) : analytic_tape_costs(*m.tape);
      TrainingGraph g = training_graph_from_tape(*m.tape, m.loss.id, graph_costs);
      g.name = m.spec;
      write_graph(g);
    }
    PlanReport r = plan(*strategy, PlanRequest{*m.tape, m.loss.id, Budget{budget}, costs ? &*costs : nullptr});
    j = plan_json(r);
    if (!o.json && j.contains("solver")) j["solver"].erase("sequence");  // the sequence is in --json
    j["model"] = m.spec;
    if (!o.onnx.path.empty()) j["load_seconds"] = load_seconds;  // reading, checking and recording the ONNX file
    j["budget_bytes"] = optional_json(budget);
    j["feasible"] = true;
    memory.activation_peak = r.predicted.peak_bytes;
    j["memory"] = Json{{"weights", memory.weights},
                       {"parameter_gradients", memory.parameter_gradients},
                       {"optimizer", optimizer_name(optimizer)},
                       {"optimizer_state", memory.optimizer_state},
                       {"master_weights", memory.master_weights},
                       {"activation_peak", memory.activation_peak},
                       {"total", memory.total()},
                       {"trainable_elements", memory.trainable_elements},
                       {"frozen_elements", memory.frozen_elements}};
    if (!o.budget_total.empty()) j["memory"]["budget_total"] = *parse_budget(o.budget_total).bytes;
    if (o.print_program) {
      if (o.json) j["program"] = r.program.to_json();
      else std::cout << r.program.to_string(*m.tape);
    }
  }
  if (o.json) std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  else print_object(j, std::cout);
  return 0;
}

int command_run(const CommonOptions& o) {
  if (!o.chain.empty()) throw Error("[run] --chain is for `remat plan`; `run` needs --model SPEC");
  if (o.model.empty() && o.onnx.path.empty()) throw Error("[run] --model SPEC or --onnx PATH is required");
  if (!o.save_grads.empty() && o.onnx.path.empty())
    throw Error("[run] --save-grads needs --onnx (files are named after the ONNX initializers)");
  if (!o.save_grads.empty() && !std::filesystem::is_directory(o.save_grads))
    throw Error(fmt::format("[run] --save-grads: '{}' is not an existing folder", o.save_grads));
  if (o.strategy.empty()) throw Error("[run] --strategy is required");
  if (o.print_program) throw Error("[run] --program is an option of `remat plan`");
  if (o.repeat < 1 || o.repeat > 100000) throw Error(fmt::format("[run] --repeat must be between 1 and 100000, got {}", o.repeat));
  apply_threads("run", o.threads);
  const StrategyInfo& info = strategy_info(o.strategy);
  auto strategy = info.make(strategy_options_for("run", info, o.slots, o.heuristic, o.dp_slots, o.time_limit));
  std::optional<BudgetSpec> spec;
  if (!o.budget.empty()) spec = parse_budget(o.budget);
  OnnxModel imported;
  Model m = model_for("run", o.model, o.onnx, &imported);
  auto backend = make_backend(o.device, *m.tape);
  Bindings data = m.batch(0);
  std::optional<NodeCosts> costs = costs_for("run", o.costs, m, backend.get(), data);
  std::optional<std::size_t> budget;
  if (spec) budget = spec->resolve(store_all_peak_of(m));
  PlanReport r = plan(*strategy, PlanRequest{*m.tape, m.loss.id, Budget{budget}, costs ? &*costs : nullptr});

  ReferenceStep reference = reference_step(*m.tape, m.loss.id, *backend, data);
  Executor ex(*m.tape, *backend);
  ex.run(r.program, data);  // warm-up: first-touch page faults and thread start-up are not the strategy's cost
  std::vector<double> times;
  std::optional<PromiseCheck> check;
  StepReport measured;
  double loss = 0;
  for (int k = 0; k < o.repeat; ++k) {
    auto t0 = Clock::now();
    StepResult step = ex.run(r.program, data);
    times.push_back(seconds_since(t0));
    if (k == 0) {
      check = check_promises(*m.tape, *backend, step, r.predicted, reference, budget);
      measured = step.report;
      loss = step.loss ? step.loss->at(0) : 0;
      if (!o.save_grads.empty()) {
        std::map<int, HostArray> gradients;
        for (const auto& [id, g] : step.gradients) gradients[id] = backend->download(g);
        save_gradients_npy(imported, gradients, o.save_grads);
      }
    }
  }
  Json j = plan_json(r);
  j["model"] = m.spec;
  j["device"] = o.device;
  j["threads"] = cpu_threads();
  j["budget_bytes"] = optional_json(budget);
  j["peak_bytes_measured"] = measured.peak_bytes;
  j["peak_bytes_predicted"] = r.predicted.peak_bytes;
  j["recomputed_ops_measured"] = measured.recomputed_ops;
  j["step_seconds_median"] = median(times);
  j["grad_max_abs_diff"] = check->gradient_max_abs_diff;
  j["grads_bitwise_equal"] = check->gradients_bitwise_equal;
  j["promises_hold"] = check->ok();
  j["loss"] = loss;
  if (o.json) std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  else print_object(j, std::cout);
  if (!check->ok()) {
    for (const auto& b : check->broken) std::cerr << "[run] promise broken: " << b << "\n";
    return 4;
  }
  return 0;
}

namespace {

struct CompareRow {
  std::string strategy, setting;
  std::optional<std::size_t> budget;
  std::string budget_text;
  bool feasible = false;
  std::size_t min_feasible = 0;
  PlanReport plan;
  StepReport measured;
  PromiseCheck check;
  std::vector<double> times;
  double step_seconds_median = 0, time_overhead = 0;
  bool least = false;  // planned at its own smallest feasible budget (--budgets least)
};

}  // namespace

int command_compare(const CompareOptions& o) {
  if (o.repeat < 1 || o.repeat > 100000)
    throw Error(fmt::format("[compare] --repeat must be between 1 and 100000, got {}", o.repeat));
  if (!o.plot.empty() && o.csv.empty()) throw Error("[compare] --plot needs --csv (the plot is drawn from the CSV)");
  // Outputs first: a missing folder or an unwritable path fails before any compute.
  OutputFile csv("compare", "--csv", o.csv);
  OutputFile plot_check("compare", "--plot", o.plot);
  apply_threads("compare", o.threads);
  // "least" in --budgets: each strategy at its own smallest feasible budget.
  std::vector<BudgetSpec> specs;
  bool least = false;
  for (const auto& item : split(o.budgets, ',')) {
    if (item == "least") least = true;
    else specs.push_back(parse_budget(item));
  }
  std::vector<const StrategyInfo*> chosen;
  if (o.strategies.empty()) {
    for (const auto& row : strategy_registry())
      if (!row.solver) chosen.push_back(&row);  // solvers (checkmate) only when named in --strategies
  } else {
    for (const auto& name : split(o.strategies, ',')) chosen.push_back(&strategy_info(name));
  }
  Model m = model_for("compare", o.model, o.onnx);
  auto backend = make_backend(o.device, *m.tape);
  Bindings data = m.batch(0);
  const Tape& tape = *m.tape;
  const std::size_t store_all_peak = store_all_peak_of(m);

  // The rows: store-all once (the baseline), then each strategy at each budget, or at
  // its default; strategies whose default is store-all get sqrt's peak as the budget.
  std::vector<CompareRow> rows;
  rows.push_back({"store-all", "every value kept", std::nullopt, "-"});
  if (specs.empty() && !least) {
    const std::size_t sqrt_peak = plan(*make_strategy("sqrt"), PlanRequest{tape, m.loss.id, Budget{}}).predicted.peak_bytes;
    for (const StrategyInfo* info : chosen) {
      if (info->name == "store-all") continue;
      if (info->compared_at_sqrt_peak) rows.push_back({info->name, "budget = sqrt's peak", sqrt_peak, std::to_string(sqrt_peak)});
      else rows.push_back({info->name, info->default_setting, std::nullopt, "-"});
    }
  } else {
    for (const auto& spec : specs)
      for (const StrategyInfo* info : chosen) {
        if (info->name == "store-all") continue;
        const std::size_t b = spec.resolve(store_all_peak);
        rows.push_back({info->name, "budget " + spec.text, b, spec.text});
      }
    if (least)
      for (const StrategyInfo* info : chosen)
        if (info->name != "store-all") {
          rows.push_back({info->name, "least feasible budget", std::nullopt, "least"});
          rows.back().least = true;
        }
  }

  ReferenceStep reference = reference_step(tape, m.loss.id, *backend, data);
  Executor ex(tape, *backend);
  for (std::size_t k = 0; k < rows.size(); ++k) {
    CompareRow& row = rows[k];
    std::cerr << fmt::format("[compare] {}/{} {} ({})\n", k + 1, rows.size(), row.strategy, row.setting);
    try {
      const StrategyInfo& info = strategy_info(row.strategy);
      auto strategy = info.make(strategy_options_for("compare", info, {}, {}, {}, o.time_limit));
      if (row.least) {  // a one-byte budget is refused with the smallest feasible one, which is then planned
        try {
          row.plan = plan(*strategy, PlanRequest{tape, m.loss.id, Budget{std::size_t{1}}});
          row.budget = row.plan.predicted.peak_bytes;
        } catch (const InfeasibleBudget& e) {
          row.budget = e.min_feasible_bytes;
        }
        row.budget_text = std::to_string(*row.budget);
      }
      row.plan = plan(*strategy, PlanRequest{tape, m.loss.id, Budget{row.budget}});
      row.feasible = true;
    } catch (const InfeasibleBudget& e) {
      row.min_feasible = e.min_feasible_bytes;
      continue;
    }
    ex.run(row.plan.program, data);  // warm-up
    StepResult step = ex.run(row.plan.program, data);
    row.measured = step.report;
    row.check = check_promises(tape, *backend, step, row.plan.predicted, reference, row.budget);
  }
  // Timed rounds, interleaved: every feasible program once per round.
  for (int round = 0; round < o.repeat; ++round)
    for (auto& row : rows) {
      if (!row.feasible) continue;
      auto t0 = Clock::now();
      ex.run(row.plan.program, data);
      row.times.push_back(seconds_since(t0));
    }
  for (auto& row : rows) {
    if (!row.feasible) continue;
    row.step_seconds_median = median(row.times);
    std::vector<double> ratios;
    for (std::size_t r = 0; r < row.times.size(); ++r) ratios.push_back(row.times[r] / rows[0].times[r]);
    row.time_overhead = median(ratios) - 1;
  }

  // The table (stderr when stdout carries the JSON object), the JSON, the CSV.
  std::ostream& table = o.json ? std::cerr : std::cout;
  bool promises_hold = true;
  table << fmt::format("remat compare: {} on {} ({} threads); store-all peak {} bytes\n", m.spec, o.device, cpu_threads(),
                       store_all_peak);
  table << fmt::format("{:<12} {:<26} {:>14} {:>14} {:>10} {:>9} {:>9} {:>9} {:>7}\n", "strategy", "setting",
                       "peak measured", "peak planned", "recomputed", "step ms", "overhead", "planned", "grads");
  Json jrows = Json::array();
  if (csv)
    csv.open() << "strategy,setting,budget_bytes,feasible,min_feasible_budget,peak_bytes_measured,peak_bytes_predicted,"
                    "recomputed_ops,step_seconds_median,time_overhead,planned_overhead,grads_bitwise_equal\n";
  for (const auto& r : rows) {
    const std::string label = r.feasible && r.setting != r.plan.setting && !r.plan.setting.empty()
                                  ? r.setting + ": " + r.plan.setting
                                  : r.setting;
    if (!r.feasible) {
      table << fmt::format("{:<12} {:<26} infeasible: smallest feasible budget {} bytes\n", r.strategy, r.setting,
                           r.min_feasible);
    } else {
      promises_hold &= r.check.ok();
      table << fmt::format("{:<12} {:<26} {:>14} {:>14} {:>10} {:>9.1f} {:>8.1f}% {:>8.1f}% {:>7}\n", r.strategy,
                           r.setting.substr(0, 26), r.measured.peak_bytes, r.plan.predicted.peak_bytes,
                           r.measured.recomputed_ops, r.step_seconds_median * 1e3, r.time_overhead * 100,
                           r.plan.planned_overhead() * 100, r.check.gradients_bitwise_equal ? "equal" : "DIFFER");
      for (const auto& b : r.check.broken) table << "  promise broken: " << b << "\n";
    }
    auto cell = [&](auto v) { return r.feasible ? fmt::format("{}", v) : std::string(); };
    if (csv)
      csv.stream() << fmt::format("{},\"{}\",{},{},{},{},{},{},{},{},{},{}\n", r.strategy, label,
                                  r.budget ? std::to_string(*r.budget) : "", r.feasible,
                                  r.feasible ? "" : std::to_string(r.min_feasible), cell(r.measured.peak_bytes),
                                  cell(r.plan.predicted.peak_bytes), cell(r.measured.recomputed_ops),
                                  cell(r.step_seconds_median), cell(r.time_overhead), cell(r.plan.planned_overhead()),
                                  cell(r.check.gradients_bitwise_equal));
    auto measured = [&](Json v) { return r.feasible ? v : Json(nullptr); };
    jrows.push_back({{"strategy", r.strategy},
                     {"setting", label},
                     {"budget_bytes", optional_json(r.budget)},
                     {"feasible", r.feasible},
                     {"min_feasible_budget", r.feasible ? Json(nullptr) : Json(r.min_feasible)},
                     {"peak_bytes_measured", measured(r.measured.peak_bytes)},
                     {"peak_bytes_predicted", measured(r.plan.predicted.peak_bytes)},
                     {"recomputed_ops", measured(r.measured.recomputed_ops)},
                     {"step_seconds_median", measured(r.step_seconds_median)},
                     {"time_overhead", measured(r.time_overhead)},
                     {"planned_overhead", measured(r.plan.planned_overhead())},
                     {"grads_bitwise_equal", measured(r.check.gradients_bitwise_equal)},
                     {"promises_hold", measured(r.check.ok())}});
  }
  csv.close();
  if (o.json)
    std::cout << Json{{"model", m.spec}, {"device", o.device}, {"threads", cpu_threads()},
                      {"store_all_peak_bytes", store_all_peak}, {"rows", jrows}}
                     .dump(-1, ' ', false, Json::error_handler_t::replace)
              << "\n";
  if (!o.plot.empty()) {
    int rc = run_process({"/usr/bin/python3", std::string(REMAT_SOURCE_DIR) + "/experiments/plots/compare_plot.py", o.csv,
                          o.plot, m.spec});
    if (rc != 0)
      throw Error(fmt::format("[compare] the plot script failed (exit {}) drawing '{}' (is python3-matplotlib "
                              "installed? ./scripts/install_deps.sh installs it)",
                              rc, o.plot));
    std::cerr << "[compare] wrote " << o.plot << "\n";
  }
  if (!promises_hold) {
    std::cerr << "[compare] promise broken: see the rows above\n";
    return 4;
  }
  return 0;
}

}  // namespace remat
