// Contract: the remat command line as a function, run_cli(argc, argv), so tests
// and the fuzzer drive exactly what the `remat` executable runs.
//   remat plan    (--chain SPEC | --model SPEC) --strategy NAME [...] [--json]   planning only
//   remat run     --model SPEC --strategy NAME [...] [--json]                    real training steps
//   remat compare [--model SPEC] [--budgets LIST] [--csv PATH] [--plot PATH]       every strategy, one table
//   remat explain --model SPEC --strategy NAME [...] [--format text|json] [--memory-csv PATH]
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

// explain's --budget: bytes as parse_budget() reads them, or "50%" of store-all's peak.
void set_explain_budget(ExplainOptions& o, const std::string& text) {
  if (text.empty()) return;
  if (text.back() != '%') {
    o.budget_bytes = parse_budget(text);
    return;
  }
  std::size_t pos = 0;
  double percent = 0;
  try {
    percent = std::stod(text.substr(0, text.size() - 1), &pos);
  } catch (...) {
    pos = 0;
  }
  if (pos == 0 || pos + 1 != text.size() || !(percent > 0))
    throw Error("[budget] cannot parse '" + text + "': expected a positive percentage of store-all's peak such as 50%");
  o.budget_fraction = percent / 100.0;
}

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
    sub->add_option("--strategy", o.strategy, "store-all, sqrt, chen-greedy, revolve, optimal, greedy")->required();
    sub->add_option("--slots", o.slots, "revolve: checkpoint slots (slot 0 holds x(0)); sqrt: segments");
    sub->add_option("--budget", o.budget, "byte budget: 1048576, 512KiB, 64MiB, 2GiB");
    sub->add_option("--heuristic", o.heuristic, "greedy: dtr, dtr-eq, dtr-local, lru, size, msps");
    sub->add_option("--dp-slots", o.dp_slots, "optimal: memory slots the budget is divided into");
    sub->add_option("--costs", o.costs, "chain costs of a model: analytic or measured");
    sub->add_flag("--json", o.json, "print one JSON object");
  };

  auto* plan = app.add_subcommand("plan", "Plan only: print the schedule's counts and planned peak");
  add_common(plan, plan_o, true);
  plan->add_flag("--program", plan_o.print_program, "also print the node-level program (models only)");

  auto* run = app.add_subcommand("run", "Run training steps and compare measured with planned memory");
  add_common(run, run_o, false);
  run->add_option("--device", run_o.device, "cpu or cuda");
  run->add_option("--repeat", run_o.repeat, "timed steps (median reported)");
  run->add_option("--threads", run_o.threads, "CPU threads for OpenMP and OpenBLAS");

  auto* compare = app.add_subcommand("compare", "Every strategy on one model: memory, recomputation and time");
  compare->add_option("--model", compare_o.model, "model SPEC");
  compare->add_option("--budgets", compare_o.budgets, "comma-separated budgets as fractions of store-all's peak (0.5) or bytes (64MiB)");
  compare->add_option("--device", compare_o.device, "cpu or cuda");
  compare->add_option("--repeat", compare_o.repeat, "timed steps per strategy (median reported)");
  compare->add_option("--threads", compare_o.threads, "CPU threads for OpenMP and OpenBLAS");
  compare->add_option("--csv", compare_o.csv, "write the table as CSV here");
  compare->add_option("--plot", compare_o.plot, "write a PNG of memory against time overhead here (needs matplotlib)");
  compare->add_flag("--json", compare_o.json, "print one JSON object");

  auto* explain = app.add_subcommand("explain", "Teach: the tape, the chain, the schedule and the program with live memory");
  explain->add_option("--model", explain_o.model, "model SPEC, e.g. mlp:layers=12,width=64,batch=16")->required();
  explain->add_option("--strategy", explain_o.strategy, "store-all, sqrt, chen-greedy, revolve, optimal, greedy")->required();
  explain->add_option("--budget", explain_budget, "byte budget (64KiB, 1MiB) or a share of store-all's peak (50%)");
  explain->add_option("--slots", explain_o.slots, "revolve: checkpoint slots (slot 0 holds x(0)); sqrt: segments");
  explain->add_option("--heuristic", explain_o.heuristic, "greedy: dtr, dtr-eq, dtr-local, lru, size, msps");
  explain->add_option("--dp-slots", explain_o.dp_slots, "optimal: memory slots the budget is divided into");
  explain->add_option("--format", explain_o.format, "text (default) or json (one object: tape, chain, schedule, program, live_bytes)");
  explain->add_option("--memory-csv", explain_o.memory_csv, "write the live bytes after each instruction, by category, as CSV");

  bool json = false;
  try {
    app.parse(argc, argv);
    json = (plan->parsed() && plan_o.json) || (run->parsed() && run_o.json) || (compare->parsed() && compare_o.json) ||
           (explain->parsed() && explain_o.format == "json");
    if (plan->parsed()) return command_plan(plan_o);
    if (run->parsed()) return command_run(run_o);
    if (explain->parsed()) {
      set_explain_budget(explain_o, explain_budget);
      return command_explain(explain_o, std::cout);
    }
    return command_compare(compare_o);
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
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    if (json) std::cout << dump_error(nlohmann::json{{"error", e.what()}}) << "\n";
    return 2;
  }
}

}  // namespace remat
