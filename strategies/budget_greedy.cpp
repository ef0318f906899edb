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
// A run that recomputes more than 10 N + 1000 operations (N nodes) is thrashing: it
// fails at that budget (the acceptance rule below then looks elsewhere).
#include "strategies/strategies.hpp"

#include "autodiff/memory_policy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <optional>

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
    is_param_.assign(n_, false);
    bytes_.assign(n_, 0);
    for (const Node& node : tape.nodes()) {
      is_param_[static_cast<std::size_t>(node.id)] = node.kind == NodeKind::parameter;
      bytes_[static_cast<std::size_t>(node.id)] = node.meta.bytes();
      for (int in : node.inputs) consumers_[static_cast<std::size_t>(in)].push_back(node.id);
      cost_[static_cast<std::size_t>(node.id)] = static_cast<double>(costs.forward(node.id));  // c(t): recompute cost
    }
    for (const auto& ins : base_.instructions) {
      if (ins.kind == InstructionKind::compute)
        for (int in : tape.node(ins.node).inputs) ++remaining_uses_[static_cast<std::size_t>(in)];
      if (ins.kind == InstructionKind::backward)
        for (int s : saved_for_backward(tape, ins.node)) ++remaining_uses_[static_cast<std::size_t>(s)];
    }
    recompute_limit_ = 10 * static_cast<std::int64_t>(n_) + 1000;
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
  bool is_param(int v) const { return is_param_[static_cast<std::size_t>(v)]; }
  const std::vector<int>& inputs_of(int v) const { return tape_.nodes()[static_cast<std::size_t>(v)].inputs; }

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
    current_ -= bytes_[static_cast<std::size_t>(v)];
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
      for (int in : inputs_of(t))
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
    std::size_t seen = 0;
    if (seen_stamp_.size() != n_) seen_stamp_.assign(n_, 0);
    const std::uint32_t stamp = ++stamp_;
    stack_.clear();
    auto& stack = stack_;
    auto visit = [&](int u) {
      auto i = static_cast<std::size_t>(u);
      if (is_param(u) || resident_[i] || !computed_[i]) return;
      if (seen_stamp_[i] == stamp) return;
      seen_stamp_[i] = stamp;
      ++seen;
      stack.push_back(u);
      total += cost_[i];
    };
    for (int in : inputs_of(t)) visit(in);
    for (int c : consumers_[static_cast<std::size_t>(t)]) visit(c);
    while (!stack.empty() && seen < 256) {
      int u = stack.back();
      stack.pop_back();
      for (int in : inputs_of(u)) visit(in);
      for (int c : consumers_[static_cast<std::size_t>(u)]) visit(c);
    }
    return total;
  }

  double score(int t) {
    auto i = static_cast<std::size_t>(t);
    double m = static_cast<double>(std::max<std::size_t>(bytes_[i], 1));
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
        for (int in : inputs_of(t)) add(in);
        for (int cn : consumers_[i]) add(cn);
        return (c + e) / (m * s);
      }
      case Heuristic::dtr_local: return c / (m * s);
      case Heuristic::lru: return -s;
      case Heuristic::size: return -m;
      case Heuristic::msps: {
        double e = 0;
        for (int in : inputs_of(t))
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
      for (int in : inputs_of(t)) merge(in);
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
  std::vector<bool> is_param_;
  std::vector<std::size_t> bytes_;
  std::vector<std::uint32_t> seen_stamp_;  // the capped search's visited marks (stamp_ per search)
  std::uint32_t stamp_ = 0;
  std::vector<int> stack_;
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
// every b' in [p, upper] (GreedyPlanner::upper), so greedy at b = p is that same plan.
// Eviction is not monotone in the budget (a run may fail at b and succeed at b - 1,
// notably with size and msps), so the threshold is fixed by one deterministic search
// that does not depend on the budget asked for: a bisection between a certified
// infeasible budget (below some instruction's own inputs and output) and store-all's
// peak, where each successful run moves the upper end to its own peak. It ends with
// M* feasible (a run at M* peaks at exactly M*) and M* - 1 infeasible; the feasible
// points it visited, M* = h_k < ... < h_0, each peak at exactly their value.
// Greedy accepts B exactly when B >= M*. It returns the run at B when that succeeds
// with a peak of at least M*, else the run at the largest visited point h <= B. So
// every plan it returns peaks at or above M*, the least feasible budget is M*, and a
// plan for a smaller budget is always a valid answer for a larger one.
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

  // M*, and the visited feasible points (each a budget whose run peaks at exactly it).
  std::size_t threshold() {
    if (threshold_) return *threshold_;
    std::size_t lo = certified_infeasible();
    const Run& top_run = at(top_);
    if (!top_run.feasible) throw Error("[greedy] internal: the run at store-all's peak failed");
    std::size_t hi = top_run.peak;
    points_.push_back(hi);
    while (hi - lo > 1) {
      const std::size_t mid = lo + (hi - lo) / 2;
      const Run& r = at(mid);
      if (r.feasible) {
        hi = r.peak;  // > lo: a run at lo would have made the same decisions
        points_.push_back(hi);
      } else {
        lo = mid;
      }
    }
    threshold_ = hi;
    return hi;
  }

  // The plan for budget B >= threshold().
  const Run& plan_for(std::size_t B) {
    const std::size_t least = threshold();
    const Run& r = at(B);
    if (r.feasible && r.peak >= least) return r;
    std::size_t best = least;
    for (std::size_t p : points_)
      if (p <= B) best = std::max(best, p);
    return at(best);
  }

  [[noreturn]] void refuse(std::size_t budget) {
    const std::size_t least = threshold();
    throw InfeasibleBudget(fmt::format("[greedy] budget {} bytes is infeasible with heuristic {} (an instruction's "
                                       "pinned values do not fit, or recomputation thrashes); the smallest feasible "
                                       "budget is {} bytes",
                                       budget, heuristic_, least),
                           least);
  }

 private:
  // One byte below the least memory some compute instruction needs on its own (its
  // non-parameter inputs, its output and its scratch): no schedule runs there.
  std::size_t certified_infeasible() const {
    std::size_t need = 0;
    for (int id : compute_order(tape_, loss_)) {
      const Node& n = tape_.node(id);
      std::size_t bytes = compute_bytes(tape_, id).peak_extra;
      std::vector<int> seen;
      for (int in : n.inputs)
        if (tape_.node(in).kind != NodeKind::parameter && std::find(seen.begin(), seen.end(), in) == seen.end()) {
          seen.push_back(in);
          bytes += tape_.node(in).meta.bytes();
        }
      need = std::max(need, bytes);
    }
    return need > 0 ? need - 1 : 0;
  }

  const Tape& tape_;
  int loss_;
  Heuristic h_;
  std::string heuristic_;
  const NodeCosts& costs_;
  std::size_t top_ = 0;
  int runs_ = 0;
  std::map<std::size_t, Run> runs_at_;
  std::optional<std::size_t> threshold_;
  std::vector<std::size_t> points_;
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
    if (B < search.top() && B < search.threshold()) search.refuse(B);
    const Run& run = B >= search.top() ? search.at(B) : search.plan_for(B);
    if (!run.feasible) throw Error("[greedy] internal: the run at store-all's peak failed");
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
