// Contract: the strategy registry and the chain strategies' planning path:
// chain view -> stage Schedule -> lowered Program -> simulated peak checked
// against the budget. A strategy whose schedule does not depend on the budget
// (store-all, sqrt, revolve with --slots) refuses a budget below its simulated
// peak and names that peak as the smallest feasible budget.
#include "strategies/strategies.hpp"

#include "strategies/stage_schedules.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace remat {
namespace {

std::int64_t budget_or_unlimited(const Budget& b) {
  return b.bytes ? static_cast<std::int64_t>(*b.bytes) : std::numeric_limits<std::int64_t>::max() / 4;
}

class StoreAllStrategy final : public ChainStrategy {
 public:
  using ChainStrategy::ChainStrategy;
  std::string name() const override { return "store-all"; }
  Schedule schedule(const Chain& chain, const Budget&) const override { return store_all_schedule(chain); }
  // Store-all needs no chain: the plain reverse sweep works on any graph.
  Program plan(const Tape& tape, int loss, const Budget& budget) const override {
    Program p = store_all_program(tape, loss);
    auto peak = simulate(tape, p).peak_bytes;
    if (budget.bytes && peak > *budget.bytes)
      throw InfeasibleBudget(fmt::format("[store-all] budget {} bytes is below store-all's peak; the smallest "
                                         "feasible budget is {} bytes",
                                         *budget.bytes, peak),
                             peak);
    return p;
  }
};

class SqrtStrategy final : public ChainStrategy {
 public:
  using ChainStrategy::ChainStrategy;
  std::string name() const override { return "sqrt"; }
  Schedule schedule(const Chain& chain, const Budget&) const override {
    if (options_.slots) {
      if (*options_.slots < 1) throw Error("[sqrt] --slots (segments) must be at least 1");
      return segments_schedule(chain, *options_.slots);
    }
    return sqrt_schedule(chain);
  }
};

class ChenGreedyStrategy final : public ChainStrategy {
 public:
  using ChainStrategy::ChainStrategy;
  std::string name() const override { return "chen-greedy"; }
  Schedule schedule(const Chain& chain, const Budget& budget) const override {
    return chen_greedy_schedule(chain, budget_or_unlimited(budget));
  }
};

class RevolveStrategy final : public ChainStrategy {
 public:
  using ChainStrategy::ChainStrategy;
  std::string name() const override { return "revolve"; }
  Schedule schedule(const Chain& chain, const Budget& budget) const override {
    const int L = chain.length();
    if (options_.slots) {
      if (*options_.slots < 1) throw Error("[revolve] --slots must be at least 1 (slot 0 holds x(0))");
      return revolve_schedule(chain, *options_.slots);
    }
    if (!budget.bytes) {  // Griewank and Walther's adjust(): about log4(n) slots
      int s = std::max(1, static_cast<int>(std::ceil(std::log(static_cast<double>(L)) / std::log(4.0))));
      return revolve_schedule(chain, std::min(s, L));
    }
    return revolve_schedule(chain, revolve_slots_for_budget(chain, static_cast<std::int64_t>(*budget.bytes)));
  }
};

class OptimalStrategy final : public ChainStrategy {
 public:
  using ChainStrategy::ChainStrategy;
  std::string name() const override { return "optimal"; }
  Schedule schedule(const Chain& chain, const Budget& budget) const override {
    // Unlimited: store-all's peak, raised to the least budget the slot rounding accepts
    // (with dp_slots slots a budget just at store-all's peak can round below it).
    std::int64_t b = budget.bytes ? static_cast<std::int64_t>(*budget.bytes)
                                  : std::max(simulate_schedule(chain, store_all_schedule(chain)).peak_memory,
                                             optimal_min_budget(chain, options_.dp_slots));
    Schedule best = optimal_schedule(chain, b, options_.dp_slots);
    // Rounding sizes up to slots can make the DP miss a schedule that fits the exact
    // budget (store-all when it fits, for one): never return worse than those.
    ScheduleStats best_stats = simulate_schedule(chain, best);
    for (Schedule candidate : {store_all_schedule(chain), sqrt_schedule(chain)}) {
      ScheduleStats st = simulate_schedule(chain, candidate);
      if (st.peak_memory <= b && st.makespan < best_stats.makespan) {
        best = std::move(candidate);
        best_stats = st;
      }
    }
    return best;
  }
};

class GreedyStrategy final : public Strategy {
 public:
  explicit GreedyStrategy(StrategyOptions o) : options_(std::move(o)) {}
  std::string name() const override { return "greedy"; }
  Program plan(const Tape& tape, int loss, const Budget& budget) const override {
    // Without a budget the greedy runtime never evicts: it is store-all.
    std::size_t b = budget.bytes ? *budget.bytes : simulate(tape, store_all_program(tape, loss)).peak_bytes;
    return plan_budget_greedy(tape, loss, b, options_.heuristic);
  }

 private:
  StrategyOptions options_;
};

}  // namespace

Program ChainStrategy::plan(const Tape& tape, int loss, const Budget& budget) const {
  ChainView view = chain_view(tape, loss, options_.chain);
  Schedule s = schedule(view.chain, budget);
  Program p = lower_schedule(tape, view, s, name());
  std::size_t peak = simulate(tape, p).peak_bytes;
  if (budget.bytes && peak > *budget.bytes)
    throw InfeasibleBudget(fmt::format("[{}] budget {} bytes is infeasible: this schedule peaks at {} bytes; the "
                                       "smallest feasible budget is {} bytes",
                                       name(), *budget.bytes, peak, peak),
                           peak);
  return p;
}

std::unique_ptr<Strategy> make_strategy(const std::string& name, const StrategyOptions& options) {
  if (name == "store-all") return std::make_unique<StoreAllStrategy>(options);
  if (name == "sqrt") return std::make_unique<SqrtStrategy>(options);
  if (name == "chen-greedy") return std::make_unique<ChenGreedyStrategy>(options);
  if (name == "revolve") return std::make_unique<RevolveStrategy>(options);
  if (name == "optimal") return std::make_unique<OptimalStrategy>(options);
  if (name == "greedy") {
    (void)greedy_heuristics();
    bool known = false;
    for (const auto& h : greedy_heuristics()) known |= h == options.heuristic;
    if (!known)
      throw Error("[greedy] unknown heuristic '" + options.heuristic +
                  "'; expected one of: dtr, dtr-eq, dtr-local, lru, size, msps");
    return std::make_unique<GreedyStrategy>(options);
  }
  std::string list;
  for (const auto& n : strategy_names()) list += (list.empty() ? "" : ", ") + n;
  throw Error("[strategy] unknown strategy '" + name + "'; expected one of: " + list);
}

const std::vector<std::string>& strategy_names() {
  static const std::vector<std::string> names{"store-all", "sqrt", "chen-greedy", "revolve", "optimal", "greedy"};
  return names;
}

const std::vector<std::string>& greedy_heuristics() {
  static const std::vector<std::string> names{"dtr", "dtr-eq", "dtr-local", "lru", "size", "msps"};
  return names;
}

}  // namespace remat
