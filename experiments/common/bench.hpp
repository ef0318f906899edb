// Contract: plan, simulate and execute strategies on one model, the way every paper
// driver needs it, and check the three promises on every real execution.
//  - ModelBench owns a model, its batch for step 0, its store-all baseline and one
//    cost table (analytic, or profiled once on the bench's CPU backend), so every
//    strategy of a run sees the same costs. Every strategy is planned through the one
//    planning entry point, plan() (strategies/planning.hpp).
//  - plan() never throws for an infeasible budget or a strategy error (greedy
//    thrashing): it returns an Outcome with status infeasible (and the smallest
//    feasible budget the strategy named) or failed (and the message).
//  - execute() runs store-all once as the gradient reference, then each feasible
//    Outcome once, checked by check_promises (autodiff/promises.hpp). A broken promise
//    prints "[<source>] promise broken: ..." and counts in broken_promises(). Then
//    `repeat` timed rounds run store-all and every program round-robin (interleaved,
//    so drift on a shared machine hits all alike); times are medians, and the
//    measured overhead is the median over rounds of t(program) / t(store-all) - 1.
//  - profiled_program_seconds(): the time a Program would take if every instruction
//    cost its profiled time (any strategy, greedy included).
// Header-only (see results.hpp).
#pragma once

#include "experiments/common/results.hpp"
#include "models/models.hpp"
#include "models/onnx/onnx_import.hpp"
#include "strategies/stage_schedules.hpp"
#include "strategies/strategies.hpp"

#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

namespace remat::papers {

// OMP_NUM_THREADS, when set, is applied to OpenMP and OpenBLAS (as core_bench does).
inline int apply_thread_environment() {
  if (const char* t = std::getenv("OMP_NUM_THREADS")) {
    int n = std::atoi(t);
    if (n > 0) set_cpu_threads(n);
  }
  return cpu_threads();
}

// The whole main() of a paper driver `paper` (experiments/<paper>/): parses the
// command line (usage text `about`), applies OMP_NUM_THREADS, runs
// body(options, threads), draws the figures with experiments/<paper>/plot.py
// (unless --no-plot) and returns exit_status; any error is guarded_main's.
// Drivers that run on real models too (--onnx) say so with takes_real_models; the
// others refuse --onnx rather than ignore it.
inline int paper_main(int argc, char** argv, const std::string& paper, const std::string& about,
                      const std::function<void(const DriverOptions&, int)>& body, bool takes_real_models = false) {
  return guarded_main(paper, [&] {
    const DriverOptions options = parse_driver_options(argc, argv, paper, about);
    if (!takes_real_models && !options.onnx.empty())
      throw Error(fmt::format("[{}] --onnx: this driver runs its own models only (chen2016 and kirisame2021 take ONNX models)", paper));
    body(options, apply_thread_environment());
    run_plot(options, std::string(REMAT_SOURCE_DIR) + "/experiments/" + paper + "/plot.py");
    return exit_status(options);
  });
}

// The models of --onnx, loaded as the CLI loads them (the default loss: cross-entropy
// on a classifier's logits). An unreadable or unsupported file is the importer's Error.
inline std::vector<Model> real_models(const DriverOptions& o) {
  std::vector<Model> models;
  for (const std::string& path : o.onnx) {
    std::cerr << fmt::format("[{}] loading {}\n", o.paper, path);
    models.push_back(std::move(load_onnx(path).model));
  }
  return models;
}

struct Attempt {
  std::string strategy;                // one of strategy_names()
  std::string setting;                 // free text for tables: "budget 0.5", "5 slots", ...
  std::optional<std::size_t> budget;   // bytes; none: the strategy's own default
  StrategyOptions options;             // slots, heuristic, dp_slots (the chain options are the bench's)
};

enum class Status { ok, infeasible, failed };
inline const char* status_name(Status s) { return s == Status::ok ? "ok" : s == Status::infeasible ? "infeasible" : "failed"; }

struct Outcome {
  Attempt attempt;
  Status status = Status::ok;
  std::size_t min_feasible_bytes = 0;  // infeasible: the smallest budget the strategy named
  std::string error;                   // failed: the strategy's message
  Program program;
  StepReport predicted;                // simulate(): the plan
  std::optional<ScheduleStats> stage;  // chain strategies: the stage-level replay
  std::string setting_chosen;          // what the strategy chose (PlanReport::setting)
  std::shared_ptr<const nlohmann::json> solver;  // checkmate: status, bound, gap (PlanReport::solver)
  std::int64_t planned_time = 0;       // program_time under the bench's costs (analytic or profiled)
  double planned_overhead = 0;         // planned_time / store-all's - 1
  double plan_seconds = 0;
  bool executed = false;
  StepReport measured;                 // the checked real run
  double median_seconds = std::nan("");
  double measured_overhead = std::nan("");
  bool grads_bitwise_equal = false;
  bool promises_hold = false;
  bool feasible() const { return status == Status::ok; }
};

inline double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

enum class Costs { analytic, measured };

class ModelBench {
 public:
  ModelBench(const std::string& spec, const std::string& source, Costs costs = Costs::analytic)
      : ModelBench(build_model(spec), source, costs) {}
  ModelBench(Model model, const std::string& source, Costs costs = Costs::analytic)
      : model_(std::move(model)), source_(source) {
    data_ = model_.batch(0);
    // Costs as data: profiled once, on the backend the bench runs on, for every plan.
    costs_ = costs == Costs::measured ? profile_node_costs(tape(), loss(), cpu_, data_, 7) : analytic_node_costs(tape());
    store_all_ = store_all_program(tape(), loss());
    store_all_peak_ = simulate(tape(), store_all_).peak_bytes;
    store_all_time_ = program_time(tape(), store_all_, costs_);
  }

  const Model& model() const { return model_; }
  const Tape& tape() const { return *model_.tape; }
  int loss() const { return model_.loss.id; }
  const Bindings& data() const { return data_; }
  const std::string& spec() const { return model_.spec; }
  std::size_t store_all_peak() const { return store_all_peak_; }
  std::int64_t store_all_time() const { return store_all_time_; }
  const Program& store_all() const { return store_all_; }
  double store_all_median() const { return store_all_median_; }
  CpuBackend& backend() { return cpu_; }
  const NodeCosts& costs() const { return costs_; }

  // The chain view the chain strategies of this bench plan on (the same costs).
  const ChainView& view() {
    if (!view_) {
      ChainViewOptions o;
      o.costs = &costs_;
      view_ = chain_view(tape(), loss(), o);
    }
    return *view_;
  }

  // Plans through the one planning entry point (strategies/planning.hpp).
  Outcome plan(const Attempt& attempt) {
    Outcome out;
    out.attempt = attempt;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      auto strategy = make_strategy(attempt.strategy, attempt.options);
      PlanReport r = remat::plan(*strategy, PlanRequest{tape(), loss(), Budget{attempt.budget}, &costs_});
      out.program = std::move(r.program);
      out.predicted = r.predicted;
      if (r.stage) out.stage = r.stage->stats;
      out.planned_time = r.planned_time;
      out.setting_chosen = r.setting;
      out.solver = r.solver;
    } catch (const InfeasibleBudget& e) {
      out.status = Status::infeasible;
      out.min_feasible_bytes = e.min_feasible_bytes;
    } catch (const Error& e) {
      out.status = Status::failed;
      out.error = e.what();
    }
    out.plan_seconds = seconds_between(t0, std::chrono::steady_clock::now());
    if (out.feasible()) {
      out.planned_overhead = static_cast<double>(out.planned_time) / static_cast<double>(store_all_time_) - 1.0;
    } else {
      out.program = Program{};
    }
    return out;
  }

  // Runs each feasible outcome once (checked) and then `repeat` interleaved timed rounds.
  void execute(const std::vector<Outcome*>& outcomes, int repeat, bool record_trace = false) {
    Executor ex(tape(), cpu_);
    if (!reference_) {
      reference_ = reference_step(tape(), loss(), cpu_, data_);
      StepResult r = ex.run(store_all_, data_);
      report_broken("store-all", check_promises(tape(), cpu_, r, simulate(tape(), store_all_), *reference_, std::nullopt));
    }
    std::vector<Outcome*> runnable;
    for (Outcome* o : outcomes)
      if (o->feasible()) runnable.push_back(o);
    RunOptions options;
    options.record_trace = record_trace;
    for (Outcome* o : runnable) {
      StepResult r = ex.run(o->program, data_, options);
      o->executed = true;
      o->measured = r.report;
      const PromiseCheck check = check_promises(tape(), cpu_, r, o->predicted, *reference_, o->attempt.budget);
      o->grads_bitwise_equal = check.gradients_bitwise_equal;
      o->promises_hold = report_broken(attempt_label(*o), check);
    }
    // Timed rounds: store-all then every program, `repeat` times.
    std::vector<double> base;
    std::vector<std::vector<double>> times(runnable.size());
    for (int k = 0; k < std::max(1, repeat); ++k) {
      base.push_back(time_one(ex, store_all_));
      for (std::size_t i = 0; i < runnable.size(); ++i) times[i].push_back(time_one(ex, runnable[i]->program));
    }
    store_all_median_ = median(base);
    for (std::size_t i = 0; i < runnable.size(); ++i) {
      std::vector<double> ratios;
      for (std::size_t k = 0; k < base.size(); ++k) ratios.push_back(times[i][k] / base[k]);
      runnable[i]->median_seconds = median(times[i]);
      runnable[i]->measured_overhead = median(ratios) - 1.0;
    }
  }

  std::string attempt_label(const Outcome& o) const {
    std::string s = o.attempt.strategy;
    if (o.attempt.strategy == "greedy") s += "/" + o.attempt.options.heuristic;
    if (!o.attempt.setting.empty()) s += " (" + o.attempt.setting + ")";
    return s + " on " + model_.spec;
  }

 private:
  double time_one(Executor& ex, const Program& p) {
    auto t0 = std::chrono::steady_clock::now();
    ex.run(p, data_);
    return seconds_between(t0, std::chrono::steady_clock::now());
  }

  // Prints every broken promise of `check` and counts it; true when all hold.
  bool report_broken(const std::string& label, const PromiseCheck& check) {
    for (const auto& b : check.broken) {
      std::cerr << fmt::format("[{}] promise broken: {}: {}\n", source_, label, b);
      ++broken_promises();
    }
    return check.ok();
  }

  Model model_;
  std::string source_;
  CpuBackend cpu_;
  NodeCosts costs_;
  Bindings data_;
  Program store_all_;
  std::size_t store_all_peak_ = 0;
  std::int64_t store_all_time_ = 0;
  std::optional<ChainView> view_;
  std::optional<ReferenceStep> reference_;
  double store_all_median_ = std::nan("");
};

// The time a Program would take if every instruction cost its profiled time (seconds).
inline double profiled_program_seconds(const NodeCosts& costs, const Program& p, const Tape& tape) {
  return static_cast<double>(program_time(tape, p, costs)) * 1e-9;
}

// Fractions of `full` as byte budgets (rounded down).
inline std::size_t fraction_of(std::size_t full, double fraction) {
  return static_cast<std::size_t>(fraction * static_cast<double>(full));
}

inline Cell optional_cell(bool present, Cell value) { return present ? value : Cell{}; }

}  // namespace remat::papers
