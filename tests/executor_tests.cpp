// Contract: the executor's promises under store-all: measured peak equals the
// metering-only simulation to the byte; results are bitwise deterministic; an
// MLP trained with SGD lowers its loss; invalid programs and bindings fail with
// messages naming the instruction; eval computes one value for teaching.
#include "models/models.hpp"
#include "gradcheck.hpp"

#include <doctest/doctest.h>

#include <cstring>

using namespace remat;

namespace {
bool bitwise_equal(Backend& b, const Tensor& x, const Tensor& y) {
  HostArray hx = b.download(x), hy = b.download(y);
  return hx.meta == hy.meta && std::memcmp(hx.bytes.data(), hy.bytes.data(), hx.bytes.size()) == 0;
}
}  // namespace

TEST_CASE("measured peak equals the simulated peak under store-all") {
  for (const char* spec : {"mlp:layers=4,width=32,batch=8", "resmlp:layers=6,width=16,batch=4,act=tanh",
                           "mlp:layers=3,width=24,batch=5,dtype=f64,act=gelu"}) {
    CAPTURE(spec);
    Model m = build_model(spec);
    Program p = store_all_program(*m.tape, m.loss.id);
    StepReport predicted = simulate(*m.tape, p);
    CpuBackend cpu;
    Executor ex(*m.tape, cpu);
    StepReport measured = ex.run(p, m.batch(0)).report;
    CHECK(measured.peak_bytes == predicted.peak_bytes);
    CHECK(measured.peak_by_category == predicted.peak_by_category);
    CHECK(measured.allocations == predicted.allocations);
    CHECK(measured.forward_ops == predicted.forward_ops);
    CHECK(measured.recomputed_ops == 0);
    CHECK(measured.peak_bytes > 0);
  }
}

TEST_CASE("store-all keeps exactly what the backward sweep needs") {
  // x (4) -> tanh -> exp -> sum: tanh's vjp reads its output t, exp's reads e,
  // sum reads nothing. An independent count of the live bytes at the peak:
  Tape tape;
  auto w = tape.parameter("w", HostArray::from({4}, std::vector<float>{1, 2, 3, 4}));
  auto x = tape.input("x", HostArray::from({4}, std::vector<float>{0.1f, 0.2f, 0.3f, 0.4f}));
  auto t = tanh(mul(x, w));
  auto e = exp(t);
  auto loss = sum(e);
  Program p = store_all_program(tape, loss.id);
  StepReport r = simulate(tape, p);
  // Forward: x (16, mul's vjp reads it) and m = x*w (16, freed once tanh ran), t (16),
  // e (16), loss (4, read by nothing) -> at most 52. Backward of sum: grad(loss) 4 +
  // grad(e) 16 on top of x, t, e -> 68, then grad(loss) goes. Backward of exp:
  // x, t, e, grad(e) and the new grad(t) -> 80, the peak.
  CHECK(r.peak_bytes == 80);
  CpuBackend cpu;
  Executor ex(tape, cpu);
  CHECK(ex.run(p).report.peak_bytes == 80);
}

TEST_CASE("results are bitwise identical run to run") {
  Model m = build_model("mlp:layers=5,width=64,batch=32,act=gelu");
  Program p = store_all_program(*m.tape, m.loss.id);
  CpuBackend a, b;
  Executor ea(*m.tape, a), eb(*m.tape, b);
  auto ra = ea.run(p, m.batch(3));
  auto rb = eb.run(p, m.batch(3));
  REQUIRE(ra.loss);
  CHECK(std::memcmp(ra.loss->bytes.data(), rb.loss->bytes.data(), ra.loss->bytes.size()) == 0);
  for (auto& [id, g] : ra.gradients) CHECK(bitwise_equal(a, g, rb.gradients.at(id)));
}

TEST_CASE("an MLP trained with SGD lowers its loss") {
  Model m = build_model("mlp:layers=3,width=16,batch=32,act=tanh");
  Program p = store_all_program(*m.tape, m.loss.id);
  CpuBackend cpu;
  Executor ex(*m.tape, cpu);
  Bindings data = m.batch(0);
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    auto r = ex.run(p, data);
    if (step == 0) first = r.loss->at(0);
    last = r.loss->at(0);
    ex.sgd_step(r, 0.5);
  }
  CHECK(last < 0.8 * first);
}

TEST_CASE("invalid programs and bindings fail with clear messages") {
  Tape tape;
  auto w = tape.parameter("w", HostArray::from({3}, std::vector<float>{1, 2, 3}));
  auto x = tape.placeholder("x", {{3}, DType::f32});
  auto y = mul(x, w);
  auto loss = sum(y);
  CpuBackend cpu;
  Executor ex(tape, cpu);
  Program missing_input;
  missing_input.loss = loss.id;
  missing_input.instructions = {{InstructionKind::compute, y.id}};
  CHECK_THROWS_WITH_AS(ex.run(missing_input), "[executor] instruction 0 (compute n2 mul): input n1 x is not resident",
                       Error);
  Program p = store_all_program(tape, loss.id);
  CHECK_THROWS_WITH_AS(ex.run(p), "[executor] instruction 0 (compute n1 x): no value is bound to placeholder 'x'", Error);
  Bindings wrong{{x.id, HostArray::from({2}, std::vector<float>{1, 2})}};
  CHECK_THROWS_WITH_AS(ex.run(p, wrong),
                       "[executor] instruction 0 (compute n1 x): placeholder 'x' expects (3,) f32, the binding is (2,) f32",
                       Error);
  Program double_free = p;
  double_free.instructions.push_back({InstructionKind::free, x.id});
  CHECK_THROWS_WITH_AS(ex.run(double_free, {{x.id, HostArray::from({3}, std::vector<float>{1, 2, 3})}}),
                       doctest::Contains("its value is not resident"), Error);
  Tape other;
  auto c = other.input("c", HostArray::from({2}, std::vector<float>{1, 2}));
  CHECK_THROWS_WITH_AS(store_all_program(other, sum(c).id), "[grad] the loss n1 sum does not depend on any parameter",
                       Error);
}

TEST_CASE("eval computes one value on demand") {
  Tape tape;
  auto a = tape.input("a", HostArray::from({2, 2}, std::vector<double>{1, 2, 3, 4}));
  auto b = tape.input("b", HostArray::from({2, 2}, std::vector<double>{5, 6, 7, 8}));
  HostArray c = eval(matmul(a, b));
  CHECK(c.to_doubles() == std::vector<double>{19, 22, 43, 50});
  auto p = tape.placeholder("p", {{2}, DType::f64});
  CHECK_THROWS_WITH_AS(eval(exp(p)), doctest::Contains("has no value"), Error);
}

TEST_CASE("model specs are validated") {
  CHECK_THROWS_WITH_AS(build_model("mlp:layers=0"), "[model mlp] layers=0 must be an integer in [1, 1073741824]", Error);
  CHECK_THROWS_WITH_AS(build_model("mlp:depth=3"), doctest::Contains("[model mlp] unknown key 'depth'"), Error);
  CHECK_THROWS_WITH_AS(build_model("vgg"), doctest::Contains("[model] unknown model 'vgg'"), Error);
  CHECK_THROWS_WITH_AS(build_model("mlp:layers"), doctest::Contains("expected key=value"), Error);
  CHECK(build_model("mlp").spec == "mlp:act=relu,batch=64,dtype=f32,layers=8,width=256");
}
