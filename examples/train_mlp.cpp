// Contract: a tensor MLP trained with store-all. Records once
//   x (N, D) -> [linear, tanh] -> [linear, tanh] -> linear -> mse against y = sin(x)
// (N = batch, D = features; x and y are placeholders bound at every step), plans
// it once with store_all_program(), then runs 60 SGD steps on one batch: each run
// is a forward sweep that tapes everything and a reverse sweep. Prints the loss
// every 10 steps, then "loss fell from A to B"; exits 1 unless B < A / 2.
#include <autodiff/remat.hpp>

#include <fmt/format.h>

#include <cmath>
#include <random>

using namespace remat;

int main() {
  const std::int64_t N = 32, D = 16;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto random = [&](const Shape& shape, float scale) {
    HostArray a(TensorMeta{shape, DType::f32});
    for (std::int64_t i = 0; i < a.numel(); ++i) a.set(i, scale * normal(rng));
    return a;
  };

  Tape tape;
  Value x = tape.placeholder("x", {{N, D}, DType::f32});
  Value y = tape.placeholder("y", {{N, D}, DType::f32});
  Value h = x;
  for (int l = 0; l < 3; ++l) {
    Value w = tape.parameter(fmt::format("w{}", l), random({D, D}, 1.0f / std::sqrt(static_cast<float>(D))));
    Value b = tape.parameter(fmt::format("b{}", l), HostArray(TensorMeta{{D}, DType::f32}));
    h = l < 2 ? tanh(linear(h, w, b)) : linear(h, w, b);
  }
  Value loss = mse(h, y);
  Program program = store_all_program(tape, loss.id);  // one plan serves every step

  HostArray xs = random({N, D}, 1.0f), ys(xs.meta);
  for (std::int64_t i = 0; i < xs.numel(); ++i) ys.set(i, std::sin(xs.at(i)));
  CpuBackend cpu;
  Executor executor(tape, cpu);
  double first = 0, last = 0;
  for (int step = 0; step <= 60; ++step) {
    StepResult r = executor.run(program, {{x.id, xs}, {y.id, ys}});
    last = r.loss->at(0);
    if (step == 0) first = last;
    if (step % 10 == 0) fmt::print("step {:>2}  loss {:.6f}\n", step, last);
    executor.sgd_step(r, 0.5);  // w -= 0.5 * dloss/dw
  }
  fmt::print("loss fell from {:.6f} to {:.6f}\n", first, last);
  return last < first / 2 ? 0 : 1;
}
