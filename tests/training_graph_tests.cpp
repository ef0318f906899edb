// Contract: training graphs against independent oracles.
//  - The interchange rule on hand-worked graphs (peaks computed on paper).
//  - Tapes: for zoo models and every schedule tried (store-all order, the heuristic family
//    at several budgets, the greedy planner's programs), the graph's peak equals
//    simulate() of the lowered Program to the byte, or is above it only where the one
//    documented conservative rule applies; recomputation counts agree; the lowered
//    Program's gradients are bitwise those of store-all (promise 1).
//  - Chains lower to graphs whose store-all peak equals the stage model's.
//  - Node-link JSON: round trips exactly; bad files fail with messages naming the node.
#include "models/models.hpp"
#include "gradcheck.hpp"
#include "strategies/graph_heuristics.hpp"
#include "strategies/graph_json.hpp"
#include "strategies/stage_schedules.hpp"
#include "strategies/strategies.hpp"
#include "strategies/training_graph.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>

using namespace remat;

namespace {

// a -> b -> c, a -> c: sizes 4, 2, 1; workspace 3 on b.
TrainingGraph small_graph() {
  TrainingGraph g;
  g.name = "small";
  auto node = [&](const char* name, double cost, std::int64_t ws = 0) {
    GraphNode n;
    n.name = name;
    n.cost = cost;
    n.workspace = ws;
    return g.add_node(std::move(n));
  };
  int a = node("a", 1), b = node("b", 2, 3), c = node("c", 4);
  int va = g.add_value(a, 4), vb = g.add_value(b, 2);
  g.add_value(c, 1);
  g.add_input(b, va);
  g.add_input(c, va);
  g.add_input(c, vb);
  g.finalize();
  return g;
}

bool same_gradients(const Tape& tape, const Program& a, const Program& b, const Bindings& data) {
  CpuBackend cpu;
  Executor ex(tape, cpu);
  auto ra = ex.run(a, data);
  auto rb = ex.run(b, data);
  for (const auto& [id, ga] : ra.gradients) {
    HostArray x = cpu.download(ga), y = cpu.download(rb.gradients.at(id));
    if (x.bytes != y.bytes) return false;
  }
  return true;
}

// Ops whose declared workspace can exceed what they allocate (training_graph.cpp): conv2d
// when neither x nor w receives a gradient; a binary op when an operand is broadcast but no
// broadcast operand receives one.
bool has_conservative_workspace(const Tape& tape, int loss) {
  for (int id : backward_order(tape, loss)) {
    const Node& n = tape.node(id);
    std::vector<TensorMeta> metas;
    for (int in : n.inputs) metas.push_back(tape.node(in).meta);
    if (n.op->vjp_workspace_bytes(metas, n.meta) == 0) continue;
    auto grad = [&](std::size_t k) { return tape.node(n.inputs[k]).requires_grad && n.op->differentiable_input(k); };
    if (n.op->name() == "conv2d") {
      if (!grad(0) && !grad(1)) return true;
      continue;
    }
    bool broadcast_with_grad = false;
    for (std::size_t k = 0; k < n.inputs.size(); ++k)
      if (tape.node(n.inputs[k]).meta.shape != n.meta.shape && grad(k)) broadcast_with_grad = true;
    if (!broadcast_with_grad) return true;
  }
  return false;
}

const char* zoo[] = {
    "mlp:layers=4,width=8,batch=2",
    "resmlp:layers=3,width=8,batch=2,act=gelu",
    "resnet:blocks=1,width=4,batch=2,image=8,classes=3",
    "lstm:steps=3,hidden=4,input=3,batch=2",
    "transformer:layers=1,width=8,heads=2,seq=4,batch=2,vocab=8",
    "unet:levels=2,width=4,batch=1,image=8",
    "heat:steps=6,grid=8,equation=burgers",
};

}  // namespace

TEST_CASE("graph schedules: the interchange rule on a hand-worked graph") {
  TrainingGraph g = small_graph();
  // a b c: step a holds a (4); b holds a, b and its workspace (4 + 2 + 3); c holds a, b, c (7).
  GraphScheduleStats st = simulate_graph_schedule(g, topological_schedule(g));
  CHECK(st.step_memory == std::vector<std::int64_t>{4, 9, 7});
  CHECK(st.peak == 9);
  CHECK(st.cost == 7);
  // a b a c: the first a lives until b (its last reader), the second from its computation
  // to c: 4, 9, then a(2nd) + b = 6, then a + b + c = 7; a's cost twice.
  st = simulate_graph_schedule(g, GraphSchedule{{0, 1, 0, 2}});
  CHECK(st.step_memory == std::vector<std::int64_t>{4, 9, 6, 7});
  CHECK(st.cost == 8);
  CHECK(st.recomputations == 1);
  CHECK(in_stage_form(g, GraphSchedule{{0, 1, 0, 2}}));
  CHECK_FALSE(in_stage_form(g, GraphSchedule{{0, 1, 0, 0, 2}}));
  // An unread recomputation lives only during its own step, and is dropped by the cleaner.
  st = simulate_graph_schedule(g, GraphSchedule{{0, 1, 2, 0}});
  CHECK(st.step_memory.back() == 4);
  CHECK(drop_unused_recomputations(g, GraphSchedule{{0, 1, 2, 0}}).steps == std::vector<int>{0, 1, 2});
  // Largest single step: b's inputs, output and workspace.
  int at = -1;
  CHECK(minimum_step_memory(g, &at) == 9);
  CHECK(at == 1);

  CHECK_THROWS_WITH_AS(simulate_graph_schedule(g, GraphSchedule{{1, 0, 2}}),
                       "[graph schedule] step 0 (node 1 'b'): its input from node 0 'a' was never computed", Error);
  CHECK_THROWS_WITH_AS(simulate_graph_schedule(g, GraphSchedule{{0, 1}}),
                       "[graph schedule] node 2 'c' is never computed (a schedule computes every node)", Error);
  CHECK_THROWS_WITH_AS(simulate_graph_schedule(g, GraphSchedule{{0, 7}}), doctest::Contains("node index 7"), Error);
  g.nodes[0].recomputable = false;
  CHECK_THROWS_WITH_AS(simulate_graph_schedule(g, GraphSchedule{{0, 1, 0, 2}}),
                       doctest::Contains("computed a second time, but it is not recomputable"), Error);
  CHECK_THROWS_WITH_AS(to_stage_form(g, GraphSchedule{{0, 2, 1}}),
                       doctest::Contains("first computed before node 1 'b'"), Error);
}

TEST_CASE("training graphs of tapes: the graph's peak is the executor's, to the byte") {
  for (const std::string spec : zoo) {
    CAPTURE(spec);
    Model m = build_model(spec);
    const Tape& tape = *m.tape;
    const int loss = m.loss.id;
    TrainingGraph g = training_graph_from_tape(tape, loss);
    const bool exact = !has_conservative_workspace(tape, loss);
    std::int64_t largest_excess = 0;
    auto check = [&](const GraphSchedule& s, const std::string& what) {
      CAPTURE(what);
      const GraphScheduleStats gs = simulate_graph_schedule(g, s);
      const Program p = lower_to_program(tape, g, s, "graph");
      const StepReport r = simulate(tape, p);
      if (exact) CHECK(gs.peak == static_cast<std::int64_t>(r.peak_bytes));
      else CHECK(gs.peak >= static_cast<std::int64_t>(r.peak_bytes));
      largest_excess = std::max(largest_excess, gs.peak - static_cast<std::int64_t>(r.peak_bytes));
      std::int64_t forward_recomputations = 0;
      std::vector<int> seen(g.nodes.size(), 0);
      for (int k : s.steps)
        if (seen[static_cast<std::size_t>(k)]++ && !g.nodes[static_cast<std::size_t>(k)].backward &&
            tape.node(g.nodes[static_cast<std::size_t>(k)].tape_node).kind == NodeKind::op)
          ++forward_recomputations;  // the executor counts op recomputations (not placeholder copies)
      CHECK(forward_recomputations == r.recomputed_ops);
      // The inverse lowering gives the schedule back.
      CHECK(graph_schedule_from_program(g, p).steps == s.steps);
      return gs;
    };
    const GraphScheduleStats topo = check(topological_schedule(g), "store-all order");
    // The store-all order lowers to the store-all program.
    CHECK(lower_to_program(tape, g, topological_schedule(g)).instructions == store_all_program(tape, loss).instructions);
    bool compared_gradients = false;
    for (double fraction : {1.0, 0.8, 0.6, 0.4}) {
      const auto budget = static_cast<std::int64_t>(static_cast<double>(topo.peak) * fraction);
      if (auto h = best_heuristic_schedule(g, budget)) {
        check(h->schedule, h->name);
        CHECK(h->stats.peak <= budget);
        CHECK(in_stage_form(g, h->schedule));
        if (!compared_gradients && h->stats.recomputations > 0) {
          CHECK(same_gradients(tape, lower_to_program(tape, g, h->schedule), store_all_program(tape, loss), m.batch(3)));
          compared_gradients = true;
        }
      }
      if (auto d = dtr_schedule(g, budget)) {
        CHECK(simulate_graph_schedule(g, *d).peak <= budget);
        check(*d, "dtr");
      }
      try {
        Program greedy = plan_budget_greedy(tape, loss, static_cast<std::size_t>(budget), "dtr");
        GraphSchedule s = graph_schedule_from_program(g, greedy);
        check(s, "greedy program");
        check(to_stage_form(g, s), "greedy program in stage form");
      } catch (const InfeasibleBudget&) {
      }
    }
    const HeuristicSchedule least = least_memory_heuristic_schedule(g);
    check(least.schedule, least.name);
    CHECK(least.stats.peak >= minimum_step_memory(g));
    if (!exact)
      MESSAGE(spec, ": a declared workspace is an upper bound (graph >= simulate()); largest excess seen ",
              largest_excess, " bytes");
  }
}

TEST_CASE("training graphs of tapes: values, gradient versions and workspace") {
  // y = x * x (a repeated input), z = y + y, loss = mean(z * w).
  Tape t;
  auto x = t.placeholder("x", {{2, 3}, DType::f32});
  auto w = t.parameter("w", testing::random_array({2, 3}, 1, -1, 1, DType::f32));
  auto h = tanh(mul(x, w));
  auto y = mul(h, h);
  auto z = add(y, y);
  auto loss = mean(mul(z, w));
  TrainingGraph g = training_graph_from_tape(t, loss.id);
  // Forward: x, the first mul, tanh, y, z, the last mul, mean; backward: the six vjps (the
  // first mul sends w its gradient).
  int forward = 0, backward = 0;
  for (const auto& n : g.nodes) (n.backward ? backward : forward) += 1;
  CHECK(forward == 7);
  CHECK(backward == 6);
  for (const auto& n : g.nodes)
    if (n.backward) CHECK_FALSE(n.recomputable);
  // The vjp of z = y + y writes y's gradient once in place and once through a temporary.
  const GraphNode* grad_z = nullptr;
  for (const auto& n : g.nodes)
    if (n.backward && n.tape_node == z.id) grad_z = &n;
  REQUIRE(grad_z);
  CHECK(grad_z->outputs.size() == 1);
  CHECK(grad_z->workspace == 24);
  // The loss's vjp holds its seed (a 4-byte scalar) as workspace.
  for (const auto& n : g.nodes)
    if (n.backward && n.tape_node == loss.id) CHECK(n.workspace == 4);
  const GraphScheduleStats st = simulate_graph_schedule(g, topological_schedule(g));
  CHECK(st.peak == static_cast<std::int64_t>(simulate(t, store_all_program(t, loss.id)).peak_bytes));
  CHECK_THROWS_WITH_AS(training_graph_from_tape(t, x.id), doctest::Contains("does not depend on any parameter"), Error);
}

TEST_CASE("training graphs of chains: the store-all peak is the stage model's") {
  for (int L : {1, 2, 5}) {
    Chain c = Chain::uniform(L);
    for (auto& v : c.cbw) v = 0;
    c.cbw = c.cw;  // cbw = cw: the rotor model exactly
    TrainingGraph g = training_graph_from_chain(c);
    CHECK(g.size() == 1 + L + L + 1);
    const auto st = simulate_graph_schedule(g, topological_schedule(g));
    CHECK(st.peak == simulate_schedule(c, store_all_schedule(c)).peak_memory);
    CHECK(st.cost == static_cast<double>(simulate_schedule(c, store_all_schedule(c)).makespan));
  }
  // With a taped rest the tape is a second value of the stage, read by its backward only.
  Chain u = Chain::uniform(3);
  TrainingGraph g = training_graph_from_chain(u);
  CHECK(g.nodes[1].outputs.size() == 2);
  CHECK(simulate_graph_schedule(g, topological_schedule(g)).peak == simulate_schedule(u, store_all_schedule(u)).peak_memory);
}

TEST_CASE("node-link JSON: round trips and the interchange format") {
  Model m = build_model("unet:levels=2,width=4,batch=1,image=8");
  TrainingGraph g = training_graph_from_tape(*m.tape, m.loss.id);
  const nlohmann::json j = to_node_link_json(g);
  CHECK(j["nodes"].size() == g.nodes.size());
  CHECK(j["nodes"][0]["id"].is_number_integer());
  TrainingGraph back = read_node_link_json(j, "roundtrip");
  REQUIRE(back.size() == g.size());
  CHECK(back.values.size() == g.values.size());
  for (int k = 0; k < g.size(); ++k) {
    CHECK(back.nodes[static_cast<std::size_t>(k)].workspace == g.nodes[static_cast<std::size_t>(k)].workspace);
    CHECK(back.nodes[static_cast<std::size_t>(k)].recomputable == g.nodes[static_cast<std::size_t>(k)].recomputable);
    CHECK(back.output_bytes(k) == g.output_bytes(k));
  }
  const auto budget = (simulate_graph_schedule(g, topological_schedule(g)).peak +
                       least_memory_heuristic_schedule(g).stats.peak) / 2;
  auto h = best_heuristic_schedule(g, budget);
  REQUIRE(h);
  CHECK(simulate_graph_schedule(back, h->schedule).peak == h->stats.peak);
  // A schedule as ids, and back.
  nlohmann::json plan = schedule_to_json(g, h->schedule);
  CHECK(plan["peak"] == h->stats.peak);
  CHECK(plan["sequence"].size() == h->schedule.steps.size());
  CHECK(schedule_from_json(g, plan).steps == h->schedule.steps);
  CHECK(plan["overhead"].get<double>() >= 0);

  // A Checkmate-style file: string ids, listed out of order, one value per node.
  nlohmann::json f = nlohmann::json::parse(R"({"directed": true, "graph": {}, "nodes": [
      {"id": "c", "backward": true, "cost_cpu": 2.5, "cost_ram": 1},
      {"id": "a", "name": "input", "backward": false, "cost_cpu": 1, "cost_ram": 4.0},
      {"id": "b", "backward": false, "cost_cpu": 2, "cost_ram": 2}],
    "links": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}, {"source": "a", "target": "c"}]})");
  TrainingGraph fg = read_node_link_json(f, "three.json");
  REQUIRE(fg.size() == 3);
  CHECK(fg.nodes[0].id == "a");
  CHECK(fg.nodes[0].name == "input");
  CHECK(fg.nodes[2].backward);
  CHECK(simulate_graph_schedule(fg, topological_schedule(fg)).peak == 7);
  CHECK(schedule_to_json(fg, topological_schedule(fg))["sequence"] == nlohmann::json::parse(R"(["a","b","c"])"));
  // Integer ids in topological order but listed shuffled: ascending ids win.
  nlohmann::json ints = nlohmann::json::parse(R"({"nodes": [
      {"id": 1, "cost_cpu": 1, "cost_ram": 1}, {"id": 0, "cost_cpu": 1, "cost_ram": 1}, {"id": 2, "cost_cpu": 1, "cost_ram": 1}],
    "links": [{"source": 0, "target": 1}, {"source": 1, "target": 2}]})");
  TrainingGraph ig = read_node_link_json(ints);
  CHECK(ig.nodes[0].id == "0");
  CHECK(ig.nodes[2].id == "2");
}

TEST_CASE("node-link JSON: bad graphs are refused with the node named") {
  auto read = [](const char* text) { return read_node_link_json(nlohmann::json::parse(text), "g.json"); };
  CHECK_THROWS_WITH_AS(read(R"([1, 2])"), "[graph g.json] expected a JSON object with \"nodes\" and \"links\"", Error);
  CHECK_THROWS_WITH_AS(read(R"({"nodes": []})"), "[graph g.json] expected a \"links\" array", Error);
  CHECK_THROWS_WITH_AS(read(R"({"nodes": [{"id": 0, "cost_cpu": 1}], "links": []})"),
                       "[graph g.json] node 0: has no \"cost_ram\" (the size of its output)", Error);
  CHECK_THROWS_WITH_AS(read(R"({"nodes": [{"id": 0, "cost_cpu": -1, "cost_ram": 1}], "links": []})"),
                       "[graph g.json] node 0: \"cost_cpu\" must be finite and >= 0, got -1", Error);
  CHECK_THROWS_WITH_AS(read(R"({"nodes": [{"id": 0, "cost_cpu": 1, "cost_ram": 1.5}], "links": []})"),
                       "[graph g.json] node 0: 'cost_ram' must be an integer, got 1.5", Error);
  CHECK_THROWS_WITH_AS(read(R"({"nodes": [{"id": 0, "cost_cpu": 1, "cost_ram": 1}, {"id": 0, "cost_cpu": 1, "cost_ram": 1}], "links": []})"),
                       "[graph g.json] node 0: the id appears twice", Error);
  CHECK_THROWS_WITH_AS(read(R"({"nodes": [{"id": 0, "cost_cpu": 1, "cost_ram": 1}], "links": [{"source": 0, "target": 9}]})"),
                       "[graph g.json] link 0: target 9 is not a node id", Error);
  CHECK_THROWS_WITH_AS(read(R"({"nodes": [{"id": 0, "cost_cpu": 1, "cost_ram": 1}], "links": [{"source": 0, "target": 0}]})"),
                       "[graph g.json] link 0: node 0 depends on itself", Error);
  CHECK_THROWS_WITH_AS(read(R"({"nodes": [{"id": "a", "cost_cpu": 1, "cost_ram": 1}, {"id": "b", "cost_cpu": 1, "cost_ram": 1}],
                                "links": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}]})"),
                       doctest::Contains("the links contain a cycle"), Error);
  CHECK_THROWS_WITH_AS(read(R"({"nodes": [{"id": [1], "cost_cpu": 1, "cost_ram": 1}], "links": []})"),
                       doctest::Contains("an id must be an integer or a string"), Error);
  CHECK_THROWS_WITH_AS(read(R"({"nodes": [{"id": 0, "backward": "yes", "cost_cpu": 1, "cost_ram": 1}], "links": []})"),
                       "[graph g.json] node 0: \"backward\" must be true or false", Error);
  CHECK_THROWS_WITH_AS(read_node_link_file("/nonexistent/graph.json"), "[graph /nonexistent/graph.json] cannot open the file",
                       Error);
  const std::string bad = std::string(REMAT_BINARY_DIR) + "/bad_graph.json";
  std::ofstream(bad) << "{\"nodes\": [";
  CHECK_THROWS_WITH_AS(read_node_link_file(bad), doctest::Contains("not valid JSON"), Error);
}
