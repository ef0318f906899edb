// Contract: the 16-bit storage formats (bf16, f16). The converters against
// independent oracles (exhaustive decoding, nearest-neighbour search for rounding);
// a bf16 step against the same f32 step within a tolerance derived from bf16's
// precision; the three promises under every strategy in bf16; metering at 2 bytes per
// element; the cast op of mixed-precision models; and CpuBackend's clear refusal.
#include "models/models.hpp"
#include "gradcheck.hpp"
#include "strategies/strategies.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

using namespace remat;

namespace {

float from_bits(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// f16 decoded from its fields with ldexp: the oracle for f16_to_f32.
double f16_oracle(std::uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 31, mantissa = h & 1023;
  double v = exponent == 0 ? std::ldexp(mantissa, -24) : std::ldexp(1024 + mantissa, exponent - 25);
  if (exponent == 31) v = mantissa ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  return sign ? -v : v;
}

// The nearest of `sorted` (finite, ascending, paired with their bits) to v, ties to the
// even bit pattern: the oracle for narrowing.
template <class Bits>
Bits nearest(const std::vector<std::pair<double, Bits>>& sorted, double v) {
  auto hi = std::lower_bound(sorted.begin(), sorted.end(), v, [](const auto& e, double x) { return e.first < x; });
  if (hi == sorted.begin()) return hi->second;
  if (hi == sorted.end()) return std::prev(hi)->second;
  auto lo = std::prev(hi);
  const double dl = v - lo->first, dh = hi->first - v;
  if (dl < dh) return lo->second;
  if (dh < dl) return hi->second;
  return (lo->second & 1) == 0 ? lo->second : hi->second;
}

double relative_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

}  // namespace

TEST_CASE("bf16 and f16 decode exactly and round to nearest even") {
  // Decoding: every bf16 pattern is the top half of an f32; every f16 pattern matches ldexp.
  std::vector<std::pair<double, std::uint16_t>> bf16_values, f16_values;
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const float bf = bf16_to_f32(h);
    const float top_half = from_bits(b << 16);
    CHECK(std::memcmp(&bf, &top_half, 4) == 0);
    const double f = f16_to_f32(h), oracle = f16_oracle(h);
    if (std::isnan(oracle)) CHECK(std::isnan(f));
    else CHECK(f == oracle);
    // Round trips are exact (signed zeros included); NaN stays NaN.
    if (std::isnan(bf)) CHECK(std::isnan(bf16_to_f32(f32_to_bf16(bf))));
    else CHECK(f32_to_bf16(bf) == h);
    if (std::isnan(f)) CHECK(std::isnan(f16_to_f32(f32_to_f16(static_cast<float>(f)))));
    else CHECK(f32_to_f16(static_cast<float>(f)) == h);
    if (std::isfinite(bf) && !(bf == 0 && (h >> 15))) bf16_values.push_back({bf, h});
    if (std::isfinite(f) && !(f == 0 && (h >> 15))) f16_values.push_back({f, h});
  }
  std::sort(bf16_values.begin(), bf16_values.end());
  std::sort(f16_values.begin(), f16_values.end());
  // Narrowing: random f32 bit patterns (all binades), plus exact ties, against the search.
  std::mt19937 rng(17);
  int checked = 0;
  for (int i = 0; i < 200000; ++i) {
    float v = from_bits(rng());
    if (i % 4 == 1) v = std::ldexp(static_cast<float>(rng()) / 4294967296.0f, static_cast<int>(rng() % 60) - 30);
    if (i % 4 == 2) {  // a tie between two bf16 neighbours: low 16 bits exactly 0x8000
      std::uint32_t bits = (rng() & 0xffff0000u) | 0x8000u;
      v = from_bits(bits);
    }
    if (i % 4 == 3) {  // f16's range, ties included (13 low bits 0x1000)
      v = std::ldexp(static_cast<float>(rng() % 2048) + (rng() % 2 ? 0.5f : 0.25f), static_cast<int>(rng() % 40) - 35);
      if (rng() % 2) v = -v;
    }
    if (!std::isfinite(v)) continue;
    ++checked;
    const double sign = std::signbit(v) ? -1 : 1, magnitude = std::fabs(v);
    // bf16: the largest finite bf16 is 0x7f7f; halfway to 2^128 and beyond rounds to infinity.
    const double bf16_max = bf16_to_f32(0x7f7f), bf16_limit = bf16_max + std::ldexp(1.0, 127 - 8);
    std::uint16_t bf = magnitude >= bf16_limit ? 0x7f80 : nearest(bf16_values, magnitude);
    if (sign < 0) bf |= 0x8000;
    CHECK(f32_to_bf16(v) == bf);
    std::uint16_t h = magnitude >= 65520.0 ? 0x7c00 : nearest(f16_values, magnitude);
    if (sign < 0) h |= 0x8000;
    CAPTURE(v);
    CHECK(f32_to_f16(v) == h);
  }
  CHECK(checked > 150000);
  CHECK(std::isinf(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::max()))));
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST_CASE("16-bit dtypes are metered at 2 bytes per element and refused where they do not run") {
  CHECK(dtype_size(DType::bf16) == 2);
  CHECK(dtype_size(DType::f16) == 2);
  CHECK(dtype_from_name("bf16") == DType::bf16);
  CHECK_THROWS_WITH_AS(dtype_from_name("fp8"), "[dtype] 'fp8' is not one of: f32, f64, i32, bf16, f16", Error);
  const char* base = "mlp:layers=6,width=32,batch=8,act=tanh";
  Model m32 = build_model(base), m16 = build_model(std::string(base) + ",dtype=bf16");
  StepReport r32 = simulate(*m32.tape, store_all_program(*m32.tape, m32.loss.id));
  StepReport r16 = simulate(*m16.tape, store_all_program(*m16.tape, m16.loss.id));
  CHECK(r16.parameter_bytes * 2 == r32.parameter_bytes);
  CHECK(r16.peak_bytes * 2 == r32.peak_bytes);
  CpuBackend cpu;
  CHECK_THROWS_WITH_AS(cpu.empty(TensorMeta{{4}, DType::bf16}, MemoryCategory::activation),
                       "[cpu] does not run bf16 tensors (16-bit formats run on the metering backend and on "
                       "LowPrecisionCpuBackend)",
                       Error);
}

TEST_CASE("a bf16 step matches the f32 step within bf16's precision") {
  // bf16 keeps 8 significant bits: one rounding errs by at most u = 2^-8 relative (f16:
  // 11 bits, u = 2^-11). A step of this 4-layer model rounds each value once per op it
  // passes (about 4 ops a layer forward and as many backward, plus the stored weights),
  // so the first-order bound on the loss and on the gradient direction is some 40u in
  // the worst case and sqrt(40) u ~ 6.3u for independent errors. The tolerance, 12.8u
  // (0.05 for bf16, 0.00625 for f16), sits between the two; a kernel that read the
  // 16-bit bits as f32 would be off by orders of magnitude.
  const char* base = "mlp:layers=4,width=32,batch=16,act=tanh";
  for (std::string dtype : {"bf16", "f16"}) {
    CAPTURE(dtype);
    const double u = dtype == "bf16" ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11), tolerance = 12.8 * u;
    Model m32 = build_model(base), m16 = build_model(std::string(base) + ",dtype=" + dtype);
    CpuBackend cpu;
    LowPrecisionCpuBackend low;
    Executor e32(*m32.tape, cpu), e16(*m16.tape, low);
    auto r32 = e32.run(store_all_program(*m32.tape, m32.loss.id), m32.batch(0));
    auto r16 = e16.run(store_all_program(*m16.tape, m16.loss.id), m16.batch(0));
    REQUIRE(r16.loss->meta.dtype == dtype_from_name(dtype));
    const double loss32 = r32.loss->at(0), loss16 = r16.loss->at(0);
    CHECK(std::fabs(loss16 - loss32) <= tolerance * std::fabs(loss32));
    CHECK(loss16 != loss32);  // it did round
    std::vector<double> g32, g16;
    for (auto& [id, g] : r32.gradients) {
      auto a = cpu.download(g).to_doubles();
      HostArray b16 = low.download(r16.gradients.at(id));
      CHECK(b16.bytes.size() == 2 * a.size());
      auto b = b16.to_doubles();
      g32.insert(g32.end(), a.begin(), a.end());
      g16.insert(g16.end(), b.begin(), b.end());
    }
    const double distance = relative_distance(g16, g32);
    MESSAGE(dtype << " gradient relative distance " << distance);
    CHECK(distance < tolerance);
    CHECK(distance > 0);
    // Staging copies are metered on the inner backend, not the step's meter.
    CHECK(low.staging_meter().budgeted_current() == 0);
  }
}

TEST_CASE("every strategy keeps the three promises in bf16") {
  Model m = build_model("mlp:layers=10,width=16,batch=4,act=gelu,dtype=bf16");
  const Tape& tape = *m.tape;
  const std::size_t full = simulate(tape, store_all_program(tape, m.loss.id)).peak_bytes;
  LowPrecisionCpuBackend low;
  Bindings data = m.batch(0);
  ReferenceStep reference = reference_step(tape, m.loss.id, low, data);
  for (const auto& name : strategy_names(/*include_solvers=*/false)) {
    for (double fraction : {0.0, 0.6, 0.3}) {
      CAPTURE(name);
      CAPTURE(fraction);
      std::optional<std::size_t> budget;
      if (fraction > 0) budget = static_cast<std::size_t>(fraction * static_cast<double>(full));
      auto strategy = make_strategy(name);
      Program program;
      try {
        program = strategy->plan(tape, m.loss.id, Budget{budget});
      } catch (const InfeasibleBudget&) {
        continue;  // a budget below what this strategy can reach; feasibility is strategy_tests' subject
      }
      Executor ex(tape, low);
      auto run = ex.run(program, data);
      PromiseCheck check = check_promises(tape, low, run, simulate(tape, program), reference, budget);
      for (const auto& broken : check.broken) MESSAGE(broken);
      CHECK(check.ok());
    }
  }
}

TEST_CASE("cast: f32 master weights feeding bf16 activations") {
  // Model A: an f32 weight cast to bf16. Model B: the same weight stored in bf16.
  // The forward computes the same bf16 values, so A's f32 gradient must be B's bf16
  // gradient widened, bit for bit, and A's loss B's.
  auto build = [](bool master_f32, Tape& t) {
    HostArray w32 = testing::random_array({8, 8}, 3, -0.5, 0.5, DType::f32);
    HostArray w16(TensorMeta{{8, 8}, DType::bf16});
    for (std::int64_t i = 0; i < w32.numel(); ++i) w16.set(i, w32.at(i));
    auto x = t.input("x", testing::random_array({4, 8}, 4, -1, 1, DType::bf16));
    auto w = master_f32 ? cast(t.parameter("w", w32), DType::bf16) : t.parameter("w", w16);
    return cast(mean(square(tanh(matmul(x, w)))), DType::f32);
  };
  Tape ta, tb;
  Value la = build(true, ta), lb = build(false, tb);
  LowPrecisionCpuBackend low;
  Executor ea(ta, low), eb(tb, low);
  auto ra = grad(ea, la), rb = grad(eb, lb);
  REQUIRE(ra.loss->meta.dtype == DType::f32);
  CHECK(ra.loss->at(0) == rb.loss->at(0));
  HostArray ga = low.download(ra.gradients.begin()->second), gb = low.download(rb.gradients.begin()->second);
  REQUIRE(ga.meta.dtype == DType::f32);
  REQUIRE(gb.meta.dtype == DType::bf16);
  for (std::int64_t i = 0; i < ga.numel(); ++i) CHECK(ga.at(i) == gb.at(i));
  CHECK_THROWS_WITH_AS(cast(la, DType::i32), "[cast] target dtype must be floating, got i32", Error);
}
