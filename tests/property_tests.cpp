// Contract: property tests of the three promises on random graphs. A seed
// determines a random DAG (elementwise, linear/matmul, softmax, layernorm,
// concat/slice/reshape, dropout; fan-out, residual and skip edges; sometimes
// stage marks at cuts) with a scalar loss; every strategy (greedy with every
// heuristic) is planned under random budgets, fractions of store-all's simulated
// peak that include infeasible ones, and each case checks:
//   1. exact:      gradients and loss bitwise equal to store-all on the CPU backend;
//   2. measured:   the executor's peak and recomputation count equal simulate()'s;
//   3. in budget:  the peak is within the budget, or InfeasibleBudget was thrown
//                  with min_feasible_bytes > budget, and planning at
//                  min_feasible_bytes succeeds within it.
// A failure prints the graph seed, strategy and budget; rerun exactly that graph with
//   REMAT_PROPERTY_SEED=<seed> REMAT_PROPERTY_CASES=1 build/bin/remat_tests -tc='*random graphs*'
// Default: 2000 cases (about half a second in Release); a long run: REMAT_PROPERTY_CASES=30000
// (about 4 s), with REMAT_PROPERTY_SEED=<base> for other graphs. docs/reliability.md has more.
#include "gradcheck.hpp"
#include "strategies/strategies.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>

using namespace remat;

namespace {

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return std::strtoull(v, nullptr, 10);
}

// One random graph: a tape, its loss and a batch for its placeholders.
struct RandomGraph {
  std::unique_ptr<Tape> tape = std::make_unique<Tape>();
  Value loss;
  Bindings data;
  std::string ops;  // the recorded ops, for failure messages
};

class GraphBuilder {
 public:
  explicit GraphBuilder(std::uint64_t seed) : rng_(seed), seed_(static_cast<std::uint32_t>(seed)) {}

  RandomGraph build() {
    dtype_ = pick(0, 5) == 0 ? DType::f64 : DType::f32;
    rows_ = pick(1, 6);
    Value x = placeholder({rows_, pick(2, 12)});
    pool_.push_back(x);
    const int op_count = static_cast<int>(pick(3, pick(0, 4) == 0 ? 80 : 30));
    for (int k = 0; k < op_count; ++k) {
      Value v = random_op();
      pool_.push_back(v);
      // Marking a value and forgetting everything before it keeps the mark a cut.
      if (pick(0, 6) == 0 && v.tape->node(v.id).requires_grad) {
        g_.tape->mark_stage(v);
        pool_ = {v};
      }
    }
    g_.loss = make_loss();
    return std::move(g_);
  }

 private:
  std::int64_t pick(std::int64_t lo, std::int64_t hi) {  // uniform in [lo, hi]
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng_);
  }
  Value any() { return pool_[static_cast<std::size_t>(pick(0, static_cast<std::int64_t>(pool_.size()) - 1))]; }
  // Prefers the newest values, so the graph is deep rather than wide.
  Value recent() {
    auto n = static_cast<std::int64_t>(pool_.size());
    return pool_[static_cast<std::size_t>(std::max<std::int64_t>(0, n - 1 - pick(0, 2)))];
  }
  std::int64_t cols(Value v) { return v.shape().back(); }

  Value placeholder(Shape shape) {
    Value p = g_.tape->placeholder("x" + std::to_string(++names_), TensorMeta{shape, dtype_});
    g_.data[p.id] = testing::random_array(shape, seed_ + 17 * names_, -1, 1, dtype_);
    return p;
  }
  Value parameter(Shape shape, double scale) {
    const int name = ++names_;
    return g_.tape->parameter("w" + std::to_string(name),
                              testing::random_array(shape, seed_ + 31 * name, -scale, scale, dtype_));
  }
  Value note(const char* op, Value v) {
    g_.ops += std::string(g_.ops.empty() ? "" : " ") + op + shape_string(v.shape());
    return v;
  }

  // A value of the same shape as v: another one from the pool (a skip edge), a
  // fresh parameter, or a parameter row that broadcasts.
  Value partner(Value v) {
    std::vector<Value> same;
    for (const Value& u : pool_)
      if (u.shape() == v.shape()) same.push_back(u);
    if (!same.empty() && pick(0, 2) > 0) return same[static_cast<std::size_t>(pick(0, static_cast<std::int64_t>(same.size()) - 1))];
    if (pick(0, 1)) return parameter({1, cols(v)}, 0.5);
    return parameter(v.shape(), 0.5);
  }

  Value random_op() {
    Value a = pick(0, 3) ? recent() : any();
    const std::int64_t c = cols(a);
    switch (pick(0, 16)) {
      case 0: return note("add", add(a, partner(a)));
      case 1: return note("mul", mul(a, partner(a)));
      case 2: return note("sub", sub(partner(a), a));
      case 3: return note("tanh", tanh(a));
      case 4: return note("sigmoid", sigmoid(a));
      case 5: return note("relu", relu(a));
      case 6: return note("gelu", gelu(a));
      case 7: return note("exp", exp(tanh(a)));  // exp of a small value
      case 8: {
        std::int64_t out = pick(2, 12);
        auto w = parameter({out, c}, 1.0 / static_cast<double>(c));
        if (pick(0, 1)) return note("linear", linear(a, w, parameter({out}, 0.1)));
        return note("linear", linear(a, w));
      }
      case 9: return note("matmul", matmul(a, parameter({c, pick(2, 8)}, 1.0 / static_cast<double>(c))));
      case 10: return note("softmax", softmax(a));
      case 11: {  // (the parameters in sequence: argument order would differ between compilers)
        Value gamma = parameter({c}, 1.0), beta = parameter({c}, 0.2);
        return note("layernorm", layernorm(a, gamma, beta));
      }
      case 12: {
        std::vector<Value> rows_match;
        for (const Value& u : pool_)
          if (u.shape()[0] == a.shape()[0]) rows_match.push_back(u);
        Value b = rows_match[static_cast<std::size_t>(pick(0, static_cast<std::int64_t>(rows_match.size()) - 1))];
        return note("concat", concat({a, b}, 1));
      }
      case 13: {
        if (c < 2) return note("tanh", tanh(a));
        std::int64_t start = pick(0, c - 2), end = pick(start + 1, c);
        return note("slice", slice(a, -1, start, end));
      }
      case 14: {  // through a rank-3 view and back, with an op in between
        std::int64_t r = a.shape()[0];
        std::int64_t split = c % 2 == 0 ? 2 : 1;
        Value t = reshape(a, {r, split, c / split});
        return note("reshape", reshape(sigmoid(t), {r, c}));
      }
      case 15: {  // a residual block: a + f(a)
        std::int64_t hidden = pick(2, 8);
        auto w1 = parameter({hidden, c}, 1.0 / static_cast<double>(c));
        auto w2 = parameter({c, hidden}, 1.0 / static_cast<double>(hidden));
        return note("residual", add(a, linear(relu(linear(a, w1)), w2)));
      }
      default: return note("dropout", dropout(a, 0.25));
    }
  }

  // A scalar of the last value (and sometimes another one, a second path to the loss).
  Value make_loss() {
    Value last = pool_.back();
    if (!last.tape->node(last.id).requires_grad) last = linear(last, parameter({2, cols(last)}, 0.5));
    Value loss;
    if (pick(0, 1)) {
      loss = mean(square(last));
    } else {
      Value target = placeholder(last.shape());
      loss = mse(last, target);
    }
    if (pool_.size() > 2 && pick(0, 2) == 0) loss = add(loss, scale(mean(square(any())), 0.5));
    note("loss", loss);
    return loss;
  }

  std::mt19937_64 rng_;
  std::uint32_t seed_;
  RandomGraph g_;
  std::vector<Value> pool_;
  DType dtype_ = DType::f32;
  std::int64_t rows_ = 1;
  int names_ = 0;
};

bool bitwise_equal(const HostArray& a, const HostArray& b) {
  return a.meta == b.meta && std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0;
}

struct Tally {
  int cases = 0, feasible = 0, infeasible = 0, recomputing = 0;
  std::map<std::string, int> feasible_by_strategy;
};

// One (graph, strategy, budget) case: the three promises, as doctest checks.
void check_case(const RandomGraph& g, const StepResult& reference, CpuBackend& cpu, const Strategy& strategy,
                const std::string& strategy_label, std::optional<std::size_t> budget, Tally& tally) {
  const Tape& tape = *g.tape;
  ++tally.cases;
  Program program;
  try {
    program = strategy.plan(tape, g.loss.id, Budget{budget});
  } catch (const InfeasibleBudget& e) {
    ++tally.infeasible;
    if (!budget) {
      FAIL_CHECK("an unlimited budget was refused: " << std::string(e.what()));
      return;
    }
    CHECK(e.min_feasible_bytes > *budget);
    CHECK(std::string(e.what()).find(std::to_string(e.min_feasible_bytes)) != std::string::npos);
    Program p;
    try {
      p = strategy.plan(tape, g.loss.id, Budget{e.min_feasible_bytes});
    } catch (const std::exception& again) {
      FAIL("planning at the smallest feasible budget " << e.min_feasible_bytes << " failed: " << again.what());
      return;
    }
    CHECK(simulate(tape, p).peak_bytes <= e.min_feasible_bytes);
    return;
  }
  ++tally.feasible;
  ++tally.feasible_by_strategy[strategy_label];
  StepReport predicted = simulate(tape, program);
  if (budget) CHECK(predicted.peak_bytes <= *budget);
  Executor executor(tape, cpu);
  StepResult got = executor.run(program, g.data);
  CHECK(got.report.peak_bytes == predicted.peak_bytes);
  CHECK(got.report.recomputed_ops == predicted.recomputed_ops);
  CHECK(got.report.forward_ops == predicted.forward_ops);
  tally.recomputing += got.report.recomputed_ops > 0;
  REQUIRE(got.loss);
  CHECK(bitwise_equal(*got.loss, *reference.loss));
  REQUIRE(got.gradients.size() == reference.gradients.size());
  for (const auto& [id, expected] : reference.gradients) {
    CAPTURE(id);
    CHECK(bitwise_equal(cpu.download(got.gradients.at(id)), cpu.download(expected)));
  }
}

// Every strategy, and greedy once per heuristic: (label, name, options).
std::vector<std::pair<std::string, std::pair<std::string, StrategyOptions>>> strategy_configs() {
  std::vector<std::pair<std::string, std::pair<std::string, StrategyOptions>>> configs;
  for (const auto& name : strategy_names(/*include_solvers=*/false)) {  // checkmate: checkmate_tests
    if (name != "greedy") {
      configs.push_back({name, {name, StrategyOptions{}}});
      continue;
    }
    for (const auto& h : greedy_heuristics()) {
      StrategyOptions o;
      o.heuristic = h;
      configs.push_back({name + " " + h, {name, o}});
    }
  }
  return configs;
}

// Calls check(graph, seed, store-all's simulated peak) on `graphs` random graphs
// seeded base_seed, base_seed + 1, ...; a failure names the seed and the graph's ops.
template <class Check>
void for_each_random_graph(std::uint64_t graphs, std::uint64_t base_seed, Check&& check) {
  for (std::uint64_t k = 0; k < graphs; ++k) {
    const std::uint64_t seed = base_seed + k;
    RandomGraph g = GraphBuilder(seed).build();
    CAPTURE(seed);
    INFO("graph: " << g.ops);
    check(g, seed, simulate(*g.tape, store_all_program(*g.tape, g.loss.id)).peak_bytes);
  }
}

}  // namespace

TEST_CASE("property: every strategy keeps the three promises on random graphs") {
  const std::uint64_t cases = env_or("REMAT_PROPERTY_CASES", 2000);
  const std::uint64_t base_seed = env_or("REMAT_PROPERTY_SEED", 20240611);
  const auto configs = strategy_configs();
  constexpr int budgets_per_strategy = 2;
  const std::uint64_t per_graph = budgets_per_strategy * configs.size();
  const std::uint64_t graphs = std::max<std::uint64_t>(1, (cases + per_graph - 1) / per_graph);
  Tally tally;
  for_each_random_graph(graphs, base_seed, [&](RandomGraph& g, std::uint64_t seed, std::size_t full) {
    const Tape& tape = *g.tape;
    CpuBackend cpu;
    Executor reference_executor(tape, cpu);
    StepResult reference = reference_executor.run(store_all_program(tape, g.loss.id), g.data);
    REQUIRE(reference.loss);

    const int stages = chain_view(tape, g.loss.id).chain.length();
    std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
    auto random_budget = [&]() -> std::optional<std::size_t> {
      switch (std::uniform_int_distribution<int>(0, 11)(rng)) {
        case 0: return std::nullopt;  // unlimited
        case 1: return std::size_t{0};
        case 2: return full / 50;     // almost surely infeasible
        case 3: return full;
        case 4: return 2 * full;
        default: return static_cast<std::size_t>(std::uniform_real_distribution<double>(0.2, 1.6)(rng) *
                                                 static_cast<double>(full));
      }
    };
    for (const auto& [label, config] : configs) {
      for (int b = 0; b < budgets_per_strategy; ++b) {
        std::optional<std::size_t> budget = random_budget();
        CAPTURE(label);
        INFO("budget: " << (budget ? std::to_string(*budget) : std::string("unlimited")) << " of store-all's " << full);
        // Sometimes the strategy's own knobs too: segments, slots, DP resolution.
        StrategyOptions options = config.second;
        if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) {
          if (config.first == "sqrt" || config.first == "revolve")
            options.slots = std::uniform_int_distribution<int>(1, stages)(rng);
          if (config.first == "optimal") options.dp_slots = std::uniform_int_distribution<int>(20, 400)(rng);
        }
        CAPTURE(options.slots);
        CAPTURE(options.dp_slots);
        auto strategy = make_strategy(config.first, options);
        check_case(g, reference, cpu, *strategy, label, budget, tally);
      }
    }
  });
  MESSAGE("property cases: " << tally.cases << " on " << graphs << " graphs (seeds " << base_seed << ".."
                             << base_seed + graphs - 1 << "); feasible " << tally.feasible << " (recomputing "
                             << tally.recomputing << "), infeasible " << tally.infeasible);
  CHECK(tally.infeasible > 0);
  CHECK(tally.recomputing > 0);
  for (const auto& [label, config] : configs) {
    CAPTURE(label);
    CHECK(tally.feasible_by_strategy[label] > 0);
  }
}

// Acceptance by the simulated peak (strategies/planning.hpp), on random graphs, for
// every strategy and greedy heuristic, over a ladder of budgets:
//   - monotone: accepted(B) implies accepted(B') for every larger B' of the ladder;
//   - exact: a refusal names M > B; M is accepted and M - 1 refused;
//   - no plan sneaks under a refusal: when B is refused, every plan the strategy
//     returns at any budget of the ladder peaks above B;
//   - store-all's peak is always accepted.
// Default 20 graphs; REMAT_PROPERTY_CASES scales it (cases / 100).
TEST_CASE("property: budgets are accepted exactly when a plan fits, monotonically, on random graphs") {
  const std::uint64_t graphs = std::max<std::uint64_t>(4, env_or("REMAT_PROPERTY_CASES", 2000) / 100);
  const std::uint64_t base_seed = env_or("REMAT_PROPERTY_SEED", 20240611) + 100000;
  const auto configs = strategy_configs();
  int refusals = 0, acceptances = 0;
  for_each_random_graph(graphs, base_seed, [&](RandomGraph& g, std::uint64_t, std::size_t full) {
    const Tape& tape = *g.tape;
    std::vector<std::size_t> ladder;
    for (double f : {0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0})
      ladder.push_back(static_cast<std::size_t>(f * static_cast<double>(full)));
    for (const auto& [label, config] : configs) {
      CAPTURE(label);
      auto strategy = make_strategy(config.first, config.second);
      auto outcome = [&](std::size_t b) -> std::optional<std::size_t> {  // the plan's peak, or none
        try {
          return plan(*strategy, PlanRequest{tape, g.loss.id, Budget{b}}).predicted.peak_bytes;
        } catch (const InfeasibleBudget&) {
          return std::nullopt;
        }
      };
      std::vector<std::optional<std::size_t>> peaks;
      for (std::size_t b : ladder) peaks.push_back(outcome(b));
      REQUIRE(peaks.back());  // store-all's peak
      for (std::size_t i = 0; i < ladder.size(); ++i) {
        CAPTURE(ladder[i]);
        if (peaks[i]) {
          ++acceptances;
          CHECK(*peaks[i] <= ladder[i]);
          for (std::size_t j = i + 1; j < ladder.size(); ++j) CHECK(peaks[j].has_value());
          continue;
        }
        ++refusals;
        std::size_t least = 0;
        try {
          plan(*strategy, PlanRequest{tape, g.loss.id, Budget{ladder[i]}});
        } catch (const InfeasibleBudget& e) {
          least = e.min_feasible_bytes;
        }
        CHECK(least > ladder[i]);
        CHECK(outcome(least).has_value());
        CHECK_FALSE(outcome(least - 1).has_value());
        for (const auto& p : peaks)
          if (p) CHECK(*p > ladder[i]);
      }
    }
  });
  MESSAGE("acceptance property: " << acceptances << " accepted and " << refusals << " refused budgets on " << graphs
                                  << " graphs");
  CHECK(refusals > 0);
  CHECK(acceptances > 0);
}
