// Contract: planning under a byte budget. The optimal strategy (Beaumont et al.
// 2019) plans a 24-layer MLP at 60%, 40% and 30% of store-all's peak: every plan's
// simulated peak stays within its budget, and recomputation grows as the budget
// shrinks. A budget no schedule fits (1 KiB) is refused before any compute with
// InfeasibleBudget, whose min_feasible_bytes is the smallest budget that works;
// planning at exactly that budget succeeds. Exits 1 if any of this fails.
#include <autodiff/remat.hpp>
#include <models/models.hpp>
#include <strategies/strategies.hpp>

#include <fmt/format.h>

using namespace remat;

int main() {
  Model m = build_model("mlp:layers=24,width=64,batch=32");
  const Tape& tape = *m.tape;
  auto optimal = make_strategy("optimal");
  const std::size_t store_all = simulate(tape, store_all_program(tape, m.loss.id)).peak_bytes;
  fmt::print("store-all peak: {} bytes\n", store_all);

  bool ok = true;
  for (double share : {0.60, 0.40, 0.30}) {
    const auto budget = static_cast<std::size_t>(share * static_cast<double>(store_all));
    StepReport r = simulate(tape, optimal->plan(tape, m.loss.id, Budget{budget}));
    ok &= r.peak_bytes <= budget;
    fmt::print("budget {:>3.0f}% = {:>6} bytes: planned peak {:>6} bytes {} budget, {:>3} recomputed ops\n", share * 100,
               budget, r.peak_bytes, r.peak_bytes <= budget ? "within" : "OVER", r.recomputed_ops);
  }

  try {
    optimal->plan(tape, m.loss.id, Budget{1024});
    ok = false;  // a 1 KiB plan cannot exist: one activation alone is 8 KiB
  } catch (const InfeasibleBudget& e) {
    fmt::print("budget 1024 bytes: refused before any compute:\n  {}\n", e.what());
    StepReport r = simulate(tape, optimal->plan(tape, m.loss.id, Budget{e.min_feasible_bytes}));
    ok &= r.peak_bytes <= e.min_feasible_bytes;
    fmt::print("smallest feasible budget {} bytes: planned peak {} bytes, {} recomputed ops\n", e.min_feasible_bytes,
               r.peak_bytes, r.recomputed_ops);
  }
  return ok ? 0 : 1;
}
