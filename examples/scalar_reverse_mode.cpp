// Contract: reverse mode on a tape, with f64 scalars. Records
//   f(x, y) = tanh(x * y) + log(x)
// as a Wengert list (recording computes nothing), evaluates f on demand, gets
// df/dx and df/dy from one reverse sweep, and compares them with the derivatives
// worked by hand (chain rule, t = tanh(x y)):
//   df/dx = y (1 - t^2) + 1/x        df/dy = x (1 - t^2)
// Prints the list, f, the reverse sweep as explain_plan() records it (each backward's
// adjoint equation, x̄ = the gradient, with the adjoint it produced, as micrograd prints
// node.grad), and each gradient beside its hand value with "match" when they agree to
// 1e-12; exits 1 otherwise.
#include <autodiff/remat.hpp>
#include <strategies/explain.hpp>
#include <strategies/strategies.hpp>

#include <fmt/format.h>

#include <cmath>

using namespace remat;

int main() {
  const double x0 = 0.7, y0 = -1.3;
  Tape tape;
  Value x = tape.parameter("x", HostArray::from({}, std::vector<double>{x0}));  // shape (): a scalar
  Value y = tape.parameter("y", HostArray::from({}, std::vector<double>{y0}));
  Value t = tanh(x * y);  // one statement per node keeps the recording order plain
  Value f = t + log(x);

  fmt::print("the Wengert list of f:\n");
  for (const Node& n : tape.nodes()) {
    std::vector<std::string> inputs;
    for (int in : n.inputs) inputs.push_back(fmt::format("n{}", in));
    if (n.kind == NodeKind::op) fmt::print("  n{} = {}({})\n", n.id, n.op->name(), fmt::join(inputs, ", "));
    else fmt::print("  n{} = {} = {}\n", n.id, n.name, tape.parameter_initial(n.id).at(0));
  }
  fmt::print("f({}, {}) = {:.12f}\n", x0, y0, eval(f).at(0));  // eval: one value, computed on demand

  CpuBackend cpu;
  Executor executor(tape, cpu);
  StepResult step = grad(executor, f);  // forward sweep, then the reverse sweep from df/df = 1
  // The reverse sweep, one adjoint equation per backward instruction, with its numbers
  // (the same view as `remat explain --values`).
  const nlohmann::json doc = explain_plan(tape, f.id, *make_strategy("store-all"), Budget{}, nullptr, ExplainValues{});
  fmt::print("the reverse sweep (x̄k = df/dxk):\n");
  for (const auto& step : doc.at("sweep").at("steps")) {
    fmt::print("  {:<34}", step.at("equation").get<std::string>());
    for (const auto& in : step.at("inputs"))
      if (!in.at("gradient_so_far").is_null())
        fmt::print("  x̄{} = {:.6f}", in.at("node").get<int>(), in.at("gradient_so_far").at(0).get<double>());
    fmt::print("\n");
  }
  const double th = std::tanh(x0 * y0);
  struct Row { const char* name; Value v; double by_hand; };
  bool all_match = true;
  for (const Row& r : {Row{"df/dx", x, y0 * (1 - th * th) + 1 / x0}, Row{"df/dy", y, x0 * (1 - th * th)}}) {
    double reverse = cpu.download(step.gradients.at(r.v.id)).at(0);
    bool match = std::abs(reverse - r.by_hand) < 1e-12;
    all_match &= match;
    fmt::print("{} = {:.12f} (reverse mode)  {:.12f} (by hand)  {}\n", r.name, reverse, r.by_hand, match ? "match" : "DIFFER");
  }
  return all_match ? 0 : 1;
}
