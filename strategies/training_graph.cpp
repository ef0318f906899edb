// Contract: training graphs, the interchange schedule rule and the lowerings of tapes and
// chains (see training_graph.hpp).
//
// How a tape's memory maps onto values (the executor's rules, autodiff/executor.cpp):
//  - compute n allocates n's value, then its forward workspace: forward node n has one
//    output (n's bytes) and workspace forward_workspace_bytes(n). Placeholders are forward
//    nodes too (a recomputation copies the binding again).
//  - backward n allocates, for each input slot k that receives a gradient, a fresh
//    gradient when the input has none yet (and the slot is its first in n), else a
//    workspace temporary of the input's size that is accumulated and freed; then the vjp
//    allocates its workspace. The gradient of a non-parameter input u is modelled as a
//    chain of versions: the first writer produces g_u(1); a later writer reads g_u(j) and
//    produces g_u(j+1) (same bytes: the new version stands for that writer's temporary,
//    and g_u(j) is freed after it, leaving one buffer, as in the executor); the vjp of u
//    reads the last version. Further temporaries (a repeated input, a parameter that
//    already has a gradient) are workspace. Parameter gradients are not budgeted.
//  - the loss's seed gradient lives from seed_grad to the end of its vjp, which
//    lower_to_program emits back to back: it is workspace of the loss's backward node.
//  - every vjp runs once (a second run would accumulate twice): backward nodes are not
//    recomputable, and their order is backward_order.
// The one conservative rule: workspace is the op's declared upper bound
// (vjp_workspace_bytes / forward_workspace_bytes). A binary op declares its broadcast
// buffer whenever an operand is broadcast but allocates it only when a broadcast operand
// receives a gradient, and conv2d's vjp allocates its columns only when x or w receives
// one; there the graph's peak can exceed simulate()'s, never fall below it.
#include "strategies/training_graph.hpp"

#include "strategies/chain_view.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace remat {

// ---- TrainingGraph ----

int TrainingGraph::add_node(GraphNode node) {
  if (node.id.empty()) node.id = std::to_string(nodes.size());
  nodes.push_back(std::move(node));
  return size() - 1;
}

int TrainingGraph::add_value(int producer, std::int64_t bytes, std::string value_name) {
  if (producer < 0 || producer >= size())
    throw Error(fmt::format("[training graph {}] a value's producer {} is not a node", name, producer));
  GraphValue v;
  v.name = value_name.empty() ? nodes[static_cast<std::size_t>(producer)].name : std::move(value_name);
  v.bytes = bytes;
  v.producer = producer;
  values.push_back(std::move(v));
  const int id = static_cast<int>(values.size()) - 1;
  nodes[static_cast<std::size_t>(producer)].outputs.push_back(id);
  return id;
}

void TrainingGraph::add_input(int node, int value) {
  if (node < 0 || node >= size() || value < 0 || value >= static_cast<int>(values.size()))
    throw Error(fmt::format("[training graph {}] input (node {}, value {}) out of range", name, node, value));
  auto& in = nodes[static_cast<std::size_t>(node)].inputs;
  if (std::find(in.begin(), in.end(), value) == in.end()) in.push_back(value);
}

void TrainingGraph::finalize() {
  for (auto& v : values) v.readers.clear();
  for (int k = 0; k < size(); ++k) {
    const GraphNode& node = nodes[static_cast<std::size_t>(k)];
    auto where = [&] { return fmt::format("[training graph {}] node {} ('{}')", name, node.id, node.name); };
    if (!std::isfinite(node.cost) || node.cost < 0)
      throw Error(fmt::format("{}: compute cost {} must be finite and >= 0", where(), node.cost));
    if (node.workspace < 0) throw Error(fmt::format("{}: workspace {} must be >= 0", where(), node.workspace));
    for (int v : node.outputs) {
      if (v < 0 || v >= static_cast<int>(values.size()) || values[static_cast<std::size_t>(v)].producer != k)
        throw Error(fmt::format("{}: output value {} is not produced by it", where(), v));
    }
    for (int v : node.inputs) {
      if (v < 0 || v >= static_cast<int>(values.size()))
        throw Error(fmt::format("{}: input value {} does not exist", where(), v));
      const int p = values[static_cast<std::size_t>(v)].producer;
      if (p >= k)
        throw Error(fmt::format("{}: reads a value of node {} ('{}'), which is not earlier in the order (the nodes "
                                "must be listed in a topological order)",
                                where(), nodes[static_cast<std::size_t>(p)].id, nodes[static_cast<std::size_t>(p)].name));
      values[static_cast<std::size_t>(v)].readers.push_back(k);
    }
  }
  for (std::size_t v = 0; v < values.size(); ++v) {
    if (values[v].bytes < 0)
      throw Error(fmt::format("[training graph {}] value '{}' has negative size {}", name, values[v].name,
                              values[v].bytes));
    if (values[v].producer < 0 || values[v].producer >= size())
      throw Error(fmt::format("[training graph {}] value '{}' has no producer", name, values[v].name));
  }
}

std::int64_t TrainingGraph::output_bytes(int node) const {
  std::int64_t b = 0;
  for (int v : nodes[static_cast<std::size_t>(node)].outputs) b += values[static_cast<std::size_t>(v)].bytes;
  return b;
}

double TrainingGraph::total_cost() const {
  double c = 0;
  for (const auto& n : nodes) c += n.cost;
  return c;
}

// ---- the interchange rule ----

GraphScheduleStats simulate_graph_schedule(const TrainingGraph& g, const GraphSchedule& schedule) {
  const int n = g.size();
  const auto& steps = schedule.steps;
  struct Instance {
    int value, created, last_read;
  };
  std::vector<Instance> instances;
  instances.reserve(steps.size() * 2);
  std::vector<int> current(g.values.size(), -1);
  std::vector<int> count(static_cast<std::size_t>(n), 0);
  GraphScheduleStats stats;
  for (std::size_t s = 0; s < steps.size(); ++s) {
    const int k = steps[s];
    if (k < 0 || k >= n)
      throw Error(fmt::format("[graph schedule] step {}: node index {} is not in the graph (it has {} nodes)", s, k, n));
    const GraphNode& node = g.nodes[static_cast<std::size_t>(k)];
    for (int v : node.inputs) {
      const int inst = current[static_cast<std::size_t>(v)];
      if (inst < 0) {
        const GraphNode& p = g.nodes[static_cast<std::size_t>(g.values[static_cast<std::size_t>(v)].producer)];
        throw Error(fmt::format("[graph schedule] step {} (node {} '{}'): its input from node {} '{}' was never computed",
                                s, node.id, node.name, p.id, p.name));
      }
      instances[static_cast<std::size_t>(inst)].last_read = static_cast<int>(s);
    }
    if (++count[static_cast<std::size_t>(k)] > 1) {
      if (!node.recomputable)
        throw Error(fmt::format("[graph schedule] step {} (node {} '{}'): the node is computed a second time, but it "
                                "is not recomputable",
                                s, node.id, node.name));
      ++stats.recomputations;
    }
    for (int v : node.outputs) {
      current[static_cast<std::size_t>(v)] = static_cast<int>(instances.size());
      instances.push_back({v, static_cast<int>(s), static_cast<int>(s)});
    }
    stats.cost += node.cost;
  }
  for (int k = 0; k < n; ++k)
    if (count[static_cast<std::size_t>(k)] == 0) {
      const GraphNode& node = g.nodes[static_cast<std::size_t>(k)];
      throw Error(fmt::format("[graph schedule] node {} '{}' is never computed (a schedule computes every node)",
                              node.id, node.name));
    }
  std::vector<std::int64_t> diff(steps.size() + 1, 0);
  for (const auto& inst : instances) {
    const std::int64_t b = g.values[static_cast<std::size_t>(inst.value)].bytes;
    diff[static_cast<std::size_t>(inst.created)] += b;
    diff[static_cast<std::size_t>(inst.last_read) + 1] -= b;
  }
  stats.step_memory.resize(steps.size());
  std::int64_t live = 0;
  for (std::size_t s = 0; s < steps.size(); ++s) {
    live += diff[s];
    const std::int64_t m = live + g.nodes[static_cast<std::size_t>(steps[s])].workspace;
    stats.step_memory[s] = m;
    if (m > stats.peak || stats.peak_step < 0) {
      stats.peak = m;
      stats.peak_step = static_cast<int>(s);
    }
  }
  stats.computations = static_cast<std::int64_t>(steps.size());
  return stats;
}

GraphSchedule topological_schedule(const TrainingGraph& g) {
  GraphSchedule s;
  for (int k = 0; k < g.size(); ++k) s.steps.push_back(k);
  return s;
}

std::int64_t minimum_step_memory(const TrainingGraph& g, int* node) {
  const int n = g.size();
  // Values of non-recomputable nodes: resident from their producer to their last reader.
  std::vector<std::int64_t> diff(static_cast<std::size_t>(n) + 1, 0);
  for (const auto& v : g.values) {
    if (g.nodes[static_cast<std::size_t>(v.producer)].recomputable || v.readers.empty()) continue;
    const int last = v.readers.back();
    if (last > v.producer + 1) {  // strictly inside (producer, last): neither an input nor an output there
      diff[static_cast<std::size_t>(v.producer) + 1] += v.bytes;
      diff[static_cast<std::size_t>(last)] -= v.bytes;
    }
  }
  std::int64_t best = -1, across = 0;
  int at = -1;
  for (int k = 0; k < n; ++k) {
    across += diff[static_cast<std::size_t>(k)];
    const GraphNode& nd = g.nodes[static_cast<std::size_t>(k)];
    std::int64_t m = g.output_bytes(k) + nd.workspace + across;
    for (int v : nd.inputs) {
      const GraphValue& val = g.values[static_cast<std::size_t>(v)];
      const bool counted = !g.nodes[static_cast<std::size_t>(val.producer)].recomputable && val.producer < k &&
                           val.readers.back() > k;
      if (!counted) m += val.bytes;
    }
    if (m > best) {
      best = m;
      at = k;
    }
  }
  if (node) *node = at;
  return std::max<std::int64_t>(best, 0);
}

std::vector<int> last_descendants(const TrainingGraph& g) {
  std::vector<int> last(static_cast<std::size_t>(g.size()));
  for (int k = g.size() - 1; k >= 0; --k) {
    int m = k;
    for (int v : g.nodes[static_cast<std::size_t>(k)].outputs)
      for (int r : g.values[static_cast<std::size_t>(v)].readers) m = std::max(m, last[static_cast<std::size_t>(r)]);
    last[static_cast<std::size_t>(k)] = m;
  }
  return last;
}

std::vector<int> value_horizons(const TrainingGraph& g) {
  const auto last = last_descendants(g);
  std::vector<int> h(g.values.size(), -1);
  for (std::size_t v = 0; v < g.values.size(); ++v)
    for (int r : g.values[v].readers)
      h[v] = std::max(h[v], g.nodes[static_cast<std::size_t>(r)].recomputable ? last[static_cast<std::size_t>(r)] : r);
  return h;
}

bool in_stage_form(const TrainingGraph& g, const GraphSchedule& schedule) {
  int frontier = 0, last = -1;
  for (int k : schedule.steps) {
    if (k == frontier) {
      ++frontier;
      last = -1;
    } else if (k < frontier && k > last) {
      last = k;
    } else {
      return false;
    }
  }
  return frontier == g.size();
}

GraphSchedule to_stage_form(const TrainingGraph& g, const GraphSchedule& schedule) {
  GraphSchedule out;
  std::vector<int> stage;
  int frontier = 0;
  for (std::size_t s = 0; s < schedule.steps.size(); ++s) {
    const int k = schedule.steps[s];
    if (k < 0 || k >= g.size())
      throw Error(fmt::format("[graph schedule] step {}: node index {} is not in the graph", s, k));
    if (k == frontier) {
      std::sort(stage.begin(), stage.end());
      stage.erase(std::unique(stage.begin(), stage.end()), stage.end());
      out.steps.insert(out.steps.end(), stage.begin(), stage.end());
      out.steps.push_back(k);
      stage.clear();
      ++frontier;
    } else if (k < frontier) {
      stage.push_back(k);
    } else {
      throw Error(fmt::format("[graph schedule] step {}: node {} '{}' is first computed before node {} '{}'; "
                              "Checkmate's stages need first computations in the graph's order",
                              s, g.nodes[static_cast<std::size_t>(k)].id, g.nodes[static_cast<std::size_t>(k)].name,
                              g.nodes[static_cast<std::size_t>(frontier)].id,
                              g.nodes[static_cast<std::size_t>(frontier)].name));
    }
  }
  if (frontier != g.size())
    throw Error(fmt::format("[graph schedule] node {} '{}' is never computed", g.nodes[static_cast<std::size_t>(frontier)].id,
                            g.nodes[static_cast<std::size_t>(frontier)].name));
  return out;
}

GraphSchedule drop_unused_recomputations(const TrainingGraph& g, const GraphSchedule& schedule) {
  GraphSchedule cur = schedule;
  while (true) {
    const auto& steps = cur.steps;
    std::vector<int> producer_step(g.values.size(), -1);
    std::vector<char> read(steps.size(), 0), first(steps.size(), 0);
    std::vector<char> seen(static_cast<std::size_t>(g.size()), 0);
    for (std::size_t s = 0; s < steps.size(); ++s) {
      const GraphNode& node = g.nodes[static_cast<std::size_t>(steps[s])];
      for (int v : node.inputs)
        if (producer_step[static_cast<std::size_t>(v)] >= 0) read[static_cast<std::size_t>(producer_step[static_cast<std::size_t>(v)])] = 1;
      for (int v : node.outputs) producer_step[static_cast<std::size_t>(v)] = static_cast<int>(s);
      if (!seen[static_cast<std::size_t>(steps[s])]) first[s] = seen[static_cast<std::size_t>(steps[s])] = 1;
    }
    GraphSchedule next;
    for (std::size_t s = 0; s < steps.size(); ++s)
      if (first[s] || read[s]) next.steps.push_back(steps[s]);
    if (next.steps.size() == steps.size()) return cur;
    cur = std::move(next);
  }
}

// ---- tapes ----

TapeGraphCosts tape_graph_costs(const NodeCosts& costs) {
  TapeGraphCosts c;
  for (auto v : costs.forward_ns) c.forward.push_back(static_cast<double>(v));
  for (auto v : costs.backward_ns) c.backward.push_back(static_cast<double>(v));
  return c;
}

TapeGraphCosts analytic_tape_costs(const Tape& tape) { return tape_graph_costs(analytic_node_costs(tape)); }

TrainingGraph training_graph_from_tape(const Tape& tape, int loss, const TapeGraphCosts& costs_in) {
  const Node& loss_node = tape.node(loss);
  if (!loss_node.requires_grad)
    throw Error("[training graph] the loss " + loss_node.label() + " does not depend on any parameter");
  TapeGraphCosts costs = costs_in;
  const TapeGraphCosts analytic = analytic_tape_costs(tape);
  if (costs.forward.empty()) costs.forward = analytic.forward;
  if (costs.backward.empty()) costs.backward = analytic.backward;
  if (costs.forward.size() != tape.size() || costs.backward.size() != tape.size())
    throw Error(fmt::format("[training graph] costs must have one entry per tape node ({}), got {} forward and {} backward",
                            tape.size(), costs.forward.size(), costs.backward.size()));

  TrainingGraph g;
  g.name = "tape";
  g.tape_loss = loss;
  auto is_param = [&](int id) { return tape.node(id).kind == NodeKind::parameter; };
  std::vector<int> value_of(tape.size(), -1);  // forward value of a tape node
  for (int id : forward_order(tape, loss))
    if (is_param(id) && tape.node(id).requires_grad) g.grad_targets.push_back(id);  // not frozen ones

  for (int id : compute_order(tape, loss)) {
    const Node& n = tape.node(id);
    GraphNode node;
    node.name = n.label();
    node.cost = costs.forward[static_cast<std::size_t>(id)];
    node.tape_node = id;
    if (n.kind == NodeKind::op) {
      std::vector<TensorMeta> metas;
      for (int in : n.inputs) metas.push_back(tape.node(in).meta);
      node.workspace = static_cast<std::int64_t>(n.op->forward_workspace_bytes(metas, n.meta));
    }
    const int k = g.add_node(std::move(node));
    value_of[static_cast<std::size_t>(id)] = g.add_value(k, static_cast<std::int64_t>(n.meta.bytes()), n.label());
    for (int in : n.inputs)
      if (!is_param(in)) g.add_input(k, value_of[static_cast<std::size_t>(in)]);
  }

  std::vector<int> grad_version(tape.size(), -1);  // latest gradient version of a tape node
  std::vector<char> param_grad(tape.size(), 0);     // a parameter already has its gradient
  for (int id : backward_order(tape, loss)) {
    const Node& n = tape.node(id);
    GraphNode node;
    node.name = "grad " + n.label();
    node.backward = true;
    node.recomputable = false;
    node.cost = costs.backward[static_cast<std::size_t>(id)];
    node.tape_node = id;
    std::vector<TensorMeta> metas;
    for (int in : n.inputs) metas.push_back(tape.node(in).meta);
    node.workspace = static_cast<std::int64_t>(n.op->vjp_workspace_bytes(metas, n.meta));
    if (id == loss) node.workspace += static_cast<std::int64_t>(n.meta.bytes());  // the seed
    const int k = g.add_node(std::move(node));
    GraphNode& added = g.nodes[static_cast<std::size_t>(k)];
    for (int s : saved_for_backward(tape, id))
      if (!is_param(s)) g.add_input(k, value_of[static_cast<std::size_t>(s)]);
    if (id != loss) {
      const int gv = grad_version[static_cast<std::size_t>(id)];
      if (gv < 0) throw Error("[training graph] internal: the vjp of " + n.label() + " has no output gradient");
      g.add_input(k, gv);
    }
    std::vector<int> written;  // inputs that already received a slot of this vjp
    for (std::size_t slot = 0; slot < n.inputs.size(); ++slot) {
      const int u = n.inputs[slot];
      const Node& un = tape.node(u);
      if (!(un.requires_grad && n.op->differentiable_input(slot))) continue;
      const std::int64_t ub = static_cast<std::int64_t>(un.meta.bytes());
      const bool repeated = std::find(written.begin(), written.end(), u) != written.end();
      written.push_back(u);
      if (un.kind == NodeKind::parameter) {
        if (param_grad[static_cast<std::size_t>(u)] || repeated) g.nodes[static_cast<std::size_t>(k)].workspace += ub;
        param_grad[static_cast<std::size_t>(u)] = 1;
        continue;
      }
      if (repeated) {
        g.nodes[static_cast<std::size_t>(k)].workspace += ub;
        continue;
      }
      const int previous = grad_version[static_cast<std::size_t>(u)];
      if (previous >= 0) g.add_input(k, previous);
      grad_version[static_cast<std::size_t>(u)] = g.add_value(k, ub, "grad " + un.label());
    }
    (void)added;
  }
  g.finalize();
  return g;
}

Program lower_to_program(const Tape& tape, const TrainingGraph& g, const GraphSchedule& schedule,
                         const std::string& strategy) {
  if (g.tape_loss < 0) throw Error("[lower] the training graph was not built from a tape");
  Program p;
  p.strategy = strategy;
  p.loss = g.tape_loss;
  p.grad_targets = g.grad_targets;
  for (std::size_t s = 0; s < schedule.steps.size(); ++s) {
    const int k = schedule.steps[s];
    if (k < 0 || k >= g.size()) throw Error(fmt::format("[lower] step {}: node index {} is not in the graph", s, k));
    const GraphNode& node = g.nodes[static_cast<std::size_t>(k)];
    if (node.tape_node < 0 || static_cast<std::size_t>(node.tape_node) >= tape.size())
      throw Error(fmt::format("[lower] node {} '{}' has no tape node", node.id, node.name));
    if (!node.backward) {
      p.instructions.push_back({InstructionKind::compute, node.tape_node});
    } else {
      if (node.tape_node == g.tape_loss) p.instructions.push_back({InstructionKind::seed_grad, g.tape_loss});
      p.instructions.push_back({InstructionKind::backward, node.tape_node});
    }
  }
  return insert_frees(tape, std::move(p));
}

GraphSchedule graph_schedule_from_program(const TrainingGraph& g, const Program& program) {
  std::map<int, int> forward, backward;
  for (int k = 0; k < g.size(); ++k) {
    const GraphNode& node = g.nodes[static_cast<std::size_t>(k)];
    if (node.tape_node >= 0) (node.backward ? backward : forward)[node.tape_node] = k;
  }
  GraphSchedule s;
  for (std::size_t i = 0; i < program.instructions.size(); ++i) {
    const auto& ins = program.instructions[i];
    if (ins.kind != InstructionKind::compute && ins.kind != InstructionKind::backward) continue;
    auto& map = ins.kind == InstructionKind::compute ? forward : backward;
    auto it = map.find(ins.node);
    if (it == map.end()) {
      if (ins.kind == InstructionKind::compute && std::find(g.grad_targets.begin(), g.grad_targets.end(), ins.node) !=
                                                       g.grad_targets.end())
        continue;  // computing a parameter is a no-op
      throw Error(fmt::format("[graph schedule] instruction {} ({} n{}) has no node in the training graph", i,
                              instruction_kind_name(ins.kind), ins.node));
    }
    s.steps.push_back(it->second);
  }
  return s;
}

// ---- chains ----

TrainingGraph training_graph_from_chain(const Chain& chain) {
  chain.validate();
  const int L = chain.length();
  TrainingGraph g;
  g.name = chain.name.empty() ? "chain" : chain.name;
  GraphNode x0;
  x0.name = "x(0)";
  x0.recomputable = false;
  const int n0 = g.add_node(std::move(x0));
  std::vector<int> x(static_cast<std::size_t>(L) + 1, -1), tape_rest(static_cast<std::size_t>(L) + 1, -1);
  x[0] = g.add_value(n0, chain.cw[0], "x(0)");
  for (int i = 0; i < L; ++i) {
    GraphNode f;
    f.name = fmt::format("F{}", i);
    f.cost = static_cast<double>(chain.fw[static_cast<std::size_t>(i)]);
    f.workspace = chain.ftmp[static_cast<std::size_t>(i)];
    const int k = g.add_node(std::move(f));
    g.add_input(k, x[static_cast<std::size_t>(i)]);
    x[static_cast<std::size_t>(i) + 1] = g.add_value(k, chain.cw[static_cast<std::size_t>(i) + 1], fmt::format("x({})", i + 1));
    const std::int64_t rest = chain.cbw[static_cast<std::size_t>(i) + 1] - chain.cw[static_cast<std::size_t>(i) + 1];
    if (rest > 0) tape_rest[static_cast<std::size_t>(i) + 1] = g.add_value(k, rest, fmt::format("xbar({}) rest", i + 1));
  }
  int delta = -1;
  for (int i = L; i >= 0; --i) {
    GraphNode b;
    b.name = fmt::format("B{}", i);
    b.backward = true;
    b.recomputable = false;
    b.cost = static_cast<double>(chain.bw[static_cast<std::size_t>(i)]);
    b.workspace = chain.btmp[static_cast<std::size_t>(i)];
    const int k = g.add_node(std::move(b));
    g.add_input(k, x[static_cast<std::size_t>(i)]);
    if (i < L) {
      g.add_input(k, x[static_cast<std::size_t>(i) + 1]);
      if (tape_rest[static_cast<std::size_t>(i) + 1] >= 0) g.add_input(k, tape_rest[static_cast<std::size_t>(i) + 1]);
      g.add_input(k, delta);
    }
    delta = g.add_value(k, chain.cw[static_cast<std::size_t>(i)], fmt::format("delta({})", i));
  }
  g.finalize();
  return g;
}

}  // namespace remat
