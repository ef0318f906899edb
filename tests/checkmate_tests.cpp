// Contract: Checkmate's MILP (strategies/checkmate.cpp) against independent oracles.
//  (a) Exhaustive searches (Dijkstra over every state, written here from the interchange
//      rule, not from the model) on random training graphs of up to 8 forward nodes, several
//      budgets each: over stage-form schedules (Checkmate's class) the MILP finds exactly the
//      least cost and the same feasibility; over all sequences (any order, any repeats) the
//      MILP is an upper bound, and the count of graphs where a schedule outside stage form is
//      cheaper is printed. With and without the warm start.
//  (b) Accounting: the MILP's memory rows, evaluated at any stage-form schedule, give its
//      simulate_graph_schedule() peak; on zoo models the MILP's schedule, lowered, peaks at
//      simulate() = that accounting, within the budget, with store-all's gradients.
//  (c) Chains: on chains where the stage model and the graph coincide (cbw = cw), the MILP
//      never loses to the rotor DP (optimal_plan_units), equals it on uniform chains, and the
//      count of heterogeneous chains where it is cheaper (non-persistent schedules) is printed.
//  (d) checkmate-lp: LP bound <= optimum <= rounded cost; time limits hold; budgets below
//      the largest single-step need are refused naming it; the strategy keeps the promises.
// A long run: REMAT_CHECKMATE_CASES=400 build/bin/remat_tests -tc='checkmate*exhaustive*'.
#include "models/models.hpp"
#include "cli_harness.hpp"
#include "gradcheck.hpp"
#include "strategies/checkmate.hpp"
#include "strategies/graph_json.hpp"
#include "strategies/graph_planning.hpp"
#include "strategies/strategies.hpp"
#include "strategies/stage_schedules.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <queue>
#include <random>
#include <unordered_map>

using namespace remat;

namespace {

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

// A random training graph: forward DAG f_0..f_{k-1} (f_{k-1} the loss), and a backward node
// per forward node reading the gradients of its consumers, its own value and some of its
// inputs. One value per node, small integer costs and sizes, sometimes workspace.
TrainingGraph random_training_graph(std::mt19937& rng, int forward, bool backward_once, bool input_once) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  TrainingGraph g;
  g.name = "random";
  std::vector<int> fv(static_cast<std::size_t>(forward)), preds_storage;
  std::vector<std::vector<int>> preds(static_cast<std::size_t>(forward)), consumers(static_cast<std::size_t>(forward));
  for (int i = 0; i < forward; ++i) {
    GraphNode n;
    n.name = "f" + std::to_string(i);
    n.cost = pick(1, 5);
    n.workspace = pick(0, 3) == 0 ? pick(1, 3) : 0;
    n.recomputable = !(i == 0 && input_once);
    if (i == 0) n.cost = input_once ? 0 : pick(1, 2);
    const int k = g.add_node(std::move(n));
    fv[static_cast<std::size_t>(i)] = g.add_value(k, pick(1, 6));
    if (i > 0) {
      std::vector<int> p{i - 1};
      if (i > 1 && pick(0, 2) == 0) p.push_back(pick(0, i - 2));
      for (int q : p) {
        g.add_input(k, fv[static_cast<std::size_t>(q)]);
        preds[static_cast<std::size_t>(i)].push_back(q);
        consumers[static_cast<std::size_t>(q)].push_back(i);
      }
    }
  }
  std::vector<int> grad(static_cast<std::size_t>(forward), -1);
  for (int i = forward - 1; i >= 0; --i) {
    GraphNode n;
    n.name = "b" + std::to_string(i);
    n.backward = true;
    n.recomputable = !backward_once;
    n.cost = pick(1, 6);
    n.workspace = pick(0, 3) == 0 ? pick(1, 3) : 0;
    const int k = g.add_node(std::move(n));
    for (int c : consumers[static_cast<std::size_t>(i)]) g.add_input(k, grad[static_cast<std::size_t>(c)]);
    if (i == forward - 1 || pick(0, 1)) g.add_input(k, fv[static_cast<std::size_t>(i)]);
    for (int q : preds[static_cast<std::size_t>(i)])
      if (pick(0, 1)) g.add_input(k, fv[static_cast<std::size_t>(q)]);
    grad[static_cast<std::size_t>(i)] = g.add_value(k, pick(1, 6));
  }
  g.finalize();
  return g;
}

constexpr double none = -1;

// Least cost of a schedule whose every step fits `budget`, by Dijkstra over states; -1 when
// none. Space::stage_form: first computations in the graph's order, each stage recomputing in
// increasing order at most once (state: frontier, last index of the stage, resident values);
// Space::ordered: first computations in the graph's order, recomputations in any order and
// number; Space::any: any sequence (state: nodes computed so far, resident values). Values
// nobody can read any more are dropped at once; any other value may be dropped at any time.
enum class Space { stage_form, ordered, any };
double exhaustive(const TrainingGraph& g, std::int64_t budget, Space space) {
  const bool stage_form = space == Space::stage_form;
  const int n = g.size();
  const int V = static_cast<int>(g.values.size());
  REQUIRE(n <= 30);
  REQUIRE(V <= 30);
  std::vector<std::uint32_t> in_mask(static_cast<std::size_t>(n), 0), out_mask(static_cast<std::size_t>(n), 0),
      desc(static_cast<std::size_t>(n), 0);
  std::vector<std::int64_t> out_bytes(static_cast<std::size_t>(n), 0);
  for (int k = 0; k < n; ++k) {
    for (int v : g.nodes[static_cast<std::size_t>(k)].inputs) in_mask[static_cast<std::size_t>(k)] |= 1u << v;
    for (int v : g.nodes[static_cast<std::size_t>(k)].outputs) {
      out_mask[static_cast<std::size_t>(k)] |= 1u << v;
      out_bytes[static_cast<std::size_t>(k)] += g.values[static_cast<std::size_t>(v)].bytes;
    }
  }
  for (int k = n - 1; k >= 0; --k) {  // descendants (nodes), itself included
    desc[static_cast<std::size_t>(k)] = 1u << k;
    for (int v : g.nodes[static_cast<std::size_t>(k)].outputs)
      for (int r : g.values[static_cast<std::size_t>(v)].readers) desc[static_cast<std::size_t>(k)] |= desc[static_cast<std::size_t>(r)];
  }
  auto bytes_of = [&](std::uint32_t mask) {
    std::int64_t b = 0;
    for (int v = 0; v < V; ++v)
      if (mask >> v & 1) b += g.values[static_cast<std::size_t>(v)].bytes;
    return b;
  };
  // Nodes that can still be computed: not yet computed, or recomputable.
  auto prune = [&](std::uint32_t resident, std::uint32_t pending) {
    // pending: nodes that still must be computed at least once
    std::uint32_t live = 0;
    for (int v = 0; v < V; ++v) {
      if (!(resident >> v & 1)) continue;
      bool alive = false;
      for (int r : g.values[static_cast<std::size_t>(v)].readers) {
        const bool r_pending = pending >> r & 1;
        if (r_pending || (g.nodes[static_cast<std::size_t>(r)].recomputable && (desc[static_cast<std::size_t>(r)] & pending)))
          alive = true;
      }
      if (alive) live |= 1u << v;
    }
    return live;
  };
  const std::uint32_t all = n == 32 ? ~0u : (1u << n) - 1;
  using Key = std::uint64_t;
  using Item = std::pair<double, Key>;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> queue;
  std::unordered_map<Key, double> dist;
  // Stage form key: frontier (6 bits) | last + 1 (6 bits) | resident (32).
  // Free form key: computed (32) | resident (32).
  auto push = [&](Key key, double d) {
    auto it = dist.find(key);
    if (it != dist.end() && it->second <= d) return;
    dist[key] = d;
    queue.push({d, key});
  };
  if (stage_form) push(0, 0);
  else push(0, 0);
  while (!queue.empty()) {
    auto [d, key] = queue.top();
    queue.pop();
    if (dist[key] < d) continue;
    if (stage_form) {
      const int t = static_cast<int>(key >> 38), last = static_cast<int>((key >> 32) & 63) - 1;
      const auto resident = static_cast<std::uint32_t>(key);
      if (t == n) return d;
      const std::uint32_t pending = all & ~((1u << t) - 1);
      const std::int64_t held = bytes_of(resident);
      for (int v = 0; v < V; ++v)  // drops
        if (resident >> v & 1) push((key & ~0xffffffffull) | (resident & ~(1u << v)), d);
      for (int j = last + 1; j <= t; ++j) {
        const GraphNode& node = g.nodes[static_cast<std::size_t>(j)];
        if (j < t && !node.recomputable) continue;
        if ((in_mask[static_cast<std::size_t>(j)] & resident) != in_mask[static_cast<std::size_t>(j)]) continue;
        if (out_mask[static_cast<std::size_t>(j)] & resident) continue;
        if (held + out_bytes[static_cast<std::size_t>(j)] + node.workspace > budget) continue;
        const std::uint32_t next_pending = j == t ? pending & ~(1u << t) : pending;
        const std::uint32_t r = prune(resident | out_mask[static_cast<std::size_t>(j)], next_pending);
        const Key nk = j == t ? (static_cast<Key>(t + 1) << 38) | r : (static_cast<Key>(t) << 38) | (static_cast<Key>(j + 1) << 32) | r;
        push(nk, d + node.cost);
      }
    } else {
      const auto computed = static_cast<std::uint32_t>(key >> 32), resident = static_cast<std::uint32_t>(key);
      if (computed == all) return d;
      const std::int64_t held = bytes_of(resident);
      for (int v = 0; v < V; ++v)
        if (resident >> v & 1) push((key & ~0xffffffffull) | (resident & ~(1u << v)), d);
      for (int j = 0; j < n; ++j) {
        const GraphNode& node = g.nodes[static_cast<std::size_t>(j)];
        if ((computed >> j & 1) && !node.recomputable) continue;
        if (space == Space::ordered && !(computed >> j & 1) && (computed & ((1u << j) - 1)) != ((1u << j) - 1)) continue;
        if ((in_mask[static_cast<std::size_t>(j)] & resident) != in_mask[static_cast<std::size_t>(j)]) continue;
        if (out_mask[static_cast<std::size_t>(j)] & resident) continue;
        if (held + out_bytes[static_cast<std::size_t>(j)] + node.workspace > budget) continue;
        const std::uint32_t c = computed | (1u << j);
        const std::uint32_t r = prune(resident | out_mask[static_cast<std::size_t>(j)], all & ~c);
        push((static_cast<Key>(c) << 32) | r, d + node.cost);
      }
    }
  }
  return none;
}

// A random valid stage-form schedule: each stage recomputes a random subset of what it may.
GraphSchedule random_stage_schedule(const TrainingGraph& g, std::mt19937& rng) {
  GraphSchedule s;
  std::vector<int> computed;
  for (int t = 0; t < g.size(); ++t) {
    for (int j = 0; j < t; ++j)
      if (g.nodes[static_cast<std::size_t>(j)].recomputable && rng() % 4 == 0) s.steps.push_back(j);
    s.steps.push_back(t);
  }
  return drop_unused_recomputations(g, s);
}

CheckmateOptions test_options(bool warm = true) {
  CheckmateOptions o;
  o.time_limit = 60;
  o.heuristic_warm_start = warm;
  return o;
}

}  // namespace

TEST_CASE("checkmate: the MILP's memory accounting is the interchange rule's peak") {
  std::mt19937 rng(11);
  for (int c = 0; c < 300; ++c) {
    TrainingGraph g = random_training_graph(rng, 2 + c % 7, c % 2 == 0, c % 3 == 0);
    const GraphSchedule s = random_stage_schedule(g, rng);
    REQUIRE(in_stage_form(g, s));
    CHECK(checkmate_accounting_peak(g, s) == simulate_graph_schedule(g, s).peak);
  }
  for (const char* spec : {"mlp:layers=3,width=8,batch=2", "unet:levels=2,width=4,batch=1,image=8",
                           "lstm:steps=3,hidden=4,input=3,batch=2"}) {
    CAPTURE(std::string(spec));
    Model m = build_model(spec);
    TrainingGraph g = training_graph_from_tape(*m.tape, m.loss.id);
    for (int i = 0; i < 20; ++i) {
      const GraphSchedule s = random_stage_schedule(g, rng);
      const std::int64_t acc = checkmate_accounting_peak(g, s);
      CHECK(acc == simulate_graph_schedule(g, s).peak);
      CHECK(acc == static_cast<std::int64_t>(simulate(*m.tape, lower_to_program(*m.tape, g, s)).peak_bytes));
    }
  }
}

TEST_CASE("checkmate: exhaustive search agrees with the MILP on random training graphs") {
  const std::uint64_t cases = env_or("REMAT_CHECKMATE_CASES", 40);
  std::mt19937 rng(static_cast<std::uint32_t>(env_or("REMAT_CHECKMATE_SEED", 2020)));
  int compared = 0, ordered_cheaper = 0, any_cheaper = 0, infeasible = 0, only_outside = 0, only_ordered = 0;
  for (std::uint64_t c = 0; c < cases; ++c) {
    const int forward = 2 + static_cast<int>(c % 7);  // 2..8 forward nodes
    const bool once = c % 4 != 3;                      // tape-like (vjps run once) or interchange-like
    TrainingGraph g = random_training_graph(rng, forward, once, c % 3 == 0);
    const std::int64_t top = simulate_graph_schedule(g, topological_schedule(g)).peak;
    const std::int64_t floor = minimum_step_memory(g);
    for (int b = 0; b < 3; ++b) {
      const std::int64_t budget = floor + (top - floor) * b / 3 + static_cast<std::int64_t>(rng() % 2);
      CAPTURE(c);
      CAPTURE(budget);
      const double staged = exhaustive(g, budget, Space::stage_form);
      const double ordered = exhaustive(g, budget, Space::ordered);
      const double any = exhaustive(g, budget, Space::any);
      // Each space contains the previous one.
      if (staged != none) CHECK((ordered != none && ordered <= staged + 1e-9));
      if (ordered != none) CHECK((any != none && any <= ordered + 1e-9));
      const CheckmatePlan plan = solve_checkmate(g, budget, test_options(b != 1));
      if (staged == none) {
        CHECK(plan.status == CheckmateStatus::infeasible);
        CHECK_FALSE(plan.schedule);
        ++infeasible;
        if (any != none) ++only_outside;
        if (ordered != none) ++only_ordered;
        continue;
      }
      REQUIRE(plan.schedule);
      CHECK(plan.status == CheckmateStatus::optimal);
      CHECK(plan.incumbent == doctest::Approx(staged));
      CHECK(plan.stats.peak <= budget);
      CHECK(in_stage_form(g, *plan.schedule));
      CHECK(simulate_graph_schedule(g, *plan.schedule).cost == doctest::Approx(staged));
      CHECK(checkmate_accounting_peak(g, *plan.schedule) == plan.stats.peak);
      ++compared;
      if (ordered < staged - 1e-9) ++ordered_cheaper;
      if (any < staged - 1e-9) ++any_cheaper;
    }
  }
  MESSAGE(compared, " optimal schedules equal to the stage-form search; cheaper with first computations in order but "
                    "free recomputations in ",
          ordered_cheaper, ", in any order in ", any_cheaper, "; ", infeasible, " budgets infeasible in stage form (",
          only_outside, " of them feasible outside it, ", only_ordered, " with first computations in order)");
}

// A stage-level schedule as a sequence over training_graph_from_chain's nodes
// (x(0), F_0..F_{L-1}, B_L..B_0).
GraphSchedule chain_schedule_on_graph(const Chain& c, const Schedule& s) {
  const int L = c.length();
  GraphSchedule g{{0}};
  for (const StageAction& a : s.actions) {
    if (a.kind == StageActionKind::discard) continue;
    g.steps.push_back(a.kind == StageActionKind::backward ? 1 + L + (L - a.stage) : 1 + a.stage);
  }
  return g;
}

TEST_CASE("checkmate: on chains the MILP never loses to the rotor DP, whose schedules it contains") {
  // With cbw = cw a stage's tape is its output x(i+1): the graph lets a stored x(i+1) serve
  // B_i, where rotor's model asks for F_all i again. So the DP's schedules are graph schedules
  // with the same cost and a peak no higher, and the MILP can only be cheaper.
  int equal = 0, cheaper = 0;
  auto compare = [&](const Chain& c, std::int64_t b) {
    CAPTURE(b);
    const OptimalPlan dp = optimal_plan_units(c, b);
    TrainingGraph g = training_graph_from_chain(c);
    const GraphSchedule embedded = chain_schedule_on_graph(c, dp.schedule);
    const GraphScheduleStats st = simulate_graph_schedule(g, embedded);
    CHECK(st.cost == doctest::Approx(static_cast<double>(dp.makespan)));
    CHECK(st.peak <= simulate_schedule(c, dp.schedule).peak_memory);
    CHECK(st.peak <= b);
    const CheckmatePlan plan = solve_checkmate(g, b, test_options());
    REQUIRE(plan.schedule);
    CHECK(plan.status == CheckmateStatus::optimal);
    CHECK(plan.incumbent <= static_cast<double>(dp.makespan) + 1e-9);
    (plan.incumbent < static_cast<double>(dp.makespan) - 1e-9 ? cheaper : equal) += 1;
  };
  for (int L = 1; L <= 6; ++L) {
    CAPTURE(L);
    Chain u = Chain::uniform(L);
    u.cbw = u.cw;
    const std::int64_t least = optimal_min_budget_units(u);
    const std::int64_t top = simulate_schedule(u, store_all_schedule(u)).peak_memory;
    for (std::int64_t b = least; b <= top; ++b) compare(u, b);
    // With all memory the MILP and the DP both compute each stage once.
    const CheckmatePlan all = solve_checkmate(training_graph_from_chain(u), top, test_options());
    CHECK(all.incumbent == doctest::Approx(static_cast<double>(optimal_plan_units(u, top).makespan)));
  }
  std::mt19937 rng(7);
  for (int c = 0; c < 30; ++c) {
    CAPTURE(c);
    const int L = 2 + c % 5;
    Chain ch;
    ch.name = "random";
    auto pick = [&](int lo, int hi) { return static_cast<std::int64_t>(std::uniform_int_distribution<int>(lo, hi)(rng)); };
    for (int i = 0; i < L; ++i) {
      ch.fw.push_back(pick(1, 5));
      ch.bw.push_back(pick(1, 8));
      ch.ftmp.push_back(pick(0, 2));
      ch.btmp.push_back(pick(0, 2));
    }
    ch.bw.push_back(0);
    ch.btmp.push_back(pick(0, 1));
    for (int i = 0; i <= L; ++i) ch.cw.push_back(pick(1, 4));
    ch.cbw = ch.cw;
    const std::int64_t least = optimal_min_budget_units(ch);
    const std::int64_t top = simulate_schedule(ch, store_all_schedule(ch)).peak_memory;
    for (std::int64_t b : {least, (least + top) / 2, top}) compare(ch, b);
  }
  MESSAGE("chains with cbw = cw: the MILP equals the rotor DP in ", equal, " (chain, budget) pairs and is cheaper in ",
          cheaper);
}

TEST_CASE("checkmate: zoo models keep the three promises and the accounting is the executor's") {
  for (const char* spec : {"mlp:layers=4,width=8,batch=2", "resmlp:layers=3,width=8,batch=2",
                           "unet:levels=2,width=4,batch=1,image=8"}) {
    CAPTURE(std::string(spec));
    Model m = build_model(spec);
    const Tape& tape = *m.tape;
    const std::size_t store_all = simulate(tape, store_all_program(tape, m.loss.id)).peak_bytes;
    for (double fraction : {0.9, 0.8}) {
      const auto budget = static_cast<std::size_t>(static_cast<double>(store_all) * fraction);
      CAPTURE(budget);
      CheckmateTapePlan out;
      try {
        out = plan_checkmate(tape, m.loss.id, Budget{budget}, test_options());
      } catch (const InfeasibleBudget& e) {
        CHECK(e.min_feasible_bytes > budget);
        const auto again = plan_checkmate(tape, m.loss.id, Budget{e.min_feasible_bytes}, test_options());
        CHECK(again.simulated_peak <= e.min_feasible_bytes);
        continue;
      }
      CHECK(out.simulated_peak <= budget);
      CHECK(static_cast<std::int64_t>(out.simulated_peak) == out.plan.stats.peak);
      CHECK(checkmate_accounting_peak(out.graph, *out.plan.schedule) == out.plan.stats.peak);
      // Promise 2: measured on the CPU backend equals simulated; promise 1: store-all's bits.
      CpuBackend cpu;
      Executor ex(tape, cpu);
      const Bindings data = m.batch(1);
      auto planned = ex.run(out.program, data);
      auto reference = ex.run(store_all_program(tape, m.loss.id), data);
      CHECK(planned.report.peak_bytes == out.simulated_peak);
      for (const auto& [id, gr] : reference.gradients) CHECK(cpu.download(gr).bytes == cpu.download(planned.gradients.at(id)).bytes);
      // Never worse than the greedy planner where it plans (on the graph's costs).
      try {
        Program greedy = plan_budget_greedy(tape, m.loss.id, budget, "dtr");
        const double greedy_cost = simulate_graph_schedule(out.graph, graph_schedule_from_program(out.graph, greedy)).cost;
        CHECK(out.plan.incumbent <= greedy_cost + 1e-9);
      } catch (const InfeasibleBudget&) {
      }
    }
  }
}

TEST_CASE("checkmate-lp: LP bound <= optimum <= rounded schedule, within the budget") {
  std::mt19937 rng(5);
  for (int c = 0; c < 12; ++c) {
    TrainingGraph g = random_training_graph(rng, 3 + c % 6, true, c % 2 == 0);
    const std::int64_t top = simulate_graph_schedule(g, topological_schedule(g)).peak;
    const std::int64_t budget = (minimum_step_memory(g) + top) / 2;
    const CheckmatePlan exact = solve_checkmate(g, budget, test_options());
    CheckmateOptions lp_options = test_options(false);
    lp_options.lp_relaxation = true;
    const CheckmatePlan lp = solve_checkmate(g, budget, lp_options);
    REQUIRE(lp.lp_bound);
    if (exact.status != CheckmateStatus::optimal) continue;
    CHECK(*lp.lp_bound <= exact.incumbent + 1e-6);
    if (lp.schedule) {
      CHECK(lp.incumbent >= exact.incumbent - 1e-9);
      CHECK(lp.stats.peak <= budget);
      CHECK(lp.lower_bound == doctest::Approx(std::max(*lp.lp_bound, g.total_cost())));
    }
  }
  // On a zoo model the rounding finds a schedule (the warm start is off: it is the LP's).
  Model m = build_model("mlp:layers=6,width=8,batch=2");
  TrainingGraph g = training_graph_from_tape(*m.tape, m.loss.id);
  CheckmateOptions o = test_options(false);
  o.lp_relaxation = true;
  const std::int64_t budget = simulate_graph_schedule(g, topological_schedule(g)).peak * 7 / 10;
  const CheckmatePlan lp = solve_checkmate(g, budget, o);
  REQUIRE(lp.schedule);
  CHECK(lp.source.rfind("lp rounding", 0) == 0);
  CHECK(lp.stats.peak <= budget);
}

TEST_CASE("checkmate: budgets below one step's need are refused before solving, naming it") {
  Model m = build_model("mlp:layers=3,width=8,batch=2");
  TrainingGraph g = training_graph_from_tape(*m.tape, m.loss.id);
  int at = -1;
  const std::int64_t need = minimum_step_memory(g, &at);
  try {
    solve_checkmate(g, need - 1, test_options());
    FAIL("a budget below the largest step was accepted");
  } catch (const InfeasibleBudget& e) {
    const std::string msg = e.what();
    CHECK(msg.find("[checkmate] budget " + std::to_string(need - 1) + " is below " + std::to_string(need)) == 0);
    CHECK(msg.find(g.nodes[static_cast<std::size_t>(at)].name) != std::string::npos);
    CHECK(static_cast<std::int64_t>(e.min_feasible_bytes) >= need);
    CHECK(solve_checkmate(g, static_cast<std::int64_t>(e.min_feasible_bytes), test_options()).schedule);
  }
  // The strategy: the same refusal as an InfeasibleBudget whose budget works.
  auto strategy = make_checkmate_strategy(test_options());
  CHECK(strategy->name() == "checkmate");
  try {
    strategy->plan(*m.tape, m.loss.id, Budget{static_cast<std::size_t>(need - 1)});
    FAIL("accepted");
  } catch (const InfeasibleBudget& e) {
    const Program p = strategy->plan(*m.tape, m.loss.id, Budget{e.min_feasible_bytes});
    CHECK(simulate(*m.tape, p).peak_bytes <= e.min_feasible_bytes);
  }
  CheckmateOptions bad = test_options();
  bad.time_limit = 0;
  CHECK_THROWS_WITH_AS(solve_checkmate(g, need, bad), "[checkmate] the time limit must be > 0 seconds, got 0", Error);
  CheckmateOptions lp = test_options();
  lp.lp_relaxation = true;
  CHECK(make_checkmate_strategy(lp)->name() == "checkmate-lp");
}

TEST_CASE("checkmate: a graph whose grid would exhaust the host is refused up front, naming its size") {
  // LLaMA-7B's shape (shape-only: no weight is made): thousands of nodes, a grid of 10^7 cells.
  Model m = build_model("llama:preset=7b,seq=64,batch=1,dtype=bf16");
  TrainingGraph g = training_graph_from_tape(*m.tape, m.loss.id);
  const double n = g.size();
  REQUIRE(n * (n + 1) / 2 > static_cast<double>(max_checkmate_grid_cells));
  const auto t0 = std::chrono::steady_clock::now();
  for (bool lp : {false, true}) {
    CheckmateOptions o = test_options();
    o.lp_relaxation = lp;
    const std::string expected =
        std::string("[") + (lp ? "checkmate-lp" : "checkmate") + "] the training graph has " + std::to_string(g.size()) + " nodes";
    CHECK_THROWS_WITH_AS(solve_checkmate(g, std::numeric_limits<std::int64_t>::max() / 4, o),
                         doctest::Contains(expected.c_str()), Error);
  }
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 30);  // no model was built
  // A graph within the limit is still solved (the other cases here).
  Model small = build_model("mlp:layers=3,width=8,batch=2");
  TrainingGraph gs = training_graph_from_tape(*small.tape, small.loss.id);
  CHECK(gs.size() * (gs.size() + 1) / 2 < max_checkmate_grid_cells);
}

TEST_CASE("checkmate: the time limit holds on a graph CBC cannot finish, and the warm start is the answer") {
  Model m = build_model("resmlp:layers=24,width=16,batch=4");
  TrainingGraph g = training_graph_from_tape(*m.tape, m.loss.id);
  const std::int64_t budget = simulate_graph_schedule(g, topological_schedule(g)).peak / 2;
  CheckmateOptions o;
  o.time_limit = 2;
  const auto start = std::chrono::steady_clock::now();
  const CheckmatePlan plan = solve_checkmate(g, budget, o);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE(g.size(), " nodes: ", plan.message);
  // The slack covers what runs between remat's checks of the clock (building the model,
  // CBC's root LP, which it does not interrupt). Under AddressSanitizer all of it runs
  // several times slower (4.5 s for this 2 s limit on a loaded CI machine).
#if defined(__SANITIZE_ADDRESS__)
  const double slack = 3 * o.time_limit;
#else
  const double slack = 1.5;
#endif
  CHECK(took < o.time_limit + slack);
  REQUIRE(plan.schedule);
  CHECK(plan.stats.peak <= budget);
  CHECK(plan.lower_bound <= plan.incumbent);
  CHECK(plan.gap >= 0);
  const nlohmann::json j = checkmate_plan_json(g, plan);
  CHECK(j["status"] == checkmate_status_name(plan.status));
  CHECK(j["sequence"].size() == plan.schedule->steps.size());
}

TEST_CASE("checkmate: a graph from another planner, solved and replayed from its plan's JSON") {
  std::mt19937 rng(3);
  TrainingGraph random = random_training_graph(rng, 7, false, false);
  // The plain interchange format (no remat fields), nodes listed in reverse.
  nlohmann::json file = {{"directed", true}, {"multigraph", false}, {"graph", nlohmann::json::object()}};
  file["nodes"] = nlohmann::json::array();
  file["links"] = nlohmann::json::array();
  for (int k = random.size() - 1; k >= 0; --k) {
    const GraphNode& n = random.nodes[static_cast<std::size_t>(k)];
    file["nodes"].push_back({{"id", 100 + k}, {"name", n.name}, {"backward", n.backward}, {"cost_cpu", n.cost},
                             {"cost_ram", random.output_bytes(k)}});
    for (int v : n.inputs)
      file["links"].push_back({{"source", 100 + random.values[static_cast<std::size_t>(v)].producer}, {"target", 100 + k}});
  }
  const TrainingGraph g = read_node_link_json(file, "other-planner.json");
  REQUIRE(g.size() == random.size());
  const std::int64_t top = simulate_graph_schedule(g, topological_schedule(g)).peak;
  const std::int64_t budget = std::max(minimum_step_memory(g), top * 8 / 10);
  const CheckmatePlan plan = solve_checkmate(g, budget, test_options());
  REQUIRE(plan.schedule);
  CHECK(plan.status == CheckmateStatus::optimal);
  CHECK(plan.incumbent == doctest::Approx(exhaustive(g, budget, Space::stage_form)));
  const nlohmann::json out = checkmate_plan_json(g, plan);
  CHECK(out["topological_peak"] == top);
  // Replay from ids alone, as an outside simulator would.
  const GraphSchedule replay = schedule_from_json(g, nlohmann::json::parse(out.dump()));
  const GraphScheduleStats st = simulate_graph_schedule(g, replay);
  CHECK(st.peak == out["peak"].get<std::int64_t>());
  CHECK(st.peak <= budget);
  CHECK(st.cost == doctest::Approx(out["compute"].get<double>()));
  CHECK(out["sequence"][0] == 100);
}

TEST_CASE("checkmate: measured costs from a profiled run") {
  Model m = build_model("mlp:layers=3,width=16,batch=4");
  const Tape& tape = *m.tape;
  const Program p = store_all_program(tape, m.loss.id);
  CpuBackend cpu;
  CheckmateOptions o = test_options();
  o.costs = tape_graph_costs(profile_node_costs(tape, m.loss.id, cpu, m.batch(0), 1));
  for (int id : compute_order(tape, m.loss.id)) CHECK(o.costs.forward[static_cast<std::size_t>(id)] >= 1);
  const std::size_t store_all = simulate(tape, p).peak_bytes;
  const CheckmateTapePlan plan = plan_checkmate(tape, m.loss.id, Budget{store_all * 7 / 10}, o);
  CHECK(plan.simulated_peak <= store_all * 7 / 10);
  CHECK(plan.plan.status == CheckmateStatus::optimal);
}

TEST_CASE("checkmate: through the registry and the planning entry point, with the solver's figures in the report") {
  Model m = build_model("resmlp:layers=3,width=8,batch=2");
  const Tape& tape = *m.tape;
  const std::size_t store_all = simulate(tape, store_all_program(tape, m.loss.id)).peak_bytes;
  for (const char* name : {"checkmate", "checkmate-lp"}) {
    CAPTURE(std::string(name));
    StrategyOptions o;
    o.time_limit_seconds = 20;
    auto s = make_strategy(name, o);
    CHECK(strategy_info(name).solver);
    const auto budget = static_cast<std::size_t>(0.8 * static_cast<double>(store_all));
    try {
      PlanReport r = plan(*s, PlanRequest{tape, m.loss.id, Budget{budget}});
      CHECK(r.predicted.peak_bytes <= budget);
      REQUIRE(r.solver != nullptr);
      CHECK(r.solver->contains("status"));
      CHECK(r.planned_time >= r.store_all_time);
    } catch (const InfeasibleBudget& e) {
      // Exact acceptance: the named least budget is itself accepted.
      CHECK(e.min_feasible_bytes > budget);
      CHECK(plan(*s, PlanRequest{tape, m.loss.id, Budget{e.min_feasible_bytes}}).predicted.peak_bytes <=
            e.min_feasible_bytes);
    }
    // No budget: the optimum without a constraint is store-all's time.
    PlanReport free = plan(*s, PlanRequest{tape, m.loss.id, Budget{}});
    CHECK(free.planned_time == free.store_all_time);
  }
  // The exhaustive grids leave the solvers out; the registry lists them.
  const auto fast = strategy_names(false);
  CHECK(std::find(fast.begin(), fast.end(), "checkmate") == fast.end());
  const auto all = strategy_names();
  CHECK(std::find(all.begin(), all.end(), "checkmate") != all.end());
}

TEST_CASE("graph planning: node-level strategies on graph files and chain files keep the interchange rule") {
  // A zoo graph exported and read back, then every graph strategy at a few budgets: the
  // schedule's simulated peak is within the budget, a refusal names a budget the same
  // strategy accepts, and checkmate (proven optimal here) is never costlier than greedy.
  Model m = build_model("resmlp:layers=3,width=8,batch=2");
  const TrainingGraph g = read_node_link_json(to_node_link_json(training_graph_from_tape(*m.tape, m.loss.id)));
  const std::int64_t topo = simulate_graph_schedule(g, topological_schedule(g)).peak;
  StrategyOptions o;
  o.time_limit_seconds = 20;
  for (double fraction : {1.0, 0.9, 0.8, 0.6}) {
    const auto budget = static_cast<std::int64_t>(fraction * static_cast<double>(topo));
    CAPTURE(budget);
    std::optional<double> greedy_cost, checkmate_cost;
    for (const auto& name : graph_strategy_names()) {
      CAPTURE(name);
      try {
        const GraphPlan p = plan_graph(name, g, budget, o);
        CHECK(p.stats.peak <= budget);
        CHECK(simulate_graph_schedule(g, p.schedule).peak == p.stats.peak);
        if (name == "greedy") greedy_cost = p.stats.cost;
        if (name == "checkmate" && p.solver.at("status") == "optimal") checkmate_cost = p.stats.cost;
      } catch (const InfeasibleBudget& e) {
        CHECK(static_cast<std::int64_t>(e.min_feasible_bytes) > budget);
        CHECK(plan_graph(name, g, static_cast<std::int64_t>(e.min_feasible_bytes), o).stats.peak <=
              static_cast<std::int64_t>(e.min_feasible_bytes));
      }
    }
    if (greedy_cost && checkmate_cost) CHECK(*checkmate_cost <= *greedy_cost + 1e-9);
  }
  CHECK(plan_graph("greedy", g, std::nullopt, o).stats.cost == simulate_graph_schedule(g, topological_schedule(g)).cost);
  CHECK_THROWS_WITH_AS(plan_graph("revolve", g, topo, o), doctest::Contains("plans chains of stages, not graphs"), Error);
  CHECK_THROWS_WITH_AS(plan_graph("magic", g, topo, o), doctest::Contains("unknown strategy 'magic'"), Error);
}

#ifdef REMAT_HAVE_CLI
TEST_CASE("graph planning: remat plan --graph, --export-graph and greedy on chain files") {
  testing::ScratchDir dir;
  const std::string path = (dir.path / "g.json").string();
  auto exported = testing::cli({"plan", "--model", "mlp:layers=4,width=8,batch=2", "--strategy", "sqrt", "--export-graph",
                                path, "--json"});
  REQUIRE(exported.code == 0);
  const TrainingGraph g = read_node_link_file(path);
  CHECK(g.size() > 8);
  auto planned = testing::cli({"plan", "--graph", "file:" + path, "--strategy", "checkmate", "--budget", "80%", "--json"});
  REQUIRE(planned.code == 0);
  const auto j = nlohmann::json::parse(planned.out);
  // An outside simulator replays the sequence to the same peak.
  const GraphSchedule s = schedule_from_json(g, j);
  CHECK(simulate_graph_schedule(g, s).peak == j.at("peak").get<std::int64_t>());
  CHECK(j.at("peak").get<std::int64_t>() <= j.at("budget").get<std::int64_t>());
  CHECK(j.contains("solver"));
  // Greedy on a chain file (the example), and chain strategies refused on graphs.
  auto chain = testing::cli({"plan", "--chain", "uniform:n=100", "--strategy", "greedy", "--budget", "24", "--json"});
  REQUIRE(chain.code == 0);
  CHECK(nlohmann::json::parse(chain.out).at("peak").get<std::int64_t>() <= 24);
  auto refused = testing::cli({"plan", "--graph", "file:" + path, "--strategy", "revolve"});
  CHECK(refused.code == 2);
  CHECK(refused.err.find("plans chains of stages") != std::string::npos);
  auto bad = testing::cli({"plan", "--graph", path, "--strategy", "greedy"});
  CHECK(bad.code == 2);
  CHECK(bad.err.find("--graph expects file:PATH") != std::string::npos);
}
#endif
