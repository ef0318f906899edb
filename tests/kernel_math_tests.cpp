// Contract: the kernel math shared by the CPU and CUDA backends
// (autodiff/kernel_math/), checked on the host against independent oracles:
//  - every unary derivative against central finite differences of its value,
//    every binary partial likewise;
//  - the "what the derivative reads" tables (which the ops' saves() are): an
//    operand a kind claims not to read is fed NaN and the derivative must not
//    change; an operand it claims to read must change the result when moved;
//  - the broadcast index decoder against offsets computed from multi-indices by
//    NumPy's rules, written out here;
//  - the pooling windows: pool_windows_containing is the exact inverse of
//    pool_window_span (brute force over small geometries), and a window's value
//    and first maximum against a loop over the unclipped kernel;
//  - dropout's vjp: the gradient is the forward kernel applied to the incoming
//    gradient with the same key, bit for bit.
#include "gradcheck.hpp"

#include "autodiff/kernel_math/broadcast.hpp"
#include "autodiff/kernel_math/elementwise.hpp"
#include "autodiff/kernel_math/pooling.hpp"
#include "autodiff/philox.hpp"
#include "autodiff/remat.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

using namespace remat;
namespace km = remat::kernel_math;

namespace {

const UnaryKind all_unary[] = {UnaryKind::neg,  UnaryKind::exp,  UnaryKind::log,    UnaryKind::tanh, UnaryKind::sigmoid,
                               UnaryKind::relu, UnaryKind::gelu, UnaryKind::square, UnaryKind::pow,  UnaryKind::scale, UnaryKind::erf};
const BinaryKind all_binary[] = {BinaryKind::add, BinaryKind::sub, BinaryKind::mul, BinaryKind::div};
const double nan_value = std::numeric_limits<double>::quiet_NaN();

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

TEST_CASE("kernel math: every unary derivative matches central finite differences of its value") {
  const double param = 2.5, h = 1e-6;
  for (UnaryKind kind : all_unary) {
    for (double x : {0.3, 0.9, 1.7, -0.6, -1.4}) {
      if ((kind == UnaryKind::log || kind == UnaryKind::pow) && x <= 0) continue;  // outside the domain
      CAPTURE(static_cast<int>(kind));
      CAPTURE(x);
      const double y = km::unary_value(kind, x, param);
      const double numeric = (km::unary_value(kind, x + h, param) - km::unary_value(kind, x - h, param)) / (2 * h);
      const double analytic = km::unary_derivative(kind, x, y, param);
      CHECK(std::abs(analytic - numeric) <= 1e-6 * std::max(1.0, std::abs(numeric)));
    }
  }
}

TEST_CASE("kernel math: a unary derivative reads exactly the operands its table names") {
  const double param = 2.5;
  for (UnaryKind kind : all_unary) {
    CAPTURE(static_cast<int>(kind));
    const auto reads = km::unary_derivative_reads(kind);
    const double x = 0.8, y = km::unary_value(kind, x, param);
    const double exact = km::unary_derivative(kind, x, y, param);
    // What the table says is not read may be anything (the tape does not keep it).
    const double blinded = km::unary_derivative(kind, reads.input ? x : nan_value, reads.output ? y : nan_value, param);
    CHECK(same_bits(blinded, exact));
    // What it says is read matters: moving it (x to -x' or y to -y) moves the derivative.
    if (reads.input) CHECK(km::unary_derivative(kind, 1.9, y, param) != exact);
    if (reads.output) CHECK(km::unary_derivative(kind, x, -y - 1.0, param) != exact);
  }
}

TEST_CASE("kernel math: binary partials match finite differences and read what their table names") {
  const double h = 1e-6, g = 1.3;
  for (BinaryKind kind : all_binary) {
    for (int which = 0; which < 2; ++which) {
      CAPTURE(static_cast<int>(kind));
      CAPTURE(which);
      const double a = 0.7, b = -1.6;
      const double numeric =
          which == 0 ? (km::binary_value(kind, a + h, b) - km::binary_value(kind, a - h, b)) / (2 * h)
                     : (km::binary_value(kind, a, b + h) - km::binary_value(kind, a, b - h)) / (2 * h);
      const double exact = km::binary_partial(kind, which, a, b, g);
      CHECK(std::abs(exact - g * numeric) <= 1e-6 * std::max(1.0, std::abs(g * numeric)));
      const auto reads = km::binary_partial_reads(kind, which);
      CHECK(same_bits(km::binary_partial(kind, which, reads.a ? a : nan_value, reads.b ? b : nan_value, g), exact));
      if (reads.a) CHECK(km::binary_partial(kind, which, 2.1, b, g) != exact);
      if (reads.b) CHECK(km::binary_partial(kind, which, a, 0.4, g) != exact);
    }
  }
}

TEST_CASE("kernel math: the broadcast decoder agrees with NumPy's rules on every element") {
  struct Case {
    Shape target, left, right;
  };
  const Case cases[] = {{{2, 3, 4}, {2, 3, 4}, {4}},       {{2, 3, 4}, {3, 1}, {2, 1, 4}}, {{5}, {1}, {5}},
                        {{2, 1, 3, 2}, {1, 1, 3, 1}, {2}}, {{}, {}, {}},                   {{3, 2}, {3, 2}, {1, 1}}};
  for (const Case& c : cases) {
    CAPTURE(shape_string(c.target));
    const auto s0 = km::broadcast_strides(c.left, c.target), s1 = km::broadcast_strides(c.right, c.target);
    std::int64_t count = 1;
    for (auto e : c.target) count *= e;
    const int rank = static_cast<int>(c.target.size());
    for (std::int64_t flat = 0; flat < count; ++flat) {
      // The multi-index of flat (row-major), then each operand's row-major offset
      // with index 0 on its size-1 axes, right-aligned.
      std::vector<std::int64_t> index(c.target.size());
      for (std::int64_t rem = flat, d = rank - 1; d >= 0; --d) {
        index[static_cast<std::size_t>(d)] = rem % c.target[static_cast<std::size_t>(d)];
        rem /= c.target[static_cast<std::size_t>(d)];
      }
      auto expected = [&](const Shape& shape) {
        std::int64_t offset = 0;
        const std::size_t shift = c.target.size() - shape.size();
        for (std::size_t d = 0; d < shape.size(); ++d) offset = offset * shape[d] + (shape[d] == 1 ? 0 : index[d + shift]);
        return offset;
      };
      std::int64_t o0 = -1, o1 = -1;
      km::strided_offsets(flat, rank, c.target.data(), s0.data(), s1.data(), o0, o1);
      CHECK(o0 == expected(c.left));
      CHECK(o1 == expected(c.right));
      CHECK(km::strided_offset(flat, rank, c.target.data(), s1.data()) == expected(c.right));
    }
  }
}

TEST_CASE("kernel math: pooling windows and the windows containing an element are inverses") {
  for (std::int64_t size : {1, 4, 7})
    for (std::int64_t kernel : {1, 2, 3})
      for (std::int64_t stride : {1, 2, 3})
        for (std::int64_t pad = 0; pad < kernel; ++pad) {
          const std::int64_t out = (size + 2 * pad - kernel) / stride + 1;
          if (out < 1) continue;
          CAPTURE(size);
          CAPTURE(kernel);
          CAPTURE(stride);
          CAPTURE(pad);
          for (std::int64_t i = 0; i < size; ++i) {
            const auto containing = km::pool_windows_containing(i, stride, pad, kernel, out);
            for (std::int64_t o = 0; o < out; ++o) {
              const auto span = km::pool_window_span(o, stride, pad, kernel, size);
              const bool in_window = o * stride - pad <= i && i < o * stride - pad + kernel;  // unclipped rule
              CHECK((span.begin <= i && i < span.end) == in_window);
              CHECK((containing.begin <= o && o < containing.end) == in_window);
            }
          }
        }
}

TEST_CASE("kernel math: a pooling window's value and first maximum match a loop over the whole kernel") {
  // A 5x6 plane with ties (values repeat) and one NaN-free layout.
  std::vector<double> plane(30);
  for (std::size_t i = 0; i < plane.size(); ++i) plane[i] = static_cast<double>((i * 7) % 5);
  const Pool2dGeometry g{1, 1, 5, 6, 3, 2, 2, 2, 1, 1, (5 + 2 - 3) / 2 + 1, (6 + 2 - 2) / 2 + 1};
  for (std::int64_t oh = 0; oh < g.out_h; ++oh)
    for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
      CAPTURE(oh);
      CAPTURE(ow);
      double best = -std::numeric_limits<double>::infinity(), total = 0;
      std::int64_t best_h = -1, best_w = -1;
      for (std::int64_t i = 0; i < g.kernel_h; ++i)
        for (std::int64_t j = 0; j < g.kernel_w; ++j) {
          const std::int64_t ih = oh * g.stride_h - g.pad_h + i, iw = ow * g.stride_w - g.pad_w + j;
          if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
          const double v = plane[static_cast<std::size_t>(ih * g.w + iw)];
          total += v;
          if (v > best) best = v, best_h = ih, best_w = iw;
        }
      CHECK(km::pool_window_value(PoolKind::max, g, plane.data(), oh, ow) == best);
      CHECK(km::pool_window_value(PoolKind::avg, g, plane.data(), oh, ow) == total / (g.kernel_h * g.kernel_w));
      std::int64_t ih = -1, iw = -1;
      REQUIRE(km::pool_first_max(g, plane.data(), oh, ow, best, ih, iw));
      CHECK(ih == best_h);
      CHECK(iw == best_w);
    }
}

TEST_CASE("dropout's vjp is the forward kernel applied to the incoming gradient with the same key") {
  const double p = 0.35;
  const std::uint64_t seed = 41;
  for (DType dtype : {DType::f32, DType::f64}) {
    CAPTURE(static_cast<int>(dtype));
    // Odd length: the last Philox block is partial.
    HostArray upstream = remat::testing::random_array({1001}, 7, -1, 1, dtype);
    HostArray xs = remat::testing::random_array({1001}, 8, -1, 1, dtype);
    Tape tape;
    Value x = tape.parameter("x", xs);
    Value c = tape.input("c", upstream);
    Value d = dropout(x, p);
    Value loss = sum(mul(d, c));  // d loss / d d = c exactly (the sum's gradient is 1)
    CpuBackend cpu;
    Executor ex(tape, cpu);
    RunOptions options;
    options.seed = seed;
    auto result = ex.run(store_all_program(tape, loss.id), {}, options);
    HostArray gradient = cpu.download(result.gradients.at(x.id));

    Tensor gy = cpu.empty(upstream.meta, MemoryCategory::workspace);
    Tensor forward = cpu.empty(upstream.meta, MemoryCategory::workspace);
    cpu.upload(upstream, gy);
    cpu.dropout(gy, p, seed, static_cast<std::uint64_t>(d.id), forward);
    HostArray expected = cpu.download(forward);
    REQUIRE(gradient.bytes.size() == expected.bytes.size());
    CHECK(std::memcmp(gradient.bytes.data(), expected.bytes.data(), expected.bytes.size()) == 0);
    // And the documented mask itself, from philox_uniform.
    std::int64_t wrong = 0;
    const double scale = 1.0 / (1.0 - p);
    for (std::int64_t i = 0; i < 1001; ++i) {
      const bool kept = philox_uniform(seed, static_cast<std::uint64_t>(d.id), static_cast<std::uint64_t>(i)) >= p;
      const double want = kept ? upstream.at(i) * (dtype == DType::f32 ? static_cast<double>(static_cast<float>(scale)) : scale) : 0.0;
      wrong += std::abs(gradient.at(i) - want) > 1e-6 * std::abs(want);
    }
    CHECK(wrong == 0);
  }
}
