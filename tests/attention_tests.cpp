// Contract: tests of the fused attention op (autodiff/ops/attention.cpp): its
// gradients against finite differences, and its output and gradients against the
// naive composition (matmul, scale, mask, softmax, matmul), causal and not, with T
// not a multiple of the kernels' blocks; and that the tape saves no T x T tensor.
#include "gradcheck.hpp"

#include <doctest/doctest.h>

#include <cmath>

using namespace remat;
using namespace remat::testing;

namespace {

Value naive_attention(Tape& t, Value q, Value k, Value v, bool causal, double scale) {
  const std::int64_t T = q.shape()[2];
  HostArray mask(TensorMeta{{T, T}, q.meta().dtype});
  for (std::int64_t r = 0; r < T; ++r)
    for (std::int64_t c = 0; c < T; ++c) mask.set(r * T + c, causal && c > r ? -1e30 : 0.0);
  Value s = add(remat::scale(matmul(q, transpose(k)), scale), t.input("mask", mask));
  return matmul(softmax(s), v);
}

}  // namespace

TEST_CASE("fused attention: gradients match finite differences (causal and not, T not a block multiple)") {
  for (bool causal : {false, true}) {
    const Shape shape{2, 2, 19, 5};
    auto r = gradcheck({random_array(shape, 11, -1, 1, DType::f64), random_array(shape, 12, -1, 1, DType::f64),
                        random_array(shape, 13, -1, 1, DType::f64)},
                       [&](Tape&, const std::vector<Value>& p, const std::vector<Value>&) {
                         return attention(p[0], p[1], p[2], causal, 0.7);
                       });
    CHECK(r.checked > 0);
    CHECK(r.max_relative_error < 1e-6);
  }
}

TEST_CASE("fused attention: output and gradients equal the naive composition; the tape keeps no T x T tensor") {
  for (bool causal : {false, true}) {
    const Shape shape{1, 3, 70, 8};  // 70 = 4 row blocks (16) + 6, one key block (64) + 6
    const double sc = 1.0 / std::sqrt(8.0);
    HostArray qa = random_array(shape, 21, -2, 2, DType::f64), ka = random_array(shape, 22, -2, 2, DType::f64),
              va = random_array(shape, 23, -2, 2, DType::f64);
    std::vector<HostArray> outs, grads;  // outs: dq; grads: dk, dv
    for (bool fused : {false, true}) {
      Tape t;
      Value q = t.parameter("q", qa), k = t.parameter("k", ka), v = t.parameter("v", va);
      Value o = fused ? attention(q, k, v, causal, sc) : naive_attention(t, q, k, v, causal, sc);
      Value loss = sum(mul(o, t.input("w", random_array(o.shape(), 24, 0.5, 1.5, DType::f64))));
      if (fused) {
        std::size_t saved_max = 0;
        for (const auto& n : t.nodes()) saved_max = std::max(saved_max, n.meta.bytes());
        CHECK(saved_max < static_cast<std::size_t>(70 * 70 * 3 * 8));  // no (B, H, T, T) value on the tape
      }
      CpuBackend cpu;
      Executor ex(t, cpu);
      StepResult r = grad(ex, loss);
      outs.push_back(cpu.download(r.gradients.at(q.id)));
      grads.push_back(cpu.download(r.gradients.at(k.id)));
      grads.push_back(cpu.download(r.gradients.at(v.id)));
    }
    for (std::int64_t i = 0; i < outs[0].numel(); ++i) CHECK(outs[0].at(i) == doctest::Approx(outs[1].at(i)).epsilon(1e-9));
    for (std::size_t g = 0; g < 2; ++g)
      for (std::int64_t i = 0; i < grads[g].numel(); ++i)
        CHECK(grads[g].at(i) == doctest::Approx(grads[g + 2].at(i)).epsilon(1e-9));
  }
}

TEST_CASE("fused attention: gradients are bitwise equal for 1 and 2 threads") {
  const Shape shape{2, 3, 37, 8};
  std::vector<std::vector<std::byte>> runs;
  const int before = cpu_threads();
  for (int threads : {1, 2}) {
    set_cpu_threads(threads);
    Tape t;
    Value q = t.parameter("q", random_array(shape, 31)), k = t.parameter("k", random_array(shape, 32)),
          v = t.parameter("v", random_array(shape, 33));
    Value o = attention(q, k, v, true, 0.35);
    Value loss = sum(mul(o, t.input("w", random_array(o.shape(), 34))));
    CpuBackend cpu;
    Executor ex(t, cpu);
    StepResult r = grad(ex, loss);
    std::vector<std::byte> bytes;
    for (int id : {q.id, k.id, v.id}) {
      HostArray g = cpu.download(r.gradients.at(id));
      bytes.insert(bytes.end(), g.bytes.begin(), g.bytes.end());
    }
    runs.push_back(bytes);
  }
  set_cpu_threads(before);
  CHECK(runs[0] == runs[1]);
}
