// Contract: swapping the strategy is one line; the model code does not change.
// A 16-layer MLP from the model zoo is planned with the strategy named on the
// command line (default revolve: store-all, sqrt, chen-greedy, revolve, optimal,
// greedy), simulated (the prediction) and run on the CPU (the measurement).
// Prints the memory report: peak budgeted bytes measured and predicted (equal
// to the byte, promise 2), recomputed ops measured and predicted, and whether
// the gradients equal store-all's bit for bit (promise 1); exits 1 if not.
#include <autodiff/remat.hpp>
#include <models/models.hpp>
#include <strategies/strategies.hpp>

#include <fmt/format.h>

#include <cstring>

using namespace remat;

int main(int argc, char** argv) try {
  Model m = build_model("mlp:layers=16,width=64,batch=32");
  const Tape& tape = *m.tape;
  auto strategy = make_strategy(argc > 1 ? argv[1] : "revolve");  // <- the one line to change

  Program program = strategy->plan(tape, m.loss.id, Budget{});
  StepReport predicted = simulate(tape, program);  // the executor on the metering-only backend
  CpuBackend cpu;
  Executor executor(tape, cpu), reference(tape, cpu);
  StepResult measured = executor.run(program, m.batch(0));
  StepResult store_all = reference.run(store_all_program(tape, m.loss.id), m.batch(0));

  bool equal = true;
  for (const auto& [id, g] : store_all.gradients) {
    HostArray a = cpu.download(g), b = cpu.download(measured.gradients.at(id));
    equal &= std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0;
  }
  const StepReport& r = measured.report;
  auto eq = [](auto a, auto b) { return a == b ? "=" : "!="; };
  fmt::print("strategy {}\n", strategy->name());
  fmt::print("  peak budgeted bytes: measured {} {} predicted {} (store-all {})\n", r.peak_bytes,
             eq(r.peak_bytes, predicted.peak_bytes), predicted.peak_bytes, store_all.report.peak_bytes);
  fmt::print("  recomputed ops: measured {} {} predicted {}\n", r.recomputed_ops,
             eq(r.recomputed_ops, predicted.recomputed_ops), predicted.recomputed_ops);
  fmt::print("  gradients bitwise equal to store-all: {}\n", equal ? "yes" : "NO");
  bool ok = equal && r.peak_bytes == predicted.peak_bytes && r.recomputed_ops == predicted.recomputed_ops;
  return ok ? 0 : 1;
} catch (const Error& e) {  // e.g. an unknown strategy name: "[strategy] unknown strategy ..."
  fmt::print(stderr, "{}\n", e.what());
  return 2;
}
