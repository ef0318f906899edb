// Contract: the three promises, for every strategy, on a grid of models and
// budgets: gradients bitwise equal to store-all; measured peak equal to the
// simulated peak; peak within the budget, or InfeasibleBudget before any compute
// whose smallest feasible budget is itself accepted. Chain strategies also
// keep the node-level peak within the stage model's peak.
#include "models/models.hpp"
#include "gradcheck.hpp"
#include "strategies/stage_schedules.hpp"
#include "strategies/strategies.hpp"

#include <doctest/doctest.h>

#include <cstring>

using namespace remat;

namespace {

// x -> h1 -> h2 -> (h2 + h1) -> h3 -> (h3 * h1) -> loss: skip edges defeat chain cuts.
Model skip_dag() {
  Model m;
  m.spec = "skip-dag";
  m.tape = std::make_unique<Tape>();
  Tape& t = *m.tape;
  auto x = t.placeholder("x", {{6, 12}, DType::f32});
  auto w = [&](int i) { return t.parameter("w" + std::to_string(i), testing::random_array({12, 12}, 50 + i, -0.3, 0.3, DType::f32)); };
  auto h1 = tanh(linear(x, w(0)));
  auto h2 = relu(linear(h1, w(1)));
  auto h3 = sigmoid(linear(add(h2, h1), w(2)));
  auto h4 = tanh(linear(mul(h3, h1), w(3)));
  auto h5 = gelu(linear(add(h4, h2), w(4)));
  m.loss = mean(square(h5));
  m.batch = [id = x.id](std::uint64_t step) {
    Bindings b;
    b[id] = testing::random_array({6, 12}, static_cast<std::uint32_t>(step + 7), -1, 1, DType::f32);
    return b;
  };
  return m;
}

struct Outcome {
  bool feasible = false;
  std::size_t peak = 0;
};

Outcome check_promises(const Model& m, const Strategy& strategy, std::optional<std::size_t> budget) {
  const Tape& tape = *m.tape;
  Program program;
  try {
    program = strategy.plan(tape, m.loss.id, Budget{budget});
  } catch (const InfeasibleBudget& e) {
    REQUIRE(budget);
    CHECK(e.min_feasible_bytes > *budget);
    CHECK(std::string(e.what()).find(std::to_string(e.min_feasible_bytes)) != std::string::npos);
    // The smallest feasible budget is accepted.
    Program p = strategy.plan(tape, m.loss.id, Budget{e.min_feasible_bytes});
    CHECK(simulate(tape, p).peak_bytes <= e.min_feasible_bytes);
    return {};
  }
  StepReport predicted = simulate(tape, program);
  if (budget) CHECK(predicted.peak_bytes <= *budget);
  {  // nothing budgeted is left alive once the step is over: every value was freed by the program
    MeteringBackend meter;
    Executor ex(tape, meter);
    RunOptions trace;
    trace.record_trace = true;
    auto r = ex.run(program, {}, trace);
    REQUIRE(!r.report.live_bytes.empty());
    CHECK(r.report.live_bytes.back() == 0);
  }
  Bindings data = m.batch(0);
  CpuBackend cpu;
  Executor reference(tape, cpu), ex(tape, cpu);
  auto expected = reference.run(store_all_program(tape, m.loss.id), data);
  auto got = ex.run(program, data);
  CHECK(got.report.peak_bytes == predicted.peak_bytes);
  CHECK(got.report.recomputed_ops == predicted.recomputed_ops);
  for (auto& [id, g] : expected.gradients) {
    HostArray a = cpu.download(g), b = cpu.download(got.gradients.at(id));
    CHECK(std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0);
  }
  CHECK(std::memcmp(expected.loss->bytes.data(), got.loss->bytes.data(), got.loss->bytes.size()) == 0);
  return {true, predicted.peak_bytes};
}

}  // namespace

TEST_CASE("every strategy keeps the three promises on chain models") {
  for (const char* spec : {"mlp:layers=10,width=16,batch=4,act=tanh", "resmlp:layers=9,width=12,batch=3,act=gelu"}) {
    Model m = build_model(spec);
    std::size_t full = simulate(*m.tape, store_all_program(*m.tape, m.loss.id)).peak_bytes;
    for (const auto& name : strategy_names(/*include_solvers=*/false)) {  // checkmate: checkmate_tests
      for (double fraction : {0.0, 1.0, 0.6, 0.4, 0.25, 0.1}) {
        CAPTURE(spec);
        CAPTURE(name);
        CAPTURE(fraction);
        StrategyOptions o;
        auto s = make_strategy(name, o);
        std::optional<std::size_t> budget;
        if (fraction > 0) budget = static_cast<std::size_t>(fraction * static_cast<double>(full));
        check_promises(m, *s, budget);
      }
    }
  }
}

TEST_CASE("budget-greedy keeps the promises on a graph with skip connections, for every heuristic") {
  Model m = skip_dag();
  std::size_t full = simulate(*m.tape, store_all_program(*m.tape, m.loss.id)).peak_bytes;
  int feasible = 0;
  for (const auto& h : greedy_heuristics())
    for (double fraction : {1.0, 0.7, 0.5, 0.3, 0.15}) {
      CAPTURE(h);
      CAPTURE(fraction);
      StrategyOptions o;
      o.heuristic = h;
      auto s = make_strategy("greedy", o);
      feasible += check_promises(m, *s, static_cast<std::size_t>(fraction * static_cast<double>(full))).feasible;
    }
  CHECK(feasible >= 12);
}

TEST_CASE("tight budgets trade memory for recomputation") {
  Model m = build_model("mlp:layers=16,width=32,batch=8");
  std::size_t full = simulate(*m.tape, store_all_program(*m.tape, m.loss.id)).peak_bytes;
  StrategyOptions o;
  for (const char* name : {"optimal", "greedy", "revolve"}) {
    CAPTURE(name);
    auto p = make_strategy(name, o)->plan(*m.tape, m.loss.id, Budget{full / 2});
    StepReport r = simulate(*m.tape, p);
    CHECK(r.peak_bytes <= full / 2);
    CHECK(r.recomputed_ops > 0);
  }
}

TEST_CASE("the node-level peak never exceeds the stage model's peak") {
  for (const char* spec : {"mlp:layers=12,width=16,batch=4", "resmlp:layers=7,width=8,batch=2"}) {
    Model m = build_model(spec);
    ChainView view = chain_view(*m.tape, m.loss.id);
    // One stage per marked layer, plus the stage that computes the loss.
    CHECK(view.chain.length() == (std::string(spec).rfind("mlp", 0) == 0 ? 13 : 8));
    for (int s = 1; s <= 4; ++s) {
      Schedule sched = revolve_schedule(view.chain, s);
      Program p = lower_schedule(*m.tape, view, sched, "revolve");
      CHECK(simulate(*m.tape, p).peak_bytes <= static_cast<std::size_t>(simulate_schedule(view.chain, sched).peak_memory));
    }
    for (auto sched : {store_all_schedule(view.chain), sqrt_schedule(view.chain)}) {
      Program p = lower_schedule(*m.tape, view, sched, "x");
      CHECK(simulate(*m.tape, p).peak_bytes <= static_cast<std::size_t>(simulate_schedule(view.chain, sched).peak_memory));
    }
  }
}

TEST_CASE("unknown strategies and heuristics are named in the error") {
  CHECK_THROWS_WITH_AS(make_strategy("magic"),
                       "[strategy] unknown strategy 'magic'; expected one of: store-all, sqrt, chen-greedy, revolve, "
                       "optimal, greedy, checkmate, checkmate-lp",
                       Error);
  StrategyOptions o;
  o.heuristic = "best";
  CHECK_THROWS_WITH_AS(make_strategy("greedy", o),
                       "[greedy] unknown heuristic 'best'; expected one of: dtr, dtr-eq, dtr-local, lru, size, msps", Error);
}
