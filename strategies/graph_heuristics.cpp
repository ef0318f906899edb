// Contract: the heuristic schedules of graph_heuristics.hpp.
#include "strategies/graph_heuristics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace remat {
namespace {

// Largest forward reader index of each value (-1 when no forward node reads it).
struct ReaderSpans {
  std::vector<int> last_forward;
  explicit ReaderSpans(const TrainingGraph& g) : last_forward(g.values.size(), -1) {
    for (std::size_t v = 0; v < g.values.size(); ++v)
      for (int r : g.values[v].readers)
        if (!g.nodes[static_cast<std::size_t>(r)].backward) last_forward[v] = std::max(last_forward[v], r);
  }
};

}  // namespace

GraphSchedule checkpoint_schedule(const TrainingGraph& g, const CheckpointPolicy& policy) {
  const int n = g.size();
  const ReaderSpans spans(g);
  const std::vector<int> horizon = value_horizons(g);
  const std::size_t V = g.values.size();
  std::vector<char> resident(V, 0), cached(V, 0);
  GraphSchedule out;
  std::vector<char> in_stage(static_cast<std::size_t>(n), 0);
  for (int t = 0; t < n; ++t) {
    // The least R for this stage: v_t and, going down, the producers of missing inputs.
    std::fill(in_stage.begin(), in_stage.end(), 0);
    in_stage[static_cast<std::size_t>(t)] = 1;
    for (int k = t; k >= 0; --k) {
      if (!in_stage[static_cast<std::size_t>(k)]) continue;
      for (int v : g.nodes[static_cast<std::size_t>(k)].inputs) {
        if (resident[static_cast<std::size_t>(v)]) continue;
        const int p = g.values[static_cast<std::size_t>(v)].producer;
        if (!g.nodes[static_cast<std::size_t>(p)].recomputable)
          throw Error(fmt::format("[checkpoint schedule] internal: value '{}' of a non-recomputable node is not resident "
                                  "at stage {}", g.values[static_cast<std::size_t>(v)].name, t));
        in_stage[static_cast<std::size_t>(p)] = 1;
      }
    }
    for (int k = 0; k <= t; ++k)
      if (in_stage[static_cast<std::size_t>(k)]) {
        out.steps.push_back(k);
        for (int v : g.nodes[static_cast<std::size_t>(k)].outputs) {
          resident[static_cast<std::size_t>(v)] = 1;
          if (k < t) cached[static_cast<std::size_t>(v)] = 1;
        }
      }
    // Which values enter stage t + 1.
    for (std::size_t v = 0; v < V; ++v) {
      if (!resident[v]) continue;
      const int p = g.values[v].producer;
      const bool useful = horizon[v] > t;
      const bool keep = (useful && (!g.nodes[static_cast<std::size_t>(p)].recomputable ||
                                    (v < policy.checkpoint.size() && policy.checkpoint[v]) ||
                                    (policy.cache_recomputed && cached[v]))) ||
                        (policy.keep_forward && spans.last_forward[v] > t);
      if (!keep) resident[v] = 0;
    }
  }
  return out;
}

std::vector<char> chen_checkpoints(const TrainingGraph& g, std::int64_t threshold) {
  std::vector<char> keep(g.values.size(), 0);
  std::int64_t running = 0;
  for (const auto& node : g.nodes) {
    if (node.backward || !node.recomputable) continue;
    for (int v : node.outputs) {
      running += g.values[static_cast<std::size_t>(v)].bytes;
      if (running > threshold) {
        keep[static_cast<std::size_t>(v)] = 1;
        running = 0;
      }
    }
  }
  return keep;
}

std::optional<GraphSchedule> dtr_schedule(const TrainingGraph& g, std::int64_t budget) {
  const int n = g.size();
  const std::size_t V = g.values.size();
  std::vector<char> resident(V, 0), ever(V, 0);
  std::vector<int> pinned(V, 0);
  std::vector<std::int64_t> last_access(V, 0);
  std::vector<int> remaining(V, 0);  // reads left in the replayed order
  for (std::size_t v = 0; v < V; ++v) remaining[v] = static_cast<int>(g.values[v].readers.size());
  std::int64_t current = 0, clock = 0, recomputed = 0;
  const std::int64_t limit = 50 * static_cast<std::int64_t>(n) + 1000;
  GraphSchedule out;
  struct Fail {};

  auto drop = [&](int v) {
    if (!resident[static_cast<std::size_t>(v)]) return;
    resident[static_cast<std::size_t>(v)] = 0;
    current -= g.values[static_cast<std::size_t>(v)].bytes;
  };
  auto score = [&](int v) {
    const GraphValue& val = g.values[static_cast<std::size_t>(v)];
    const GraphNode& p = g.nodes[static_cast<std::size_t>(val.producer)];
    double c = p.cost;
    for (int in : p.inputs)
      if (!resident[static_cast<std::size_t>(in)])
        c += g.nodes[static_cast<std::size_t>(g.values[static_cast<std::size_t>(in)].producer)].cost;
    const double m = static_cast<double>(std::max<std::int64_t>(val.bytes, 1));
    const double s = static_cast<double>(clock - last_access[static_cast<std::size_t>(v)] + 1);
    return c / (m * s);
  };
  auto make_room = [&](std::int64_t need) {
    while (current + need > budget) {
      int victim = -1;
      double best = std::numeric_limits<double>::infinity();
      for (std::size_t v = 0; v < V; ++v) {
        if (!resident[v] || pinned[v] > 0) continue;
        if (!g.nodes[static_cast<std::size_t>(g.values[v].producer)].recomputable) continue;
        const double h = score(static_cast<int>(v));
        if (h < best) {
          best = h;
          victim = static_cast<int>(v);
        }
      }
      if (victim < 0) throw Fail{};
      drop(victim);
    }
  };
  auto compute = [&](int k) {
    const GraphNode& node = g.nodes[static_cast<std::size_t>(k)];
    for (int v : node.inputs) ++pinned[static_cast<std::size_t>(v)];
    std::int64_t fresh = node.workspace;
    for (int v : node.outputs)
      if (!resident[static_cast<std::size_t>(v)]) fresh += g.values[static_cast<std::size_t>(v)].bytes;
    for (int v : node.outputs) ++pinned[static_cast<std::size_t>(v)];
    make_room(fresh);
    for (int v : node.outputs) --pinned[static_cast<std::size_t>(v)];
    out.steps.push_back(k);
    ++clock;
    for (int v : node.outputs) {
      if (!resident[static_cast<std::size_t>(v)]) current += g.values[static_cast<std::size_t>(v)].bytes;
      resident[static_cast<std::size_t>(v)] = 1;
      if (ever[static_cast<std::size_t>(v)] && ++recomputed > limit) throw Fail{};
      ever[static_cast<std::size_t>(v)] = 1;
      last_access[static_cast<std::size_t>(v)] = clock;
    }
    for (int v : node.inputs) {
      --pinned[static_cast<std::size_t>(v)];
      last_access[static_cast<std::size_t>(v)] = clock;
    }
  };
  // Makes value `root` resident, recomputing evicted producers (explicit stack).
  auto ensure = [&](int root) {
    std::vector<int> stack{g.values[static_cast<std::size_t>(root)].producer};
    if (resident[static_cast<std::size_t>(root)]) return;
    while (!stack.empty()) {
      const int k = stack.back();
      const GraphNode& node = g.nodes[static_cast<std::size_t>(k)];
      int missing = -1;
      for (int v : node.inputs)
        if (!resident[static_cast<std::size_t>(v)]) {
          missing = v;
          break;
        }
      if (missing >= 0) {
        const int p = g.values[static_cast<std::size_t>(missing)].producer;
        if (!g.nodes[static_cast<std::size_t>(p)].recomputable || stack.size() > static_cast<std::size_t>(n) + 1)
          throw Fail{};
        stack.push_back(p);
        continue;
      }
      if (!g.nodes[static_cast<std::size_t>(k)].recomputable) throw Fail{};
      // Pin the other values this recomputation path still needs.
      compute(k);
      stack.pop_back();
    }
  };

  try {
    for (int t = 0; t < n; ++t) {
      const GraphNode& node = g.nodes[static_cast<std::size_t>(t)];
      for (int v : node.inputs) {
        ensure(v);
        ++pinned[static_cast<std::size_t>(v)];
      }
      for (int v : node.inputs) --pinned[static_cast<std::size_t>(v)];
      // Inputs may have been evicted while recomputing a later input: bring them back pinned.
      bool all = false;
      while (!all) {
        all = true;
        for (int v : node.inputs) ++pinned[static_cast<std::size_t>(v)];
        for (int v : node.inputs)
          if (!resident[static_cast<std::size_t>(v)]) {
            all = false;
            --pinned[static_cast<std::size_t>(v)];
            ensure(v);
            ++pinned[static_cast<std::size_t>(v)];
          }
        for (int v : node.inputs) --pinned[static_cast<std::size_t>(v)];
      }
      compute(t);
      for (int v : node.inputs)
        if (--remaining[static_cast<std::size_t>(v)] <= 0) drop(v);
      for (int v : node.outputs)
        if (remaining[static_cast<std::size_t>(v)] <= 0) drop(v);
    }
  } catch (const Fail&) {
    return std::nullopt;
  }
  return out;
}

namespace {

std::vector<HeuristicSchedule> family(const TrainingGraph& g, std::optional<std::int64_t> dtr_budget) {
  std::vector<HeuristicSchedule> all;
  auto add = [&](GraphSchedule s, std::string name) {
    s = drop_unused_recomputations(g, s);
    HeuristicSchedule h;
    h.stats = simulate_graph_schedule(g, s);
    h.schedule = std::move(s);
    h.name = std::move(name);
    all.push_back(std::move(h));
  };
  std::int64_t forward_bytes = 0, smallest = std::numeric_limits<std::int64_t>::max();
  std::set<std::vector<char>> seen;
  for (const auto& node : g.nodes)
    if (!node.backward && node.recomputable)
      for (int v : node.outputs) {
        forward_bytes += g.values[static_cast<std::size_t>(v)].bytes;
        smallest = std::min(smallest, std::max<std::int64_t>(1, g.values[static_cast<std::size_t>(v)].bytes));
      }
  std::vector<std::pair<std::vector<char>, std::string>> sets;
  sets.emplace_back(std::vector<char>(g.values.size(), 0), "none");
  {
    std::vector<char> every(g.values.size(), 0);
    for (const auto& node : g.nodes)
      if (!node.backward)
        for (int v : node.outputs) every[static_cast<std::size_t>(v)] = 1;
    sets.emplace_back(std::move(every), "all");
  }
  if (forward_bytes > 0) {
    const double lo = static_cast<double>(smallest), hi = static_cast<double>(forward_bytes);
    const int steps = 40;
    for (int i = 0; i <= steps; ++i) {
      const auto threshold = static_cast<std::int64_t>(lo * std::pow(hi / lo, static_cast<double>(i) / steps));
      auto keep = chen_checkpoints(g, threshold);
      if (!seen.insert(keep).second) continue;
      sets.emplace_back(std::move(keep), fmt::format("chen(threshold={})", threshold));
    }
  }
  for (const auto& [keep, name] : sets)
    for (int mode = 0; mode < 4; ++mode) {
      CheckpointPolicy p{keep, (mode & 1) != 0, (mode & 2) != 0};
      add(checkpoint_schedule(g, p),
          fmt::format("checkpoints {}{}{}", name, p.keep_forward ? ", keep forward" : "", p.cache_recomputed ? ", cache" : ""));
    }
  if (dtr_budget) {
    if (auto d = dtr_schedule(g, *dtr_budget)) add(to_stage_form(g, *d), "dtr (stage form)");
  }
  return all;
}

}  // namespace

std::optional<HeuristicSchedule> best_heuristic_schedule(const TrainingGraph& g, std::int64_t budget) {
  std::optional<HeuristicSchedule> best;
  for (auto& h : family(g, budget)) {
    if (h.stats.peak > budget) continue;
    if (!best || h.stats.cost < best->stats.cost ||
        (h.stats.cost == best->stats.cost && h.stats.peak < best->stats.peak))
      best = std::move(h);
  }
  return best;
}

HeuristicSchedule least_memory_heuristic_schedule(const TrainingGraph& g) {
  auto all = family(g, std::nullopt);
  HeuristicSchedule* best = nullptr;
  for (auto& h : all)
    if (!best || h.stats.peak < best->stats.peak || (h.stats.peak == best->stats.peak && h.stats.cost < best->stats.cost))
      best = &h;
  return std::move(*best);
}

}  // namespace remat
