// Contract: frozen parameters and the fixed memory of training. A frozen parameter
// gets no gradient and leaves the trainable ones' gradients bitwise unchanged, under
// every strategy; the weights / gradients / optimizer state / master weights
// figures match their closed forms; `remat plan --budget-total` plans within the
// total and refuses a total below the fixed memory, naming the figures.
#include "models/models.hpp"
#include "gradcheck.hpp"
#include "strategy_sweep.hpp"
#include "strategies/strategies.hpp"
#ifdef REMAT_HAVE_CLI
#include "cli_harness.hpp"
#include <nlohmann/json.hpp>
#endif

#include <doctest/doctest.h>

#include <cstring>

using namespace remat;

namespace {

// x -> tanh(x W1) -> tanh(. W2) -> tanh(. W3) -> mean square; W2 frozen when asked.
struct Mlp {
  Tape tape;
  Value loss;
  std::vector<Value> weights;
  explicit Mlp(bool freeze_middle, DType dtype = DType::f32) {
    Value h = tape.input("x", testing::random_array({4, 8}, 1, -1, 1, dtype));
    for (int i = 0; i < 3; ++i) {
      Value w = tape.parameter("w" + std::to_string(i), testing::random_array({8, 8}, 10 + i, -0.5, 0.5, dtype),
                               /*trainable=*/!(freeze_middle && i == 1));
      weights.push_back(w);
      h = tanh(matmul(h, w));
    }
    loss = mean(square(h));
  }
};

}  // namespace

TEST_CASE("a frozen parameter gets no gradient and changes no other gradient, under every strategy") {
  Mlp frozen(true), trainable(false);
  CpuBackend cpu;
  Executor ef(frozen.tape, cpu), et(trainable.tape, cpu);
  auto rf = grad(ef, frozen.loss), rt = grad(et, trainable.loss);
  CHECK(rf.gradients.size() == 2);
  CHECK(rt.gradients.size() == 3);
  CHECK(rf.gradients.count(frozen.weights[1].id) == 0);
  CHECK(rf.report.parameter_gradient_bytes == 2 * 8 * 8 * 4);
  CHECK(rt.report.parameter_gradient_bytes >= 3 * 8 * 8 * 4);  // the metered peak (it may hold transients too)
  for (int i : {0, 2}) {
    HostArray a = cpu.download(rf.gradients.at(frozen.weights[i].id));
    HostArray b = cpu.download(rt.gradients.at(trainable.weights[i].id));
    CHECK(std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0);
  }
  ReferenceStep reference = reference_step(frozen.tape, frozen.loss.id, cpu, {});
  const int planned = for_each_strategy_plan(frozen.tape, frozen.loss.id, {0.0, 0.5}, [&](const Program& program, auto budget) {
    CHECK(program.grad_targets.size() == 2);
    Executor ex(frozen.tape, cpu);
    auto run = ex.run(program, {});
    PromiseCheck check = check_promises(frozen.tape, cpu, run, simulate(frozen.tape, program), reference, budget);
    for (const auto& broken : check.broken) MESSAGE(broken);
    CHECK(check.ok());
  });
  CHECK(planned > 4);
}

TEST_CASE("weights, gradients, optimizer state and master weights follow their closed forms") {
  Mlp m(true, DType::bf16);  // three 8x8 bf16 weights, one frozen
  const StepReport step = simulate(m.tape, store_all_program(m.tape, m.loss.id));
  const std::size_t e = 64;  // elements per weight
  TrainingMemory sgd = training_memory(m.tape, step, Optimizer::sgd);
  CHECK(sgd.weights == 3 * e * 2);
  CHECK(sgd.parameter_gradients == 2 * e * 2);
  CHECK(sgd.optimizer_state == 0);
  CHECK(sgd.master_weights == 0);
  CHECK(sgd.trainable_elements == 2 * 64);
  CHECK(sgd.frozen_elements == 64);
  TrainingMemory adam = training_memory(m.tape, step, Optimizer::adam);
  CHECK(adam.optimizer_state == 2 * (2 * e) * 2);  // two moments of the trainable elements, in bf16
  TrainingMemory mixed = training_memory(m.tape, step, Optimizer::adam, DType::f32);
  CHECK(mixed.optimizer_state == 2 * (2 * e) * 4);  // in f32
  CHECK(mixed.master_weights == (2 * e) * 4);
  mixed.activation_peak = step.peak_bytes;
  CHECK(mixed.total() == mixed.weights + mixed.parameter_gradients + mixed.optimizer_state + mixed.master_weights +
                             step.peak_bytes);
  CHECK(activation_budget(mixed, mixed.fixed() + 100, "test") == 100);
  CHECK_THROWS_WITH_AS(activation_budget(mixed, 10, "test"),
                       ("[test] the total budget 10 bytes is below the fixed memory alone: weights 384 + parameter "
                        "gradients 256 + optimizer state 1024 + master weights 512 = " +
                        std::to_string(mixed.fixed()) + " bytes")
                           .c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(optimizer_from_name("lion", "plan"), "[plan] --optimizer must be sgd or adam, got 'lion'", Error);
}

#ifdef REMAT_HAVE_CLI
TEST_CASE("remat plan --budget-total plans within the total device memory") {
  const std::string model = "mlp:layers=8,width=64,batch=32,act=tanh,dtype=bf16";
  auto plan_json = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"plan", "--model", model, "--strategy", "optimal", "--json", "--optimizer", "adam",
                                  "--master-weights", "f32"};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::cli(args);
  };
  auto unbudgeted = plan_json({});
  REQUIRE(unbudgeted.code == 0);
  auto j = nlohmann::json::parse(unbudgeted.out);
  const auto& mem = j.at("memory");
  const std::size_t fixed = mem.at("weights").get<std::size_t>() + mem.at("parameter_gradients").get<std::size_t>() +
                            mem.at("optimizer_state").get<std::size_t>() + mem.at("master_weights").get<std::size_t>();
  const std::size_t params = 8 * 64 * 64;  // weights only if the mlp has no biases; read the figure instead
  CHECK(mem.at("optimizer_state").get<std::size_t>() == 2 * 4 * mem.at("trainable_elements").get<std::size_t>());
  CHECK(mem.at("weights").get<std::size_t>() >= params * 2);
  CHECK(mem.at("total").get<std::size_t>() == fixed + mem.at("activation_peak").get<std::size_t>());
  const std::size_t store_all_peak = mem.at("activation_peak").get<std::size_t>();
  // A total that leaves 60% of store-all's activations: the plan fits it, and uses less.
  const std::size_t total = fixed + store_all_peak * 6 / 10;
  auto budgeted = plan_json({"--budget-total", std::to_string(total)});
  REQUIRE(budgeted.code == 0);
  auto b = nlohmann::json::parse(budgeted.out).at("memory");
  CHECK(b.at("total").get<std::size_t>() <= total);
  CHECK(b.at("activation_peak").get<std::size_t>() < store_all_peak);
  CHECK(b.at("budget_total").get<std::size_t>() == total);
  // Below the fixed parts: refused, naming them.
  auto refused = plan_json({"--budget-total", std::to_string(fixed - 1)});
  CHECK(refused.code != 0);
  CHECK(refused.err.find("below the fixed memory alone") != std::string::npos);
  CHECK(refused.err.find(std::to_string(fixed) + " bytes") != std::string::npos);
  auto both = plan_json({"--budget-total", "1GiB", "--budget", "50%"});
  CHECK(both.code == 2);
  auto percent = plan_json({"--budget-total", "50%"});
  CHECK(percent.code == 2);
}
#endif
