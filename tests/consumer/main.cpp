// Contract: proves an installed remat links: records a tiny model, takes a gradient.
#include <autodiff/remat.hpp>
#include <cstdio>

int main() {
  remat::Tape tape;
  auto x = tape.input("x", remat::HostArray::from({2}, std::vector<float>{1.0f, 2.0f}));
  auto w = tape.parameter("w", remat::HostArray::from({2}, std::vector<float>{3.0f, 4.0f}));
  auto loss = remat::sum(remat::mul(x, w));
  remat::CpuBackend cpu;
  remat::Executor executor(tape, cpu);
  auto result = remat::grad(executor, loss);
  auto g = cpu.download(result.gradients.at(w.id));
  std::printf("loss %.1f grad %.1f %.1f\n", result.loss->at(0), g.at(0), g.at(1));
  return (result.loss->at(0) == 11.0 && g.at(0) == 1.0 && g.at(1) == 2.0) ? 0 : 1;
}
