// Contract: budget-greedy rematerialization at node granularity, after
// Kirisame et al., "Dynamic Tensor Rematerialization", ICLR 2021
// (arXiv:2006.09616), Sec. 3 (the greedy runtime) and Sec. 4 (heuristics).
// The planner replays the store-all instruction stream online: before each
// instruction it makes the values it reads resident (recomputing evicted ones
// from their parents, recursively) and, when an allocation would pass the
// budget, evicts the resident unpinned value with the smallest score:
//   dtr        h = (c(t) + sum c(u), u in e*(t)) / (m(t) s(t))   (e*: evicted neighbourhood)
//   dtr-eq     the same with e* approximated by union-find classes of evicted values
//   dtr-local  h = c(t) / (m(t) s(t))
//   lru        the least recently used;  size: the largest;  msps: (c + evicted parents' c) / m
// It decides from the past only: no future instruction is consulted. A value is
// freed when it is evicted or when the program holds no more references to it
// (its remaining uses by the store-all stream reach zero, as a reference count
// would at run time); a gradient when its vjp has run. The planner emits those
// frees itself, so the executor's memory is exactly the planner's accounting,
// which never exceeds the budget.
// Recomputation past 50 N + 1000 operations stops with an Error (thrashing).
#include "strategies/strategies.hpp"

#include "autodiff/memory_policy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

namespace remat {
namespace {

enum class Heuristic { dtr, dtr_eq, dtr_local, lru, size, msps };

Heuristic parse_heuristic(const std::string& h) {
  if (h == "dtr") return Heuristic::dtr;
  if (h == "dtr-eq") return Heuristic::dtr_eq;
  if (h == "dtr-local") return Heuristic::dtr_local;
  if (h == "lru") return Heuristic::lru;
  if (h == "size") return Heuristic::size;
  if (h == "msps") return Heuristic::msps;
  throw Error("[greedy] unknown heuristic '" + h + "'; expected one of: dtr, dtr-eq, dtr-local, lru, size, msps");
}

struct Infeasible {
  std::size_t needed;
};
struct Thrashing {};

class GreedyPlanner {
 public:
  GreedyPlanner(const Tape& tape, int loss, std::size_t budget, Heuristic heuristic, const NodeCosts& costs)
      : tape_(tape), budget_(budget), heuristic_(heuristic), n_(tape.size()) {
    base_ = store_all_program(tape, loss);
    resident_.assign(n_, false);
    computed_.assign(n_, false);
    pinned_.assign(n_, 0);
    last_access_.assign(n_, 0);
    remaining_uses_.assign(n_, 0);
    grad_live_.assign(n_, false);
    parent_.resize(n_);
    std::iota(parent_.begin(), parent_.end(), 0);
    class_cost_.assign(n_, 0);
    consumers_.assign(n_, {});
    cost_.assign(n_, 1);
    for (const Node& node : tape.nodes()) {
      for (int in : node.inputs) consumers_[static_cast<std::size_t>(in)].push_back(node.id);
      cost_[static_cast<std::size_t>(node.id)] = static_cast<double>(costs.forward(node.id));  // c(t): recompute cost
    }
    for (const auto& ins : base_.instructions) {
      if (ins.kind == InstructionKind::compute)
        for (int in : tape.node(ins.node).inputs) ++remaining_uses_[static_cast<std::size_t>(in)];
      if (ins.kind == InstructionKind::backward)
        for (int s : saved_for_backward(tape, ins.node)) ++remaining_uses_[static_cast<std::size_t>(s)];
    }
    recompute_limit_ = 50 * static_cast<std::int64_t>(n_) + 1000;
  }

  Program run() {
    Program& out = out_;
    out.strategy = "greedy";
    out.loss = base_.loss;
    out.grad_targets = base_.grad_targets;
    for (const auto& ins : base_.instructions) {
      if (ins.kind == InstructionKind::free || ins.kind == InstructionKind::free_grad) continue;
      ++clock_;
      const Node& node = tape_.node(ins.node);
      if (ins.kind == InstructionKind::compute) {
        for (int in : node.inputs) {
          ensure_resident(in, out);
          pin(in);
        }
        materialise(ins.node, out);
        for (int in : node.inputs) unpin(in);
        for (int in : node.inputs) release_use(in);
        if (remaining_uses_[static_cast<std::size_t>(ins.node)] == 0) drop(ins.node);  // e.g. the loss value
      } else if (ins.kind == InstructionKind::seed_grad) {
        const InstructionBytes need = seed_grad_bytes(tape_, ins.node);
        make_room(need.peak_extra);
        out.instructions.push_back(ins);
        grad_live_[static_cast<std::size_t>(ins.node)] = true;
        current_ += static_cast<std::size_t>(need.stays);
      } else {  // backward
        auto saved = saved_for_backward(tape_, ins.node);
        for (int s : saved) {
          ensure_resident(s, out);
          pin(s);
        }
        // The memory policy says what this vjp allocates (in-place gradients stay;
        // accumulation temporaries and scratch are held only while it runs).
        const InstructionBytes need = backward_bytes(tape_, ins.node, grad_live_);
        make_room(need.peak_extra);
        out.instructions.push_back(ins);
        current_ += static_cast<std::size_t>(need.stays);
        mark_gradients(tape_, ins.node, grad_live_);
        // The output gradient is read by nothing after this vjp.
        if (grad_live_[static_cast<std::size_t>(ins.node)] && !is_param(ins.node)) {
          grad_live_[static_cast<std::size_t>(ins.node)] = false;
          current_ -= node.meta.bytes();
          out.instructions.push_back({InstructionKind::free_grad, ins.node});
        }
        for (int s : saved) {
          unpin(s);
          release_use(s);
        }
      }
    }
    return std::move(out);
  }

  std::int64_t recomputations() const { return recomputed_; }
  // After a successful run: every budget in [peak, upper] makes exactly the same
  // decisions, so yields this very plan (its peak is `peak`).
  std::size_t peak() const { return peak_; }
  std::size_t upper() const { return upper_; }

 private:
  void pin(int v) { ++pinned_[static_cast<std::size_t>(v)]; }
  void unpin(int v) { --pinned_[static_cast<std::size_t>(v)]; }
  bool is_param(int v) const { return tape_.node(v).kind == NodeKind::parameter; }

  // A use of v by the base program is done; a value nobody will read again leaves.
  void release_use(int v) {
    if (is_param(v)) return;
    auto i = static_cast<std::size_t>(v);
    if (--remaining_uses_[i] == 0 && resident_[i] && pinned_[i] == 0) drop(v);
  }

  void drop(int v) {
    auto i = static_cast<std::size_t>(v);
    resident_[i] = false;
    out_.instructions.push_back({InstructionKind::free, v});
    current_ -= tape_.node(v).meta.bytes();
    auto it = std::find(resident_list_.begin(), resident_list_.end(), v);
    if (it != resident_list_.end()) {
      *it = resident_list_.back();
      resident_list_.pop_back();
    }
  }

  // Compute v now (its inputs must be resident), making room first.
  void materialise(int v, Program& out) {
    const Node& node = tape_.node(v);
    for (int in : node.inputs) pin(in);
    const InstructionBytes need = compute_bytes(tape_, v);
    make_room(need.peak_extra);
    out.instructions.push_back({InstructionKind::compute, v});
    auto i = static_cast<std::size_t>(v);
    if (computed_[i]) {
      if (++recomputed_ > recompute_limit_) throw Thrashing{};
    }
    computed_[i] = true;
    resident_[i] = true;
    resident_list_.push_back(v);
    current_ += static_cast<std::size_t>(need.stays);
    last_access_[i] = clock_;
    for (int in : node.inputs) unpin(in);
    // An input rebuilt only to recompute v, which the program no longer references, goes now.
    for (int in : node.inputs) {
      auto k = static_cast<std::size_t>(in);
      if (!is_param(in) && resident_[k] && pinned_[k] == 0 && remaining_uses_[k] == 0) drop(in);
    }
    // Rematerialised: no longer evicted; its class keeps its cost (no split, as in the paper).
  }

  // Makes v resident, recomputing evicted ancestors (an explicit stack: chains can be long).
  void ensure_resident(int root, Program& out) {
    if (is_param(root)) return;
    std::vector<int> stack{root};
    while (!stack.empty()) {
      int t = stack.back();
      auto i = static_cast<std::size_t>(t);
      if (resident_[i]) {
        last_access_[i] = clock_;
        stack.pop_back();
        continue;
      }
      int missing = -1;
      for (int in : tape_.node(t).inputs)
        if (!is_param(in) && !resident_[static_cast<std::size_t>(in)]) {
          missing = in;
          break;
        }
      if (missing >= 0) {
        stack.push_back(missing);
        if (stack.size() > n_ + 1) throw Thrashing{};
        continue;
      }
      materialise(t, out);
      stack.pop_back();
    }
    last_access_[static_cast<std::size_t>(root)] = clock_;
  }

  int find(int x) {
    while (parent_[static_cast<std::size_t>(x)] != x) {
      parent_[static_cast<std::size_t>(x)] = parent_[static_cast<std::size_t>(parent_[static_cast<std::size_t>(x)])];
      x = parent_[static_cast<std::size_t>(x)];
    }
    return x;
  }

  // Sum of costs of evicted values connected to t through evicted values (capped search).
  double evicted_neighbourhood_cost(int t) {
    double total = 0;
    std::vector<int> stack, seen;
    auto visit = [&](int u) {
      auto i = static_cast<std::size_t>(u);
      if (is_param(u) || resident_[i] || !computed_[i]) return;
      if (std::find(seen.begin(), seen.end(), u) != seen.end()) return;
      seen.push_back(u);
      stack.push_back(u);
      total += cost_[i];
    };
    for (int in : tape_.node(t).inputs) visit(in);
    for (int c : consumers_[static_cast<std::size_t>(t)]) visit(c);
    while (!stack.empty() && seen.size() < 256) {
      int u = stack.back();
      stack.pop_back();
      for (int in : tape_.node(u).inputs) visit(in);
      for (int c : consumers_[static_cast<std::size_t>(u)]) visit(c);
    }
    return total;
  }

  double score(int t) {
    auto i = static_cast<std::size_t>(t);
    double m = static_cast<double>(std::max<std::size_t>(tape_.node(t).meta.bytes(), 1));
    double s = static_cast<double>(clock_ - last_access_[i] + 1);
    double c = cost_[i];
    switch (heuristic_) {
      case Heuristic::dtr: return (c + evicted_neighbourhood_cost(t)) / (m * s);
      case Heuristic::dtr_eq: {
        double e = 0;
        std::vector<int> roots;
        auto add = [&](int u) {
          auto k = static_cast<std::size_t>(u);
          if (is_param(u) || resident_[k] || !computed_[k]) return;
          int r = find(u);
          if (std::find(roots.begin(), roots.end(), r) == roots.end()) {
            roots.push_back(r);
            e += class_cost_[static_cast<std::size_t>(r)];
          }
        };
        for (int in : tape_.node(t).inputs) add(in);
        for (int cn : consumers_[i]) add(cn);
        return (c + e) / (m * s);
      }
      case Heuristic::dtr_local: return c / (m * s);
      case Heuristic::lru: return -s;
      case Heuristic::size: return -m;
      case Heuristic::msps: {
        double e = 0;
        for (int in : tape_.node(t).inputs)
          if (!is_param(in) && !resident_[static_cast<std::size_t>(in)]) e += cost_[static_cast<std::size_t>(in)];
        return (c + e) / m;
      }
    }
    return 0;
  }

  void evict(int t) {
    drop(t);
    if (heuristic_ == Heuristic::dtr_eq) {  // merge t's class with evicted neighbours
      auto i = static_cast<std::size_t>(t);
      class_cost_[static_cast<std::size_t>(find(t))] += cost_[i];
      auto merge = [&](int u) {
        auto k = static_cast<std::size_t>(u);
        if (is_param(u) || resident_[k] || !computed_[k]) return;
        int a = find(t), b = find(u);
        if (a == b) return;
        parent_[static_cast<std::size_t>(b)] = a;
        class_cost_[static_cast<std::size_t>(a)] += class_cost_[static_cast<std::size_t>(b)];
      };
      for (int in : tape_.node(t).inputs) merge(in);
      for (int c : consumers_[i]) merge(c);
    }
  }

  void make_room(std::size_t need) {
    std::size_t last_checked = 0;
    while (current_ + need > budget_) {
      last_checked = current_ + need;
      int victim = -1;
      double best = std::numeric_limits<double>::infinity();
      for (int t : resident_list_) {
        if (pinned_[static_cast<std::size_t>(t)] > 0) continue;
        double h = score(t);
        if (h < best) {
          best = h;
          victim = t;
        }
      }
      if (victim < 0) throw Infeasible{current_ + need};
      evict(victim);
    }
    // Any budget up to last_checked - 1 makes the same evictions here (see interval()).
    if (last_checked > 0) upper_ = std::min(upper_, last_checked - 1);
    peak_ = std::max(peak_, current_ + need);
  }

  const Tape& tape_;
  std::size_t budget_;
  Heuristic heuristic_;
  std::size_t n_;
  Program base_;
  Program out_;
  std::vector<bool> resident_, grad_live_, computed_;
  std::vector<int> pinned_, parent_, resident_list_;
  std::vector<std::int64_t> last_access_, remaining_uses_;
  std::vector<std::vector<int>> consumers_;
  std::vector<double> cost_, class_cost_;
  std::size_t current_ = 0, peak_ = 0, upper_ = std::numeric_limits<std::size_t>::max();
  std::int64_t clock_ = 0, recomputed_ = 0, recompute_limit_ = 0;
};

// One run at one internal budget: the plan and its interval of constancy, or nothing.
struct Run {
  bool feasible = false;
  Program program;
  std::size_t peak = 0, upper = 0;
};

Run run_at(const Tape& tape, int loss, std::size_t budget, Heuristic h, const NodeCosts& costs) {
  try {
    GreedyPlanner planner(tape, loss, budget, h, costs);
    Run r;
    r.program = planner.run();
    r.program.strategy = "greedy";
    r.feasible = true;
    r.peak = planner.peak();
    r.upper = planner.upper();
    return r;
  } catch (const Infeasible&) {
  } catch (const Thrashing&) {
  }
  return {};
}

// The acceptance rule for greedy (planning.hpp), with its family indexed by the
// internal budget b. A run at b that succeeds with peak p makes the same decisions for
// every b' in [p, upper] (GreedyPlanner::interval), so the feasible budgets near
// store-all's peak form intervals [p_k, u_k] whose union reaches down to some M*,
// found by walking down from store-all's peak (b = p - 1 after each run) until a run
// fails. Greedy accepts B exactly when B >= M* and then returns the run at B; M* is the
// least peak of any plan it returns (so refused(B) means no returned plan peaks at or
// below B) and is itself accepted. Below M* a run may succeed by luck (eviction order
// is not monotone in the budget, notably for size and msps); such budgets are refused
// all the same, or feasibility would not be monotone.
class GreedySearch {
 public:
  GreedySearch(const Tape& tape, int loss, Heuristic h, std::string heuristic, const NodeCosts& costs)
      : tape_(tape), loss_(loss), h_(h), heuristic_(std::move(heuristic)), costs_(costs) {
    top_ = simulate(tape, store_all_program(tape, loss)).peak_bytes;
  }
  std::size_t top() const { return top_; }
  int runs() const { return runs_; }

  const Run& at(std::size_t b) {
    auto it = runs_at_.find(b);
    if (it != runs_at_.end()) return it->second;
    ++runs_;
    return runs_at_.emplace(b, run_at(tape_, loss_, b, h_, costs_)).first->second;
  }

  // Whether every budget in [b, top] succeeds (b's run succeeded).
  bool region_reaches_top(std::size_t b) {
    while (true) {
      const Run& r = at(b);
      if (!r.feasible) return false;
      if (r.upper >= top_) return true;
      b = r.upper + 1;
    }
  }

  // M*: walk down from store-all's peak.
  std::size_t least_accepted() {
    std::size_t b = top_, least = top_;
    while (true) {
      const Run& r = at(b);
      if (!r.feasible) return least;
      least = r.peak;
      if (r.peak == 0) return 0;
      b = r.peak - 1;
    }
  }

  [[noreturn]] void refuse(std::size_t budget) {
    const std::size_t least = least_accepted();
    throw InfeasibleBudget(fmt::format("[greedy] budget {} bytes is infeasible with heuristic {} (an instruction's "
                                       "pinned values do not fit, or recomputation thrashes); the smallest feasible "
                                       "budget is {} bytes",
                                       budget, heuristic_, least),
                           least);
  }

 private:
  const Tape& tape_;
  int loss_;
  Heuristic h_;
  std::string heuristic_;
  const NodeCosts& costs_;
  std::size_t top_ = 0;
  int runs_ = 0;
  std::map<std::size_t, Run> runs_at_;
};

class GreedyStrategy final : public RematStrategy {
 public:
  explicit GreedyStrategy(StrategyOptions o) : options_(std::move(o)) { (void)parse_heuristic(options_.heuristic); }
  std::string name() const override { return "greedy"; }

  PlanReport plan_report(const PlanRequest& request) const override {
    check_loss(request.tape, request.loss, "greedy");
    const Heuristic h = parse_heuristic(options_.heuristic);
    NodeCosts analytic;
    if (!request.costs) analytic = analytic_node_costs(request.tape);
    GreedySearch search(request.tape, request.loss, h, options_.heuristic, request.costs ? *request.costs : analytic);
    // Without a budget the greedy runtime never evicts: it is store-all.
    const std::size_t B = request.budget.bytes ? *request.budget.bytes : search.top();
    const Run& run = search.at(B);
    if (!run.feasible || !search.region_reaches_top(B)) search.refuse(B);
    PlanReport report;
    report.strategy = name();
    report.setting = fmt::format("{}, budget {}", options_.heuristic, bytes_text(B));
    report.program = run.program;
    report.predicted = simulate(request.tape, report.program);
    report.candidates_simulated = search.runs();
    if (report.predicted.peak_bytes != run.peak)
      throw Error(fmt::format("[greedy] internal: the planner accounted a peak of {} bytes, simulate() measures {}",
                              run.peak, report.predicted.peak_bytes));
    return report;
  }

 private:
  StrategyOptions options_;
};

}  // namespace

Program plan_budget_greedy(const Tape& tape, int loss, std::size_t budget, const std::string& heuristic) {
  StrategyOptions o;
  o.heuristic = heuristic;
  return GreedyStrategy(o).plan(tape, loss, Budget{budget});
}

std::unique_ptr<RematStrategy> make_greedy_strategy(const StrategyOptions& o) {
  return std::make_unique<GreedyStrategy>(o);
}

}  // namespace remat
