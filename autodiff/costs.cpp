// Contract: analytic and profiled node costs, and program times (see costs.hpp).
#include "autodiff/costs.hpp"

#include "autodiff/executor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

namespace remat {

namespace {
// The roofline time of a cost (ns, at least 1).
std::int64_t roofline_ns(const Cost& c) {
  double ns = std::max(c.flops / 20.0, (c.bytes_read + c.bytes_written) / 10.0);
  // A cost beyond 2^62 ns (146 years) saturates: the plan is still valid, only its weights are capped.
  if (!(ns < 4.6e18)) return std::int64_t{1} << 62;
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(ns)));
}
}  // namespace

std::int64_t analytic_node_time(const Tape& tape, int id) {
  const Node& n = tape.node(id);
  if (n.kind != NodeKind::op) return std::max<std::int64_t>(1, static_cast<std::int64_t>(n.meta.bytes() / 10));
  std::vector<TensorMeta> metas;
  metas.reserve(n.inputs.size());
  for (int in : n.inputs) metas.push_back(tape.node(in).meta);
  return roofline_ns(n.op->cost(metas, n.meta));
}

namespace {
// The roofline time of the op's own vjp cost, when it states one.
std::optional<std::int64_t> analytic_vjp_time(const Tape& tape, int id) {
  const Node& n = tape.node(id);
  if (n.kind != NodeKind::op) return std::nullopt;
  std::vector<TensorMeta> metas;
  metas.reserve(n.inputs.size());
  for (int in : n.inputs) metas.push_back(tape.node(in).meta);
  if (auto c = n.op->vjp_cost(metas, n.meta)) return roofline_ns(*c);
  return std::nullopt;
}
}  // namespace

NodeCosts analytic_node_costs(const Tape& tape) {
  NodeCosts c;
  c.forward_ns.resize(tape.size());
  c.backward_ns.resize(tape.size());
  for (std::size_t id = 0; id < tape.size(); ++id) {
    c.forward_ns[id] = analytic_node_time(tape, static_cast<int>(id));
    const auto vjp = analytic_vjp_time(tape, static_cast<int>(id));  // the op's own, else ~ 2x forward
    c.backward_ns[id] = vjp ? *vjp : std::min(c.forward_ns[id], std::int64_t{1} << 61) * 2;
  }
  return c;
}

NodeCosts profile_node_costs(const Tape& tape, int loss, Backend& backend, const Bindings& bindings, int repeats) {
  if (repeats < 1) throw Error(fmt::format("[profile] repeats = {} must be at least 1", repeats));
  Program p = store_all_program(tape, loss);
  Executor ex(tape, backend);
  RunOptions ro;
  ro.record_times = true;
  ex.run(p, bindings, ro);  // warm-up: first-touch page faults and thread start-up
  std::vector<std::vector<double>> samples(p.instructions.size());
  for (int r = 0; r < repeats; ++r) {
    StepReport report = ex.run(p, bindings, ro).report;
    for (std::size_t k = 0; k < p.instructions.size(); ++k) samples[k].push_back(report.instruction_seconds[k]);
  }
  NodeCosts c = analytic_node_costs(tape);  // nodes the step never runs keep their analytic time
  c.source = "measured on " + backend.name();
  for (std::size_t k = 0; k < p.instructions.size(); ++k) {
    auto& s = samples[k];
    std::sort(s.begin(), s.end());
    const double median = s[s.size() / 2];
    const auto ns = std::max<std::int64_t>(1, static_cast<std::int64_t>(median * 1e9));
    const auto& ins = p.instructions[k];
    if (ins.kind == InstructionKind::compute) c.forward_ns[static_cast<std::size_t>(ins.node)] = ns;
    if (ins.kind == InstructionKind::backward) c.backward_ns[static_cast<std::size_t>(ins.node)] = ns;
  }
  return c;
}

std::int64_t program_time(const Tape& tape, const Program& program, const NodeCosts& costs) {
  constexpr std::int64_t cap = std::int64_t{1} << 62;  // saturate rather than overflow
  std::int64_t t = 0;
  for (const auto& ins : program.instructions) {
    std::int64_t add = 0;
    if (ins.kind == InstructionKind::compute && tape.node(ins.node).kind != NodeKind::parameter) add = costs.forward(ins.node);
    if (ins.kind == InstructionKind::backward) add = costs.backward(ins.node);
    t = add >= cap - t ? cap : t + add;
  }
  return t;
}

}  // namespace remat
