// Contract: the neural-network ops. Finite-difference gradient checks (f64,
// relative error < 1e-6) for every op on several shapes; forward values of the
// softmax family against a hand computation; dropout's Philox mask (known-answer
// vectors, replay, seed dependence, drop rate); batchnorm's running statistics
// moving exactly once per step under a recomputation; exact shape and kernel
// error messages; metering-only simulation agreeing with a real run; and
// bitwise-reproducible gradients.
#include "gradcheck.hpp"

#include "autodiff/philox.hpp"

#include <doctest/doctest.h>

#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace remat;
using remat::testing::gradcheck;
using remat::testing::random_array;

namespace {

constexpr double tolerance = 1e-6;
using Params = std::vector<Value>;

HostArray ids_array(const Shape& shape, std::vector<std::int32_t> values) { return HostArray::from(shape, values); }

// A forward-only program computing `target` (frees inserted).
Program forward_program(const Tape& tape, Value target) {
  Program p;
  p.loss = target.id;
  for (int id : compute_order(tape, target.id)) p.instructions.push_back({InstructionKind::compute, id});
  return insert_frees(tape, p);
}

// The store-all program of `loss` with `node` freed and computed again just
// before the backward sweep (a recomputation); frees re-derived by insert_frees.
Program recompute_program(const Tape& tape, Value loss, Value node) {
  Program p = store_all_program(tape, loss.id);
  std::vector<Instruction> body;
  for (const auto& ins : p.instructions) {
    if (ins.kind == InstructionKind::free || ins.kind == InstructionKind::free_grad) continue;
    if (ins.kind == InstructionKind::seed_grad) {
      body.push_back({InstructionKind::free, node.id});
      body.push_back({InstructionKind::compute, node.id});
    }
    body.push_back(ins);
  }
  p.strategy = "store-all+recompute";
  p.instructions = body;
  return insert_frees(tape, p);
}

bool same_bytes(const HostArray& a, const HostArray& b) {
  return a.meta == b.meta && a.bytes.size() == b.bytes.size() &&
         std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------
// Philox

TEST_CASE("philox4x32-10 reproduces the Random123 known-answer vectors") {
  struct Kat { std::uint32_t counter[4], key[2], expected[4]; };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    PhiloxBlock c{{k.counter[0], k.counter[1], k.counter[2], k.counter[3]}};
    PhiloxBlock out = philox4x32_10(c, k.key[0], k.key[1]);
    for (int i = 0; i < 4; ++i) CHECK(out.v[i] == k.expected[i]);
  }
}

TEST_CASE("philox_uniform is a pure function of (seed, key, index) in the unit interval") {
  double sum = 0;
  const int n = 1 << 16;
  for (int i = 0; i < n; ++i) {
    float u = philox_uniform(42, 7, static_cast<std::uint64_t>(i));
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
    sum += u;
  }
  CHECK(std::abs(sum / n - 0.5) < 0.01);
  CHECK(philox_uniform(42, 7, 12345) == philox_uniform(42, 7, 12345));
  CHECK(philox_uniform(42, 7, 12345) != philox_uniform(43, 7, 12345));
  CHECK(philox_uniform(42, 7, 12345) != philox_uniform(42, 8, 12345));
  CHECK(philox_uniform(42, 7, 12345) != philox_uniform(42, 7, 12346));
}

// ---------------------------------------------------------------------------
// Forward values against an independent oracle

TEST_CASE("softmax, log_softmax and cross_entropy forward values match a hand computation") {
  const std::vector<double> x{1.0, 2.0, 3.0, -1.0, 0.5, 4.0, 1000.0, 1001.0, 1002.0};
  const std::vector<std::int32_t> labels{2, 0, 1};
  // The oracle: softmax of each row written out with std::exp, shifted by the row max.
  std::vector<double> soft(9), logsoft(9);
  double ce = 0;
  for (int r = 0; r < 3; ++r) {
    double m = std::max({x[3 * r], x[3 * r + 1], x[3 * r + 2]});
    double z = std::exp(x[3 * r] - m) + std::exp(x[3 * r + 1] - m) + std::exp(x[3 * r + 2] - m);
    for (int c = 0; c < 3; ++c) {
      soft[3 * r + c] = std::exp(x[3 * r + c] - m) / z;
      logsoft[3 * r + c] = x[3 * r + c] - m - std::log(z);
    }
    ce -= logsoft[3 * r + labels[r]];
  }
  ce /= 3;
  CHECK(soft[8] == doctest::Approx(0.6652409557748219).epsilon(1e-12));  // e^2 / (1 + e + e^2)

  for (DType dtype : {DType::f64, DType::f32}) {
    CAPTURE(dtype_name(dtype));
    const double tol = dtype == DType::f64 ? 1e-12 : 2e-6;
    HostArray xs(TensorMeta{{3, 3}, dtype});
    for (int i = 0; i < 9; ++i) xs.set(i, x[static_cast<std::size_t>(i)]);
    Tape tape;
    Value v = tape.input("x", xs);
    Value l = tape.input("labels", ids_array({3}, labels));
    HostArray s = eval(softmax(v));
    HostArray ls = eval(log_softmax(v));
    HostArray loss = eval(cross_entropy(v, l));
    REQUIRE(loss.meta.shape.empty());
    for (int i = 0; i < 9; ++i) {
      CHECK(std::abs(s.at(i) - soft[static_cast<std::size_t>(i)]) < tol);
      CHECK(std::abs(ls.at(i) - logsoft[static_cast<std::size_t>(i)]) < tol * 10);
    }
    CHECK(std::abs(loss.at(0) - ce) < tol * 10);
  }
}

TEST_CASE("mse forward value matches a hand computation") {
  Tape tape;
  Value a = tape.input("a", HostArray::from({2, 2}, std::vector<double>{1, 2, 3, 4}));
  Value b = tape.input("b", HostArray::from({2, 2}, std::vector<double>{0, 2, 5, 1}));
  CHECK(eval(mse(a, b)).at(0) == doctest::Approx((1.0 + 0 + 4 + 9) / 4).epsilon(1e-15));
}

TEST_CASE("conv2d, layernorm, batchnorm, embedding and upsample forward values match direct loops") {
  Tape tape;
  HostArray xs = random_array({2, 3, 5, 4}, 90), ws = random_array({2, 3, 3, 2}, 91), bs = random_array({2}, 92);
  Value x = tape.input("x", xs);
  Value w = tape.input("w", ws);
  Value b = tape.input("b", bs);
  for (int stride : {1, 2})
    for (int padding : {0, 1}) {
      CAPTURE(stride);
      CAPTURE(padding);
      HostArray y = eval(conv2d(x, w, b, stride, padding));
      const std::int64_t ho = (5 + 2 * padding - 3) / stride + 1, wo = (4 + 2 * padding - 2) / stride + 1;
      REQUIRE(y.meta.shape == Shape{2, 2, ho, wo});
      double worst = 0;
      for (std::int64_t n = 0; n < 2; ++n)
        for (std::int64_t k = 0; k < 2; ++k)
          for (std::int64_t oh = 0; oh < ho; ++oh)
            for (std::int64_t ow = 0; ow < wo; ++ow) {
              double acc = bs.at(k);
              for (std::int64_t c = 0; c < 3; ++c)
                for (std::int64_t r = 0; r < 3; ++r)
                  for (std::int64_t q = 0; q < 2; ++q) {
                    const std::int64_t ih = oh * stride - padding + r, iw = ow * stride - padding + q;
                    if (ih < 0 || ih >= 5 || iw < 0 || iw >= 4) continue;
                    acc += ws.at(((k * 3 + c) * 3 + r) * 2 + q) * xs.at(((n * 3 + c) * 5 + ih) * 4 + iw);
                  }
              worst = std::max(worst, std::abs(acc - y.at(((n * 2 + k) * ho + oh) * wo + ow)));
            }
      CHECK(worst < 1e-12);
    }

  // layernorm over the last axis and batchnorm over (N, H, W), biased variance.
  HostArray g4 = random_array({4}, 93, 0.5, 1.5), b4 = random_array({4}, 94);
  HostArray g3 = random_array({3}, 95, 0.5, 1.5), b3 = random_array({3}, 96);
  HostArray ln = eval(layernorm(reshape(x, {2, 3, 5, 4}), tape.input("g4", g4), tape.input("b4", b4), 1e-5));
  HostArray bn = eval(batchnorm(x, tape.input("g3", g3), tape.input("b3", b3), 0.1, 1e-5));
  double worst_ln = 0, worst_bn = 0;
  for (std::int64_t row = 0; row < 30; ++row) {
    double m = 0, v = 0;
    for (std::int64_t i = 0; i < 4; ++i) m += xs.at(row * 4 + i) / 4;
    for (std::int64_t i = 0; i < 4; ++i) v += std::pow(xs.at(row * 4 + i) - m, 2) / 4;
    for (std::int64_t i = 0; i < 4; ++i) {
      const double expected = (xs.at(row * 4 + i) - m) / std::sqrt(v + 1e-5) * g4.at(i) + b4.at(i);
      worst_ln = std::max(worst_ln, std::abs(expected - ln.at(row * 4 + i)));
    }
  }
  for (std::int64_t c = 0; c < 3; ++c) {
    double m = 0, v = 0;
    for (std::int64_t n = 0; n < 2; ++n)
      for (std::int64_t k = 0; k < 20; ++k) m += xs.at((n * 3 + c) * 20 + k) / 40;
    for (std::int64_t n = 0; n < 2; ++n)
      for (std::int64_t k = 0; k < 20; ++k) v += std::pow(xs.at((n * 3 + c) * 20 + k) - m, 2) / 40;
    for (std::int64_t n = 0; n < 2; ++n)
      for (std::int64_t k = 0; k < 20; ++k) {
        const std::int64_t i = (n * 3 + c) * 20 + k;
        worst_bn = std::max(worst_bn, std::abs((xs.at(i) - m) / std::sqrt(v + 1e-5) * g3.at(c) + b3.at(c) - bn.at(i)));
      }
  }
  CHECK(worst_ln < 1e-12);
  CHECK(worst_bn < 1e-12);

  // embedding gathers rows; upsample repeats each pixel in a scale x scale block.
  HostArray table = random_array({4, 3}, 97);
  HostArray e = eval(embedding(tape.input("table", table), tape.input("ids", ids_array({2, 2}, {3, 0, 3, 1}))));
  REQUIRE(e.meta.shape == Shape{2, 2, 3});
  const std::int64_t ids[4] = {3, 0, 3, 1};
  for (std::int64_t j = 0; j < 4; ++j)
    for (std::int64_t d = 0; d < 3; ++d) CHECK(e.at(j * 3 + d) == table.at(ids[j] * 3 + d));
  HostArray u = eval(upsample_nearest(x, 3));
  REQUIRE(u.meta.shape == Shape{2, 3, 15, 12});
  std::int64_t wrong = 0;
  for (std::int64_t p = 0; p < 6; ++p)
    for (std::int64_t i = 0; i < 15; ++i)
      for (std::int64_t j = 0; j < 12; ++j) wrong += u.at((p * 15 + i) * 12 + j) != xs.at((p * 5 + i / 3) * 4 + j / 3);
  CHECK(wrong == 0);
}

// ---------------------------------------------------------------------------
// Finite-difference gradient checks (f64)

TEST_CASE("softmax and log_softmax match finite differences") {
  for (Shape shape : {Shape{5}, Shape{3, 4}, Shape{2, 3, 4}}) {
    CAPTURE(shape_string(shape));
    auto s = gradcheck({random_array(shape, 101, -2, 2)},
                       [](Tape&, const Params& p, const Params&) { return softmax(p[0]); });
    CHECK(s.max_relative_error < tolerance);
    auto l = gradcheck({random_array(shape, 102, -2, 2)},
                       [](Tape&, const Params& p, const Params&) { return log_softmax(p[0]); });
    CHECK(l.max_relative_error < tolerance);
  }
}

TEST_CASE("cross_entropy matches finite differences with i32 labels as constants") {
  struct Case { Shape logits; std::vector<std::int32_t> labels; };
  std::vector<Case> cases{{{4, 5}, {0, 4, 2, 2}}, {{1, 3}, {1}}, {{6, 2}, {1, 0, 0, 1, 1, 1}}};
  for (auto& c : cases) {
    CAPTURE(shape_string(c.logits));
    auto labels = ids_array({c.logits[0]}, c.labels);
    auto r = gradcheck({random_array(c.logits, 103, -3, 3)},
                       [](Tape&, const Params& p, const Params& k) { return cross_entropy(p[0], k[0]); }, {labels});
    CHECK(r.checked == static_cast<std::size_t>(element_count(c.logits)));
    CHECK(r.max_relative_error < tolerance);
  }
}

TEST_CASE("mse matches finite differences in both operands") {
  for (Shape shape : {Shape{7}, Shape{3, 4}, Shape{2, 2, 3}}) {
    CAPTURE(shape_string(shape));
    auto r = gradcheck({random_array(shape, 104), random_array(shape, 105)},
                       [](Tape&, const Params& p, const Params&) { return mse(p[0], p[1]); });
    CHECK(r.max_relative_error < tolerance);
  }
}

TEST_CASE("layernorm matches finite differences, 2-D and 3-D input") {
  for (Shape shape : {Shape{4, 5}, Shape{2, 3, 4}, Shape{1, 6}}) {
    CAPTURE(shape_string(shape));
    const Shape d{shape.back()};
    auto r = gradcheck({random_array(shape, 106, -2, 2), random_array(d, 107, 0.5, 1.5), random_array(d, 108)},
                       [](Tape&, const Params& p, const Params&) { return layernorm(p[0], p[1], p[2]); });
    CHECK(r.max_relative_error < tolerance);
  }
  // Gamma and beta as constants: only dx is wanted (ggamma and gbeta null in the kernel).
  auto only_x = gradcheck({random_array({3, 4}, 109)},
                          [](Tape&, const Params& p, const Params& k) { return layernorm(p[0], k[0], k[1], 1e-3); },
                          {random_array({4}, 110, 0.5, 1.5), random_array({4}, 111)});
  CHECK(only_x.max_relative_error < tolerance);
  // x as a constant: only dgamma and dbeta.
  auto only_affine = gradcheck({random_array({4}, 112, 0.5, 1.5), random_array({4}, 113)},
                               [](Tape&, const Params& p, const Params& k) { return layernorm(k[0], p[0], p[1]); },
                               {random_array({2, 3, 4}, 114)});
  CHECK(only_affine.max_relative_error < tolerance);
}

TEST_CASE("dropout matches finite differences (the mask is fixed for a fixed seed)") {
  for (double p : {0.0, 0.25, 0.5}) {
    CAPTURE(p);
    auto r = gradcheck({random_array({6, 7}, 115)},
                       [p](Tape&, const Params& x, const Params&) { return dropout(x[0], p); });
    CHECK(r.max_relative_error < tolerance);
  }
}

TEST_CASE("embedding matches finite differences with a repeated id") {
  auto flat = gradcheck({random_array({5, 3}, 116)},
                        [](Tape&, const Params& p, const Params& k) { return embedding(p[0], k[0]); },
                        {ids_array({6}, {1, 3, 1, 0, 4, 1})});
  CHECK(flat.max_relative_error < tolerance);
  auto nested = gradcheck({random_array({4, 2}, 117)},
                          [](Tape&, const Params& p, const Params& k) { return embedding(p[0], k[0]); },
                          {ids_array({2, 3}, {3, 3, 0, 2, 3, 0})});
  CHECK(nested.max_relative_error < tolerance);
}

TEST_CASE("conv2d matches finite differences (stride 1 and 2, padding 0 and 1, with and without bias)") {
  struct Case { Shape x, w; int stride, padding; bool bias; };
  std::vector<Case> cases{
      {{2, 3, 5, 6}, {4, 3, 3, 3}, 1, 0, true},
      {{2, 3, 5, 6}, {2, 3, 3, 2}, 2, 1, false},
      {{1, 2, 4, 4}, {3, 2, 3, 3}, 1, 1, true},
      {{2, 2, 7, 5}, {3, 2, 2, 2}, 2, 0, true},
      {{1, 1, 3, 3}, {2, 1, 1, 1}, 1, 0, false},
  };
  for (auto& c : cases) {
    CAPTURE(shape_string(c.x));
    CAPTURE(shape_string(c.w));
    CAPTURE(c.stride);
    CAPTURE(c.padding);
    CAPTURE(c.bias);
    std::vector<HostArray> in{random_array(c.x, 118), random_array(c.w, 119)};
    if (c.bias) in.push_back(random_array({c.w[0]}, 120));
    auto r = gradcheck(in, [&](Tape&, const Params& p, const Params&) {
      return conv2d(p[0], p[1], c.bias ? std::optional<Value>(p[2]) : std::nullopt, c.stride, c.padding);
    });
    CHECK(r.max_relative_error < tolerance);
  }
}

TEST_CASE("max_pool2d and avg_pool2d match finite differences (stride != kernel, padding)") {
  struct Case { Shape x; int kernel, stride, padding; };
  std::vector<Case> cases{
      {{2, 2, 4, 6}, 2, -1, 0},  // stride = kernel
      {{1, 2, 5, 5}, 3, 2, 1},
      {{1, 2, 4, 5}, 3, 1, 1},   // overlapping windows
      {{2, 1, 5, 4}, 2, 1, 1},
      {{1, 1, 6, 6}, 4, 3, 2},
  };
  for (auto& c : cases) {
    CAPTURE(shape_string(c.x));
    CAPTURE(c.kernel);
    CAPTURE(c.stride);
    CAPTURE(c.padding);
    auto mx = gradcheck({random_array(c.x, 121)}, [&](Tape&, const Params& p, const Params&) {
      return max_pool2d(p[0], c.kernel, c.stride, c.padding);
    });
    CHECK(mx.max_relative_error < tolerance);
    auto av = gradcheck({random_array(c.x, 122)}, [&](Tape&, const Params& p, const Params&) {
      return avg_pool2d(p[0], c.kernel, c.stride, c.padding);
    });
    CHECK(av.max_relative_error < tolerance);
  }
}

TEST_CASE("pooling forward: max pads with -inf, avg divides by the full kernel area") {
  Tape tape;
  Value x = tape.input("x", HostArray::from({1, 1, 2, 2}, std::vector<double>{-1, -2, -3, -4}));
  HostArray m = eval(max_pool2d(x, 2, 1, 1));  // 2x2 windows over the zero-or--inf padded 4x4: a 3x3 output
  HostArray a = eval(avg_pool2d(x, 2, 1, 1));
  const std::vector<double> max_expected{-1, -1, -2, -1, -1, -2, -3, -3, -4};
  const std::vector<double> avg_expected{-0.25, -0.75, -0.5, -1, -2.5, -1.5, -0.75, -1.75, -1};
  for (int i = 0; i < 9; ++i) {
    CHECK(m.at(i) == max_expected[static_cast<std::size_t>(i)]);
    CHECK(a.at(i) == doctest::Approx(avg_expected[static_cast<std::size_t>(i)]).epsilon(1e-15));
  }
}

TEST_CASE("max_pool2d routes a tie to the first maximal element of the window") {
  Tape tape;
  Value x = tape.parameter("x", HostArray::from({1, 1, 2, 2}, std::vector<double>{1, 3, 3, 2}));
  Value loss = sum(max_pool2d(x, 2));
  CpuBackend cpu;
  Executor ex(tape, cpu);
  HostArray g = cpu.download(grad(ex, loss).gradients.at(x.id));
  CHECK(g.to_doubles() == std::vector<double>{0, 1, 0, 0});
}

TEST_CASE("upsample_nearest matches finite differences") {
  for (int scale : {1, 2, 3}) {
    CAPTURE(scale);
    auto r = gradcheck({random_array({2, 2, 2, 3}, 123)},
                       [scale](Tape&, const Params& p, const Params&) { return upsample_nearest(p[0], scale); });
    CHECK(r.max_relative_error < tolerance);
  }
}

TEST_CASE("batchnorm matches finite differences, 2-D and 4-D input") {
  for (Shape shape : {Shape{5, 3}, Shape{2, 3, 2, 3}, Shape{3, 2, 1, 1}}) {
    CAPTURE(shape_string(shape));
    const Shape c{shape[1]};
    auto r = gradcheck({random_array(shape, 124, -2, 2), random_array(c, 125, 0.5, 1.5), random_array(c, 126)},
                       [](Tape&, const Params& p, const Params&) { return batchnorm(p[0], p[1], p[2]); });
    CHECK(r.max_relative_error < tolerance);
  }
  auto only_affine = gradcheck({random_array({3}, 127, 0.5, 1.5), random_array({3}, 128)},
                               [](Tape&, const Params& p, const Params& k) { return batchnorm(k[0], p[0], p[1]); },
                               {random_array({4, 3, 2, 2}, 129)});
  CHECK(only_affine.max_relative_error < tolerance);
}

TEST_CASE("a small CNN composed of nn ops matches finite differences") {
  auto r = gradcheck(
      {random_array({2, 2, 6, 6}, 130), random_array({3, 2, 3, 3}, 131), random_array({3}, 133, 0.5, 1.5),
       random_array({3}, 134), random_array({4, 27}, 135)},
      [](Tape&, const Params& p, const Params& k) {
        Value h = conv2d(p[0], p[1], std::nullopt, 1, 1);  // (2,3,6,6); a bias before batchnorm has zero gradient
        h = batchnorm(h, p[2], p[3]);
        h = tanh(h);
        h = max_pool2d(h, 2);                      // (2,3,3,3)
        h = reshape(h, {2, 27});
        h = linear(dropout(h, 0.2), p[4]);         // (2,4)
        return cross_entropy(h, k[0]);
      },
      {ids_array({2}, {3, 1})});
  CHECK(r.max_relative_error < tolerance);
}

// ---------------------------------------------------------------------------
// Dropout's mask

TEST_CASE("dropout: same seed same mask, another seed another mask, about p dropped") {
  const std::int64_t n = 1 << 17;
  const double p = 0.3;
  HostArray ones(TensorMeta{{n}, DType::f32});
  for (std::int64_t i = 0; i < n; ++i) ones.set(i, 1.0);
  Tape tape;
  Value x = tape.input("x", ones);
  Value y = dropout(x, p);
  Value z = dropout(x, p);  // another node: another key
  CpuBackend cpu;
  Executor ex(tape, cpu);
  auto run = [&](Value target, std::uint64_t seed) {
    RunOptions o;
    o.seed = seed;
    return *ex.run(forward_program(tape, target), {}, o).loss;
  };
  HostArray a = run(y, 7), b = run(y, 7), c = run(y, 8), d = run(z, 7);
  CHECK(same_bytes(a, b));
  std::int64_t dropped = 0, differs_seed = 0, differs_node = 0, mismatch_formula = 0, bad_scale = 0;
  const float kept = static_cast<float>(1.0 / (1.0 - p));
  for (std::int64_t i = 0; i < n; ++i) {
    const bool drop_a = a.at(i) == 0.0;
    dropped += drop_a;
    differs_seed += drop_a != (c.at(i) == 0.0);
    differs_node += drop_a != (d.at(i) == 0.0);
    // The documented mask: kept iff philox_uniform(seed, node, i) >= p.
    mismatch_formula += drop_a != !(philox_uniform(7, static_cast<std::uint64_t>(y.id), static_cast<std::uint64_t>(i)) >= p);
    bad_scale += !drop_a && a.data<float>()[i] != kept;
  }
  CHECK(std::abs(static_cast<double>(dropped) / n - p) < 0.01);
  CHECK(differs_seed > n / 4);  // independent masks differ in 2 p (1 - p) = 42% of elements
  CHECK(differs_node > n / 4);
  CHECK(mismatch_formula == 0);
  CHECK(bad_scale == 0);

  // p = 0 keeps everything unchanged.
  Tape t2;
  Value x2 = t2.input("x", ones);
  HostArray same = eval(dropout(x2, 0.0));
  CHECK(same_bytes(same, ones));
}

TEST_CASE("dropout replays its mask when recomputed before the backward") {
  Tape tape;
  Value x = tape.parameter("x", random_array({40, 50}, 136));
  Value d = dropout(x, 0.5);
  Value loss = sum(mul(d, d));  // mul's backward reads d: the recomputed value must equal the first
  CpuBackend cpu;
  Executor ex(tape, cpu);
  RunOptions o;
  o.seed = 99;
  auto stored = ex.run(store_all_program(tape, loss.id), {}, o);
  auto recomputed = ex.run(recompute_program(tape, loss, d), {}, o);
  CHECK(recomputed.report.recomputed_ops == 1);
  CHECK(same_bytes(cpu.download(stored.gradients.at(x.id)), cpu.download(recomputed.gradients.at(x.id))));
  CHECK(same_bytes(*stored.loss, *recomputed.loss));
}

// ---------------------------------------------------------------------------
// Batchnorm state

TEST_CASE("batchnorm running statistics move once per step, not on a recomputation") {
  const double momentum = 0.1;
  for (Shape shape : {Shape{6, 3}, Shape{3, 2, 2, 2}}) {
    CAPTURE(shape_string(shape));
    const std::int64_t channels = shape[1];
    HostArray xs = random_array(shape, 137, -2, 3);
    Tape tape;
    Value x = tape.input("x", xs);
    Value gamma = tape.parameter("gamma", random_array({channels}, 138, 0.5, 1.5));
    Value beta = tape.parameter("beta", random_array({channels}, 139));
    Value y = batchnorm(x, gamma, beta, momentum);
    Value loss = sum(mul(y, tape.input("w", random_array(shape, 140))));  // mul's backward reads y

    Program program = recompute_program(tape, loss, y);
    int computes = 0;
    for (const auto& ins : program.instructions) computes += ins == Instruction{InstructionKind::compute, y.id};
    REQUIRE(computes == 2);

    // Closed form: per-channel mean and unbiased variance of the data.
    const std::int64_t inner = xs.numel() / (shape[0] * channels), count = shape[0] * inner;
    std::vector<double> mean(static_cast<std::size_t>(channels), 0), var(static_cast<std::size_t>(channels), 0);
    for (std::int64_t c = 0; c < channels; ++c) {
      double s = 0, q = 0;
      for (std::int64_t n = 0; n < shape[0]; ++n)
        for (std::int64_t k = 0; k < inner; ++k) s += xs.at((n * channels + c) * inner + k);
      const double m = s / static_cast<double>(count);
      for (std::int64_t n = 0; n < shape[0]; ++n)
        for (std::int64_t k = 0; k < inner; ++k) q += std::pow(xs.at((n * channels + c) * inner + k) - m, 2);
      mean[static_cast<std::size_t>(c)] = m;
      var[static_cast<std::size_t>(c)] = q / static_cast<double>(count - 1);
    }

    CpuBackend cpu;
    Executor ex(tape, cpu);
    REQUIRE(ex.state(y.id).size() == 2);
    auto read = [&](std::size_t i) { return cpu.download(ex.state(y.id)[i]); };
    for (std::int64_t c = 0; c < channels; ++c) {
      CHECK(read(0).at(c) == 0.0);
      CHECK(read(1).at(c) == 1.0);
    }

    StepResult first = ex.run(program);
    CHECK(first.report.recomputed_ops == 1);
    for (std::int64_t c = 0; c < channels; ++c) {
      const auto i = static_cast<std::size_t>(c);
      CHECK(read(0).at(c) == doctest::Approx(momentum * mean[i]).epsilon(1e-12));
      CHECK(read(1).at(c) == doctest::Approx((1 - momentum) * 1.0 + momentum * var[i]).epsilon(1e-12));
    }
    StepResult second = ex.run(program);
    for (std::int64_t c = 0; c < channels; ++c) {
      const auto i = static_cast<std::size_t>(c);
      const double m1 = momentum * mean[i], v1 = (1 - momentum) + momentum * var[i];
      CHECK(read(0).at(c) == doctest::Approx((1 - momentum) * m1 + momentum * mean[i]).epsilon(1e-12));
      CHECK(read(1).at(c) == doctest::Approx((1 - momentum) * v1 + momentum * var[i]).epsilon(1e-12));
    }

    // The recomputation changes no gradient bit compared with store-all.
    CpuBackend cpu2;
    Executor reference(tape, cpu2);
    StepResult stored = grad(reference, loss);
    for (Value p : {gamma, beta})
      CHECK(same_bytes(cpu.download(first.gradients.at(p.id)), cpu2.download(stored.gradients.at(p.id))));
  }
}

// ---------------------------------------------------------------------------
// Errors

TEST_CASE("nn shape errors name the op and the shapes") {
  Tape tape;
  auto f32 = [&](const char* name, Shape s) { return tape.placeholder(name, {std::move(s), DType::f32}); };
  auto i32 = [&](const char* name, Shape s) { return tape.placeholder(name, {std::move(s), DType::i32}); };
  CHECK_THROWS_WITH_AS(conv2d(f32("x", {2, 3, 8, 8}), f32("w", {4, 5, 3, 3})),
                       "[conv2d] input channels differ: x (2,3,8,8), weight (4,5,3,3)", Error);
  CHECK_THROWS_WITH_AS(conv2d(f32("x", {2, 3, 8, 8}), f32("w", {4, 3, 3, 3}), f32("b", {5})),
                       "[conv2d] bias must have shape (4,) for weight (4,3,3,3), got (5,)", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(f32("logits", {3, 5}), i32("labels", {4})),
                       "[cross_entropy] labels (4,) do not match logits (3,5): expected labels of shape (3,)", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(f32("logits", {3, 5}), f32("labels", {3})),
                       "[cross_entropy] labels must be i32, got f32", Error);
  CHECK_THROWS_WITH_AS(mse(f32("a", {3, 4}), f32("b", {4, 3})), "[mse] shapes differ: a (3,4), b (4,3)", Error);
  CHECK_THROWS_WITH_AS(layernorm(f32("x", {2, 4}), f32("g", {5}), f32("b", {4})),
                       "[layernorm] gamma and beta must have shape (D,) = (4,) for x (2,4), got gamma (5,), beta (4,)",
                       Error);
  CHECK_THROWS_WITH_AS(dropout(f32("x", {3}), 1.0), "[dropout] p must be in [0, 1), got 1", Error);
  CHECK_THROWS_WITH_AS(dropout(f32("x", {3}), -0.5), "[dropout] p must be in [0, 1), got -0.5", Error);
  CHECK_THROWS_WITH_AS(embedding(f32("table", {10, 4}), f32("ids", {3})), "[embedding] ids must be i32, got f32", Error);
  CHECK_THROWS_WITH_AS(max_pool2d(f32("x", {3, 4}), 2), "[max_pool2d] input must have rank 4, got shape (3,4)", Error);
  CHECK_THROWS_WITH_AS(avg_pool2d(f32("x", {1, 1, 4, 4}), 2, 2, 2),
                       "[avg_pool2d] padding must be in [0, kernel/2] = [0, 1], got 2", Error);
  CHECK_THROWS_WITH_AS(batchnorm(f32("x", {1, 3}), f32("g", {3}), f32("b", {3})),
                       "[batchnorm] needs more than one value per channel, got x (1,3)", Error);
  CHECK_THROWS_WITH_AS(batchnorm(f32("x", {4, 3, 2}), f32("g", {3}), f32("b", {3})),
                       "[batchnorm] input must have rank 2 (N,C) or 4 (N,C,H,W), got shape (4,3,2)", Error);
  CHECK_THROWS_WITH_AS(upsample_nearest(f32("x", {1, 1, 2, 2}), 0), "[upsample_nearest] scale must be >= 1, got 0", Error);
}

TEST_CASE("out-of-range labels and ids are errors from the kernel") {
  Tape tape;
  Value logits = tape.input("logits", random_array({4, 5}, 141));
  Value labels = tape.input("labels", ids_array({4}, {0, 1, 7, 2}));
  CHECK_THROWS_WITH_AS(eval(cross_entropy(logits, labels)), "[cross_entropy] label 7 out of range [0, 5) at row 2",
                       Error);
  Value negative = tape.input("negative", ids_array({4}, {0, -1, 1, 2}));
  CHECK_THROWS_WITH_AS(eval(cross_entropy(logits, negative)),
                       "[cross_entropy] label -1 out of range [0, 5) at row 1", Error);
  Value table = tape.input("table", random_array({10, 3}, 142));
  Value ids = tape.input("ids", ids_array({2, 2}, {1, 9, 0, 12}));
  CHECK_THROWS_WITH_AS(eval(embedding(table, ids)), "[embedding] id 12 out of range [0, 10) at position 3", Error);
}

// ---------------------------------------------------------------------------
// Metering and determinism

namespace {

// A model touching every nn op; dtype f32 or f64.
struct NnModel {
  Tape tape;
  Value loss;
  std::vector<Value> params;
  Value bn;
};

void build_nn_model(NnModel& m, DType dtype, std::int64_t batch = 2, std::int64_t size = 8) {
  Tape& t = m.tape;
  auto param = [&](const char* name, Shape s, std::uint32_t seed, double lo = -0.5, double hi = 0.5) {
    Value v = t.parameter(name, random_array(s, seed, lo, hi, dtype));
    m.params.push_back(v);
    return v;
  };
  Value x = t.input("x", random_array({batch, 3, size, size}, 150, -1, 1, dtype));
  Value w = param("w", {4, 3, 3, 3}, 151);
  Value g = param("gamma", {4}, 153, 0.5, 1.5);
  Value be = param("beta", {4}, 154);
  Value h = conv2d(x, w, std::nullopt, 1, 1);               // (B,4,S,S); no bias before batchnorm
  m.bn = h = batchnorm(h, g, be);
  h = relu(h);
  Value p = max_pool2d(h, 3, 2, 1);                         // (B,4,S/2,S/2)
  Value a = avg_pool2d(upsample_nearest(p, 2), 2);          // (B,4,S/2,S/2)
  h = add(p, a);
  const std::int64_t s2 = size / 2;
  h = reshape(h, {batch * 4, s2 * s2});
  h = layernorm(h, param("ln_g", {s2 * s2}, 155, 0.5, 1.5), param("ln_b", {s2 * s2}, 156));
  h = dropout(h, 0.25);
  h = reshape(h, {batch, 4 * s2 * s2});
  Value logits = linear(h, param("fc", {5, 4 * s2 * s2}, 157));
  std::vector<std::int32_t> labels;
  for (std::int64_t i = 0; i < batch; ++i) labels.push_back(static_cast<std::int32_t>((i * 3) % 5));
  Value ce = cross_entropy(log_softmax(logits), t.input("labels", HostArray::from({batch}, labels)));
  Value table = param("table", {6, 5}, 158);
  std::vector<std::int32_t> ids;
  for (std::int64_t i = 0; i < batch; ++i) ids.push_back(static_cast<std::int32_t>((i * 5 + 1) % 6));
  Value e = embedding(table, t.input("ids", HostArray::from({batch}, ids)));  // (B,5)
  Value target = t.input("target", random_array({batch, 5}, 159, -1, 1, dtype));
  m.loss = add(ce, mse(add(e, softmax(logits)), target));
}

}  // namespace

TEST_CASE("the metering backend predicts the measured peak of nn ops to the byte") {
  NnModel m;
  build_nn_model(m, DType::f32);
  Program program = store_all_program(m.tape, m.loss.id);
  StepReport predicted = simulate(m.tape, program);
  CpuBackend cpu;
  Executor ex(m.tape, cpu);
  StepResult measured = ex.run(program);
  CHECK(predicted.peak_bytes == measured.report.peak_bytes);
  CHECK(predicted.peak_by_category == measured.report.peak_by_category);
  CHECK(predicted.allocations == measured.report.allocations);
  REQUIRE(measured.loss.has_value());
  CHECK(std::isfinite(measured.loss->at(0)));

  // The conv2d column buffer is the declared workspace, and is what a lone conv uses.
  Tape t;
  Value x = t.parameter("x", random_array({2, 3, 6, 5}, 160, -1, 1, DType::f32));
  Value w = t.parameter("w", random_array({4, 3, 3, 2}, 161, -1, 1, DType::f32));
  Value b = t.parameter("b", random_array({4}, 162, -1, 1, DType::f32));
  Value y = conv2d(x, w, b, 2, 1);
  Value loss = sum(y);
  const Node& node = t.node(y.id);
  std::vector<TensorMeta> metas{t.node(x.id).meta, t.node(w.id).meta, t.node(b.id).meta};
  const std::size_t declared = node.op->forward_workspace_bytes(metas, node.meta);
  CHECK(declared == static_cast<std::size_t>(3 * 3 * 2 * y.shape()[2] * y.shape()[3] * 4));
  CHECK(node.op->vjp_workspace_bytes(metas, node.meta) == declared);
  CpuBackend cpu2;
  Executor ex2(t, cpu2);
  StepResult r = ex2.run(store_all_program(t, loss.id));
  CHECK(r.report.peak_by_category[static_cast<std::size_t>(MemoryCategory::workspace)] == declared);
}

TEST_CASE("nn gradients are bitwise reproducible run to run") {
  auto run = [](std::uint64_t seed) {
    NnModel m;
    build_nn_model(m, DType::f32, 8, 32);  // large enough for the parallel paths
    CpuBackend cpu;
    Executor ex(m.tape, cpu);
    RunOptions o;
    o.seed = seed;
    StepResult r = grad(ex, m.loss, {}, o);
    std::vector<HostArray> out{*r.loss};
    for (Value p : m.params) out.push_back(cpu.download(r.gradients.at(p.id)));
    return out;
  };
  auto a = run(3), b = run(3);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(same_bytes(a[i], b[i]));
  }
}

#ifdef _OPENMP
TEST_CASE("nn kernels give the same bits with one thread and with many") {
  // Everything here but gemm (OpenBLAS) is partitioned so that no sum depends on the thread count.
  auto run = [](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tape t;
    std::vector<Value> params;
    auto param = [&](const char* name, Shape s, std::uint32_t seed) {
      params.push_back(t.parameter(name, random_array(s, seed, -1, 1, DType::f32)));
      return params.back();
    };
    Value x = param("x", {64, 8, 16, 16}, 170);
    Value h = batchnorm(x, param("g", {8}, 171), param("b", {8}, 172));
    h = avg_pool2d(max_pool2d(upsample_nearest(h, 2), 3, 2, 1), 2, 1, 1);  // (64,8,17,17)
    h = layernorm(reshape(h, {512, 289}), param("lg", {289}, 173), param("lb", {289}, 174));
    h = dropout(softmax(h), 0.1);
    Value table = param("table", {50, 289}, 175);
    std::vector<std::int32_t> ids(512);
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>((i * 7) % 50);
    Value e = embedding(table, t.input("ids", HostArray::from({512}, ids)));
    std::vector<std::int32_t> labels(512);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int32_t>(i % 289);
    Value loss = add(mse(h, e), cross_entropy(log_softmax(add(h, e)), t.input("labels", HostArray::from({512}, labels))));
    CpuBackend cpu;
    Executor ex(t, cpu);
    StepResult r = grad(ex, loss);
    std::vector<HostArray> out{*r.loss};
    for (Value p : params) out.push_back(cpu.download(r.gradients.at(p.id)));
    omp_set_num_threads(before);
    return out;
  };
  auto one = run(1), many = run(4);
  for (std::size_t i = 0; i < one.size(); ++i) {
    CAPTURE(i);
    CHECK(same_bytes(one[i], many[i]));
  }
}
#endif

TEST_CASE("f32 and f64 agree on the gradients of the nn model") {
  NnModel m32, m64;
  build_nn_model(m32, DType::f32);
  build_nn_model(m64, DType::f64);
  CpuBackend c32, c64;
  Executor e32(m32.tape, c32), e64(m64.tape, c64);
  StepResult r32 = grad(e32, m32.loss), r64 = grad(e64, m64.loss);
  CHECK(r32.loss->at(0) == doctest::Approx(r64.loss->at(0)).epsilon(1e-5));
  for (std::size_t i = 0; i < m32.params.size(); ++i) {
    HostArray a = c32.download(r32.gradients.at(m32.params[i].id));
    HostArray b = c64.download(r64.gradients.at(m64.params[i].id));
    double diff = 0, norm = 0;
    for (std::int64_t k = 0; k < a.numel(); ++k) {
      diff += std::pow(a.at(k) - b.at(k), 2);
      norm += std::pow(b.at(k), 2);
    }
    CAPTURE(i);
    CHECK(std::sqrt(diff) <= 1e-4 * std::max(std::sqrt(norm), 1e-6));
  }
}
