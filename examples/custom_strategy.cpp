// Contract: a user-written strategy through the public interface. EveryOtherStage
// derives from remat::Strategy and emits a Program over the chain view's stages:
// forward every stage once, and in the reverse sweep recompute stage i-1 (from its
// kept input) just before B(i) for odd i; insert_frees() then frees x(i), odd i,
// between the sweeps. main() checks the three promises against store-all on a
// 12-layer MLP (bitwise gradients, measured = simulated peak, a budget one byte
// short refused with InfeasibleBudget) and exits 1 if one fails.
#include <autodiff/remat.hpp>
#include <models/models.hpp>
#include <strategies/chain_view.hpp>
#include <fmt/format.h>
using namespace remat;

class EveryOtherStage final : public Strategy {
 public:
  std::string name() const override { return "every-other"; }
  Program plan(const Tape& tape, int loss, const Budget& budget) const override {
    ChainView view = chain_view(tape, loss);  // stages: the nodes of each forward and each backward
    Program p{name(), loss, view.grad_targets, {}};
    auto emit = [&](InstructionKind k, const std::vector<int>& ids) { for (int id : ids) p.instructions.push_back({k, id}); };
    if (view.boundary[0] >= 0) emit(InstructionKind::compute, {view.boundary[0]});  // x(0)
    const int L = view.chain.length();
    for (int i = 0; i < L; ++i) emit(InstructionKind::compute, view.stage_nodes[i]);
    emit(InstructionKind::seed_grad, {loss});
    for (int i = L - 1; i >= 0; --i) {
      if (i % 2 == 1) emit(InstructionKind::compute, view.stage_nodes[i - 1]);  // rebuilds x(i) and stage i-1's tape
      emit(InstructionKind::backward, view.stage_backward[i]);
    }
    p = insert_frees(tape, std::move(p));  // every free, as early as the reads allow
    std::size_t peak = simulate(tape, p).peak_bytes;
    if (budget.bytes && peak > *budget.bytes)
      throw InfeasibleBudget(fmt::format("[every-other] budget {} bytes is below this plan's peak; the smallest "
                                         "feasible budget is {} bytes", *budget.bytes, peak), peak);
    return p;
  }
};

int main() {
  Model m = build_model("mlp:layers=12,width=64,batch=16");
  const Tape& tape = *m.tape;
  Program mine = EveryOtherStage().plan(tape, m.loss.id, Budget{});
  CpuBackend cpu;
  Executor ex(tape, cpu), reference(tape, cpu);
  StepResult got = ex.run(mine, m.batch(0)), want = reference.run(store_all_program(tape, m.loss.id), m.batch(0));
  bool equal = true;
  for (const auto& [id, g] : want.gradients)  // HostArray bytes compare bit for bit
    equal &= cpu.download(g).bytes == cpu.download(got.gradients.at(id)).bytes;
  const std::size_t predicted = simulate(tape, mine).peak_bytes, measured = got.report.peak_bytes;
  fmt::print("every-other: peak {} bytes (store-all {}), {} recomputed ops\n", measured, want.report.peak_bytes,
             got.report.recomputed_ops);
  fmt::print("promise 1, gradients bitwise equal to store-all: {}\n", equal ? "yes" : "NO");
  fmt::print("promise 2, measured peak equals the prediction ({}): {}\n", predicted, measured == predicted ? "yes" : "NO");
  try {
    EveryOtherStage().plan(tape, m.loss.id, Budget{predicted - 1});
  } catch (const InfeasibleBudget& e) {
    fmt::print("promise 3, a budget one byte short is refused: {}\n", e.what());
    return equal && measured == predicted && e.min_feasible_bytes == predicted ? 0 : 1;
  }
  return 1;
}
