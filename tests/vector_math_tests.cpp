// Contract: tests of the CPU's vectorised transcendentals (autodiff/cpu/vector_math.hpp)
// and of the unary kernels built on them:
//  - exp, log and tanh within 2 ulp (f32) or 1e-15 relative (f64) of libm over a wide
//    range, edge values included (0, -0, huge, tiny, infinities, NaN);
//  - the same bits for every array length and offset (the tail goes through the same
//    vector function), in place or not;
//  - the unary kernels (exp, log, tanh, sigmoid, gelu and the gelu and erf derivatives)
//    agree with kernel_math's scalar formulas to rounding, and give the same bits for 1
//    and 2 threads.
#include "gradcheck.hpp"

#include "autodiff/cpu/vector_math.hpp"
#include "autodiff/kernel_math/elementwise.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

using namespace remat;

namespace {

std::vector<float> sample_floats(float lo, float hi, std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& e : v) e = u(rng);
  return v;
}

// Distance in units in the last place between two finite floats of one sign.
double ulps(float a, float b) {
  if (a == b) return 0;
  return std::fabs(static_cast<double>(a) - static_cast<double>(b)) /
         static_cast<double>(std::nextafter(std::fabs(b), std::numeric_limits<float>::infinity()) - std::fabs(b));
}

void check_close(float got, float want, double max_ulps = 2.0) {
  if (std::isnan(want)) {
    CHECK(std::isnan(got));
  } else if (std::isinf(want) || want == 0) {
    CHECK(got == want);
  } else {
    CHECK(ulps(got, want) <= max_ulps);
  }
}

}  // namespace

TEST_CASE("vector math: exp, log and tanh within 2 ulp of libm, edge values included") {
  const std::string isa = cpu::vector_math_isa();
  CHECK((isa == "avx2" || isa == "sse2"));
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = sample_floats(-87.0f, 88.0f, 4000, 1);
  for (float e : {0.0f, -0.0f, 1.0f, -1.0f, 1e-30f, -1e-30f, 88.7f, -103.0f, 200.0f, -200.0f, inf, -inf, nan})
    x.push_back(e);
  std::vector<float> y(x.size());
  cpu::vector_exp(x.data(), y.data(), static_cast<std::int64_t>(x.size()));
  for (std::size_t i = 0; i < x.size(); ++i) {
    CAPTURE(x[i]);
    check_close(y[i], std::exp(x[i]));
  }
  cpu::vector_tanh(x.data(), y.data(), static_cast<std::int64_t>(x.size()));
  for (std::size_t i = 0; i < x.size(); ++i) {
    CAPTURE(x[i]);
    check_close(y[i], std::tanh(x[i]));
  }
  std::vector<float> positive = sample_floats(1e-6f, 1e6f, 4000, 2);
  for (float e : {1.0f, 1e-38f, 3e38f, 0.0f, -1.0f, inf, nan}) positive.push_back(e);
  y.resize(positive.size());
  cpu::vector_log(positive.data(), y.data(), static_cast<std::int64_t>(positive.size()));
  for (std::size_t i = 0; i < positive.size(); ++i) {
    CAPTURE(positive[i]);
    check_close(y[i], std::log(positive[i]));
  }
  // f64 against libm's double functions.
  std::vector<double> xd(1000);
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-30, 30);
  for (auto& e : xd) e = u(rng);
  std::vector<double> yd(xd.size());
  cpu::vector_exp(xd.data(), yd.data(), static_cast<std::int64_t>(xd.size()));
  for (std::size_t i = 0; i < xd.size(); ++i) CHECK(yd[i] == doctest::Approx(std::exp(xd[i])).epsilon(1e-15));
  cpu::vector_tanh(xd.data(), yd.data(), static_cast<std::int64_t>(xd.size()));
  for (std::size_t i = 0; i < xd.size(); ++i) CHECK(yd[i] == doctest::Approx(std::tanh(xd[i])).epsilon(1e-15));
  // tanh near 0 keeps its relative accuracy.
  for (double t : {1e-10, -1e-10, 1e-300, -3e-5}) {
    double r = 0;
    cpu::vector_tanh(&t, &r, 1);
    CHECK(r == doctest::Approx(std::tanh(t)).epsilon(1e-15));
  }
  for (auto& e : xd) e = std::fabs(e) + 1e-3;
  cpu::vector_log(xd.data(), yd.data(), static_cast<std::int64_t>(xd.size()));
  for (std::size_t i = 0; i < xd.size(); ++i) CHECK(yd[i] == doctest::Approx(std::log(xd[i])).epsilon(1e-15));
}

TEST_CASE("vector math: the same bits for every length and offset, in place or not") {
  const std::vector<float> x = sample_floats(-10, 10, 67, 4);
  std::vector<float> whole(x.size());
  cpu::vector_tanh(x.data(), whole.data(), static_cast<std::int64_t>(x.size()));
  for (std::size_t offset : {0u, 1u, 3u, 7u, 9u})
    for (std::size_t length : {0u, 1u, 5u, 8u, 13u, 31u}) {
      if (offset + length > x.size()) continue;
      std::vector<float> part(x.begin() + static_cast<std::ptrdiff_t>(offset),
                              x.begin() + static_cast<std::ptrdiff_t>(offset + length));
      cpu::vector_tanh(part.data(), part.data(), static_cast<std::int64_t>(length));  // in place
      for (std::size_t k = 0; k < length; ++k) CHECK(std::memcmp(&part[k], &whole[offset + k], sizeof(float)) == 0);
    }
}

TEST_CASE("unary kernels on vector math: scalar formulas to rounding, the same bits for 1 and 2 threads") {
  const std::int64_t n = 70001;  // above the parallel threshold, not a multiple of any vector width
  HostArray xa = testing::random_array({n}, 5, -4, 4, DType::f32);
  HostArray xp = testing::random_array({n}, 6, 0.01, 9, DType::f32);
  const int before = cpu_threads();
  for (UnaryKind kind : {UnaryKind::exp, UnaryKind::log, UnaryKind::tanh, UnaryKind::sigmoid, UnaryKind::gelu,
                         UnaryKind::erf}) {
    CAPTURE(static_cast<int>(kind));
    const HostArray& in = kind == UnaryKind::log ? xp : xa;
    std::vector<std::vector<std::byte>> forward, backward;
    for (int threads : {1, 2}) {
      set_cpu_threads(threads);
      CpuBackend cpu;
      Tensor x = cpu.empty(in.meta, MemoryCategory::activation), y = cpu.empty(in.meta, MemoryCategory::activation);
      Tensor g = cpu.empty(in.meta, MemoryCategory::activation), gx = cpu.empty(in.meta, MemoryCategory::activation);
      cpu.upload(in, x);
      cpu.upload(testing::random_array({n}, 7, -1, 1, DType::f32), g);
      cpu.unary(kind, 0.0, x, y);
      cpu.unary_backward(kind, 0.0, x, y, g, gx);
      HostArray ys = cpu.download(y), gs = cpu.download(gx), gh = cpu.download(g);
      forward.push_back(ys.bytes);
      backward.push_back(gs.bytes);
      if (threads == 1)
        for (std::int64_t i = 0; i < n; i += 97) {
          const float xi = static_cast<float>(in.at(i));
          const float want = kernel_math::unary_value<float>(kind, xi, 0.0f);
          const float yi = static_cast<float>(ys.at(i));
          // Relative 1e-6, plus absolute 4e-7 (1 + |x|): gelu's 1 + tanh cancels near x = -3,
          // where one ulp of tanh is a few 1e-8 absolute, times x.
          const double slack = 4e-7 * (1 + std::fabs(xi));
          CHECK(std::fabs(yi - want) <= 1e-6 * std::fabs(want) + slack);
          const float dwant = static_cast<float>(gh.at(i)) * kernel_math::unary_derivative<float>(kind, xi, yi, 0.0f);
          CHECK(std::fabs(gs.at(i) - dwant) <= 1e-5 * std::fabs(dwant) + slack);
        }
    }
    CHECK(forward[0] == forward[1]);
    CHECK(backward[0] == backward[1]);
  }
  set_cpu_threads(before);
}

// softmax, log_softmax (forward and backward) and cross-entropy (forward and backward)
// take their exponentials from the vector exp: libm-computed formulas to rounding, and
// the same bits at 1 and 2 threads, for row lengths around the vector widths and the
// 256-element stack chunk.
TEST_CASE("softmax family on vector math: libm formulas to rounding, the same bits for 1 and 2 threads") {
  const int before = cpu_threads();
  for (std::int64_t d : {1, 7, 8, 300, 513}) {
    CAPTURE(d);
    const std::int64_t rows = 4096 / d + 3;
    HostArray in = testing::random_array({rows, d}, 31, -6, 6, DType::f32);
    HostArray labels(TensorMeta{{rows}, DType::i32});
    for (std::int64_t r = 0; r < rows; ++r) labels.set(r, static_cast<double>((r * 5) % d));
    HostArray gin = testing::random_array({rows, d}, 32, -1, 1, DType::f32);
    std::vector<std::vector<std::byte>> outputs[2];
    for (int threads : {1, 2}) {
      set_cpu_threads(threads);
      CpuBackend cpu;
      const TensorMeta meta{{rows, d}, DType::f32};
      Tensor x = cpu.empty(meta, MemoryCategory::activation), g = cpu.empty(meta, MemoryCategory::activation);
      Tensor l = cpu.empty(labels.meta, MemoryCategory::activation);
      cpu.upload(in, x);
      cpu.upload(gin, g);
      cpu.upload(labels, l);
      std::vector<HostArray> got;
      for (bool log : {false, true}) {
        Tensor y = cpu.empty(meta, MemoryCategory::activation), gx = cpu.empty(meta, MemoryCategory::activation);
        cpu.softmax(x, log, y);
        cpu.softmax_backward(y, g, log, gx);
        got.push_back(cpu.download(y));
        got.push_back(cpu.download(gx));
      }
      Tensor loss = cpu.empty({{}, DType::f32}, MemoryCategory::activation);
      Tensor one = cpu.empty({{}, DType::f32}, MemoryCategory::activation), glogits = cpu.empty(meta, MemoryCategory::activation);
      cpu.fill(one, 1.0);
      cpu.cross_entropy(x, l, loss);
      cpu.cross_entropy_backward(x, l, one, glogits);
      got.push_back(cpu.download(loss));
      got.push_back(cpu.download(glogits));
      for (const auto& h : got) outputs[threads - 1].push_back(h.bytes);
      if (threads != 1) continue;
      double total = 0;
      for (std::int64_t r = 0; r < rows; ++r) {
        double m = -1e300, s = 0;
        for (std::int64_t i = 0; i < d; ++i) m = std::max(m, in.at(r * d + i));
        for (std::int64_t i = 0; i < d; ++i) s += std::exp(in.at(r * d + i) - m);
        const double lse = m + std::log(s);
        double gdot = 0, gsum = 0;
        for (std::int64_t i = 0; i < d; ++i) {
          const double p = std::exp(in.at(r * d + i) - lse);
          gdot += gin.at(r * d + i) * p;
          gsum += gin.at(r * d + i);
        }
        for (std::int64_t i = 0; i < d; ++i) {
          const std::int64_t k = r * d + i;
          const double p = std::exp(in.at(k) - lse);
          // f32 rounding: relative 1e-5 of the result, plus a few ulps of the operands that
          // cancel (|x| <= 6 and lse; gy and its dot product, |.| <= d).
          auto near = [](double got_value, double want, double absolute) {
            return std::fabs(got_value - want) <= 1e-5 * std::fabs(want) + absolute;
          };
          const double cancel = 4e-6 * (1 + static_cast<double>(d) * 1e-2);
          CHECK(near(got[0].at(k), p, 2e-6 * p + 1e-9));  // x - lse carries an ulp of lse (up to 12)
          CHECK(near(got[1].at(k), p * (gin.at(k) - gdot), cancel));
          CHECK(near(got[2].at(k), in.at(k) - lse, cancel));
          CHECK(near(got[3].at(k), gin.at(k) - p * gsum, cancel * (1 + std::fabs(gsum))));
          const double want = (p - (i == (r * 5) % d ? 1.0 : 0.0)) / static_cast<double>(rows);
          CHECK(near(got[5].at(k), want, 2e-6 / static_cast<double>(rows)));  // p near 1 cancels the label term
        }
        total += lse - in.at(r * d + (r * 5) % d);
      }
      CHECK(got[4].at(0) == doctest::Approx(total / static_cast<double>(rows)).epsilon(1e-5));
    }
    CHECK(outputs[0] == outputs[1]);
  }
  set_cpu_threads(before);
}
