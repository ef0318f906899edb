// Contract: the remat command line as a function, run_cli(argc, argv), so tests
// and the fuzzer drive exactly what the `remat` executable runs.
//   remat plan    (--chain SPEC | --model SPEC) --strategy NAME [...] [--json]   planning only
//   remat run     --model SPEC --strategy NAME [...] [--json]                    real training steps
//   remat compare [--model SPEC] [--budgets LIST] [--csv PATH] [--plot PATH]       every strategy, one table
//   remat explain --model SPEC --strategy NAME [...] [--format text|json] [--memory-csv PATH]
// Wherever --model SPEC is accepted, --onnx PATH [--loss L] [--inputs name=x.npy,...] may
// stand instead (models/onnx/onnx_import.hpp); `run --save-grads DIR` writes the gradients.
//                                                    the teaching view: tape, chain, schedule, program, memory
// Bad input prints "[source] message" on stderr and returns non-zero (2: usage or
// input, 3: infeasible budget, 4: a broken promise); with --json the same error
// is also printed as a JSON object {"error": ..., "min_feasible_budget": ...}.
#include "experiments/cli/commands.hpp"
#include "experiments/cli/explain.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

namespace remat {
namespace {

// Error objects may quote the user's bytes (a model spec, a path), which need not be
// valid UTF-8: replace what is not, rather than let dump() throw in an error path.
std::string dump_error(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

// "store-all, sqrt, ..." with each one's summary, for --strategy's help.
std::string strategy_help() {
  std::string s = "one of:";
  for (const auto& row : strategy_registry()) s += "\n  " + row.name + ": " + row.summary + " (default: " + row.default_setting + ")";
  return s;
}

const char* loss_help = "with --onnx: the loss on the graph's output: cross-entropy (vs i32 'labels'; the default for a "
                        "(N, classes) output), mse (vs 'target') or sum";
const char* inputs_help = "with --onnx: name=file.npy,... binds graph inputs (and 'labels', int32, or 'target') from .npy files";
const char* budget_help = "bytes (1048576, 512KiB, 64MiB, 2GiB) or a percentage of store-all's peak (60%)";

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"remat: reverse-mode autodiff with pluggable rematerialization strategies"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print help for all subcommands");

  CommonOptions plan_o, run_o;
  CompareOptions compare_o;
  ExplainOptions explain_o;
  std::string explain_budget;

  auto add_common = [](CLI::App* sub, CommonOptions& o, bool with_chain) {
    if (with_chain) sub->add_option("--chain", o.chain, "uniform:n=N or file:PATH (a rotor chain JSON file)");
    sub->add_option("--model", o.model, "model SPEC, e.g. mlp:layers=100,width=512,batch=256,act=relu");
    sub->add_option("--onnx", o.onnx.path, "an ONNX model file instead of --model (static shapes, training-mode export)");
    sub->add_option("--loss", o.onnx.loss, loss_help);
    sub->add_option("--inputs", o.onnx.inputs, inputs_help);
    sub->add_option("--strategy", o.strategy, strategy_help())->required();
    sub->add_option("--slots", o.slots, "revolve: checkpoint slots (slot 0 holds x(0)); sqrt: segments");
    sub->add_option("--budget", o.budget, budget_help);
    sub->add_option("--heuristic", o.heuristic, "greedy: dtr, dtr-eq, dtr-local, lru, size, msps");
    sub->add_option("--dp-slots", o.dp_slots, "optimal: memory slots of its DP (a tape: 1000; a chain file: exact units)");
    sub->add_option("--costs", o.costs, "per-node costs of a model: analytic (roofline) or measured (profiled on --device)");
    sub->add_option("--device", o.device, "cpu or cuda: where run executes and where --costs measured profiles");
    sub->add_option("--time-limit", o.time_limit, "seconds of planning (default 60): longer plans are refused or stopped");
    sub->add_flag("--json", o.json, "print one JSON object");
  };

  auto* plan = app.add_subcommand("plan", "Plan only: print the plan report (planned peak, recomputation, time)");
  add_common(plan, plan_o, true);
  plan->add_option("--graph", plan_o.graph,
                   "file:PATH: a training graph in node-link JSON (Checkmate, Moccasin); budgets in its cost_ram units");
  plan->add_option("--export-graph", plan_o.export_graph,
                   "write the training graph of --model, --chain or --graph as node-link JSON to PATH");
  plan->add_flag("--program", plan_o.print_program, "also print the node-level program (models only; in the JSON with --json)");
  plan->add_option("--optimizer", plan_o.optimizer, "models: sgd (no state) or adam (two moments per trainable element)");
  plan->add_option("--master-weights", plan_o.master_weights, "models: f32 keeps f32 master copies of 16-bit trainable weights");
  plan->add_option("--budget-total", plan_o.budget_total,
                   "models: bytes (24GiB) of device memory in all; the activations get what weights, gradients and "
                   "optimizer state leave");

  auto* run = app.add_subcommand("run", "Run training steps and check measured against planned memory");
  add_common(run, run_o, false);
  run->add_option("--repeat", run_o.repeat, "timed steps after a warm-up (median reported)");
  run->add_option("--threads", run_o.threads, "CPU threads for OpenMP and OpenBLAS");
  run->add_option("--save-grads", run_o.save_grads,
                  "with --onnx: write DIR/<initializer>.npy, the gradient of every parameter (DIR must exist)");

  auto* compare = app.add_subcommand("compare", "Every strategy on one model: memory, recomputation and time");
  auto* compare_model = compare->add_option("--model", compare_o.model, "model SPEC");
  compare->add_option("--onnx", compare_o.onnx.path, "an ONNX model file instead of --model");
  compare->add_option("--loss", compare_o.onnx.loss, loss_help);
  compare->add_option("--inputs", compare_o.onnx.inputs, inputs_help);
  compare->add_option("--budgets", compare_o.budgets, std::string("comma-separated budgets, each ") + budget_help + ", or least (each strategy at its own smallest feasible budget)");
  compare->add_option("--strategies", compare_o.strategies, "comma-separated strategies (default: every strategy but the time-limited solvers checkmate and checkmate-lp)");
  compare->add_option("--device", compare_o.device, "cpu or cuda");
  compare->add_option("--repeat", compare_o.repeat, "timed rounds over every strategy, interleaved (median reported)");
  compare->add_option("--threads", compare_o.threads, "CPU threads for OpenMP and OpenBLAS");
  compare->add_option("--time-limit", compare_o.time_limit, "seconds of planning per strategy (default 60)");
  compare->add_option("--csv", compare_o.csv, "write the table as CSV here");
  compare->add_option("--plot", compare_o.plot, "write a PNG of memory against time overhead here (needs --csv and matplotlib)");
  compare->add_flag("--json", compare_o.json, "print one JSON object on stdout (the table goes to stderr)");

  auto* explain = app.add_subcommand("explain", "Teach: the tape, the chain, the schedule and the program with live memory");
  auto* explain_model = explain->add_option("--model", explain_o.model, "model SPEC, e.g. mlp:layers=12,width=64,batch=16");
  auto* explain_onnx = explain->add_option("--onnx", explain_o.onnx, "an ONNX model file instead of --model");
  explain_model->excludes(explain_onnx);
  explain->add_option("--loss", explain_o.loss, loss_help);
  explain->add_option("--strategy", explain_o.strategy, strategy_help())->required();
  explain->add_option("--budget", explain_budget, budget_help);
  explain->add_option("--slots", explain_o.slots, "revolve: checkpoint slots (slot 0 holds x(0)); sqrt: segments");
  explain->add_option("--heuristic", explain_o.heuristic, "greedy: dtr, dtr-eq, dtr-local, lru, size, msps");
  explain->add_option("--dp-slots", explain_o.dp_slots, "optimal: memory slots of its DP");
  explain->add_option("--time-limit", explain_o.time_limit, "seconds of planning (default 60)");
  explain->add_option("--format", explain_o.format, "text (default) or json (one object: tape, chain, schedule, program, live_bytes)");
  explain->add_option("--memory-csv", explain_o.memory_csv, "write the live bytes after each instruction, by category, as CSV");
  explain->add_flag("--values", explain_o.values, "evaluate on the model's first batch and print the reverse sweep with numbers");

  bool json = false;
  try {
    app.parse(argc, argv);
    if (compare->parsed() && !compare_o.onnx.path.empty() && compare_model->count() == 0) compare_o.model.clear();
    json = (plan->parsed() && plan_o.json) || (run->parsed() && run_o.json) || (compare->parsed() && compare_o.json) ||
           (explain->parsed() && explain_o.format == "json");
    int code = 0;
    if (plan->parsed()) code = command_plan(plan_o);
    else if (run->parsed()) code = command_run(run_o);
    else if (explain->parsed()) {
      if (!explain_budget.empty()) explain_o.budget = parse_budget(explain_budget);
      code = command_explain(explain_o, std::cout);
    } else code = command_compare(compare_o);
    std::cout.flush();
    if (!std::cout) {
      std::cerr << "[remat] writing to standard output failed (is the disk full or the pipe closed?)\n";
      return 2;
    }
    return code;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "[remat] " << e.what() << "\n(run `remat --help` or `remat <command> --help`)\n";
    for (int i = 1; i < argc; ++i)
      if (std::string(argv[i]) == "--json" || std::string(argv[i]) == "--format=json" ||
          (std::string(argv[i]) == "--format" && i + 1 < argc && std::string(argv[i + 1]) == "json"))
        std::cout << dump_error(nlohmann::json{{"error", std::string("[remat] ") + e.what()}}) << "\n";
    return 2;
  } catch (const InfeasibleBudget& e) {
    std::cerr << e.what() << "\n";
    if (json)
      std::cout << dump_error(nlohmann::json{{"error", e.what()}, {"feasible", false}, {"min_feasible_budget", e.min_feasible_bytes}})
                << "\n";
    return 3;
  } catch (const std::bad_alloc&) {
    const std::string message =
        "[remat] out of memory: the model, chain or plan asked for more than this machine has (use smaller sizes)";
    std::cerr << message << "\n";
    if (json) std::cout << dump_error(nlohmann::json{{"error", message}}) << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    if (json) std::cout << dump_error(nlohmann::json{{"error", e.what()}}) << "\n";
    return 2;
  }
}

}  // namespace remat
