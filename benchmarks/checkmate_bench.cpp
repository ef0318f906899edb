// Contract: checkmate's figures (printed, never timed tests). For each zoo model's training
// graph (analytic costs) and each budget (90%, 80%, 50% of the topological order's peak):
// graph size, MILP status, time to optimality or the gap at the time limit, and the cost of
// the greedy planner (plan_budget_greedy "dtr", on the graph's costs), of the heuristic warm
// start and, with --lp, of checkmate-lp, each against the optimum where it is known.
//   build/bin/checkmate_bench [--quick] [--time-limit S] [--threads N] [--lp] [--json PATH] [SPEC...]
// --quick (CI): three small graphs, a 5 s time limit.
// Default specs: graphs of 24 to 153 nodes. See docs/checkmate.md for the figures.
#include "models/models.hpp"
#include "strategies/checkmate.hpp"
#include "strategies/strategies.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

using namespace remat;

namespace {

std::string percent(double x) { return std::isfinite(x) ? fmt::format("{:.1f}%", 100 * x) : "-"; }

}  // namespace

int main(int argc, char** argv) {
  CheckmateOptions options;
  options.time_limit = 60;
  bool lp = false;
  bool quick = false;
  std::string json_path;
  std::vector<std::string> specs;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    auto value = [&]() -> std::string {
      if (a + 1 >= argc) {
        fmt::print(stderr, "[checkmate_bench] {} needs a value\n", arg);
        std::exit(2);
      }
      return argv[++a];
    };
    if (arg == "--time-limit") options.time_limit = std::atof(value().c_str());
    else if (arg == "--threads") options.threads = std::atoi(value().c_str());
    else if (arg == "--lp") lp = true;
    else if (arg == "--quick") quick = true;
    else if (arg == "--json") json_path = value();
    else if (!arg.empty() && arg[0] == '-') {
      fmt::print(stderr, "[checkmate_bench] unknown option {}\n", arg);
      return 2;
    } else specs.push_back(arg);
  }
  if (!(options.time_limit > 0)) {
    fmt::print(stderr, "[checkmate_bench] --time-limit must be > 0\n");
    return 2;
  }
  if (quick) {
    options.time_limit = std::min(options.time_limit, 5.0);
    if (specs.empty()) specs = {"unet:levels=1", "mlp:layers=4", "resnet:blocks=1"};
  }
  if (specs.empty())
    specs = {"unet:levels=1", "mlp:layers=4", "resnet:blocks=1", "unet:levels=2", "mlp:layers=8",
             "resnet:blocks=2", "resmlp:layers=8", "unet:levels=3,width=16,batch=8,image=64", "resnet:blocks=3",
             "mlp:layers=16", "transformer:layers=1", "resmlp:layers=16", "transformer:layers=2", "lstm:steps=4"};

  fmt::print("checkmate_bench: time limit {} s, {} CBC thread(s){}\n\n", options.time_limit, options.threads,
             lp ? ", with checkmate-lp" : "");
  fmt::print("| model | nodes | budget | columns | status | seconds | cost | lower bound | gap | greedy vs best | "
             "warm start vs best |{}\n",
             lp ? " LP bound | LP rounding vs best | LP seconds |" : "");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|---|{}\n", lp ? "---|---|---|" : "");
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& spec : specs) {
    Model m = build_model(spec);
    const Tape& tape = *m.tape;
    const TrainingGraph g = training_graph_from_tape(tape, m.loss.id);
    const GraphScheduleStats topo = simulate_graph_schedule(g, topological_schedule(g));
    for (double fraction : {0.9, 0.8, 0.5}) {
      const auto budget = static_cast<std::int64_t>(static_cast<double>(topo.peak) * fraction);
      nlohmann::json row = {{"model", spec}, {"nodes", g.size()}, {"fraction", fraction}, {"budget", budget}};
      double greedy = NAN;
      CheckmateOptions with_greedy = options;  // as plan_checkmate: greedy's schedule is a warm start
      try {
        Program p = plan_budget_greedy(tape, m.loss.id, static_cast<std::size_t>(budget), "dtr");
        const GraphSchedule s = graph_schedule_from_program(g, p);
        greedy = simulate_graph_schedule(g, s).cost;
        with_greedy.warm_starts.push_back(s);
      } catch (const InfeasibleBudget&) {
      }
      CheckmatePlan plan;
      try {
        plan = solve_checkmate(g, budget, with_greedy);
      } catch (const InfeasibleBudget& e) {
        fmt::print("| {} | {} | {:.0f}% | - | refused: below the largest step | - | - | - | - | - | - |{}\n", spec,
                   g.size(), 100 * fraction, lp ? " - | - | - |" : "");
        row["status"] = "refused";
        row["least_certified"] = e.min_feasible_bytes;
        rows.push_back(row);
        continue;
      }
      const double best = plan.schedule ? plan.incumbent : NAN;
      const bool known = plan.status == CheckmateStatus::optimal;
      const double warm = plan.warm_start_cost ? *plan.warm_start_cost : NAN;
      auto versus = [&](double x) {
        if (std::isnan(x)) return std::string("no plan");
        if (std::isnan(best)) return std::string("-");
        return (known ? "" : "<= ") + percent(x / best - 1);
      };
      std::string lp_cells;
      if (lp) {
        CheckmateOptions o = options;
        o.lp_relaxation = true;
        o.heuristic_warm_start = false;
        const CheckmatePlan r = solve_checkmate(g, budget, o);
        lp_cells = fmt::format(" {} | {} | {:.2f} |", r.lp_bound ? fmt::format("{:.0f}", *r.lp_bound) : "-",
                               r.schedule ? versus(r.incumbent) : "no plan", r.solve_seconds);
        row["lp_bound"] = r.lp_bound ? nlohmann::json(*r.lp_bound) : nlohmann::json(nullptr);
        row["lp_cost"] = r.schedule ? nlohmann::json(r.incumbent) : nlohmann::json(nullptr);
        row["lp_seconds"] = r.solve_seconds;
      }
      fmt::print("| {} | {} | {:.0f}% | {} | {} | {:.2f} | {} | {:.0f} | {} | {} | {} |{}\n", spec, g.size(),
                 100 * fraction, plan.columns, checkmate_status_name(plan.status), plan.solve_seconds,
                 plan.schedule ? fmt::format("{:.0f}", plan.incumbent) : "-", plan.lower_bound,
                 plan.schedule ? percent(plan.gap) : "-", versus(greedy), versus(warm), lp_cells);
      std::fflush(stdout);
      row["status"] = checkmate_status_name(plan.status);
      row["source"] = plan.source;
      row["seconds"] = plan.solve_seconds;
      row["columns"] = plan.columns;
      row["rows"] = plan.rows;
      row["cost"] = plan.schedule ? nlohmann::json(plan.incumbent) : nlohmann::json(nullptr);
      row["lower_bound"] = plan.lower_bound;
      row["gap"] = std::isfinite(plan.gap) ? nlohmann::json(plan.gap) : nlohmann::json(nullptr);
      row["greedy_cost"] = std::isnan(greedy) ? nlohmann::json(nullptr) : nlohmann::json(greedy);
      row["warm_start_cost"] = std::isnan(warm) ? nlohmann::json(nullptr) : nlohmann::json(warm);
      row["topological_cost"] = topo.cost;
      rows.push_back(row);
    }
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << rows.dump(2) << "\n";
    if (!out) {
      fmt::print(stderr, "[checkmate_bench] cannot write {}\n", json_path);
      return 1;
    }
  }
  return 0;
}
