// Contract: plan, simulate and execute strategies on one model, the way every paper
// driver needs it, and check the three promises on every real execution.
//  - ModelBench owns a model, its batch for step 0, its store-all baseline and (lazily)
//    one ChainView (analytic or profiled costs). Chain strategies are planned on that
//    one view: schedule() -> lower_schedule() -> simulate(), the same path as
//    ChainStrategy::plan() but without re-cutting (and re-profiling) the graph per call,
//    so every strategy of a run sees the same measured costs. greedy goes through
//    Strategy::plan(). A plan whose simulated peak passes the budget is infeasible.
//  - plan() never throws for an infeasible budget or a strategy error (greedy
//    thrashing): it returns an Outcome with status infeasible (and the smallest
//    feasible budget the strategy named) or failed (and the message).
//  - execute() runs store-all once as the gradient reference, then each feasible
//    Outcome once, checked: gradients bitwise equal to store-all, measured peak and
//    recomputed ops equal to the simulation, peak within the budget. A broken promise
//    prints "[<source>] promise broken: ..." and counts in broken_promises(). Then
//    `repeat` timed rounds run store-all and every program round-robin (interleaved,
//    so drift on a shared machine hits all alike); times are medians, and the
//    measured overhead is the median over rounds of t(program) / t(store-all) - 1.
//  - profile_node_times()/profiled_program_seconds(): per-node forward and backward
//    times from timed store-all runs (medians), and the time a Program would take
//    if every instruction cost its profiled time (any strategy, greedy included).
// Header-only (see results.hpp).
#pragma once

#include "experiments/common/results.hpp"
#include "models/models.hpp"
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
  std::int64_t planned_time = 0;       // analytic_program_time (roofline, backward = 2x forward)
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

class ModelBench {
 public:
  ModelBench(const std::string& spec, const std::string& source, CostSource costs = CostSource::analytic)
      : ModelBench(build_model(spec), source, costs) {}
  ModelBench(Model model, const std::string& source, CostSource costs = CostSource::analytic)
      : model_(std::move(model)), source_(source), costs_(costs) {
    data_ = model_.batch(0);
    store_all_ = store_all_program(tape(), loss());
    store_all_peak_ = simulate(tape(), store_all_).peak_bytes;
    store_all_time_ = analytic_program_time(tape(), store_all_);
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

  // The chain view every chain strategy of this bench is planned on (built once).
  const ChainView& view() {
    if (!view_) {
      ChainViewOptions o;
      o.costs = costs_;
      o.bindings = &data_;
      view_ = chain_view(tape(), loss(), o);
    }
    return *view_;
  }

  Outcome plan(const Attempt& attempt) {
    Outcome out;
    out.attempt = attempt;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      auto strategy = make_strategy(attempt.strategy, attempt.options);
      if (attempt.strategy == "store-all") {
        out.program = store_all_;
        out.stage = simulate_schedule(view().chain, store_all_schedule(view().chain));
      } else if (auto* cs = dynamic_cast<const ChainStrategy*>(strategy.get())) {
        Schedule s = cs->schedule(view().chain, Budget{attempt.budget});
        out.stage = simulate_schedule(view().chain, s);
        out.program = lower_schedule(tape(), view(), s, attempt.strategy);
      } else {
        out.program = strategy->plan(tape(), loss(), Budget{attempt.budget});
      }
      out.predicted = simulate(tape(), out.program);
      if (attempt.budget && out.predicted.peak_bytes > *attempt.budget) {
        out.status = Status::infeasible;
        out.min_feasible_bytes = out.predicted.peak_bytes;
      }
    } catch (const InfeasibleBudget& e) {
      out.status = Status::infeasible;
      out.min_feasible_bytes = e.min_feasible_bytes;
    } catch (const Error& e) {
      out.status = Status::failed;
      out.error = e.what();
    }
    out.plan_seconds = seconds_between(t0, std::chrono::steady_clock::now());
    if (out.feasible()) {
      out.planned_time = analytic_program_time(tape(), out.program);
      out.planned_overhead = static_cast<double>(out.planned_time) / static_cast<double>(store_all_time_) - 1.0;
    } else {
      out.program = Program{};
    }
    return out;
  }

  // Runs each feasible outcome once (checked) and then `repeat` interleaved timed rounds.
  void execute(const std::vector<Outcome*>& outcomes, int repeat, bool record_trace = false) {
    Executor ex(tape(), cpu_);
    if (reference_.empty()) {
      StepResult r = ex.run(store_all_, data_);
      check_report("store-all", r.report, simulate(tape(), store_all_), std::nullopt);
      for (auto& [id, t] : r.gradients) reference_.emplace(id, cpu_.download(t));
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
      o->grads_bitwise_equal = r.gradients.size() == reference_.size();
      for (auto& [id, t] : r.gradients) {
        HostArray g = cpu_.download(t);
        auto it = reference_.find(id);
        o->grads_bitwise_equal &= it != reference_.end() && g.bytes.size() == it->second.bytes.size() &&
                                  std::memcmp(g.bytes.data(), it->second.bytes.data(), g.bytes.size()) == 0;
      }
      std::string label = attempt_label(*o);
      o->promises_hold = check_report(label, o->measured, o->predicted, o->attempt.budget);
      if (!o->grads_bitwise_equal) {
        std::cerr << fmt::format("[{}] promise broken: {}: gradients differ from store-all\n", source_, label);
        ++broken_promises();
        o->promises_hold = false;
      }
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

  bool check_report(const std::string& label, const StepReport& measured, const StepReport& predicted,
                    std::optional<std::size_t> budget) {
    bool ok = true;
    auto broken = [&](const std::string& what) {
      std::cerr << fmt::format("[{}] promise broken: {}: {}\n", source_, label, what);
      ++broken_promises();
      ok = false;
    };
    if (measured.peak_bytes != predicted.peak_bytes)
      broken(fmt::format("measured peak {} bytes != simulated peak {} bytes", measured.peak_bytes, predicted.peak_bytes));
    if (measured.recomputed_ops != predicted.recomputed_ops)
      broken(fmt::format("measured recomputed ops {} != simulated {}", measured.recomputed_ops, predicted.recomputed_ops));
    if (budget && measured.peak_bytes > *budget)
      broken(fmt::format("measured peak {} bytes exceeds the budget {} bytes", measured.peak_bytes, *budget));
    return ok;
  }

  Model model_;
  std::string source_;
  CostSource costs_;
  Bindings data_;
  Program store_all_;
  std::size_t store_all_peak_ = 0;
  std::int64_t store_all_time_ = 0;
  std::optional<ChainView> view_;
  CpuBackend cpu_;
  std::map<int, HostArray> reference_;
  double store_all_median_ = std::nan("");
};

// ---- profiled node times ----

struct NodeTimes {
  std::vector<double> forward_seconds, backward_seconds;  // by node id; 0 for nodes never run
};

inline NodeTimes profile_node_times(ModelBench& bench, int repeat) {
  const Tape& tape = bench.tape();
  const Program& p = bench.store_all();
  Executor ex(tape, bench.backend());
  RunOptions o;
  o.record_times = true;
  ex.run(p, bench.data());  // warm-up
  std::vector<std::vector<double>> fw(tape.size()), bw(tape.size());
  for (int k = 0; k < std::max(1, repeat); ++k) {
    StepResult r = ex.run(p, bench.data(), o);
    for (std::size_t i = 0; i < p.instructions.size(); ++i) {
      const Instruction& ins = p.instructions[i];
      auto n = static_cast<std::size_t>(ins.node);
      if (ins.kind == InstructionKind::compute) fw[n].push_back(r.report.instruction_seconds.at(i));
      if (ins.kind == InstructionKind::backward) bw[n].push_back(r.report.instruction_seconds.at(i));
    }
  }
  NodeTimes t;
  t.forward_seconds.assign(tape.size(), 0.0);
  t.backward_seconds.assign(tape.size(), 0.0);
  for (std::size_t n = 0; n < tape.size(); ++n) {
    if (!fw[n].empty()) t.forward_seconds[n] = median(fw[n]);
    if (!bw[n].empty()) t.backward_seconds[n] = median(bw[n]);
  }
  return t;
}

inline double profiled_program_seconds(const NodeTimes& t, const Program& p) {
  double s = 0;
  for (const Instruction& ins : p.instructions) {
    auto n = static_cast<std::size_t>(ins.node);
    if (ins.kind == InstructionKind::compute) s += t.forward_seconds.at(n);
    if (ins.kind == InstructionKind::backward) s += t.backward_seconds.at(n);
  }
  return s;
}

// Fractions of `full` as byte budgets (rounded down).
inline std::size_t fraction_of(std::size_t full, double fraction) {
  return static_cast<std::size_t>(fraction * static_cast<double>(full));
}

inline Cell optional_cell(bool present, Cell value) { return present ? value : Cell{}; }

}  // namespace remat::papers
