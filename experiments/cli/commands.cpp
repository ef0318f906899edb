// Contract: the plan, run and compare commands (see commands.hpp). `run` checks
// the promises in the same process: gradients bitwise equal to store-all and
// measured peak equal to the simulated peak; a broken promise exits 4.
#include "experiments/cli/commands.hpp"

#include "experiments/common/subprocess.hpp"
#include "gpu/cuda_backend.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>

namespace remat {

std::size_t parse_budget(const std::string& text) {
  auto fail = [&] {
    throw Error("[budget] cannot parse '" + text + "': expected bytes such as 1048576, 512KiB, 64MiB or 2GiB");
  };
  if (text.empty()) fail();
  std::size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (...) {
    fail();
  }
  std::string unit = text.substr(pos);
  double scale = 1;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KiB" || unit == "K" || unit == "KB") scale = 1024.0;
  else if (unit == "MiB" || unit == "M" || unit == "MB") scale = 1024.0 * 1024;
  else if (unit == "GiB" || unit == "G" || unit == "GB") scale = 1024.0 * 1024 * 1024;
  else fail();
  double bytes = value * scale;
  if (!(bytes > 0) || !std::isfinite(bytes)) throw Error("[budget] '" + text + "' must be a positive number of bytes");
  if (bytes > 1e18) throw Error("[budget] '" + text + "' is too large");
  return static_cast<std::size_t>(std::ceil(bytes));
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

StrategyOptions strategy_options(const CommonOptions& o) {
  StrategyOptions s;
  s.slots = o.slots;
  s.heuristic = o.heuristic;
  if (o.dp_slots < 1) throw Error("[optimal] --dp-slots must be at least 1");
  s.dp_slots = o.dp_slots;
  if (o.costs == "analytic") s.chain.costs = CostSource::analytic;
  else if (o.costs == "measured") s.chain.costs = CostSource::measured;
  else throw Error("[remat] --costs must be analytic or measured, got '" + o.costs + "'");
  return s;
}

std::unique_ptr<Backend> make_backend(const std::string& device) {
  if (device == "cpu") return std::make_unique<CpuBackend>();
  if (device == "cuda") {
    if (!cuda_built()) return make_cuda_backend();  // throws the built-without-CUDA message
    if (cuda_device_count() == 0) throw Error("[cuda] no CUDA device is present on this machine; use --device cpu");
    return make_cuda_backend();
  }
  throw Error("[remat] --device must be cpu or cuda, got '" + device + "'");
}

nlohmann::json optional_bytes(const std::optional<std::size_t>& b) {
  return b ? nlohmann::json(*b) : nlohmann::json(nullptr);
}

// One strategy executed for `repeat` steps on the same batch, against a store-all reference.
struct Execution {
  StepReport predicted, measured;
  double step_seconds_median = 0;
  double grad_max_abs_diff = 0;
  bool grads_bitwise_equal = true;
  double loss = 0;
};

std::map<int, HostArray> store_all_gradients(Backend& backend, const Model& m, const Bindings& data) {
  Executor ex(*m.tape, backend);
  auto r = ex.run(store_all_program(*m.tape, m.loss.id), data);
  std::map<int, HostArray> g;
  for (auto& [id, t] : r.gradients) g.emplace(id, backend.download(t));
  return g;
}

Execution execute(Backend& backend, const Model& m, const Program& p, const Bindings& data,
                  const std::map<int, HostArray>& reference, int repeat) {
  Execution e;
  e.predicted = simulate(*m.tape, p);
  Executor ex(*m.tape, backend);
  std::vector<double> times;
  ex.run(p, data);  // warm-up: first-touch page faults and thread start-up are not the strategy's cost
  for (int k = 0; k < std::max(1, repeat); ++k) {
    auto t0 = Clock::now();
    StepResult r = ex.run(p, data);
    times.push_back(seconds_since(t0));
    if (k == 0) {
      e.measured = r.report;
      e.loss = r.loss ? r.loss->at(0) : 0;
      for (auto& [id, t] : r.gradients) {
        HostArray g = backend.download(t);
        const HostArray& ref = reference.at(id);
        e.grads_bitwise_equal &= std::memcmp(g.bytes.data(), ref.bytes.data(), g.bytes.size()) == 0;
        for (std::int64_t i = 0; i < g.numel(); ++i) e.grad_max_abs_diff = std::max(e.grad_max_abs_diff, std::abs(g.at(i) - ref.at(i)));
      }
    }
  }
  e.step_seconds_median = median(times);
  return e;
}

void apply_threads(int threads) {
  if (threads > 0) set_cpu_threads(threads);
}

}  // namespace

int command_plan(const CommonOptions& o) {
  if (o.chain.empty() == o.model.empty()) throw Error("[plan] give exactly one of --chain or --model");
  auto strategy = make_strategy(o.strategy, strategy_options(o));
  std::optional<std::size_t> budget;
  if (!o.budget.empty()) budget = parse_budget(o.budget);
  nlohmann::json j;
  j["strategy"] = o.strategy;
  j["budget_bytes"] = optional_bytes(budget);

  if (!o.chain.empty()) {
    auto* chain_strategy = dynamic_cast<ChainStrategy*>(strategy.get());
    if (!chain_strategy)
      throw Error("[plan] strategy '" + o.strategy + "' works on node-level graphs: use --model SPEC instead of --chain");
    Chain chain = Chain::parse_spec(o.chain);
    auto t0 = Clock::now();
    Schedule s = chain_strategy->schedule(chain, Budget{budget});
    double plan_seconds = seconds_since(t0);
    ScheduleStats st = simulate_schedule(chain, s);
    if (budget && st.peak_memory > static_cast<std::int64_t>(*budget))
      throw InfeasibleBudget(fmt::format("[{}] budget {} is infeasible: the schedule peaks at {}; the smallest feasible "
                                         "budget is {}",
                                         o.strategy, *budget, st.peak_memory, st.peak_memory),
                             static_cast<std::size_t>(st.peak_memory));
    j["chain"] = chain.name;
    j["stages"] = chain.length();
    j["forward_steps"] = st.forward_steps;
    j["recomputed_steps"] = st.recomputed_steps;
    j["makespan"] = st.makespan;
    j["peak_bytes"] = st.peak_memory;
    j["feasible"] = true;
    j["plan_seconds"] = plan_seconds;
  } else {
    Model m = build_model(o.model);
    // Measured chain costs come from a profiled store-all step on the first batch.
    StrategyOptions so = strategy_options(o);
    Bindings data;
    if (so.chain.costs == CostSource::measured) {
      data = m.batch(0);
      so.chain.bindings = &data;
      strategy = make_strategy(o.strategy, so);
    }
    auto t0 = Clock::now();
    Program p = strategy->plan(*m.tape, m.loss.id, Budget{budget});
    double plan_seconds = seconds_since(t0);
    StepReport predicted = simulate(*m.tape, p);
    ChainView view = chain_view(*m.tape, m.loss.id, so.chain);
    j["model"] = m.spec;
    j["stages"] = view.chain.length();
    if (auto* cs = dynamic_cast<ChainStrategy*>(strategy.get())) {
      ScheduleStats st = simulate_schedule(view.chain, cs->schedule(view.chain, Budget{budget}));
      j["forward_steps"] = st.forward_steps;
      j["recomputed_steps"] = st.recomputed_steps;
      j["stage_peak_bytes"] = st.peak_memory;
    } else {
      j["forward_steps"] = nullptr;
      j["recomputed_steps"] = nullptr;
    }
    j["makespan"] = analytic_program_time(*m.tape, p);
    j["peak_bytes"] = predicted.peak_bytes;
    j["forward_ops"] = predicted.forward_ops;
    j["recomputed_ops"] = predicted.recomputed_ops;
    j["backward_ops"] = predicted.backward_ops;
    j["feasible"] = true;
    j["plan_seconds"] = plan_seconds;
    if (o.print_program && !o.json) std::cout << p.to_string(*m.tape);
  }
  if (o.json) {
    std::cout << j.dump() << "\n";
  } else {
    for (auto& [k, v] : j.items()) std::cout << fmt::format("{:<20} {}\n", k, v.dump());
  }
  return 0;
}

int command_run(const CommonOptions& o) {
  if (!o.chain.empty()) throw Error("[run] --chain is for `remat plan`; `run` needs --model SPEC");
  if (o.model.empty()) throw Error("[run] --model SPEC is required");
  if (o.repeat < 1) throw Error("[run] --repeat must be at least 1");
  apply_threads(o.threads);
  auto backend = make_backend(o.device);
  auto strategy = make_strategy(o.strategy, strategy_options(o));
  std::optional<std::size_t> budget;
  if (!o.budget.empty()) budget = parse_budget(o.budget);
  Model m = build_model(o.model);
  Bindings data = m.batch(0);
  StrategyOptions so = strategy_options(o);
  so.chain.bindings = &data;  // measured chain costs profile a store-all step on this batch
  strategy = make_strategy(o.strategy, so);
  auto t0 = Clock::now();
  Program p = strategy->plan(*m.tape, m.loss.id, Budget{budget});
  double plan_seconds = seconds_since(t0);
  auto reference = store_all_gradients(*backend, m, data);
  Execution e = execute(*backend, m, p, data, reference, o.repeat);
  ChainView view = chain_view(*m.tape, m.loss.id, so.chain);

  nlohmann::json j{{"strategy", o.strategy},
                   {"model", m.spec},
                   {"device", o.device},
                   {"threads", cpu_threads()},
                   {"stages", view.chain.length()},
                   {"peak_bytes_measured", e.measured.peak_bytes},
                   {"peak_bytes_predicted", e.predicted.peak_bytes},
                   {"budget_bytes", optional_bytes(budget)},
                   {"forward_ops", e.measured.forward_ops},
                   {"recomputed_ops", e.measured.recomputed_ops},
                   {"backward_ops", e.measured.backward_ops},
                   {"step_seconds_median", e.step_seconds_median},
                   {"grad_max_abs_diff", e.grad_max_abs_diff},
                   {"grads_bitwise_equal", e.grads_bitwise_equal},
                   {"loss", e.loss},
                   {"plan_seconds", plan_seconds}};
  if (o.json) {
    std::cout << j.dump() << "\n";
  } else {
    for (auto& [k, v] : j.items()) std::cout << fmt::format("{:<22} {}\n", k, v.dump());
  }
  if (!e.grads_bitwise_equal || e.measured.peak_bytes != e.predicted.peak_bytes ||
      (budget && e.measured.peak_bytes > *budget)) {
    std::cerr << "[run] promise broken: gradients must equal store-all bit for bit and the measured peak must equal "
                 "the plan and stay within the budget\n";
    return 4;
  }
  return 0;
}

namespace {

struct CompareRow {
  std::string strategy, setting;
  std::optional<std::size_t> budget;
  bool feasible = true;
  std::size_t min_feasible = 0;
  double planned_overhead = 0;  // analytic time against store-all's, minus 1
  Execution e;
};

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

}  // namespace

int command_compare(const CompareOptions& o) {
  if (o.repeat < 1) throw Error("[compare] --repeat must be at least 1");
  apply_threads(o.threads);
  auto backend = make_backend(o.device);
  Model m = build_model(o.model);
  Bindings data = m.batch(0);
  const Tape& tape = *m.tape;
  std::size_t store_all_peak = simulate(tape, store_all_program(tape, m.loss.id)).peak_bytes;

  // Budgets: fractions of store-all's peak, or byte sizes.
  std::vector<std::optional<std::size_t>> budgets;
  for (const auto& item : split(o.budgets, ',')) {
    bool fraction = item.find_first_not_of("0123456789.") == std::string::npos && item.find('.') != std::string::npos;
    if (fraction) {
      double f = 0;
      std::size_t pos = 0;
      try {
        f = std::stod(item, &pos);
      } catch (const std::exception&) {  // out of range
        pos = 0;
      }
      if (pos != item.size()) throw Error("[compare] cannot parse budget fraction '" + item + "'");
      if (!(f > 0)) throw Error("[compare] budget fraction '" + item + "' must be positive");
      // Converting a double beyond size_t's range is undefined behaviour: refuse it first.
      const double bytes = f * static_cast<double>(store_all_peak);
      if (!(bytes <= 1e18)) throw Error("[compare] budget fraction '" + item + "' is too large");
      budgets.push_back(static_cast<std::size_t>(bytes));
    } else {
      budgets.push_back(parse_budget(item));
    }
  }

  // The plan list: defaults (each strategy's own setting) unless budgets were given.
  struct Item { std::string strategy, heuristic; std::optional<std::size_t> budget; std::string setting; };
  std::vector<Item> items{{"store-all", "", std::nullopt, "-"}};
  if (budgets.empty()) {
    StrategyOptions so;
    std::size_t sqrt_peak = simulate(tape, make_strategy("sqrt", so)->plan(tape, m.loss.id, Budget{})).peak_bytes;
    items.push_back({"sqrt", "", std::nullopt, "sqrt(L) segments"});
    items.push_back({"chen-greedy", "", std::nullopt, "least memory"});
    items.push_back({"revolve", "", std::nullopt, "log4(L) slots"});
    items.push_back({"optimal", "", sqrt_peak, "budget = sqrt's peak"});
    items.push_back({"greedy", "dtr", sqrt_peak, "dtr, budget = sqrt's peak"});
  } else {
    for (const auto& b : budgets)
      for (const std::string s : {"chen-greedy", "revolve", "optimal", "greedy"})
        items.push_back({s, s == "greedy" ? "dtr" : "", b, fmt::format("budget {}", *b)});
  }

  auto reference = store_all_gradients(*backend, m, data);
  std::vector<CompareRow> rows;
  for (std::size_t k = 0; k < items.size(); ++k) {
    const Item& it = items[k];
    std::cerr << fmt::format("[compare] {}/{} {} ({})\n", k + 1, items.size(), it.strategy, it.setting);
    StrategyOptions so;
    if (!it.heuristic.empty()) so.heuristic = it.heuristic;
    CompareRow row{it.strategy, it.setting, it.budget};
    try {
      Program p = make_strategy(it.strategy, so)->plan(tape, m.loss.id, Budget{it.budget});
      row.e = execute(*backend, m, p, data, reference, o.repeat);
      row.planned_overhead = static_cast<double>(analytic_program_time(tape, p)) /
                                 static_cast<double>(analytic_program_time(tape, store_all_program(tape, m.loss.id))) - 1;
    } catch (const InfeasibleBudget& e) {
      row.feasible = false;
      row.min_feasible = e.min_feasible_bytes;
    }
    rows.push_back(std::move(row));
  }

  double base_time = rows[0].e.step_seconds_median;
  bool promises_hold = true;
  std::cout << fmt::format("remat compare: {} on {} ({} threads); store-all peak {} bytes\n", m.spec, o.device,
                           cpu_threads(), store_all_peak);
  std::cout << fmt::format("{:<12} {:<26} {:>14} {:>14} {:>10} {:>9} {:>9} {:>9} {:>7}\n", "strategy", "setting",
                           "peak measured", "peak planned", "recomputed", "step ms", "overhead", "planned", "grads");
  nlohmann::json jrows = nlohmann::json::array();
  std::ofstream csv;
  if (!o.csv.empty()) {
    csv.open(o.csv);
    if (!csv) throw Error("[compare] cannot write CSV file '" + o.csv + "'");
    csv << "strategy,setting,budget_bytes,feasible,peak_bytes_measured,peak_bytes_predicted,recomputed_ops,"
           "step_seconds_median,time_overhead,planned_overhead,grads_bitwise_equal\n";
  }
  for (const auto& r : rows) {
    double overhead = base_time > 0 ? r.e.step_seconds_median / base_time - 1 : 0;
    if (!r.feasible) {
      std::cout << fmt::format("{:<12} {:<26} infeasible: smallest feasible budget {} bytes\n", r.strategy, r.setting,
                               r.min_feasible);
    } else {
      bool ok = r.e.grads_bitwise_equal && r.e.measured.peak_bytes == r.e.predicted.peak_bytes &&
                (!r.budget || r.e.measured.peak_bytes <= *r.budget);
      promises_hold &= ok;
      std::cout << fmt::format("{:<12} {:<26} {:>14} {:>14} {:>10} {:>9.1f} {:>8.1f}% {:>8.1f}% {:>7}\n", r.strategy,
                               r.setting, r.e.measured.peak_bytes, r.e.predicted.peak_bytes, r.e.measured.recomputed_ops,
                               r.e.step_seconds_median * 1e3, overhead * 100, r.planned_overhead * 100,
                               r.e.grads_bitwise_equal ? "equal" : "DIFFER");
    }
    if (csv)
      csv << fmt::format("{},\"{}\",{},{},{},{},{},{},{},{},{}\n", r.strategy, r.setting, r.budget ? std::to_string(*r.budget) : "",
                         r.feasible, r.e.measured.peak_bytes, r.e.predicted.peak_bytes, r.e.measured.recomputed_ops,
                         r.e.step_seconds_median, overhead, r.planned_overhead, r.e.grads_bitwise_equal);
    jrows.push_back({{"strategy", r.strategy}, {"setting", r.setting}, {"budget_bytes", optional_bytes(r.budget)},
                     {"feasible", r.feasible}, {"min_feasible_budget", r.feasible ? nlohmann::json(nullptr) : nlohmann::json(r.min_feasible)},
                     {"peak_bytes_measured", r.e.measured.peak_bytes}, {"peak_bytes_predicted", r.e.predicted.peak_bytes},
                     {"recomputed_ops", r.e.measured.recomputed_ops}, {"step_seconds_median", r.e.step_seconds_median},
                     {"time_overhead", overhead}, {"planned_overhead", r.planned_overhead}, {"grads_bitwise_equal", r.e.grads_bitwise_equal}});
  }
  if (csv) csv.close();
  if (o.json) std::cout << nlohmann::json{{"model", m.spec}, {"rows", jrows}}.dump() << "\n";
  if (!o.plot.empty()) {
    if (o.csv.empty()) throw Error("[compare] --plot needs --csv (the plot is drawn from the CSV)");
    int rc = run_process({"/usr/bin/python3", std::string(REMAT_SOURCE_DIR) + "/experiments/plots/compare_plot.py", o.csv,
                          o.plot, m.spec});
    if (rc != 0) throw Error(fmt::format("[compare] the plot script failed (exit {}) drawing '{}' (is python3-matplotlib "
                                         "installed? ./scripts/install_deps.sh installs it)", rc, o.plot));
    std::cerr << "[compare] wrote " << o.plot << "\n";
  }
  if (!promises_hold) {
    std::cerr << "[compare] promise broken: see the rows above\n";
    return 4;
  }
  return 0;
}

}  // namespace remat
