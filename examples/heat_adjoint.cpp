// Contract: the adjoint of the heat equation with Revolve (Griewank and Walther
// 2000). Model heat:steps=64,grid=32 steps u(k+1) = u(k) + r laplacian(u(k)) from
// the parameter u(0); loss = mse(u(64), target), so d loss / d u(0) is the discrete
// adjoint. Revolve with 4 slots keeps at most 4 states and recomputes the
// others. Prints: the gradient bitwise equal to store-all's; the recomputed stage
// forwards of the schedule equal to p(L, s), Griewank's minimum; the recomputed
// ops measured on the CPU equal to the plan's; both peaks (this step is linear:
// no vjp reads a state, so here checkpoints cost memory). Exits 1 otherwise.
#include <autodiff/remat.hpp>
#include <models/models.hpp>
#include <strategies/stage_schedules.hpp>
#include <strategies/strategies.hpp>

#include <fmt/format.h>

#include <cstring>

using namespace remat;

int main() {
  const int slots = 4;
  Model m = build_model("heat:steps=64,grid=32");
  const Tape& tape = *m.tape;
  StrategyOptions options;
  options.slots = slots;
  Program revolve = make_strategy("revolve", options)->plan(tape, m.loss.id, Budget{});

  CpuBackend cpu;
  Executor ex(tape, cpu), reference(tape, cpu);
  StepResult got = ex.run(revolve, m.batch(0));
  StepResult want = reference.run(store_all_program(tape, m.loss.id), m.batch(0));
  const int u0 = tape.parameters().front();
  HostArray a = cpu.download(got.gradients.at(u0)), b = cpu.download(want.gradients.at(u0));
  const bool equal = std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0;
  fmt::print("d loss / d u(0): revolve {} store-all, bit for bit (u0[0] = {:.9g})\n", equal ? "equals" : "DIFFERS FROM",
             a.at(0));

  ChainView view = chain_view(tape, m.loss.id);  // one stage per time step, plus the loss
  const int L = view.chain.length();
  ScheduleStats stats = simulate_schedule(view.chain, revolve_schedule(view.chain, slots));
  const std::int64_t minimum = revolve_recomputations(L, slots);
  auto eq = [](auto x, auto y) { return x == y ? "=" : "!="; };
  fmt::print("recomputed stage forwards: {} {} p(L={}, s={}) = {}\n", stats.recomputed_steps,
             eq(stats.recomputed_steps, minimum), L, slots, minimum);
  StepReport planned = simulate(tape, revolve);
  fmt::print("recomputed ops: measured {} {} planned {}\n", got.report.recomputed_ops,
             eq(got.report.recomputed_ops, planned.recomputed_ops), planned.recomputed_ops);
  fmt::print("peak budgeted bytes: revolve {}, store-all {}\n", got.report.peak_bytes, want.report.peak_bytes);
  if (got.report.peak_bytes > want.report.peak_bytes)  // the lesson of this model: no vjp here reads a state
    fmt::print("(the heat step is linear, so its vjps read no forward state and store-all keeps none: the\n"
               " checkpoints cost memory here; with a nonlinear step they would replace the taped states)\n");
  const bool ok = equal && stats.recomputed_steps == minimum && got.report.recomputed_ops == planned.recomputed_ops;
  return ok ? 0 : 1;
}
