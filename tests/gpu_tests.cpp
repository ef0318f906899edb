// Contract: the CUDA backend, checked against the CPU backend as its oracle.
//  - Every op, forward and vjp: a small tape (the op, then a weighted sum) runs the
//    same Programs on CpuBackend and on the CUDA backend; values and gradients agree
//    within a norm-wise relative error of 1e-5 in f32 (1e-12 in f64). Dropout masks,
//    max tie-breaking and integer indexing agree exactly. Each op also gives the
//    same bits twice on the GPU, and the same metered peak as on the CPU.
//  - Data errors found on the device (labels, ids) are thrown on the host with the
//    CPU backend's message, and the backend stays usable; out of memory is an
//    Error naming the request.
//  - The three promises on the GPU, for every strategy, on small models of the
//    zoo: gradients bitwise equal to GPU store-all, measured peak and recomputed
//    ops equal to simulate(), the peak within the budget; and GPU store-all close
//    to CPU store-all.
// Without the CUDA backend built in, or without a CUDA device, every test case
// says so ("skipped: no CUDA device ...") and returns: this file always compiles.
#include "models/models.hpp"
#include "gpu/cuda_backend.hpp"
#include "gradcheck.hpp"
#include "strategy_sweep.hpp"
#include "strategies/strategies.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

using namespace remat;
using remat::testing::random_array;

namespace {

// The CUDA backend on device 0, or null after saying why the test is skipped.
std::unique_ptr<Backend> gpu_or_skip() {
  if (!cuda_built()) {
    MESSAGE("skipped: no CUDA device (remat was built without the CUDA backend; configure with -DREMAT_CUDA=ON)");
    return nullptr;
  }
  if (cuda_device_count() == 0) {
    MESSAGE("skipped: no CUDA device is present on this machine");
    return nullptr;
  }
  return make_cuda_backend(0);
}

// ||got - expected|| / ||expected|| (0 when both are zero; NaN fails every check).
double relative_error(const HostArray& got, const HostArray& expected) {
  REQUIRE(got.meta == expected.meta);
  double diff = 0, norm = 0;
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    const double d = got.at(i) - expected.at(i);
    diff += d * d;
    norm += expected.at(i) * expected.at(i);
  }
  if (diff == 0) return 0;
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-300);
}

bool same_bytes(const HostArray& a, const HostArray& b) {
  return a.meta == b.meta && std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0;
}

// A forward-only program computing `target` (frees inserted).
Program forward_program(const Tape& tape, Value target) {
  Program p;
  p.loss = target.id;
  for (int id : compute_order(tape, target.id)) p.instructions.push_back({InstructionKind::compute, id});
  return insert_frees(tape, p);
}

using Builder = std::function<Value(Tape&, const std::vector<Value>&, const std::vector<Value>&)>;

// One op under test: `params` are differentiated, `constants` are bound inputs.
struct OpCase {
  std::string name;
  std::vector<HostArray> params;
  std::vector<HostArray> constants;
  Builder build;
  bool exact = false;  // values and gradients must be bitwise equal to the CPU's
};

struct OpRun {
  HostArray value;
  std::vector<HostArray> grads;
  std::size_t peak = 0;
};

// Records the case, runs forward and store-all backward on `backend`.
OpRun run_case(const OpCase& c, Backend& backend) {
  Tape tape;
  std::vector<Value> params, constants;
  for (std::size_t i = 0; i < c.params.size(); ++i) params.push_back(tape.parameter("p" + std::to_string(i), c.params[i]));
  for (std::size_t i = 0; i < c.constants.size(); ++i)
    constants.push_back(tape.input("c" + std::to_string(i), c.constants[i]));
  Value out = c.build(tape, params, constants);
  Value weights = tape.input("weights", random_array(out.shape(), 991, 0.5, 1.5, out.meta().dtype));
  Value loss = sum(mul(out, weights));
  Executor ex(tape, backend);
  OpRun r;
  r.value = *ex.run(forward_program(tape, out)).loss;
  StepResult g = ex.run(store_all_program(tape, loss.id));
  for (const Value& p : params) r.grads.push_back(backend.download(g.gradients.at(p.id)));
  r.peak = g.report.peak_bytes;
  return r;
}

void check_op(Backend& gpu, const OpCase& c) {
  CAPTURE(c.name);
  CpuBackend cpu;
  const OpRun expected = run_case(c, cpu);
  const OpRun got = run_case(c, gpu);
  const double tolerance = expected.value.meta.dtype == DType::f64 ? 1e-12 : 1e-5;
  if (c.exact) {
    CHECK(same_bytes(got.value, expected.value));
  } else {
    CHECK(relative_error(got.value, expected.value) < tolerance);
  }
  REQUIRE(got.grads.size() == expected.grads.size());
  for (std::size_t i = 0; i < got.grads.size(); ++i) {
    CAPTURE(i);
    if (c.exact)
      CHECK(same_bytes(got.grads[i], expected.grads[i]));
    else
      CHECK(relative_error(got.grads[i], expected.grads[i]) < tolerance);
  }
  CHECK(got.peak == expected.peak);  // the same allocations, metered the same way
  const OpRun again = run_case(c, gpu);
  CHECK(same_bytes(again.value, got.value));
  for (std::size_t i = 0; i < got.grads.size(); ++i) CHECK(same_bytes(again.grads[i], got.grads[i]));
}

HostArray f32(const Shape& shape, std::uint32_t seed, double lo = -1, double hi = 1) {
  return random_array(shape, seed, lo, hi, DType::f32);
}
HostArray f64(const Shape& shape, std::uint32_t seed, double lo = -1, double hi = 1) {
  return random_array(shape, seed, lo, hi, DType::f64);
}
// Small integers in [-3, 3] as f32: many ties for max and pooling.
HostArray ties(const Shape& shape, std::uint32_t seed) {
  HostArray a = random_array(shape, seed, -3.5, 3.5, DType::f32);
  for (std::int64_t i = 0; i < a.numel(); ++i) a.set(i, std::round(a.at(i)));
  return a;
}
HostArray away_from_zero(const Shape& shape, std::uint32_t seed) {
  HostArray a = testing::random_away_from_zero(shape, seed);
  HostArray f(TensorMeta{shape, DType::f32});
  for (std::int64_t i = 0; i < a.numel(); ++i) f.set(i, a.at(i));
  return f;
}

Value p0(Tape&, const std::vector<Value>& p, const std::vector<Value>&) { return p[0]; }

}  // namespace

// ---------------------------------------------------------------------------
// ops against the CPU backend

TEST_CASE("cuda: unary maps and their vjps match the CPU") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  struct U { const char* name; std::function<Value(Value)> f; bool positive; };
  const U maps[] = {
      {"neg", [](Value x) { return neg(x); }, false},        {"exp", [](Value x) { return exp(x); }, false},
      {"log", [](Value x) { return log(x); }, true},         {"tanh", [](Value x) { return tanh(x); }, false},
      {"sigmoid", [](Value x) { return sigmoid(x); }, false}, {"relu", [](Value x) { return relu(x); }, false},
      {"gelu", [](Value x) { return gelu(x); }, false},       {"square", [](Value x) { return square(x); }, false},
      {"pow", [](Value x) { return pow(x, 2.5); }, true},    {"scale", [](Value x) { return scale(x, -1.75); }, false},
  };
  for (const U& u : maps) {
    HostArray x = u.positive ? f32({3, 41}, 11, 0.5, 2.0) : away_from_zero({3, 41}, 12);
    check_op(*gpu, {u.name, {x}, {}, [f = u.f](Tape& t, auto& p, auto& c) { return f(p0(t, p, c)); }});
  }
  // f64 through the same kernels
  check_op(*gpu, {"gelu f64", {f64({5, 7}, 13)}, {}, [](Tape&, auto& p, auto&) { return gelu(p[0]); }});
  check_op(*gpu, {"log f64", {f64({5, 7}, 14, 0.5, 2)}, {}, [](Tape&, auto& p, auto&) { return log(p[0]); }});
}

TEST_CASE("cuda: broadcasting binary ops and their vjps match the CPU") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  struct Shapes { Shape a, b; };
  const Shapes shapes[] = {{{3, 4}, {3, 4}}, {{2, 3, 4}, {4}}, {{2, 1, 4}, {3, 1}}, {{3, 4}, {}}, {{5}, {2, 3, 5}}};
  const std::pair<const char*, std::function<Value(Value, Value)>> ops[] = {
      {"add", [](Value a, Value b) { return add(a, b); }},
      {"sub", [](Value a, Value b) { return sub(a, b); }},
      {"mul", [](Value a, Value b) { return mul(a, b); }},
      {"div", [](Value a, Value b) { return div(a, b); }},
  };
  std::uint32_t seed = 100;
  for (const auto& [name, f] : ops)
    for (const Shapes& s : shapes) {
      const std::string label = std::string(name) + " " + shape_string(s.a) + " " + shape_string(s.b);
      check_op(*gpu, {label, {f32(s.a, seed++), f32(s.b, seed++, 0.5, 1.5)}, {},
                      [f = f](Tape&, auto& p, auto&) { return f(p[0], p[1]); }});
    }
  check_op(*gpu, {"div f64 broadcast", {f64({2, 3, 4}, 7), f64({3, 1}, 8, 0.5, 1.5)}, {},
                  [](Tape&, auto& p, auto&) { return div(p[0], p[1]); }});
}

TEST_CASE("cuda: sum, mean and max over every kind of axis set match the CPU") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  const std::vector<std::vector<int>> axis_sets = {{}, {0}, {1}, {-1}, {0, 2}, {1, 2}};
  std::uint32_t seed = 200;
  for (const auto& axes : axis_sets)
    for (bool keep : {false, true}) {
      const std::string suffix = " axes " + std::to_string(axes.size()) + (axes.empty() ? "" : "/" + std::to_string(axes[0])) +
                                 (keep ? " keepdims" : "");
      check_op(*gpu, {"sum" + suffix, {f32({4, 5, 6}, seed++)}, {},
                      [axes, keep](Tape&, auto& p, auto&) { return sum(p[0], axes, keep); }});
      check_op(*gpu, {"mean" + suffix, {f32({4, 5, 6}, seed++)}, {},
                      [axes, keep](Tape&, auto& p, auto&) { return mean(p[0], axes, keep); }});
      // Ties everywhere: the gradient must go to the first maximum, as on the CPU.
      check_op(*gpu, {"max" + suffix, {ties({4, 5, 6}, seed++)}, {},
                      [axes, keep](Tape&, auto& p, auto&) { return max(p[0], axes, keep); }, true});
    }
  // Long groups (one block per output), many columns (one thread per column), f64.
  check_op(*gpu, {"sum of long rows", {f32({3, 3000}, 301, 0.5, 1.5)}, {},
                  [](Tape&, auto& p, auto&) { return sum(p[0], {1}); }});
  check_op(*gpu, {"mean of a long leading axis", {f32({3000, 3}, 302, 0.5, 1.5)}, {},
                  [](Tape&, auto& p, auto&) { return mean(p[0], {0}); }});
  check_op(*gpu, {"sum over rows, many columns", {f32({200, 600}, 303, 0.5, 1.5)}, {},
                  [](Tape&, auto& p, auto&) { return sum(p[0], {0}); }});
  check_op(*gpu, {"max of long rows with ties", {ties({2, 2000}, 304)}, {},
                  [](Tape&, auto& p, auto&) { return max(p[0], {-1}); }, true});
  check_op(*gpu, {"max over a middle axis", {ties({3, 700, 4}, 305)}, {},
                  [](Tape&, auto& p, auto&) { return max(p[0], {1}); }, true});
  check_op(*gpu, {"sum f64", {f64({30, 40, 5}, 306)}, {}, [](Tape&, auto& p, auto&) { return sum(p[0], {0, 2}); }});
}

TEST_CASE("cuda: matmul (2-D, batched, batched @ 2-D) and linear match the CPU") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  check_op(*gpu, {"matmul 2-D", {f32({3, 4}, 1), f32({4, 5}, 2)}, {}, [](Tape&, auto& p, auto&) { return matmul(p[0], p[1]); }});
  check_op(*gpu, {"matmul batched", {f32({2, 3, 4, 6}, 3), f32({2, 3, 6, 5}, 4)}, {},
                  [](Tape&, auto& p, auto&) { return matmul(p[0], p[1]); }});
  check_op(*gpu, {"matmul batched @ 2-D", {f32({2, 3, 4}, 5), f32({4, 5}, 6)}, {},
                  [](Tape&, auto& p, auto&) { return matmul(p[0], p[1]); }});
  check_op(*gpu, {"linear with bias", {f32({2, 3, 40}, 7), f32({33, 40}, 8), f32({33}, 9)}, {},
                  [](Tape&, auto& p, auto&) { return linear(p[0], p[1], p[2]); }});
  check_op(*gpu, {"linear without bias", {f32({64, 128}, 10), f32({96, 128}, 11)}, {},
                  [](Tape&, auto& p, auto&) { return linear(p[0], p[1]); }});
  check_op(*gpu, {"matmul f64", {f64({2, 7, 9}, 12), f64({2, 9, 4}, 13)}, {},
                  [](Tape&, auto& p, auto&) { return matmul(p[0], p[1]); }});
  check_op(*gpu, {"transpose @ (attention scores)", {f32({2, 2, 5, 3}, 14), f32({2, 2, 5, 3}, 15)}, {},
                  [](Tape&, auto& p, auto&) { return matmul(p[0], transpose(p[1])); }});
}

TEST_CASE("cuda: shape ops (reshape, permute, slice, concat) match the CPU exactly") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  check_op(*gpu, {"reshape", {f32({2, 3, 4}, 1)}, {}, [](Tape&, auto& p, auto&) { return reshape(p[0], {4, -1}); }, true});
  check_op(*gpu, {"permute", {f32({2, 3, 4, 5}, 2)}, {},
                  [](Tape&, auto& p, auto&) { return permute(p[0], {2, 0, 3, 1}); }, true});
  check_op(*gpu, {"slice", {f32({4, 6, 3}, 3)}, {}, [](Tape&, auto& p, auto&) { return slice(p[0], 1, 2, 5); }, true});
  check_op(*gpu, {"concat", {f32({2, 3}, 4), f32({2, 5}, 5), f32({2, 1}, 6)}, {},
                  [](Tape&, auto& p, auto&) { return concat({p[0], p[1], p[2]}, 1); }, true});
  check_op(*gpu, {"concat of one value twice", {f32({3, 2}, 7)}, {},
                  [](Tape&, auto& p, auto&) { return concat({p[0], p[0]}, 0); }, true});
}

TEST_CASE("cuda: softmax, log_softmax, cross_entropy and mse match the CPU") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  for (const Shape& s : {Shape{4, 7}, Shape{3, 1000}, Shape{2, 3, 33}}) {
    check_op(*gpu, {"softmax " + shape_string(s), {f32(s, 1, -3, 3)}, {}, [](Tape&, auto& p, auto&) { return softmax(p[0]); }});
    check_op(*gpu, {"log_softmax " + shape_string(s), {f32(s, 2, -3, 3)}, {},
                    [](Tape&, auto& p, auto&) { return log_softmax(p[0]); }});
  }
  const HostArray labels = HostArray::from({6}, std::vector<std::int32_t>{0, 4, 2, 2, 1, 3});
  check_op(*gpu, {"cross_entropy", {f32({6, 5}, 3, -2, 2)}, {labels},
                  [](Tape&, auto& p, auto& c) { return cross_entropy(p[0], c[0]); }});
  std::vector<std::int32_t> many(300);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = static_cast<std::int32_t>((i * 37) % 1000);
  check_op(*gpu, {"cross_entropy, 1000 classes", {f32({300, 1000}, 4, -2, 2)}, {HostArray::from({300}, many)},
                  [](Tape&, auto& p, auto& c) { return cross_entropy(p[0], c[0]); }});
  check_op(*gpu, {"mse", {f32({7, 9}, 5), f32({7, 9}, 6)}, {}, [](Tape&, auto& p, auto&) { return mse(p[0], p[1]); }});
  check_op(*gpu, {"mse, many chunks", {f32({300, 700}, 7), f32({300, 700}, 8)}, {},
                  [](Tape&, auto& p, auto&) { return mse(p[0], p[1]); }});
  check_op(*gpu, {"softmax f64", {f64({3, 50}, 9)}, {}, [](Tape&, auto& p, auto&) { return softmax(p[0]); }});
}

TEST_CASE("cuda: layernorm and batchnorm (with running statistics) match the CPU") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  for (const Shape& s : {Shape{2, 3, 8}, Shape{5, 700}}) {
    const std::int64_t d = s.back();
    check_op(*gpu, {"layernorm " + shape_string(s), {f32(s, 1, -2, 2), f32({d}, 2, 0.5, 1.5), f32({d}, 3)}, {},
                    [](Tape&, auto& p, auto&) { return layernorm(p[0], p[1], p[2]); }});
  }
  check_op(*gpu, {"layernorm f64", {f64({4, 16}, 4), f64({16}, 5, 0.5, 1.5), f64({16}, 6)}, {},
                  [](Tape&, auto& p, auto&) { return layernorm(p[0], p[1], p[2]); }});
  for (const Shape& s : {Shape{6, 4}, Shape{3, 4, 5, 5}}) {
    check_op(*gpu, {"batchnorm " + shape_string(s), {f32(s, 7, -2, 2), f32({4}, 8, 0.5, 1.5), f32({4}, 9)}, {},
                    [](Tape&, auto& p, auto&) { return batchnorm(p[0], p[1], p[2]); }});
  }
  // Running statistics after one step: the same on both backends.
  Tape tape;
  Value x = tape.input("x", f32({3, 4, 5, 5}, 10, -2, 2));
  Value y = batchnorm(x, tape.parameter("g", f32({4}, 11, 0.5, 1.5)), tape.parameter("b", f32({4}, 12)), 0.3);
  Value loss = sum(square(y));
  CpuBackend cpu;
  Executor on_cpu(tape, cpu), on_gpu(tape, *gpu);
  on_cpu.run(store_all_program(tape, loss.id));
  on_gpu.run(store_all_program(tape, loss.id));
  for (std::size_t i = 0; i < 2; ++i)
    CHECK(relative_error(gpu->download(on_gpu.state(y.id)[i]), cpu.download(on_cpu.state(y.id)[i])) < 1e-6);
}

TEST_CASE("cuda: dropout draws the CPU's Philox mask, bit for bit") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  for (double p : {0.1, 0.5}) {
    check_op(*gpu, {"dropout p=" + std::to_string(p), {f32({5, 37}, 1)}, {},
                    [p](Tape&, auto& v, auto&) { return dropout(v[0], p); }, true});
  }
  // A tensor whose length is not a multiple of the Philox block (4 elements).
  check_op(*gpu, {"dropout, odd length", {f32({1001}, 2)}, {}, [](Tape&, auto& v, auto&) { return dropout(v[0], 0.3); }, true});
}

TEST_CASE("cuda: embedding (repeated ids), conv2d, pooling and upsampling match the CPU") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  const HostArray ids = HostArray::from({2, 4}, std::vector<std::int32_t>{3, 1, 3, 9, 0, 3, 1, 7});
  check_op(*gpu, {"embedding", {f32({10, 6}, 1)}, {ids}, [](Tape&, auto& p, auto& c) { return embedding(p[0], c[0]); }, true});
  check_op(*gpu, {"conv2d stride 1 padding 1 with bias", {f32({2, 3, 7, 7}, 2), f32({4, 3, 3, 3}, 3), f32({4}, 4)}, {},
                  [](Tape&, auto& p, auto&) { return conv2d(p[0], p[1], p[2], 1, 1); }});
  check_op(*gpu, {"conv2d stride 2 padding 0", {f32({2, 3, 8, 8}, 5), f32({5, 3, 3, 3}, 6)}, {},
                  [](Tape&, auto& p, auto&) { return conv2d(p[0], p[1], std::nullopt, 2, 0); }});
  check_op(*gpu, {"conv2d 1x1", {f32({1, 4, 5, 5}, 7), f32({2, 4, 1, 1}, 8)}, {},
                  [](Tape&, auto& p, auto&) { return conv2d(p[0], p[1]); }});
  check_op(*gpu, {"max_pool2d 2x2", {ties({2, 3, 6, 6}, 9)}, {}, [](Tape&, auto& p, auto&) { return max_pool2d(p[0], 2); }, true});
  check_op(*gpu, {"max_pool2d 3x3 stride 2 padding 1 (overlapping)", {ties({2, 2, 7, 7}, 10)}, {},
                  [](Tape&, auto& p, auto&) { return max_pool2d(p[0], 3, 2, 1); }, true});
  check_op(*gpu, {"avg_pool2d 2x2", {f32({2, 3, 6, 6}, 11)}, {}, [](Tape&, auto& p, auto&) { return avg_pool2d(p[0], 2); }});
  check_op(*gpu, {"avg_pool2d 3x3 stride 2 padding 1", {f32({2, 2, 7, 7}, 12)}, {},
                  [](Tape&, auto& p, auto&) { return avg_pool2d(p[0], 3, 2, 1); }});
  check_op(*gpu, {"upsample_nearest x2", {f32({2, 3, 3, 4}, 13)}, {},
                  [](Tape&, auto& p, auto&) { return upsample_nearest(p[0], 2); }});
  check_op(*gpu, {"upsample_nearest x3 f64", {f64({1, 2, 2, 3}, 14)}, {},
                  [](Tape&, auto& p, auto&) { return upsample_nearest(p[0], 3); }});
}

TEST_CASE("cuda: copy_strided, fill, accumulate and axpy match the CPU") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  CpuBackend cpu;
  const HostArray src = f32({3, 4}, 1), base = f32({4, 5}, 2);
  auto run = [&](Backend& b) {
    Tensor s = b.empty(src.meta, MemoryCategory::workspace), d = b.empty(base.meta, MemoryCategory::workspace);
    b.upload(src, s);
    b.upload(base, d);
    // d[1:4, 1:5] += s, then d += 0.5 * d, then d += d
    b.copy_strided(s, {0, {3, 4}, {4, 1}}, d, {6, {3, 4}, {5, 1}}, true);
    b.axpy(0.5, d, d);
    Tensor t = b.empty(base.meta, MemoryCategory::workspace);
    b.fill(t, -2.5);
    b.accumulate(t, d);
    return b.download(d);
  };
  CHECK(same_bytes(run(*gpu), run(cpu)));
  Tensor ints = gpu->empty({{5}, DType::i32}, MemoryCategory::workspace);
  gpu->fill(ints, 7);
  HostArray back = gpu->download(ints);
  for (std::int64_t i = 0; i < 5; ++i) CHECK(back.data<std::int32_t>()[i] == 7);
}

// ---------------------------------------------------------------------------
// errors

TEST_CASE("cuda: out-of-range labels and ids are host errors with the CPU's message") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  Tape tape;
  Value logits = tape.parameter("logits", f32({4, 5}, 1));
  Value labels = tape.input("labels", HostArray::from({4}, std::vector<std::int32_t>{1, 0, 7, 9}));
  Value loss = cross_entropy(logits, labels);
  Executor ex(tape, *gpu);
  CHECK_THROWS_WITH_AS(ex.run(store_all_program(tape, loss.id)), "[cross_entropy] label 7 out of range [0, 5) at row 2",
                       Error);
  Bindings fixed{{labels.id, HostArray::from({4}, std::vector<std::int32_t>{1, 0, 4, 2})}};
  CHECK_NOTHROW(ex.run(store_all_program(tape, loss.id), fixed));  // the backend is still usable

  Tape t2;
  Value table = t2.parameter("table", f32({10, 4}, 2));
  Value ids = t2.input("ids", HostArray::from({5}, std::vector<std::int32_t>{0, 3, 9, -1, 12}));
  Value e = sum(embedding(table, ids));
  Executor ex2(t2, *gpu);
  CHECK_THROWS_WITH_AS(ex2.run(store_all_program(t2, e.id)), "[embedding] id -1 out of range [0, 10) at position 3", Error);
}

TEST_CASE("cuda: out of memory is an Error naming the request") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  const std::int64_t huge = std::int64_t{1} << 47;  // 512 TiB of f32
  CHECK_THROWS_WITH_AS(gpu->empty({{huge}, DType::f32}, MemoryCategory::activation),
                       doctest::Contains("[cuda] out of memory: could not allocate 562949953421312 bytes"), Error);
  CHECK(gpu->meter().budgeted_current() == 0);
  Tensor ok = gpu->empty({{1024}, DType::f32}, MemoryCategory::activation);  // still works
  CHECK(ok.defined());
}

TEST_CASE("cuda: make_cuda_backend names a missing device") {
  if (!cuda_built() || cuda_device_count() == 0) {
    MESSAGE("skipped: no CUDA device (the no-device message is checked by the remat CLI)");
    return;
  }
  CHECK_THROWS_WITH_AS(make_cuda_backend(cuda_device_count()), doctest::Contains("does not exist"), Error);
  CHECK(cuda_device_description(0).find("sm_") != std::string::npos);
}

// ---------------------------------------------------------------------------
// the three promises on the GPU

TEST_CASE("cuda: every strategy keeps the three promises on the GPU") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  const char* specs[] = {
      "mlp:layers=10,width=16,batch=4,act=tanh",
      "resmlp:layers=6,width=12,batch=3,act=gelu",
      "transformer:layers=2,width=16,heads=2,seq=8,batch=2,vocab=32",
      "resnet:blocks=1,width=4,batch=2,image=8,classes=5",
      "unet:levels=2,width=4,batch=1,image=16",
      "lstm:steps=6,hidden=8,input=4,batch=2",
  };
  CpuBackend cpu;
  for (const char* spec : specs) {
    CAPTURE(spec);
    Model m = build_model(spec);
    const Tape& tape = *m.tape;
    const Bindings data = m.batch(0);
    const Program store_all = store_all_program(tape, m.loss.id);
    Executor reference(tape, *gpu), cpu_reference(tape, cpu);
    StepResult expected = reference.run(store_all, data);
    StepResult on_cpu = cpu_reference.run(store_all, data);
    // The GPU's store-all against the CPU's: close (f32, deep models: 1e-4).
    for (auto& [id, g] : expected.gradients)
      CHECK(relative_error(gpu->download(g), cpu.download(on_cpu.gradients.at(id))) < 1e-4);
    for_each_strategy_plan(tape, m.loss.id, {0.0, 0.6, 0.3}, [&](const Program& program, auto budget) {
      const StepReport predicted = simulate(tape, program);
      Executor ex(tape, *gpu);
      StepResult got = ex.run(program, data);
      CHECK(got.report.peak_bytes == predicted.peak_bytes);
      CHECK(got.report.recomputed_ops == predicted.recomputed_ops);
      if (budget) CHECK(got.report.peak_bytes <= *budget);
      CHECK(same_bytes(*got.loss, *expected.loss));
      for (auto& [id, g] : expected.gradients) CHECK(same_bytes(gpu->download(got.gradients.at(id)), gpu->download(g)));
    });
  }
}

TEST_CASE("cuda: a transformer step is bitwise reproducible and trains like the CPU") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  Model m = build_model("transformer:layers=2,width=32,heads=4,seq=16,batch=4,vocab=64");
  const Tape& tape = *m.tape;
  const Program p = store_all_program(tape, m.loss.id);
  CpuBackend cpu;
  Executor a(tape, *gpu), b(tape, *gpu), c(tape, cpu);
  double gpu_loss = 0, cpu_loss = 0;
  for (std::uint64_t step = 0; step < 3; ++step) {
    const Bindings data = m.batch(step);
    StepResult ra = a.run(p, data), rb = b.run(p, data), rc = c.run(p, data);
    for (auto& [id, g] : ra.gradients) CHECK(same_bytes(gpu->download(g), gpu->download(rb.gradients.at(id))));
    a.sgd_step(ra, 0.1);
    b.sgd_step(rb, 0.1);
    c.sgd_step(rc, 0.1);
    gpu_loss = ra.loss->at(0);
    cpu_loss = rc.loss->at(0);
  }
  CHECK(std::abs(gpu_loss - cpu_loss) < 1e-4 * std::abs(cpu_loss));
  CHECK(cuda_memory_stats(*gpu).allocated_bytes > 0);
}
