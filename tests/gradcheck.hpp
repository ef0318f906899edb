// Contract: the finite-difference oracle shared by the op tests (the ggml
// test-backend-ops idea). A case records a small f64 model on fresh parameters,
// reduces its output to a scalar with fixed random weights, and compares the
// executor's reverse-mode gradient of every parameter with central differences.
#pragma once

#include "autodiff/remat.hpp"

#include <cmath>
#include <functional>
#include <random>
#include <vector>

namespace remat::testing {

// A deterministic array of f64 values uniform in [lo, hi).
inline HostArray random_array(const Shape& shape, std::uint32_t seed, double lo = -1, double hi = 1,
                              DType dtype = DType::f64) {
  HostArray a(TensorMeta{shape, dtype});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  for (std::int64_t i = 0; i < a.numel(); ++i) a.set(i, u(rng));
  return a;
}

// Random values kept at least `gap` away from 0 (for kinks such as relu and max).
inline HostArray random_away_from_zero(const Shape& shape, std::uint32_t seed, double gap = 0.05) {
  HostArray a = random_array(shape, seed);
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    double v = a.at(i);
    a.set(i, v >= 0 ? v + gap : v - gap);
  }
  return a;
}

struct GradCheckResult {
  double max_relative_error = 0;  // ||analytic - numeric|| / max(||analytic||, ||numeric||), worst parameter
  std::size_t checked = 0;        // parameter elements checked
};

// `inputs` become parameters (differentiated); `constants` become bound inputs.
// build(tape, params, constants) returns the value to check.
using Builder = std::function<Value(Tape&, const std::vector<Value>&, const std::vector<Value>&)>;

inline GradCheckResult gradcheck(const std::vector<HostArray>& inputs, const Builder& build,
                                 const std::vector<HostArray>& constants = {}, double step = 1e-6) {
  Tape tape;
  std::vector<Value> params, consts;
  for (std::size_t i = 0; i < inputs.size(); ++i) params.push_back(tape.parameter("p" + std::to_string(i), inputs[i]));
  for (std::size_t i = 0; i < constants.size(); ++i) consts.push_back(tape.input("c" + std::to_string(i), constants[i]));
  Value out = build(tape, params, consts);
  Value weights = tape.input("weights", random_array(out.shape(), 991, 0.5, 1.5));
  Value loss = sum(mul(out, weights));

  CpuBackend cpu;
  Executor executor(tape, cpu);
  StepResult analytic = grad(executor, loss);
  Program forward_only;
  forward_only.loss = loss.id;
  for (int id : compute_order(tape, loss.id)) forward_only.instructions.push_back({InstructionKind::compute, id});
  forward_only = insert_frees(tape, forward_only);
  auto loss_at = [&] { return executor.run(forward_only).loss->at(0); };

  GradCheckResult result;
  for (const Value& p : params) {
    HostArray g = cpu.download(analytic.gradients.at(p.id));
    HostArray original = executor.read_parameter(p.id);
    double diff2 = 0, a2 = 0, n2 = 0;
    for (std::int64_t i = 0; i < original.numel(); ++i) {
      HostArray perturbed = original;
      perturbed.set(i, original.at(i) + step);
      executor.write_parameter(p.id, perturbed);
      double up = loss_at();
      perturbed.set(i, original.at(i) - step);
      executor.write_parameter(p.id, perturbed);
      double down = loss_at();
      double numeric = (up - down) / (2 * step);
      diff2 += (g.at(i) - numeric) * (g.at(i) - numeric);
      a2 += g.at(i) * g.at(i);
      n2 += numeric * numeric;
      ++result.checked;
    }
    executor.write_parameter(p.id, original);
    double denominator = std::max(std::sqrt(std::max(a2, n2)), 1e-12);
    result.max_relative_error = std::max(result.max_relative_error, std::sqrt(diff2) / denominator);
  }
  return result;
}

}  // namespace remat::testing
