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
// With cpu_threads() > 1 the run at the budget asked for overlaps store-all's simulation
// and the search's first probe on a second thread (GreedySearch): the same runs, hence
// the same plan, whatever the thread count.
// A run that recomputes more than 10 N + 1000 operations (N nodes) is thrashing: it
// fails at that budget (the acceptance rule below then looks elsewhere).
// Each victim is found by an EvictionQueue (eviction_queue.hpp: O(log n) amortised per
// change of a score) with exactly the choice of a scan of every resident value, ties to
// the first in list order; GreedyPlanner's comment says what marks a score as changed.
// One run at one internal budget is run_budget_greedy() (budget_greedy.hpp).
#include "strategies/budget_greedy.hpp"

#include "autodiff/memory_policy.hpp"
#include "strategies/eviction_queue.hpp"
#include "strategies/strategies.hpp"

#include "autodiff/cpu/cpu_backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <future>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <utility>
#include <vector>

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

// What every run shares, whatever its budget: store-all's instruction stream and the
// graph's structure, sizes and costs (GreedySearch builds it once for all its runs).
struct GreedyGraph {
  GreedyGraph(const Tape& t, int loss, const NodeCosts& costs) : tape(t), n(t.size()) {
    base = store_all_program(t, loss);
    cost.assign(n, 1);
    is_param.assign(n, 0);
    bytes.assign(n, 0);
    m.assign(n, 1);
    uses.assign(n, 0);
    saved.assign(n, {});
    input_count.assign(n, 0);
    std::vector<std::vector<int>> consumers(n);
    bool costs_exact = true;  // non-negative integers small enough for exact sums (below)
    double max_m = 1, max_cost = 0;
    for (const Node& node : t.nodes()) {
      const auto i = static_cast<std::size_t>(node.id);
      is_param[i] = node.kind == NodeKind::parameter;
      bytes[i] = node.meta.bytes();
      m[i] = static_cast<double>(std::max<std::size_t>(bytes[i], 1));
      max_m = std::max(max_m, m[i]);
      input_count[i] = static_cast<int>(node.inputs.size());
      for (int in : node.inputs) consumers[static_cast<std::size_t>(in)].push_back(node.id);
      const std::int64_t c = costs.forward(node.id);
      costs_exact = costs_exact && c >= 0 && c <= (std::int64_t{1} << 52);
      cost[i] = static_cast<double>(c);  // c(t): recompute cost
      max_cost = std::max(max_cost, cost[i]);
    }
    // Neighbours of v: its inputs, then its consumers (the order every search uses).
    start.assign(n + 1, 0);
    for (std::size_t i = 0; i < n; ++i) start[i + 1] = start[i] + static_cast<std::size_t>(input_count[i]) + consumers[i].size();
    adjacent.resize(start[n]);
    for (const Node& node : t.nodes()) {
      const auto i = static_cast<std::size_t>(node.id);
      std::copy(node.inputs.begin(), node.inputs.end(), adjacent.begin() + static_cast<std::ptrdiff_t>(start[i]));
      std::copy(consumers[i].begin(), consumers[i].end(),
                adjacent.begin() + static_cast<std::ptrdiff_t>(start[i] + node.inputs.size()));
    }
    // The base stream without its frees, with what each instruction allocates. Which
    // gradients are live follows the base stream alone, whatever a run evicts, so the
    // memory policy's answers are the same for every run.
    std::vector<bool> grad_live(n, false);
    for (const auto& ins : base.instructions) {
      const auto i = static_cast<std::size_t>(ins.node);
      Step step{ins, {}, false};
      if (ins.kind == InstructionKind::free || ins.kind == InstructionKind::free_grad) continue;
      if (ins.kind == InstructionKind::compute) {
        for (int in : t.node(ins.node).inputs) ++uses[static_cast<std::size_t>(in)];
      } else if (ins.kind == InstructionKind::seed_grad) {
        step.need = seed_grad_bytes(t, ins.node);
        grad_live[i] = true;
      } else {  // backward: its vjp's allocations; the output gradient is read by nothing after it
        saved[i] = saved_for_backward(t, ins.node);
        for (int s : saved[i]) ++uses[static_cast<std::size_t>(s)];
        step.need = backward_bytes(t, ins.node, grad_live);
        mark_gradients(t, ins.node, grad_live);
        if (grad_live[i] && !is_param[i]) {
          grad_live[i] = false;
          step.frees_grad = true;
        }
      }
      steps.push_back(step);
    }
    horizon = static_cast<std::int64_t>(steps.size());
    compute_need.resize(n);
    for (std::size_t i = 0; i < n; ++i) compute_need[i] = compute_bytes(t, static_cast<int>(i));
    // The queue's certificates need exact products m s (s <= horizon + 1) and scores
    // a / (m s) with a = 0 or a >= 1 (non-negative integer costs); else every run scans.
    queue_exact = costs_exact && EvictionQueue::staleness_exact(max_m, horizon);
    // Every numerator and class cost is a sum of costs of evicted values, at most one per
    // eviction, and a run evicts at most once per materialisation (n computes and at most
    // 10 n + 1001 recomputations): below 2^53 all those sums are exact integers, whatever
    // their order, so dtr-eq may add a class's new cost to its readers' numerators.
    sums_exact = costs_exact && max_cost * (11.0 * static_cast<double>(n) + 1003.0) <= 0x1p53;
  }

  std::span<const int> inputs(int v) const {
    const auto i = static_cast<std::size_t>(v);
    return {adjacent.data() + start[i], static_cast<std::size_t>(input_count[i])};
  }
  std::span<const int> consumers(int v) const {
    const auto i = static_cast<std::size_t>(v);
    return {adjacent.data() + start[i] + static_cast<std::size_t>(input_count[i]), adjacent.data() + start[i + 1]};
  }
  std::span<const int> neighbours(int v) const {
    const auto i = static_cast<std::size_t>(v);
    return {adjacent.data() + start[i], adjacent.data() + start[i + 1]};
  }

  struct Step {
    Instruction ins;
    InstructionBytes need;    // seed_grad, backward (compute: compute_need)
    bool frees_grad = false;  // backward: its output's gradient is freed after it
  };

  const Tape& tape;
  std::size_t n;
  Program base;
  std::vector<Step> steps;  // the base stream's instructions other than frees
  std::vector<InstructionBytes> compute_need;
  std::vector<std::vector<int>> saved;  // per node with a backward instruction: the values its vjp reads
  std::vector<int> adjacent, input_count;
  std::vector<std::size_t> start;
  std::vector<double> cost, m;  // c(t), and m(t) = max(bytes, 1) as the scores use it
  std::vector<std::uint8_t> is_param;
  std::vector<std::size_t> bytes;
  std::vector<std::int64_t> uses;  // reads by the base stream, per value
  std::int64_t horizon = 0;        // the clock's last value (instructions other than frees)
  bool queue_exact = false, sums_exact = false;
};

// One run at one internal budget. The victim of each eviction is the resident,
// unpinned value with the smallest score, the first in resident_list_ order among
// equal scores (drop() swap-removes from that list).
// With the queue (the default, when GreedyGraph::queue_exact), resident_list_
// positions are the EvictionQueue's slots. Each score is kept as its inputs: the
// numerator a = c + e (dtr, dtr-eq, msps; c for dtr-local), m and the last access;
// the clock is the queue's business. A value is touched (its leaf rewritten at the
// next choice, by flush()) when its pin count crosses zero, its last access or its
// position changes, and its numerator is marked dirty (recomputed by the scan's own
// formula) when something it reads may have changed:
//   msps: an input changed residency (its resident consumers are marked);
//   dtr-eq: a neighbour changed residency, or the class of an evicted neighbour merged
//     (the residents that read class r are registered in watchers_[r]); when a class only
//     gains an evicted value's cost, its readers' numerators gain the same (when
//     GreedyGraph::sums_exact; else they recompute too);
//   dtr: a value its capped search tried to visit changed residency. The search reads
//     nothing but the states of the values it tries (t's neighbours and those of the
//     values it expands; parameters never change), and with those unchanged it makes the
//     same moves to the same sum; so each search registers t with every value it tried
//     (watchers_[u]), and a residency change of u marks exactly the searches that read u.
// A value's residency changes when it is dropped or rematerialised; its first
// computation changes no score (the searches skip values never computed, and msps
// reads a value only from its consumers, none of which is resident before it is computed).
// When many values were touched since the last choice (a sixteenth of the residents or
// more), the choice scans the residents with their cached numerators instead of
// updating the tree (the touched leaves wait for a later flush): both give the scan's
// answer, and the scans cost at most 16 per touch, so each touch costs O(log n) amortised.
// With selection = scan, or without queue_exact, every choice scans from scratch, as
// the planner always did.
class GreedyPlanner {
 public:
  GreedyPlanner(const GreedyGraph& g, std::size_t budget, Heuristic heuristic, GreedySelection selection)
      : g_(g), tape_(g.tape), budget_(budget), heuristic_(heuristic), n_(g.n) {
    state_.assign(n_, 0);
    for (std::size_t i = 0; i < n_; ++i)
      if (g.is_param[i]) state_[i] = param_bit;
    pinned_.assign(n_, 0);
    last_access_.assign(n_, 0);
    remaining_uses_ = g.uses;
    pos_.assign(n_, -1);
    if (heuristic_ == Heuristic::dtr_eq) {
      parent_.resize(n_);
      std::iota(parent_.begin(), parent_.end(), 0);
      class_cost_.assign(n_, 0);
    }
    recompute_limit_ = 10 * static_cast<std::int64_t>(n_) + 1000;
    use_queue_ = selection != GreedySelection::scan && g.queue_exact;
    selection_ = selection;
    if (use_queue_) {
      const bool staleness = heuristic_ == Heuristic::dtr || heuristic_ == Heuristic::dtr_eq ||
                             heuristic_ == Heuristic::dtr_local;
      queue_.reset(n_, staleness ? EvictionQueue::Mode::staleness : EvictionQueue::Mode::fixed, g.horizon);
      a_.assign(n_, 0);
      touched_flag_.assign(n_, 0);
      a_dirty_.assign(n_, 0);
      if (heuristic_ == Heuristic::dtr_eq || heuristic_ == Heuristic::dtr) {
        watchers_.assign(n_, {});
        score_stamp_.assign(n_, 0);
      }
    }
  }

  Program run() {
    Program& out = out_;
    out.strategy = "greedy";
    out.loss = g_.base.loss;
    out.grad_targets = g_.base.grad_targets;
    out.instructions.reserve(2 * g_.base.instructions.size());  // the base stream plus recomputations, mostly
    for (const GreedyGraph::Step& step : g_.steps) {
      const Instruction& ins = step.ins;
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
        make_room(step.need.peak_extra);
        out.instructions.push_back(ins);
        current_ += static_cast<std::size_t>(step.need.stays);
      } else {  // backward
        const std::vector<int>& saved = g_.saved[static_cast<std::size_t>(ins.node)];
        for (int s : saved) {
          ensure_resident(s, out);
          pin(s);
        }
        // The memory policy says what this vjp allocates (in-place gradients stay;
        // accumulation temporaries and scratch are held only while it runs).
        make_room(step.need.peak_extra);
        out.instructions.push_back(ins);
        current_ += static_cast<std::size_t>(step.need.stays);
        if (step.frees_grad) {
          current_ -= g_.bytes[static_cast<std::size_t>(ins.node)];
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
  bool used_queue() const { return use_queue_; }
  Program partial() { return std::move(out_); }  // after a failure: what was emitted before it

 private:
  // state_ bits; the neighbourhood terms count a value as evicted when it is exactly `computed`.
  static constexpr std::uint8_t resident_bit = 1, computed_bit = 2, param_bit = 4;
  bool is_param(int v) const { return state_[static_cast<std::size_t>(v)] & param_bit; }
  bool resident(int v) const { return state_[static_cast<std::size_t>(v)] & resident_bit; }
  bool evicted(int v) const { return state_[static_cast<std::size_t>(v)] == computed_bit; }
  bool reads_staleness() const { return heuristic_ != Heuristic::size && heuristic_ != Heuristic::msps; }

  void pin(int v) {
    if (pinned_[static_cast<std::size_t>(v)]++ == 0) touch(v, false);
  }
  void unpin(int v) {
    if (--pinned_[static_cast<std::size_t>(v)] == 0) touch(v, false);
  }
  void access(int v) {
    auto i = static_cast<std::size_t>(v);
    if (last_access_[i] == clock_) return;
    last_access_[i] = clock_;
    if (reads_staleness()) touch(v, false);
  }

  // A use of v by the base program is done; a value nobody will read again leaves.
  void release_use(int v) {
    if (is_param(v)) return;
    auto i = static_cast<std::size_t>(v);
    if (--remaining_uses_[i] == 0 && resident(v) && pinned_[i] == 0) drop(v);
  }

  void drop(int v) {
    auto i = static_cast<std::size_t>(v);
    state_[i] &= static_cast<std::uint8_t>(~resident_bit);
    out_.instructions.push_back({InstructionKind::free, v});
    current_ -= g_.bytes[i];
    const int slot = pos_[i];
    if (slot >= 0) {  // swap-remove: the list's order, hence the ties, as they have always been
      const std::size_t last_slot = resident_list_.size() - 1;
      const int moved = resident_list_.back();
      resident_list_[static_cast<std::size_t>(slot)] = moved;
      pos_[static_cast<std::size_t>(moved)] = slot;
      resident_list_.pop_back();
      pos_[i] = -1;
      if (use_queue_) {
        queue_.clear(last_slot);
        if (moved != v) touch(moved, false);
      }
    }
    residency_changed(v);
  }

  // Compute v now (its inputs must be resident), making room first.
  void materialise(int v, Program& out) {
    const std::span<const int> inputs = g_.inputs(v);
    for (int in : inputs) pin(in);
    const InstructionBytes& need = g_.compute_need[static_cast<std::size_t>(v)];
    make_room(need.peak_extra);
    out.instructions.push_back({InstructionKind::compute, v});
    auto i = static_cast<std::size_t>(v);
    const bool recomputed = state_[i] & computed_bit;
    if (recomputed) {
      if (++recomputed_ > recompute_limit_) throw Thrashing{};
    }
    state_[i] |= resident_bit | computed_bit;
    pos_[i] = static_cast<int>(resident_list_.size());
    resident_list_.push_back(v);
    current_ += static_cast<std::size_t>(need.stays);
    last_access_[i] = clock_;
    touch(v, true);
    if (recomputed) residency_changed(v);
    for (int in : inputs) unpin(in);
    // An input rebuilt only to recompute v, which the program no longer references, goes now.
    for (int in : inputs) {
      auto k = static_cast<std::size_t>(in);
      if (!is_param(in) && resident(in) && pinned_[k] == 0 && remaining_uses_[k] == 0) drop(in);
    }
    // Rematerialised: no longer evicted; its class keeps its cost (no split, as in the paper).
  }

  // Makes v resident, recomputing evicted ancestors (an explicit stack: chains can be long).
  void ensure_resident(int root, Program& out) {
    if (is_param(root)) return;
    std::vector<int>& stack = ensure_stack_;
    stack.assign(1, root);
    while (!stack.empty()) {
      int t = stack.back();
      if (resident(t)) {
        access(t);
        stack.pop_back();
        continue;
      }
      int missing = -1;
      for (int in : g_.inputs(t))
        if (!is_param(in) && !resident(in)) {
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
    access(root);
  }

  int find(int x) {
    while (parent_[static_cast<std::size_t>(x)] != x) {
      parent_[static_cast<std::size_t>(x)] = parent_[static_cast<std::size_t>(parent_[static_cast<std::size_t>(x)])];
      x = parent_[static_cast<std::size_t>(x)];
    }
    return x;
  }

  // Sum of costs of evicted values connected to t through evicted values (capped search).
  // `watch`: register t with every value the search tries (dtr under the queue).
  double evicted_neighbourhood_cost(int t, bool watch) {
    double total = 0;
    std::size_t seen = 0;
    if (seen_stamp_.size() != n_) seen_stamp_.assign(n_, 0);
    if (watch && tried_stamp_.size() != n_) tried_stamp_.assign(n_, 0);
    const std::uint32_t stamp = ++stamp_;
    const std::uint32_t reader = watch ? ++score_stamp_[static_cast<std::size_t>(t)] : 0;
    stack_.clear();
    auto& stack = stack_;
    auto visit = [&](int u) {
      auto i = static_cast<std::size_t>(u);
      if (watch && !is_param(u) && tried_stamp_[i] != stamp) {
        tried_stamp_[i] = stamp;
        watch_value(u, t, reader);
      }
      if (!evicted(u)) return;
      if (seen_stamp_[i] == stamp) return;
      seen_stamp_[i] = stamp;
      ++seen;
      stack.push_back(u);
      total += g_.cost[i];
    };
    for (int u : g_.neighbours(t)) visit(u);
    while (!stack.empty() && seen < 256) {
      int u = stack.back();
      stack.pop_back();
      for (int w : g_.neighbours(u)) visit(w);
    }
    return total;
  }

  // The numerator of t's score, c + e as the heuristic has it (dtr, dtr-eq, msps; c for
  // dtr-local). `watch`: register t with the classes it read (dtr-eq under the queue).
  double numerator(int t, bool watch) {
    auto i = static_cast<std::size_t>(t);
    const double c = g_.cost[i];
    switch (heuristic_) {
      case Heuristic::dtr: return c + evicted_neighbourhood_cost(t, watch);
      case Heuristic::dtr_eq: {
        double e = 0;
        std::vector<int>& roots = roots_;
        roots.clear();
        for (int u : g_.neighbours(t)) {
          if (!evicted(u)) continue;
          int r = find(u);
          if (std::find(roots.begin(), roots.end(), r) == roots.end()) {
            roots.push_back(r);
            e += class_cost_[static_cast<std::size_t>(r)];
          }
        }
        if (watch) {
          const std::uint32_t stamp = ++score_stamp_[i];
          for (int r : roots) watch_value(r, t, stamp);
        }
        return c + e;
      }
      case Heuristic::dtr_local: return c;
      case Heuristic::msps: {
        double e = 0;
        for (int in : g_.inputs(t))
          if (!is_param(in) && !resident(in)) e += g_.cost[static_cast<std::size_t>(in)];
        return c + e;
      }
      case Heuristic::lru:
      case Heuristic::size: return 0;
    }
    return 0;
  }

  // The score of t, as it has always been computed, from its numerator `a`.
  double score_of(std::size_t i, double a) const {
    const double m = g_.m[i];
    const double s = static_cast<double>(clock_ - last_access_[i] + 1);
    switch (heuristic_) {
      case Heuristic::dtr:
      case Heuristic::dtr_eq:
      case Heuristic::dtr_local: return a / (m * s);
      case Heuristic::lru: return -s;
      case Heuristic::size: return -m;
      case Heuristic::msps: return a / m;
    }
    return 0;
  }
  bool has_numerator() const { return heuristic_ != Heuristic::lru && heuristic_ != Heuristic::size; }

  void evict(int t) {
    drop(t);
    if (heuristic_ == Heuristic::dtr_eq) {  // merge t's class with evicted neighbours
      auto i = static_cast<std::size_t>(t);
      const int root = find(t);
      class_cost_[static_cast<std::size_t>(root)] += g_.cost[i];
      class_cost_added(root, g_.cost[i]);
      for (int u : g_.neighbours(t)) {
        if (!evicted(u)) continue;
        int a = find(t), b = find(u);
        if (a == b) continue;
        parent_[static_cast<std::size_t>(b)] = a;
        class_cost_[static_cast<std::size_t>(a)] += class_cost_[static_cast<std::size_t>(b)];
        readers_changed(a);  // a gained b's whole cost, b is no root any more
        readers_changed(b);
      }
    }
  }

  // The victim: the unpinned resident with the smallest score, first in list order on a tie.
  int choose_victim() {
    if (use_queue_) {
      const bool many = selection_ == GreedySelection::automatic ? touch_calls_ * 16 >= resident_list_.size()
                                                                 : selection_ == GreedySelection::cached;
      touch_calls_ = 0;
      if (!many) {
        flush();
        const int slot = queue_.top(clock_);
        return slot < 0 ? -1 : resident_list_[static_cast<std::size_t>(slot)];
      }
    }
    int victim = -1;
    double best = std::numeric_limits<double>::infinity();
    for (int t : resident_list_) {
      auto i = static_cast<std::size_t>(t);
      if (pinned_[i] > 0) continue;
      double a = 0;
      if (!use_queue_) {  // from scratch
        if (has_numerator()) a = numerator(t, false);
      } else {  // the cached numerator (the leaf itself waits in touched_ for a flush)
        if (a_dirty_[i]) {
          a_[i] = numerator(t, true);
          a_dirty_[i] = 0;
        }
        a = a_[i];
      }
      double h = score_of(i, a);
      if (h < best) {
        best = h;
        victim = t;
      }
    }
    return victim;
  }

  void make_room(std::size_t need) {
    std::size_t last_checked = 0;
    while (current_ + need > budget_) {
      last_checked = current_ + need;
      const int victim = choose_victim();
      if (victim < 0) throw Infeasible{current_ + need};
      evict(victim);
    }
    // Any budget up to last_checked - 1 makes the same evictions here (see interval()).
    if (last_checked > 0) upper_ = std::min(upper_, last_checked - 1);
    peak_ = std::max(peak_, current_ + need);
  }

  // ---- keeping the queue's leaves current ----

  // v's leaf must be rewritten before the next choice; `numerator_changed`: its a = c + e too.
  void touch(int v, bool numerator_changed) {
    if (!use_queue_) return;
    auto i = static_cast<std::size_t>(v);
    ++touch_calls_;
    if (numerator_changed) a_dirty_[i] = 1;
    if (!touched_flag_[i]) {
      touched_flag_[i] = 1;
      touched_.push_back(v);
    }
  }

  void flush() {
    for (int v : touched_) {
      auto i = static_cast<std::size_t>(v);
      touched_flag_[i] = 0;
      if (!resident(v)) continue;
      if (a_dirty_[i]) {
        a_[i] = numerator(v, true);
        a_dirty_[i] = 0;
      }
      const auto slot = static_cast<std::size_t>(pos_[i]);
      if (pinned_[i] > 0) {
        queue_.clear(slot);
        continue;
      }
      const double m = g_.m[i];
      switch (heuristic_) {
        case Heuristic::dtr:
        case Heuristic::dtr_eq:
        case Heuristic::dtr_local: queue_.set(slot, a_[i], m, last_access_[i]); break;
        case Heuristic::lru: queue_.set(slot, static_cast<double>(last_access_[i]), 1, 0); break;  // -s orders as la
        case Heuristic::size: queue_.set(slot, -m, 1, 0); break;
        case Heuristic::msps: queue_.set(slot, a_[i] / m, 1, 0); break;
      }
    }
    touched_.clear();
  }

  // v was dropped or rematerialised: mark the residents whose numerator may change.
  void residency_changed(int v) {
    if (!use_queue_) return;
    switch (heuristic_) {
      case Heuristic::dtr: readers_changed(v); break;
      case Heuristic::dtr_eq:
        for (int u : g_.neighbours(v))
          if (resident(u)) touch(u, true);
        break;
      case Heuristic::msps:
        for (int u : g_.consumers(v))
          if (resident(u)) touch(u, true);
        break;
      default: break;
    }
  }

  // t's numerator read u (dtr: u's residency; dtr-eq: class root u), registered with the
  // stamp of that computation.
  void watch_value(int u, int t, std::uint32_t stamp) {
    Watchers& w = watchers_[static_cast<std::size_t>(u)];
    w.list.emplace_back(t, stamp);
    if (w.list.size() >= w.compact_at) {  // drop stale entries, amortised O(1) per entry
      std::erase_if(w.list, [&](const std::pair<int, std::uint32_t>& e) { return !reads(e); });
      w.compact_at = 2 * w.list.size() + 16;
    }
  }
  bool reads(const std::pair<int, std::uint32_t>& e) const {  // the entry is t's current numerator
    return resident(e.first) && score_stamp_[static_cast<std::size_t>(e.first)] == e.second;
  }
  // What the readers of u read changed: they recompute.
  void readers_changed(int u) {
    if (!use_queue_) return;
    Watchers& w = watchers_[static_cast<std::size_t>(u)];
    for (const auto& e : w.list)
      if (reads(e)) touch(e.first, true);
    w.list.clear();
    w.compact_at = 16;
  }
  // Class r (still a root) gained `delta`: each reader's numerator c + ... + cost(r) + ...
  // gains exactly delta when the sums are exact integers.
  void class_cost_added(int r, double delta) {
    if (!use_queue_) return;
    if (!g_.sums_exact) return readers_changed(r);
    for (const auto& e : watchers_[static_cast<std::size_t>(r)].list)
      if (reads(e)) {
        a_[static_cast<std::size_t>(e.first)] += delta;
        touch(e.first, false);
      }
  }

  const GreedyGraph& g_;
  const Tape& tape_;
  std::size_t budget_;
  Heuristic heuristic_;
  std::size_t n_;
  Program out_;
  std::vector<std::uint8_t> state_;  // resident_bit | computed_bit | param_bit
  std::vector<int> pinned_, parent_, resident_list_, pos_;  // pos_: index in resident_list_, or -1
  std::vector<std::int64_t> last_access_, remaining_uses_;
  std::vector<double> class_cost_;
  std::size_t current_ = 0, peak_ = 0, upper_ = std::numeric_limits<std::size_t>::max();
  std::int64_t clock_ = 0, recomputed_ = 0, recompute_limit_ = 0;
  std::vector<std::uint32_t> seen_stamp_;  // the capped search's visited marks (stamp_ per search)
  std::uint32_t stamp_ = 0;
  std::vector<int> stack_, ensure_stack_, roots_;
  // The queue and what keeps it current.
  bool use_queue_ = false;
  GreedySelection selection_ = GreedySelection::automatic;
  EvictionQueue queue_;
  std::vector<double> a_;  // per resident: its numerator, valid unless a_dirty_
  std::vector<std::uint8_t> touched_flag_, a_dirty_;
  std::vector<int> touched_;
  std::size_t touch_calls_ = 0;  // since the last choice
  struct Watchers {
    std::vector<std::pair<int, std::uint32_t>> list;  // (resident, score_stamp_ of the computation that read it)
    std::size_t compact_at = 16;
  };
  std::vector<Watchers> watchers_;          // dtr: per value; dtr-eq: per class root
  std::vector<std::uint32_t> score_stamp_;  // dtr, dtr-eq: numerator computations per value
  std::vector<std::uint32_t> tried_stamp_;  // dtr: the values the current search tried
};

// One run at one internal budget: the plan and its interval of constancy, or nothing.
struct Run {
  bool feasible = false;
  Program program;
  std::size_t peak = 0, upper = 0;
};

GreedyRun run_once(const GreedyGraph& g, std::size_t budget, Heuristic h, GreedySelection selection,
                   bool keep_partial) {
  GreedyRun r;
  GreedyPlanner planner(g, budget, h, selection);
  r.used_queue = planner.used_queue();
  try {
    r.program = planner.run();
    r.program.strategy = "greedy";
    r.peak = planner.peak();
    r.upper = planner.upper();
  } catch (const Infeasible& e) {
    r.outcome = GreedyRun::Outcome::infeasible;
    r.needed = e.needed;
  } catch (const Thrashing&) {
    r.outcome = GreedyRun::Outcome::thrashing;
  }
  if (r.outcome != GreedyRun::Outcome::planned && keep_partial) r.program = planner.partial();
  r.recomputations = planner.recomputations();
  return r;
}

Run run_at(const GreedyGraph& g, std::size_t budget, Heuristic h) {
  GreedyRun one = run_once(g, budget, h, GreedySelection::automatic, false);
  Run r;
  if (one.outcome != GreedyRun::Outcome::planned) return r;
  r.feasible = true;
  r.program = std::move(one.program);
  r.peak = one.peak;
  r.upper = one.upper;
  return r;
}

// The acceptance rule for greedy (planning.hpp), with its family indexed by the
// internal budget b. A run at b that succeeds with peak p makes the same decisions for
// every b' in [p, upper] (GreedyPlanner::upper), so greedy at b = p is that same plan.
// Eviction is not monotone in the budget (a run may fail at b and succeed at b - 1,
// notably with size and msps), so the threshold is fixed by one deterministic search
// that does not depend on the budget asked for: a bisection between a certified
// infeasible budget (below some instruction's own inputs and output) and store-all's
// peak, where each successful run moves the upper end to its own peak. It ends with
// M* feasible (a run at M* peaks at exactly M*, unless M* is store-all's peak) and
// M* - 1 infeasible; the feasible points it visited, M* = h_k < ... < h_0, each peak
// at exactly their value. The search runs lazily: to return the run at B it only needs
// to know that M* is at most that run's peak, which its first few probes settle.
// Greedy accepts B exactly when B >= M*. It returns the run at B when that succeeds
// with a peak of at least M*, else the run at the largest visited point h <= B. So
// every plan it returns peaks at or above M*, the least feasible budget is M*, and a
// plan for a smaller budget is always a valid answer for a larger one.
class GreedySearch {
 public:
  // `budget`: the budget the plan is for, when there is one. With `parallel`, the run at
  // that budget, which needs nothing but the graph, goes to a second thread while this
  // one simulates store-all and then makes the bisection's first probe (a function of
  // the graph only, and needed by every budget below store-all's peak): the same runs
  // with the same results as one after another, in less wall time.
  GreedySearch(const Tape& tape, int loss, Heuristic h, std::string heuristic, const NodeCosts& costs,
               std::optional<std::size_t> budget, bool parallel)
      : tape_(tape), loss_(loss), h_(h), heuristic_(std::move(heuristic)), graph_(tape, loss, costs) {
    if (!budget || !parallel) {
      top_ = simulate(tape, graph_.base).peak_bytes;
      return;
    }
    auto at_budget = std::async(std::launch::async, [this, b = *budget] { return run_at(graph_, b, h_); });
    top_ = simulate(tape, graph_.base).peak_bytes;
    if (*budget < top_ && !bisection_done()) {
      const std::size_t first = next_probe();
      if (first != *budget) {
        ++runs_;
        runs_at_.emplace(first, run_at(graph_, first, h_));
      }
    }
    ++runs_;
    runs_at_.emplace(*budget, at_budget.get());
  }
  std::size_t top() const { return top_; }
  const Program& base() const { return graph_.base; }
  int runs() const { return runs_; }

  Run& at(std::size_t b) {
    auto it = runs_at_.find(b);
    if (it != runs_at_.end()) return it->second;
    ++runs_;
    return runs_at_.emplace(b, run_at(graph_, b, h_)).first->second;
  }

  // M*, and the visited feasible points (each a budget whose run peaks at exactly it).
  std::size_t threshold() {
    while (!bisection_done()) bisection_step();
    return hi_;
  }

  // Whether M* <= p, running the bisection only as far as that takes: its upper end
  // only falls, so once it is at or below p the answer is yes whatever comes next.
  bool threshold_at_most(std::size_t p) {
    while (!bisection_done() && hi_ > p && lo_ < p) bisection_step();
    return hi_ <= p;
  }

  // The plan for budget B < top(); refuses B below M*. The run at B is the answer when
  // it succeeds with a peak of at least M*, which needs only the bisection's first
  // steps when B is well above M* (a tenth of store-all's peak on the 80,003-node MLP:
  // 3 runs instead of 20).
  Run& plan_for(std::size_t B) {
    Run& r = at(B);
    if (r.feasible && threshold_at_most(r.peak)) return r;
    const std::size_t least = threshold();
    if (B < least) refuse(B);
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
  GreedyGraph graph_;
  std::size_t top_ = 0;
  int runs_ = 0;
  std::map<std::size_t, Run> runs_at_;
  // The bisection's state: lo_ is certified or found infeasible, hi_ feasible with a
  // run peaking at exactly hi_; started_ once the run at store-all's peak set hi_.
  bool started_ = false, descending_ = true;
  std::size_t lo_ = 0, hi_ = 0;
  std::vector<std::size_t> points_;

  bool bisection_done() {
    start_bisection();
    return hi_ - lo_ <= 1;
  }
  void start_bisection() {
    if (started_) return;
    started_ = true;
    lo_ = certified_infeasible();
    hi_ = top_;  // store-all's peak: the run there evicts nothing and succeeds
    points_.push_back(hi_);
  }
  // While every probe has succeeded the search descends by eighths of the interval
  // (a budget far below store-all's peak is reached in a few runs); after the first
  // failure it halves. Either way the sequence of probes depends on the graph and the
  // heuristic only, never on the budget asked for.
  std::size_t next_probe() const {
    const std::size_t step = descending_ ? std::max<std::size_t>(1, (hi_ - lo_) / 8) : (hi_ - lo_) / 2;
    return lo_ + step;
  }
  void bisection_step() {
    const std::size_t mid = next_probe();
    const Run& r = at(mid);
    if (r.feasible) {
      hi_ = r.peak;  // > lo_: a run at lo_ would have made the same decisions
      points_.push_back(hi_);
    } else {
      lo_ = mid;
      descending_ = false;
    }
  }
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
    const bool parallel = cpu_threads() > 1;
    GreedySearch search(request.tape, request.loss, h, options_.heuristic, request.costs ? *request.costs : analytic,
                        request.budget.bytes, parallel);
    // Without a budget the greedy runtime never evicts: it is store-all.
    const std::size_t B = request.budget.bytes ? *request.budget.bytes : search.top();
    // The run at B is usually the answer: with two threads its simulation starts while
    // the search settles that (the run is not touched meanwhile; the map keeps it in place).
    std::future<StepReport> simulated_at_B;
    const Run* at_B = nullptr;
    if (parallel && B < search.top()) {
      at_B = &search.at(B);
      if (at_B->feasible)
        simulated_at_B = std::async(std::launch::async, [&tape = request.tape, at_B] { return simulate(tape, at_B->program); });
    }
    Run& run = B >= search.top() ? search.at(B) : search.plan_for(B);
    if (!run.feasible) throw Error("[greedy] internal: the run at store-all's peak failed");
    PlanReport report;
    report.strategy = name();
    report.setting = fmt::format("{}, budget {}", options_.heuristic, bytes_text(B));
    bool predicted = false;
    if (simulated_at_B.valid()) {
      StepReport speculative = simulated_at_B.get();  // waited for before anything moves the program
      if (&run == at_B) {
        report.predicted = std::move(speculative);
        predicted = true;
      }
    }
    report.program = std::move(run.program);  // the search ends here
    if (!predicted) report.predicted = simulate(request.tape, report.program);
    report.candidates_simulated = search.runs();
    // The plan and store-all's stream weighed, and store-all simulated, here: plan() need
    // not repeat them (nor make the analytic costs a second time).
    const NodeCosts& costs = request.costs ? *request.costs : analytic;
    report.cost_source = costs.source;
    report.planned_time = program_time(request.tape, report.program, costs);
    report.store_all_time = program_time(request.tape, search.base(), costs);
    report.store_all_peak = search.top();
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

GreedyRun run_budget_greedy(const Tape& tape, int loss, std::size_t budget, const std::string& heuristic,
                            const NodeCosts& costs, GreedySelection selection) {
  const Heuristic h = parse_heuristic(heuristic);
  check_loss(tape, loss, "greedy");
  const GreedyGraph graph(tape, loss, costs);
  return run_once(graph, budget, h, selection, true);
}

std::unique_ptr<RematStrategy> make_greedy_strategy(const StrategyOptions& o) {
  return std::make_unique<GreedyStrategy>(o);
}

}  // namespace remat
