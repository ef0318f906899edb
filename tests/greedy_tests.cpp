// Contract: budget-greedy's EvictionQueue chooses exactly as the scan it replaced.
// The oracle is reference::ScanPlanner below, a copy of the planner as it was before
// the queue (strategies/budget_greedy.cpp at 3ef8173), which scans every resident
// value and computes its score from scratch at each eviction. For every heuristic, on
// a few hundred random graphs (the builder of property_tests.cpp, without data), under
// four cost tables (analytic; small integers with many ties and zeros; large integers,
// whose scores collide after rounding and whose sums are not exact; and one negative
// cost, where the planner must fall back to scanning) and several budgets, a run of
// run_budget_greedy() with each selection (automatic, queue, cached, scan) must give the
// reference's outcome, Program (instruction by instruction; after a failure, the
// instructions before it), peak, interval upper bound, failing need and recomputation
// count. Zoo models (long chains of equal values, many ties) add larger cases, and
// plan() is compared with the acceptance rule replayed over reference runs. The queue
// itself is checked against a brute-force minimum under random updates with exact ties
// and near-ties within an ulp.
#include "autodiff/cpu/cpu_backend.hpp"
#include "autodiff/memory_policy.hpp"
#include "gradcheck.hpp"
#include "models/models.hpp"
#include "strategies/budget_greedy.hpp"
#include "strategies/eviction_queue.hpp"
#include "strategies/strategies.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <string>

using namespace remat;

namespace {

namespace reference {

struct Infeasible {
  std::size_t needed;
};
struct Thrashing {};

// The old GreedyPlanner, trimmed of nothing that decides: O(residents) per eviction.
class ScanPlanner {
 public:
  ScanPlanner(const Tape& tape, int loss, std::size_t budget, const std::string& heuristic, const NodeCosts& costs)
      : tape_(tape), budget_(budget), h_(heuristic), n_(tape.size()) {
    base_ = store_all_program(tape, loss);
    resident_.assign(n_, false);
    computed_.assign(n_, false);
    grad_live_.assign(n_, false);
    pinned_.assign(n_, 0);
    last_access_.assign(n_, 0);
    remaining_uses_.assign(n_, 0);
    parent_.resize(n_);
    std::iota(parent_.begin(), parent_.end(), 0);
    class_cost_.assign(n_, 0);
    consumers_.assign(n_, {});
    cost_.assign(n_, 1);
    for (const Node& node : tape.nodes()) {
      for (int in : node.inputs) consumers_[static_cast<std::size_t>(in)].push_back(node.id);
      cost_[static_cast<std::size_t>(node.id)] = static_cast<double>(costs.forward(node.id));
    }
    for (const auto& ins : base_.instructions) {
      if (ins.kind == InstructionKind::compute)
        for (int in : tape.node(ins.node).inputs) ++remaining_uses_[static_cast<std::size_t>(in)];
      if (ins.kind == InstructionKind::backward)
        for (int s : saved_for_backward(tape, ins.node)) ++remaining_uses_[static_cast<std::size_t>(s)];
    }
    limit_ = 10 * static_cast<std::int64_t>(n_) + 1000;
  }

  Program run() {
    out_.strategy = "greedy";
    out_.loss = base_.loss;
    out_.grad_targets = base_.grad_targets;
    for (const auto& ins : base_.instructions) {
      if (ins.kind == InstructionKind::free || ins.kind == InstructionKind::free_grad) continue;
      ++clock_;
      const Node& node = tape_.node(ins.node);
      if (ins.kind == InstructionKind::compute) {
        for (int in : node.inputs) {
          ensure_resident(in);
          ++pinned_[at(in)];
        }
        materialise(ins.node);
        for (int in : node.inputs) --pinned_[at(in)];
        for (int in : node.inputs) release_use(in);
        if (remaining_uses_[at(ins.node)] == 0) drop(ins.node);
      } else if (ins.kind == InstructionKind::seed_grad) {
        const InstructionBytes need = seed_grad_bytes(tape_, ins.node);
        make_room(need.peak_extra);
        out_.instructions.push_back(ins);
        grad_live_[at(ins.node)] = true;
        current_ += static_cast<std::size_t>(need.stays);
      } else {
        auto saved = saved_for_backward(tape_, ins.node);
        for (int s : saved) {
          ensure_resident(s);
          ++pinned_[at(s)];
        }
        const InstructionBytes need = backward_bytes(tape_, ins.node, grad_live_);
        make_room(need.peak_extra);
        out_.instructions.push_back(ins);
        current_ += static_cast<std::size_t>(need.stays);
        mark_gradients(tape_, ins.node, grad_live_);
        if (grad_live_[at(ins.node)] && !param(ins.node)) {
          grad_live_[at(ins.node)] = false;
          current_ -= node.meta.bytes();
          out_.instructions.push_back({InstructionKind::free_grad, ins.node});
        }
        for (int s : saved) {
          --pinned_[at(s)];
          release_use(s);
        }
      }
    }
    return out_;
  }

  Program partial() const { return out_; }  // after a failure: the instructions before it
  std::size_t peak_ = 0, upper_ = std::numeric_limits<std::size_t>::max();
  std::int64_t recomputed_ = 0;

 private:
  static std::size_t at(int v) { return static_cast<std::size_t>(v); }
  bool param(int v) const { return tape_.node(v).kind == NodeKind::parameter; }
  const std::vector<int>& inputs(int v) const { return tape_.node(v).inputs; }

  void release_use(int v) {
    if (param(v)) return;
    if (--remaining_uses_[at(v)] == 0 && resident_[at(v)] && pinned_[at(v)] == 0) drop(v);
  }
  void drop(int v) {
    resident_[at(v)] = false;
    out_.instructions.push_back({InstructionKind::free, v});
    current_ -= tape_.node(v).meta.bytes();
    auto it = std::find(list_.begin(), list_.end(), v);
    if (it != list_.end()) {
      *it = list_.back();
      list_.pop_back();
    }
  }
  void materialise(int v) {
    for (int in : inputs(v)) ++pinned_[at(in)];
    const InstructionBytes need = compute_bytes(tape_, v);
    make_room(need.peak_extra);
    out_.instructions.push_back({InstructionKind::compute, v});
    if (computed_[at(v)] && ++recomputed_ > limit_) throw Thrashing{};
    computed_[at(v)] = true;
    resident_[at(v)] = true;
    list_.push_back(v);
    current_ += static_cast<std::size_t>(need.stays);
    last_access_[at(v)] = clock_;
    for (int in : inputs(v)) --pinned_[at(in)];
    for (int in : inputs(v))
      if (!param(in) && resident_[at(in)] && pinned_[at(in)] == 0 && remaining_uses_[at(in)] == 0) drop(in);
  }
  void ensure_resident(int root) {
    if (param(root)) return;
    std::vector<int> stack{root};
    while (!stack.empty()) {
      int t = stack.back();
      if (resident_[at(t)]) {
        last_access_[at(t)] = clock_;
        stack.pop_back();
        continue;
      }
      int missing = -1;
      for (int in : inputs(t))
        if (!param(in) && !resident_[at(in)]) {
          missing = in;
          break;
        }
      if (missing >= 0) {
        stack.push_back(missing);
        if (stack.size() > n_ + 1) throw Thrashing{};
        continue;
      }
      materialise(t);
      stack.pop_back();
    }
    last_access_[at(root)] = clock_;
  }
  int find(int x) {
    while (parent_[at(x)] != x) x = parent_[at(x)] = parent_[at(parent_[at(x)])];
    return x;
  }
  bool evicted(int u) const { return !param(u) && !resident_[at(u)] && computed_[at(u)]; }
  double neighbourhood(int t) {  // the capped depth-first search, as it was
    double total = 0;
    std::size_t seen = 0;
    std::vector<char> mark(n_, 0);
    std::vector<int> stack;
    auto visit = [&](int u) {
      if (!evicted(u) || mark[at(u)]) return;
      mark[at(u)] = 1;
      ++seen;
      stack.push_back(u);
      total += cost_[at(u)];
    };
    for (int in : inputs(t)) visit(in);
    for (int c : consumers_[at(t)]) visit(c);
    while (!stack.empty() && seen < 256) {
      int u = stack.back();
      stack.pop_back();
      for (int in : inputs(u)) visit(in);
      for (int c : consumers_[at(u)]) visit(c);
    }
    return total;
  }
  double score(int t) {
    double m = static_cast<double>(std::max<std::size_t>(tape_.node(t).meta.bytes(), 1));
    double s = static_cast<double>(clock_ - last_access_[at(t)] + 1);
    double c = cost_[at(t)];
    if (h_ == "dtr") return (c + neighbourhood(t)) / (m * s);
    if (h_ == "dtr-eq") {
      double e = 0;
      std::vector<int> roots;
      auto add = [&](int u) {
        if (!evicted(u)) return;
        int r = find(u);
        if (std::find(roots.begin(), roots.end(), r) == roots.end()) {
          roots.push_back(r);
          e += class_cost_[at(r)];
        }
      };
      for (int in : inputs(t)) add(in);
      for (int cn : consumers_[at(t)]) add(cn);
      return (c + e) / (m * s);
    }
    if (h_ == "dtr-local") return c / (m * s);
    if (h_ == "lru") return -s;
    if (h_ == "size") return -m;
    double e = 0;  // msps
    for (int in : inputs(t))
      if (!param(in) && !resident_[at(in)]) e += cost_[at(in)];
    return (c + e) / m;
  }
  void evict(int t) {
    drop(t);
    if (h_ != "dtr-eq") return;
    class_cost_[at(find(t))] += cost_[at(t)];
    auto merge = [&](int u) {
      if (!evicted(u)) return;
      int a = find(t), b = find(u);
      if (a == b) return;
      parent_[at(b)] = a;
      class_cost_[at(a)] += class_cost_[at(b)];
    };
    for (int in : inputs(t)) merge(in);
    for (int c : consumers_[at(t)]) merge(c);
  }
  void make_room(std::size_t need) {
    std::size_t last_checked = 0;
    while (current_ + need > budget_) {
      last_checked = current_ + need;
      int victim = -1;
      double best = std::numeric_limits<double>::infinity();
      for (int t : list_) {
        if (pinned_[at(t)] > 0) continue;
        double h = score(t);
        if (h < best) {
          best = h;
          victim = t;
        }
      }
      if (victim < 0) throw Infeasible{current_ + need};
      evict(victim);
    }
    if (last_checked > 0) upper_ = std::min(upper_, last_checked - 1);
    peak_ = std::max(peak_, current_ + need);
  }

  const Tape& tape_;
  std::size_t budget_;
  std::string h_;
  std::size_t n_;
  Program base_, out_;
  std::vector<bool> resident_, computed_, grad_live_;
  std::vector<int> pinned_, parent_, list_;
  std::vector<std::int64_t> last_access_, remaining_uses_;
  std::vector<std::vector<int>> consumers_;
  std::vector<double> cost_, class_cost_;
  std::size_t current_ = 0;
  std::int64_t clock_ = 0, limit_ = 0;
};

GreedyRun run(const Tape& tape, int loss, std::size_t budget, const std::string& heuristic, const NodeCosts& costs) {
  GreedyRun r;
  ScanPlanner p(tape, loss, budget, heuristic, costs);
  try {
    r.program = p.run();
    r.peak = p.peak_;
    r.upper = p.upper_;
  } catch (const Infeasible& e) {
    r.outcome = GreedyRun::Outcome::infeasible;
    r.needed = e.needed;
  } catch (const Thrashing&) {
    r.outcome = GreedyRun::Outcome::thrashing;
  }
  if (r.outcome != GreedyRun::Outcome::planned) r.program = p.partial();
  r.recomputations = p.recomputed_;
  return r;
}

}  // namespace reference

// Random graphs: property_tests.cpp's builder, recording only (no data).
class GraphBuilder {
 public:
  explicit GraphBuilder(std::uint64_t seed) : rng_(seed), seed_(static_cast<std::uint32_t>(seed)) {}

  std::unique_ptr<Tape> build(Value& loss) {
    dtype_ = pick(0, 5) == 0 ? DType::f64 : DType::f32;
    Value x = tape_->placeholder("x", TensorMeta{{pick(1, 6), pick(2, 12)}, dtype_});
    pool_.push_back(x);
    const int op_count = static_cast<int>(pick(3, pick(0, 4) == 0 ? 80 : 30));
    for (int k = 0; k < op_count; ++k) pool_.push_back(random_op());
    Value last = pool_.back();
    if (!last.tape->node(last.id).requires_grad) last = linear(last, parameter({2, cols(last)}));
    loss = mean(square(last));
    if (pool_.size() > 2 && pick(0, 2) == 0) loss = add(loss, scale(mean(square(any())), 0.5));
    return std::move(tape_);
  }

 private:
  std::int64_t pick(std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng_); }
  Value any() { return pool_[static_cast<std::size_t>(pick(0, static_cast<std::int64_t>(pool_.size()) - 1))]; }
  Value recent() {
    auto n = static_cast<std::int64_t>(pool_.size());
    return pool_[static_cast<std::size_t>(std::max<std::int64_t>(0, n - 1 - pick(0, 2)))];
  }
  std::int64_t cols(Value v) { return v.shape().back(); }
  Value parameter(Shape shape) {
    const int name = ++names_;
    return tape_->parameter("w" + std::to_string(name), testing::random_array(shape, seed_ + 31 * name, -0.5, 0.5, dtype_));
  }
  Value partner(Value v) {
    std::vector<Value> same;
    for (const Value& u : pool_)
      if (u.shape() == v.shape()) same.push_back(u);
    if (!same.empty() && pick(0, 2) > 0) return same[static_cast<std::size_t>(pick(0, static_cast<std::int64_t>(same.size()) - 1))];
    return pick(0, 1) ? parameter({1, cols(v)}) : parameter(v.shape());
  }
  Value random_op() {
    Value a = pick(0, 3) ? recent() : any();
    const std::int64_t c = cols(a);
    switch (pick(0, 12)) {
      case 0: return add(a, partner(a));
      case 1: return mul(a, partner(a));
      case 2: return tanh(a);
      case 3: return relu(a);
      case 4: return exp(tanh(a));
      case 5: return linear(a, parameter({pick(2, 12), c}));
      case 6: return matmul(a, parameter({c, pick(2, 8)}));
      case 7: return softmax(a);
      case 8: {
        Value gamma = parameter({c}), beta = parameter({c});
        return layernorm(a, gamma, beta);
      }
      case 9: {
        std::vector<Value> rows;
        for (const Value& u : pool_)
          if (u.shape()[0] == a.shape()[0]) rows.push_back(u);
        return concat({a, rows[static_cast<std::size_t>(pick(0, static_cast<std::int64_t>(rows.size()) - 1))]}, 1);
      }
      case 10: {
        if (c < 2) return sigmoid(a);
        std::int64_t start = pick(0, c - 2);
        return slice(a, -1, start, pick(start + 1, c));
      }
      case 11: {
        std::int64_t hidden = pick(2, 8);
        auto w1 = parameter({hidden, c});
        auto w2 = parameter({c, hidden});
        return add(a, linear(relu(linear(a, w1)), w2));
      }
      default: return dropout(a, 0.25);
    }
  }

  std::mt19937_64 rng_;
  std::uint32_t seed_;
  std::unique_ptr<Tape> tape_ = std::make_unique<Tape>();
  std::vector<Value> pool_;
  DType dtype_ = DType::f32;
  int names_ = 0;
};

enum class CostTable { analytic, small, large, negative };

NodeCosts cost_table(const Tape& tape, CostTable kind, std::uint64_t seed) {
  NodeCosts costs = analytic_node_costs(tape);
  std::mt19937_64 rng(seed);
  for (auto& c : costs.forward_ns) {
    if (kind == CostTable::small) c = std::uniform_int_distribution<std::int64_t>(0, 3)(rng);
    if (kind == CostTable::large) c = (std::int64_t{1} << 44) + std::uniform_int_distribution<std::int64_t>(0, 3)(rng);
  }
  if (kind == CostTable::negative) costs.forward_ns[costs.forward_ns.size() / 2] = -1;
  return costs;
}

std::string outcome_name(GreedyRun::Outcome o) {
  return o == GreedyRun::Outcome::planned ? "planned" : o == GreedyRun::Outcome::infeasible ? "infeasible" : "thrashing";
}

// Counts what the compared runs exercised, so that a vacuous comparison fails.
struct Coverage {
  int runs = 0, planned = 0, failed = 0, recomputing = 0, queued = 0;  // recomputing: planned runs that recompute
};

// Every field of the two runs that a decision could change.
void check_same(const GreedyRun& expected, const GreedyRun& got, Coverage& coverage) {
  ++coverage.runs;
  coverage.queued += got.used_queue;
  coverage.planned += expected.outcome == GreedyRun::Outcome::planned;
  coverage.failed += expected.outcome != GreedyRun::Outcome::planned;
  coverage.recomputing += expected.outcome == GreedyRun::Outcome::planned && expected.recomputations > 0;
  REQUIRE(outcome_name(got.outcome) == outcome_name(expected.outcome));
  CHECK(got.recomputations == expected.recomputations);
  CHECK(got.needed == expected.needed);
  CHECK(got.peak == expected.peak);
  CHECK(got.upper == expected.upper);
  const auto& a = expected.program.instructions;
  const auto& b = got.program.instructions;
  REQUIRE(b.size() == a.size());
  auto diff = std::mismatch(a.begin(), a.end(), b.begin());
  if (diff.first != a.end()) {
    const auto i = diff.first - a.begin();
    FAIL_CHECK("instruction " << i << " differs: expected " << instruction_kind_name(diff.first->kind) << " "
                              << diff.first->node << ", got " << instruction_kind_name(diff.second->kind) << " "
                              << diff.second->node);
  }
}

// Every selection of run_budget_greedy() against the reference, for every heuristic.
void compare_runs(const Tape& tape, int loss, std::size_t budget, const NodeCosts& costs,
                  std::map<GreedySelection, Coverage>& coverage) {
  for (const auto& h : greedy_heuristics()) {
    CAPTURE(h);
    const GreedyRun expected = reference::run(tape, loss, budget, h, costs);
    for (GreedySelection s : {GreedySelection::automatic, GreedySelection::queue, GreedySelection::cached, GreedySelection::scan}) {
      CAPTURE(static_cast<int>(s));
      check_same(expected, run_budget_greedy(tape, loss, budget, h, costs, s), coverage[s]);
    }
  }
}

}  // namespace

TEST_CASE("greedy: the eviction queue chooses exactly as the scan on random graphs, for every heuristic") {
  std::map<GreedySelection, Coverage> coverage, negative;
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    CAPTURE(seed);
    Value loss;
    std::unique_ptr<Tape> tape = GraphBuilder(seed).build(loss);
    const std::size_t full = simulate(*tape, store_all_program(*tape, loss.id)).peak_bytes;
    const auto kind = static_cast<CostTable>(seed % 4);
    CAPTURE(static_cast<int>(kind));
    const NodeCosts costs = cost_table(*tape, kind, seed);
    std::mt19937_64 rng(seed * 7919);
    // One budget from well below the least feasible one (the runs fail, Infeasible or
    // thrashing, and their instructions up to the failure are compared) to store-all's
    // peak, and two between the least budget that dtr accepts and store-all's peak.
    std::size_t least = 0;
    try {
      plan(*make_strategy("greedy"), PlanRequest{*tape, loss.id, Budget{std::size_t{0}}, &costs});
    } catch (const InfeasibleBudget& e) {
      least = e.min_feasible_bytes;
    }
    for (int b = 0; b < 3; ++b) {
      const double fraction = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      const auto budget = b == 0 ? static_cast<std::size_t>((0.05 + 0.95 * fraction) * static_cast<double>(full))
                                 : least + static_cast<std::size_t>(fraction * static_cast<double>(full - least));
      CAPTURE(budget);
      compare_runs(*tape, loss.id, budget, costs, kind == CostTable::negative ? negative : coverage);
    }
  }
  const Coverage& queue = coverage[GreedySelection::queue];
  MESSAGE("runs per selection " << queue.runs << ": planned " << queue.planned << " (recomputing " << queue.recomputing
                                << "), failed " << queue.failed);
  for (GreedySelection s : {GreedySelection::automatic, GreedySelection::queue, GreedySelection::cached})
    CHECK(coverage[s].queued == coverage[s].runs);  // the queue's bookkeeping, not the fallback, chose
  CHECK(queue.planned > 2000);
  CHECK(queue.recomputing > 1000);
  CHECK(queue.failed > 300);
  CHECK(coverage[GreedySelection::scan].queued == 0);
  CHECK(negative[GreedySelection::automatic].runs > 300);
  CHECK(negative[GreedySelection::automatic].queued == 0);  // a negative cost breaks the preconditions: it scans
}

TEST_CASE("greedy: the eviction queue chooses exactly as the scan on zoo models with long chains of ties") {
  std::map<GreedySelection, Coverage> coverage;
  for (const char* spec : {"mlp:layers=60,width=4,batch=2", "resmlp:layers=12,width=8,batch=2",
                           "transformer:layers=1,width=8,heads=2,seq=4,batch=1,vocab=8",
                           "unet:levels=2,width=2,batch=1,image=8", "lstm:steps=8,hidden=4,input=2,batch=1"}) {
    CAPTURE(spec);
    Model m = build_model(spec);
    const std::size_t full = simulate(*m.tape, store_all_program(*m.tape, m.loss.id)).peak_bytes;
    const NodeCosts costs = analytic_node_costs(*m.tape);
    for (double fraction : {0.04, 0.1, 0.2, 0.35, 0.6}) {
      const auto budget = static_cast<std::size_t>(fraction * static_cast<double>(full));
      CAPTURE(budget);
      compare_runs(*m.tape, m.loss.id, budget, costs, coverage);
    }
  }
  CHECK(coverage[GreedySelection::automatic].queued == coverage[GreedySelection::automatic].runs);
  CHECK(coverage[GreedySelection::queue].recomputing > 40);
}

// plan() runs greedy at the budgets the acceptance rule (budget_greedy.cpp, above
// GreedySearch) visits; replayed here over reference runs, it must return the same Program
// or refuse with the same least feasible budget.
TEST_CASE("greedy: plan() equals the acceptance rule replayed over reference runs, at 1 and 2 threads") {
  int refused = 0, planned = 0;
  const int threads_before = cpu_threads();
  for (std::uint64_t seed = 1000; seed < 1030; ++seed) {
    CAPTURE(seed);
    Value loss;
    std::unique_ptr<Tape> tape = GraphBuilder(seed).build(loss);
    const Tape& t = *tape;
    const NodeCosts costs = analytic_node_costs(t);
    const std::size_t top = simulate(t, store_all_program(t, loss.id)).peak_bytes;
    std::size_t need = 0;  // the certified-infeasible lower end, as GreedySearch computes it
    for (int id : compute_order(t, loss.id)) {
      std::size_t bytes = compute_bytes(t, id).peak_extra;
      std::vector<int> seen;
      for (int in : t.node(id).inputs)
        if (t.node(in).kind != NodeKind::parameter && std::find(seen.begin(), seen.end(), in) == seen.end()) {
          seen.push_back(in);
          bytes += t.node(in).meta.bytes();
        }
      need = std::max(need, bytes);
    }
    for (const auto& h : greedy_heuristics()) {
      CAPTURE(h);
      std::map<std::size_t, GreedyRun> runs;
      auto at = [&](std::size_t b) -> const GreedyRun& {
        auto it = runs.find(b);
        return it != runs.end() ? it->second : runs.emplace(b, reference::run(t, loss.id, b, h, costs)).first->second;
      };
      auto ok = [](const GreedyRun& r) { return r.outcome == GreedyRun::Outcome::planned; };
      // Probes descend by eighths of the interval while they succeed, then halve.
      std::size_t lo = need > 0 ? need - 1 : 0, hi = top;
      std::vector<std::size_t> points{hi};
      bool descending = true;
      while (hi - lo > 1) {
        const std::size_t mid = lo + (descending ? std::max<std::size_t>(1, (hi - lo) / 8) : (hi - lo) / 2);
        if (ok(at(mid))) {
          points.push_back(hi = at(mid).peak);
        } else {
          lo = mid;
          descending = false;
        }
      }
      StrategyOptions o;
      o.heuristic = h;
      auto strategy = make_strategy("greedy", o);
      std::mt19937_64 rng(seed);
      for (int k = 0; k < 4; ++k) {
        const auto B = static_cast<std::size_t>(std::uniform_real_distribution<double>(0.1, 1.1)(rng) *
                                                static_cast<double>(top));
        CAPTURE(B);
        if (B < top && B < hi) {
          ++refused;
          for (int threads : {1, 2}) {
            CAPTURE(threads);
            set_cpu_threads(threads);
            try {
              plan(*strategy, PlanRequest{t, loss.id, Budget{B}});
              FAIL_CHECK("accepted a budget below the threshold " << hi);
            } catch (const InfeasibleBudget& e) {
              CHECK(e.min_feasible_bytes == hi);
            }
          }
          set_cpu_threads(threads_before);
          continue;
        }
        ++planned;
        const GreedyRun* expected = &at(B);
        if (B < top && !(ok(*expected) && expected->peak >= hi)) {
          std::size_t best = hi;
          for (std::size_t p : points)
            if (p <= B) best = std::max(best, p);
          expected = &at(best);
        }
        REQUIRE(ok(*expected));
        // One thread runs the search in order; two overlap its first runs (GreedySearch):
        // the same plan and the same runs either way.
        int runs_one_thread = -1;
        for (int threads : {1, 2}) {
          CAPTURE(threads);
          set_cpu_threads(threads);
          const PlanReport report = plan(*strategy, PlanRequest{t, loss.id, Budget{B}});
          CHECK(report.program.instructions == expected->program.instructions);
          CHECK(report.predicted.peak_bytes == expected->peak);
          if (threads == 1) runs_one_thread = report.candidates_simulated;
          else CHECK(report.candidates_simulated == runs_one_thread);
        }
        set_cpu_threads(threads_before);
      }
    }
  }
  CHECK(refused > 20);
  CHECK(planned > 100);
}

// Scores built to tie exactly (equal lines) and to come within an ulp (numerators near
// 2^60, whose quotients round together for some clocks and apart for others).
TEST_CASE("eviction queue: top() is the scan's choice under random updates, ties and near-ties") {
  int changes_of_winner = 0;
  for (int trial = 0; trial < 40; ++trial) {
    CAPTURE(trial);
    std::mt19937_64 rng(static_cast<std::uint64_t>(trial) + 77);
    auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
    const bool staleness = trial % 4 != 3;
    const std::size_t slots = static_cast<std::size_t>(pick(1, 70));
    const std::int64_t horizon = 3000;
    EvictionQueue q;
    q.reset(slots, staleness ? EvictionQueue::Mode::staleness : EvictionQueue::Mode::fixed, horizon);
    struct Slot {
      bool on = false;
      double a = 0, m = 1;
      std::int64_t la = 0;
    };
    std::vector<Slot> model(slots);
    auto value = [&]() -> double {
      switch (trial % 3) {
        case 0: return static_cast<double>(pick(0, 4));                          // exact ties, zeros
        case 1: return std::ldexp(1.0, 60) + 256.0 * static_cast<double>(pick(0, 6));  // near-ties
        default: return static_cast<double>(pick(1, 1000000));
      }
    };
    std::int64_t clock = 1;
    int last = -2;
    for (int step = 0; step < 2000; ++step) {
      if (pick(0, 9) == 0) clock = std::min(horizon, clock + pick(1, 40));
      const std::size_t s = static_cast<std::size_t>(pick(0, static_cast<std::int64_t>(slots) - 1));
      if (pick(0, 4) == 0) {
        model[s].on = false;
        q.clear(s);
      } else if (pick(0, 1) == 0) {
        model[s] = {true, value(), static_cast<double>(pick(1, 3)), clock - pick(0, std::min<std::int64_t>(clock, 30))};
        q.set(s, model[s].a, model[s].m, model[s].la);
      }
      int expected = -1;
      double best = std::numeric_limits<double>::infinity();
      for (std::size_t k = 0; k < slots; ++k) {
        if (!model[k].on) continue;
        const double h = staleness ? model[k].a / (model[k].m * static_cast<double>(clock - model[k].la + 1)) : model[k].a;
        if (h < best) {
          best = h;
          expected = static_cast<int>(k);
        }
      }
      const int got = q.top(clock);
      REQUIRE(got == expected);
      changes_of_winner += got != last;
      last = got;
    }
  }
  CHECK(changes_of_winner > 1000);
  CHECK(EvictionQueue::staleness_exact(4, 1000));
  CHECK_FALSE(EvictionQueue::staleness_exact(std::ldexp(1.0, 43), std::int64_t{1} << 10));
  CHECK_FALSE(EvictionQueue::staleness_exact(2.5, 10));
}
