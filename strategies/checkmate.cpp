// Contract: Checkmate's MILP on CBC, its LP relaxation with two-phase rounding, and the
// strategy on tapes (see checkmate.hpp for the formulation and its sources).
// Layout: Model (columns and rows kept as data, so that a schedule's accounting can be
// evaluated row by row), canonical_solution (a stage-form schedule as a point of the
// model), the CBC and CLP drivers with remat's deadline, rounding, then the entry points.
#include "strategies/checkmate.hpp"

#include "strategies/graph_json.hpp"
#include "strategies/strategies.hpp"

#include <CbcEventHandler.hpp>
#include <CbcModel.hpp>
#include <CbcSolver.hpp>
#include <ClpEventHandler.hpp>
#include <ClpSimplex.hpp>
#include <CoinPackedMatrix.hpp>
#include <OsiClpSolverInterface.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdlib>
#include <cmath>
#include <limits>
#include <mutex>
#include <numeric>
#include <random>

namespace remat {

const char* checkmate_status_name(CheckmateStatus status) {
  switch (status) {
    case CheckmateStatus::optimal: return "optimal";
    case CheckmateStatus::feasible: return "feasible";
    case CheckmateStatus::infeasible: return "infeasible";
    case CheckmateStatus::no_solution: return "no_solution";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr double inf = std::numeric_limits<double>::infinity();

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- the model ----

struct Row {
  std::vector<int> cols;
  std::vector<double> coefs;
  double lo = -inf, hi = inf;
};

struct FreeCol {
  int value, col;
};

struct Model {
  int n = 0;
  std::vector<double> lo, hi, obj;
  std::vector<char> integer;
  std::vector<Row> rows;
  std::vector<std::vector<int>> R;                 // R[t][i] (i <= t), -1: no column
  std::vector<std::vector<int>> S;                 // S[t][v], -1: no column
  std::vector<std::vector<std::vector<FreeCol>>> F;  // F[t][k]: FREE[t, v, k]
  std::vector<std::vector<int>> U;                 // U[t][k], -1 where R[t][k] is absent
  std::vector<std::vector<int>> stage_nodes;       // k with R[t][k], ascending
  std::vector<std::pair<int, int>> memory_rows;    // (t, k) of U + W R <= budget rows ... as row index below
  std::vector<int> memory_row_index;
  double memory_unit = 1;  // bytes per model unit
  double cost_unit = 1;    // cost per objective unit
  double budget_units = inf;
  int integer_columns = 0;

  int add_col(double l, double h, double o, bool is_int) {
    lo.push_back(l);
    hi.push_back(h);
    obj.push_back(o);
    integer.push_back(is_int ? 1 : 0);
    integer_columns += is_int ? 1 : 0;
    return static_cast<int>(lo.size()) - 1;
  }
  int add_row(Row r) {
    rows.push_back(std::move(r));
    return static_cast<int>(rows.size()) - 1;
  }
  int columns() const { return static_cast<int>(lo.size()); }
};

// Objective unit: integral costs are divided by their gcd, others by the least positive cost.
double cost_unit_of(const TrainingGraph& g) {
  bool integral = true;
  double least = inf;
  for (const auto& node : g.nodes) {
    if (node.cost > 0) least = std::min(least, node.cost);
    if (node.cost != std::floor(node.cost) || node.cost > 9.0e15) integral = false;
  }
  if (!std::isfinite(least)) return 1;
  if (!integral) return least;
  std::int64_t d = 0;
  for (const auto& node : g.nodes) d = std::gcd(d, static_cast<std::int64_t>(node.cost));
  return d > 0 ? static_cast<double>(d) : 1.0;
}

// The model for `budget` (std::nullopt: no budget, memory in bytes, for accounting).
Model build_model(const TrainingGraph& g, std::optional<std::int64_t> budget) {
  Model m;
  const int n = g.size();
  const std::size_t V = g.values.size();
  m.n = n;
  m.memory_unit = budget ? static_cast<double>(std::max<std::int64_t>(*budget, 1)) : 1.0;
  m.budget_units = budget ? static_cast<double>(*budget) / m.memory_unit : inf;
  m.cost_unit = cost_unit_of(g);
  const std::vector<int> last = last_descendants(g);
  const std::vector<int> horizon = value_horizons(g);
  auto producer = [&](int v) { return g.values[static_cast<std::size_t>(v)].producer; };
  auto recomputable = [&](int k) { return g.nodes[static_cast<std::size_t>(k)].recomputable; };

  // Which columns exist (see checkmate.hpp: useless computations are left out).
  std::vector<std::vector<char>> rex(static_cast<std::size_t>(n)), sex(static_cast<std::size_t>(n), std::vector<char>(V, 0));
  for (int t = 0; t < n; ++t) {
    rex[static_cast<std::size_t>(t)].assign(static_cast<std::size_t>(t) + 1, 0);
    for (int i = 0; i <= t; ++i)
      rex[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)] =
          i == t || (recomputable(i) && last[static_cast<std::size_t>(i)] >= t);
    for (std::size_t v = 0; v < V; ++v)
      sex[static_cast<std::size_t>(t)][v] = producer(static_cast<int>(v)) < t && t <= horizon[v];
  }
  auto has_r = [&](int t, int i) { return i <= t && rex[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)]; };
  for (bool changed = true; changed;) {
    changed = false;
    for (int t = 0; t < n; ++t)
      for (int i = 0; i < t; ++i) {
        if (!rex[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)]) continue;
        for (int v : g.nodes[static_cast<std::size_t>(i)].inputs)
          if (!has_r(t, producer(v)) && !sex[static_cast<std::size_t>(t)][static_cast<std::size_t>(v)]) {
            rex[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)] = 0;
            changed = true;
            break;
          }
      }
    for (int t = 1; t < n; ++t)
      for (std::size_t v = 0; v < V; ++v)
        if (sex[static_cast<std::size_t>(t)][v] && !sex[static_cast<std::size_t>(t) - 1][v] &&
            !has_r(t - 1, producer(static_cast<int>(v)))) {
          sex[static_cast<std::size_t>(t)][v] = 0;
          changed = true;
        }
  }
  for (int t = 0; t < n; ++t)
    for (int v : g.nodes[static_cast<std::size_t>(t)].inputs)
      if (!has_r(t, producer(v)) && !sex[static_cast<std::size_t>(t)][static_cast<std::size_t>(v)])
        throw Error(fmt::format("[checkmate] internal: the value '{}' read by node {} cannot be present in its stage",
                                g.values[static_cast<std::size_t>(v)].name, g.nodes[static_cast<std::size_t>(t)].id));
  // Values of non-recomputable nodes stay until their last reader (which reads them at its own stage).
  auto forced = [&](int t, int v) {
    const GraphValue& val = g.values[static_cast<std::size_t>(v)];
    return !recomputable(val.producer) && !val.readers.empty() && val.producer < t && t <= val.readers.back();
  };

  // Columns.
  m.R.assign(static_cast<std::size_t>(n), {});
  m.S.assign(static_cast<std::size_t>(n), std::vector<int>(V, -1));
  m.U.assign(static_cast<std::size_t>(n), {});
  m.F.assign(static_cast<std::size_t>(n), {});
  m.stage_nodes.assign(static_cast<std::size_t>(n), {});
  for (int t = 0; t < n; ++t) {
    m.R[static_cast<std::size_t>(t)].assign(static_cast<std::size_t>(t) + 1, -1);
    m.U[static_cast<std::size_t>(t)].assign(static_cast<std::size_t>(t) + 1, -1);
    m.F[static_cast<std::size_t>(t)].assign(static_cast<std::size_t>(t) + 1, {});
    for (int i = 0; i <= t; ++i)
      if (rex[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)]) {
        m.R[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)] =
            m.add_col(i == t ? 1 : 0, 1, g.nodes[static_cast<std::size_t>(i)].cost / m.cost_unit, true);
        m.stage_nodes[static_cast<std::size_t>(t)].push_back(i);
      }
    for (std::size_t v = 0; v < V; ++v)
      if (sex[static_cast<std::size_t>(t)][v])
        m.S[static_cast<std::size_t>(t)][v] = m.add_col(forced(t, static_cast<int>(v)) ? 1 : 0, 1, 0, true);
  }
  auto R = [&](int t, int i) { return i <= t ? m.R[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)] : -1; };
  auto S = [&](int t, int v) {
    return t < n ? m.S[static_cast<std::size_t>(t)][static_cast<std::size_t>(v)] : -1;
  };
  auto fixed_one = [&](int col) { return col >= 0 && m.lo[static_cast<std::size_t>(col)] == 1; };
  auto bytes = [&](int v) { return static_cast<double>(g.values[static_cast<std::size_t>(v)].bytes) / m.memory_unit; };

  for (int t = 0; t < n; ++t)
    for (int k : m.stage_nodes[static_cast<std::size_t>(t)]) {
      const GraphNode& node = g.nodes[static_cast<std::size_t>(k)];
      auto consider = [&](int v) {
        if (g.values[static_cast<std::size_t>(v)].bytes == 0) return;
        if (fixed_one(S(t + 1, v))) return;  // kept: never freed in this stage
        for (int j : g.values[static_cast<std::size_t>(v)].readers)
          if (j > k && j == t) return;  // the frontier reads it later in the stage
        m.F[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)].push_back({v, m.add_col(0, 1, 0, true)});
      };
      for (int v : node.inputs) consider(v);
      for (int v : node.outputs) consider(v);
      m.U[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)] = m.add_col(0, m.budget_units, 0, false);
    }

  auto row = [&](std::initializer_list<std::pair<int, double>> terms, double lo, double hi) {
    Row r;
    for (auto [c, a] : terms)
      if (c >= 0) {
        r.cols.push_back(c);
        r.coefs.push_back(a);
      }
    r.lo = lo;
    r.hi = hi;
    if (!r.cols.empty()) m.add_row(std::move(r));
  };

  for (int t = 0; t < n; ++t) {
    // Dependencies (Checkmate 1b): R[t,j] <= R[t,p(v)] + S[t,v].
    for (int j : m.stage_nodes[static_cast<std::size_t>(t)])
      for (int v : g.nodes[static_cast<std::size_t>(j)].inputs) {
        if (fixed_one(S(t, v))) continue;
        row({{R(t, j), 1}, {R(t, producer(v)), -1}, {S(t, v), -1}}, -inf, 0);
      }
    // Persistence (1c): S[t+1,v] <= S[t,v] + R[t,p(v)]; never recompute a resident value.
    for (std::size_t v = 0; v < V; ++v) {
      const int p = producer(static_cast<int>(v));
      const int s_next = S(t + 1, static_cast<int>(v));
      if (s_next >= 0 && !fixed_one(S(t, static_cast<int>(v))) && !fixed_one(R(t, p)))
        row({{s_next, 1}, {S(t, static_cast<int>(v)), -1}, {R(t, p), -1}}, -inf, 0);
      if (S(t, static_cast<int>(v)) >= 0 && R(t, p) >= 0 && p < t && recomputable(p))
        row({{S(t, static_cast<int>(v)), 1}, {R(t, p), 1}}, -inf, 1);
    }
    // FREE from above, and freed at most once, only if present.
    std::vector<std::vector<int>> frees_of(V);
    for (int k : m.stage_nodes[static_cast<std::size_t>(t)])
      for (const FreeCol& f : m.F[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)]) {
        frees_of[static_cast<std::size_t>(f.value)].push_back(f.col);
        if (k != t) row({{f.col, 1}, {R(t, k), -1}}, -inf, 0);
        const int s_next = S(t + 1, f.value);
        if (s_next >= 0) row({{f.col, 1}, {s_next, 1}}, -inf, 1);
        for (int j : g.values[static_cast<std::size_t>(f.value)].readers)
          if (j > k && j < t && R(t, j) >= 0) row({{f.col, 1}, {R(t, j), 1}}, -inf, 1);
      }
    for (std::size_t v = 0; v < V; ++v) {
      if (frees_of[v].empty()) continue;
      Row r;
      for (int c : frees_of[v]) {
        r.cols.push_back(c);
        r.coefs.push_back(1);
      }
      double rhs = 0;
      const int p = producer(static_cast<int>(v));
      for (int c : {S(t, static_cast<int>(v)), R(t, p)}) {
        if (c < 0) continue;
        if (fixed_one(c)) {
          rhs += 1;
        } else {
          r.cols.push_back(c);
          r.coefs.push_back(-1);
        }
      }
      r.hi = rhs;
      m.add_row(std::move(r));
    }
    // Memory (Sec. 4.3): the U recurrence and the budget.
    const auto& ks = m.stage_nodes[static_cast<std::size_t>(t)];
    for (std::size_t idx = 0; idx < ks.size(); ++idx) {
      const int k = ks[idx];
      const int u = m.U[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)];
      Row r;
      r.cols.push_back(u);
      r.coefs.push_back(1);
      double constant = 0;  // fixed terms moved to the right-hand side
      auto add = [&](int col, double a) {
        if (col < 0 || a == 0) return;
        if (fixed_one(col) && m.hi[static_cast<std::size_t>(col)] == 1) {
          constant += a;
        } else {
          r.cols.push_back(col);
          r.coefs.push_back(a);
        }
      };
      const double out = static_cast<double>(g.output_bytes(k)) / m.memory_unit;
      if (idx == 0) {
        for (std::size_t v = 0; v < V; ++v) add(S(t, static_cast<int>(v)), -bytes(static_cast<int>(v)));
      } else {
        const int kp = ks[idx - 1];
        add(m.U[static_cast<std::size_t>(t)][static_cast<std::size_t>(kp)], -1);
        for (const FreeCol& f : m.F[static_cast<std::size_t>(t)][static_cast<std::size_t>(kp)]) add(f.col, bytes(f.value));
      }
      add(R(t, k), -out);
      r.lo = r.hi = -constant;
      m.add_row(std::move(r));
      const double w = static_cast<double>(g.nodes[static_cast<std::size_t>(k)].workspace) / m.memory_unit;
      if (w > 0 && std::isfinite(m.budget_units)) {
        Row b;
        b.cols = {u};
        b.coefs = {1};
        double c = 0;
        if (fixed_one(R(t, k))) c = w;
        else {
          b.cols.push_back(R(t, k));
          b.coefs.push_back(w);
        }
        b.hi = m.budget_units - c;
        m.memory_row_index.push_back(m.add_row(std::move(b)));
      }
    }
  }
  return m;
}

// ---- a stage-form schedule as a point of the model ----

struct Point {
  std::vector<double> x;
  std::string missing;  // non-empty: the schedule needs a column the model does not have
};

Point canonical_solution(const Model& m, const TrainingGraph& g, const GraphSchedule& schedule) {
  const int n = g.size();
  const std::size_t V = g.values.size();
  Point p;
  p.x.assign(static_cast<std::size_t>(m.columns()), 0.0);
  auto set = [&](int col, double value, const std::string& what) {
    if (col < 0) {
      if (value != 0 && p.missing.empty()) p.missing = what;
      return;
    }
    p.x[static_cast<std::size_t>(col)] = value;
  };
  // Stage of every step.
  std::vector<int> stage_of(schedule.steps.size());
  {
    int frontier = 0;
    for (std::size_t s = 0; s < schedule.steps.size(); ++s) {
      stage_of[s] = frontier;
      if (schedule.steps[s] == frontier) ++frontier;
    }
  }
  // Instances: (created step, last read step).
  struct Instance {
    int value, created, last_read;
  };
  std::vector<Instance> inst;
  std::vector<int> current(V, -1);
  std::vector<std::vector<int>> read_instance(schedule.steps.size()), made_instance(schedule.steps.size());
  for (std::size_t s = 0; s < schedule.steps.size(); ++s) {
    const GraphNode& node = g.nodes[static_cast<std::size_t>(schedule.steps[s])];
    for (int v : node.inputs) {
      const int i = current[static_cast<std::size_t>(v)];
      inst[static_cast<std::size_t>(i)].last_read = static_cast<int>(s);
      read_instance[s].push_back(i);
    }
    for (int v : node.outputs) {
      current[static_cast<std::size_t>(v)] = static_cast<int>(inst.size());
      made_instance[s].push_back(static_cast<int>(inst.size()));
      inst.push_back({v, static_cast<int>(s), static_cast<int>(s)});
    }
  }
  for (std::size_t s = 0; s < schedule.steps.size(); ++s) {
    const int t = stage_of[s], k = schedule.steps[s];
    set(m.R[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)], 1,
        fmt::format("R[{}][{}] (node {} recomputed in stage {})", t, k, g.nodes[static_cast<std::size_t>(k)].id, t));
  }
  for (const Instance& i : inst) {
    const int from = stage_of[static_cast<std::size_t>(i.created)], to = stage_of[static_cast<std::size_t>(i.last_read)];
    for (int t = from + 1; t <= to; ++t)
      set(m.S[static_cast<std::size_t>(t)][static_cast<std::size_t>(i.value)], 1,
          fmt::format("S[{}] of value '{}'", t, g.values[static_cast<std::size_t>(i.value)].name));
  }
  for (std::size_t s = 0; s < schedule.steps.size(); ++s) {
    const int t = stage_of[s], k = schedule.steps[s];
    for (const FreeCol& f : m.F[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)]) {
      int which = -1;
      for (int i : read_instance[s])
        if (inst[static_cast<std::size_t>(i)].value == f.value) which = i;
      for (int i : made_instance[s])
        if (inst[static_cast<std::size_t>(i)].value == f.value) which = i;
      if (which >= 0 && inst[static_cast<std::size_t>(which)].last_read == static_cast<int>(s)) p.x[static_cast<std::size_t>(f.col)] = 1;
    }
  }
  // U by its recurrence.
  for (int t = 0; t < n; ++t) {
    const auto& ks = m.stage_nodes[static_cast<std::size_t>(t)];
    double u = 0;
    for (std::size_t idx = 0; idx < ks.size(); ++idx) {
      const int k = ks[idx];
      if (idx == 0) {
        for (std::size_t v = 0; v < V; ++v) {
          const int c = m.S[static_cast<std::size_t>(t)][v];
          if (c >= 0) u += p.x[static_cast<std::size_t>(c)] * static_cast<double>(g.values[v].bytes) / m.memory_unit;
        }
      } else {
        const int kp = ks[idx - 1];
        for (const FreeCol& f : m.F[static_cast<std::size_t>(t)][static_cast<std::size_t>(kp)])
          u -= p.x[static_cast<std::size_t>(f.col)] * static_cast<double>(g.values[static_cast<std::size_t>(f.value)].bytes) / m.memory_unit;
      }
      u += p.x[static_cast<std::size_t>(m.R[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)])] *
           static_cast<double>(g.output_bytes(k)) / m.memory_unit;
      p.x[static_cast<std::size_t>(m.U[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)])] = u;
    }
  }
  return p;
}

double row_activity(const Row& r, const std::vector<double>& x) {
  double a = 0;
  for (std::size_t i = 0; i < r.cols.size(); ++i) a += r.coefs[i] * x[static_cast<std::size_t>(r.cols[i])];
  return a;
}

// ---- a model solution as a schedule ----

GraphSchedule schedule_from_solution(const Model& m, const TrainingGraph& g, const double* x) {
  GraphSchedule s;
  for (int t = 0; t < m.n; ++t)
    for (int k : m.stage_nodes[static_cast<std::size_t>(t)])
      if (k == t || x[m.R[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)]] > 0.5) s.steps.push_back(k);
  return drop_unused_recomputations(g, s);
}

// ---- remat's deadline inside CLP and CBC ----

struct Deadline {
  Clock::time_point at;
  std::atomic<bool> hit{false};
  std::atomic<long> nodes{0};  // CBC node events seen before the deadline
  bool passed() {
    if (Clock::now() >= at) hit = true;
    return hit;
  }
};

class ClpDeadline final : public ClpEventHandler {
 public:
  explicit ClpDeadline(Deadline* d) : deadline_(d) {}
  ClpDeadline(const ClpDeadline&) = default;
  int event(Event which) override {
    if (which != endOfIteration && which != endOfFactorization) return -1;
    return deadline_->passed() ? 0 : -1;
  }
  ClpEventHandler* clone() const override { return new ClpDeadline(*this); }

 private:
  Deadline* deadline_;
};

class CbcDeadline final : public CbcEventHandler {
 public:
  explicit CbcDeadline(Deadline* d) : deadline_(d) {}
  CbcDeadline(const CbcDeadline&) = default;
  CbcAction event(CbcEvent which) override {
    if (deadline_->passed()) return stop;
    if (which == node || which == treeStatus) ++deadline_->nodes;
    return noAction;
  }
  CbcEventHandler* clone() const override { return new CbcDeadline(*this); }

 private:
  Deadline* deadline_;
};

// CbcMain1 keeps state in statics: one solve at a time per process.
std::mutex& cbc_mutex() {
  static std::mutex m;
  return m;
}

void load(OsiClpSolverInterface& solver, const Model& m, bool integral, bool names) {
  // Row ordered, built at once (appending rows one by one is quadratic in CoinUtils).
  std::vector<double> rlo, rhi, elements;
  std::vector<int> indices, lengths;
  std::vector<CoinBigIndex> starts;
  for (const Row& r : m.rows) {
    starts.push_back(static_cast<CoinBigIndex>(elements.size()));
    lengths.push_back(static_cast<int>(r.cols.size()));
    indices.insert(indices.end(), r.cols.begin(), r.cols.end());
    elements.insert(elements.end(), r.coefs.begin(), r.coefs.end());
    rlo.push_back(std::isfinite(r.lo) ? r.lo : -COIN_DBL_MAX);
    rhi.push_back(std::isfinite(r.hi) ? r.hi : COIN_DBL_MAX);
  }
  starts.push_back(static_cast<CoinBigIndex>(elements.size()));
  const CoinPackedMatrix matrix(false, m.columns(), static_cast<int>(m.rows.size()),
                                static_cast<CoinBigIndex>(elements.size()), elements.data(), indices.data(),
                                starts.data(), lengths.data());
  std::vector<double> clo = m.lo, chi = m.hi;
  for (auto& h : chi)
    if (!std::isfinite(h)) h = COIN_DBL_MAX;
  solver.loadProblem(matrix, clo.data(), chi.data(), m.obj.data(), rlo.data(), rhi.data());
  if (integral)
    for (int c = 0; c < m.columns(); ++c)
      if (m.integer[static_cast<std::size_t>(c)]) solver.setInteger(c);
  if (names)
    for (int c = 0; c < m.columns(); ++c) solver.setColName(c, fmt::format("c{}", c));
}

struct MilpOutcome {
  std::vector<double> solution;  // empty: none
  bool proven_optimal = false, proven_infeasible = false, interrupted = false, rejected_over_budget = false;
  double bound = -inf;  // in objective units; -inf: unknown
  double objective = inf;  // of the solution, objective units
};

MilpOutcome run_cbc(const Model& m, const std::vector<double>* start, double seconds, int threads, bool log) {
  std::lock_guard<std::mutex> lock(cbc_mutex());
  Deadline deadline;
  deadline.at = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::max(seconds, 0.0)));
  OsiClpSolverInterface solver;
  load(solver, m, true, start != nullptr);
  ClpDeadline clp_stop(&deadline);
  solver.getModelPtr()->passInEventHandler(&clp_stop);
  if (!log) {
    solver.messageHandler()->setLogLevel(0);
    solver.getModelPtr()->messageHandler()->setLogLevel(0);
  }
  if (const char* path = std::getenv("REMAT_CHECKMATE_MPS"); path && *path) solver.writeMps(path);  // for diagnosis
  CbcModel model(solver);
  CbcSolverUsefulData data;
  CbcMain0(model, data);
  CbcDeadline cbc_stop(&deadline);
  model.passInEventHandler(&cbc_stop);
  if (!log) model.messageHandler()->setLogLevel(0);
  if (start) {
    std::vector<std::pair<std::string, double>> values;
    values.reserve(start->size());
    for (int c = 0; c < m.columns(); ++c)
      values.emplace_back(fmt::format("c{}", c), (*start)[static_cast<std::size_t>(c)]);
    model.setMIPStart(values);
  }
  const std::string sec = fmt::format("{:.3f}", std::max(seconds, 0.01));
  const std::string th = std::to_string(std::max(threads, 1));
  const std::string level = log ? "1" : "0";
  std::vector<const char*> argv{"remat-checkmate", "-log", level.c_str(), "-slog", level.c_str(), "-timeMode", "elapsed",
                                "-sec", sec.c_str()};
  if (threads > 1) {
    argv.push_back("-threads");
    argv.push_back(th.c_str());
  }
  // Extra cbc driver options, for diagnosis and tuning (e.g. "-cuts root -heuristics off").
  std::vector<std::string> extra;
  if (const char* more = std::getenv("REMAT_CHECKMATE_CBC_ARGS")) {
    std::string word;
    for (const char* c = more;; ++c) {
      if (*c == ' ' || *c == 0) {
        if (!word.empty()) extra.push_back(word);
        word.clear();
        if (*c == 0) break;
      } else {
        word += *c;
      }
    }
  }
  for (const auto& e : extra) argv.push_back(e.c_str());
  argv.push_back("-solve");
  argv.push_back("-quit");
  CbcMain1(static_cast<int>(argv.size()), argv.data(), model, nullptr, data);

  MilpOutcome out;
  out.interrupted = deadline.hit;
  if (const double* best = model.bestSolution()) {
    out.solution.assign(best, best + m.columns());
    out.objective = model.getObjValue();
  }
  if (!out.interrupted) {
    out.proven_optimal = model.isProvenOptimal() && !model.isSecondsLimitReached();
    out.proven_infeasible = model.isProvenInfeasible() && !model.isSecondsLimitReached();
  }
  if (!out.interrupted || deadline.nodes > 0) {
    const double b = model.getBestPossibleObjValue();
    if (std::isfinite(b) && std::fabs(b) < 1e50) out.bound = b;
  }
  return out;
}

struct LpOutcome {
  bool solved = false;
  double objective = 0;       // objective units
  std::vector<double> x;
};

LpOutcome run_clp(const Model& m, double seconds, bool log) {
  Deadline deadline;
  deadline.at = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::max(seconds, 0.0)));
  OsiClpSolverInterface solver;
  load(solver, m, false, false);
  ClpDeadline stop(&deadline);
  solver.getModelPtr()->passInEventHandler(&stop);
  if (!log) {
    solver.messageHandler()->setLogLevel(0);
    solver.getModelPtr()->messageHandler()->setLogLevel(0);
  }
  solver.initialSolve();
  LpOutcome out;
  if (!deadline.hit && solver.isProvenOptimal()) {
    out.solved = true;
    out.objective = solver.getObjValue();
    out.x.assign(solver.getColSolution(), solver.getColSolution() + m.columns());
  }
  return out;
}

// ---- two-phase rounding (Sec. 5) ----

// Phase 2: for a rounded S (keep[t][v]), the least R: each stage computes v_t, what S keeps
// that is not yet present, and what its computations need that is not resident.
GraphSchedule recover_r(const TrainingGraph& g, const std::vector<std::vector<char>>& keep) {
  const int n = g.size();
  const std::size_t V = g.values.size();
  const std::vector<int> horizon = value_horizons(g);
  std::vector<char> resident(V, 0), in_stage(static_cast<std::size_t>(n), 0);
  GraphSchedule s;
  for (int t = 0; t < n; ++t) {
    std::fill(in_stage.begin(), in_stage.end(), 0);
    in_stage[static_cast<std::size_t>(t)] = 1;
    auto want = [&](int v) {  // v kept into t+1
      const GraphValue& val = g.values[static_cast<std::size_t>(v)];
      if (!g.nodes[static_cast<std::size_t>(val.producer)].recomputable) return horizon[static_cast<std::size_t>(v)] > t;
      return t + 1 < n && keep[static_cast<std::size_t>(t) + 1][static_cast<std::size_t>(v)] && horizon[static_cast<std::size_t>(v)] > t;
    };
    for (std::size_t v = 0; v < V; ++v) {
      const int p = g.values[v].producer;
      if (p <= t && !resident[v] && want(static_cast<int>(v)) && g.nodes[static_cast<std::size_t>(p)].recomputable)
        in_stage[static_cast<std::size_t>(p)] = 1;
    }
    for (int k = t; k >= 0; --k) {
      if (!in_stage[static_cast<std::size_t>(k)]) continue;
      for (int v : g.nodes[static_cast<std::size_t>(k)].inputs) {
        if (resident[static_cast<std::size_t>(v)]) continue;
        in_stage[static_cast<std::size_t>(g.values[static_cast<std::size_t>(v)].producer)] = 1;
      }
    }
    for (int k = 0; k <= t; ++k)
      if (in_stage[static_cast<std::size_t>(k)]) {
        s.steps.push_back(k);
        for (int v : g.nodes[static_cast<std::size_t>(k)].outputs) resident[static_cast<std::size_t>(v)] = 1;
      }
    for (std::size_t v = 0; v < V; ++v)
      if (resident[v] && !want(static_cast<int>(v))) resident[v] = 0;
  }
  return drop_unused_recomputations(g, s);
}

struct ScheduleCandidate {
  GraphSchedule schedule;
  GraphScheduleStats stats;
  std::string source;
};

void consider(std::optional<ScheduleCandidate>& best, const TrainingGraph& g, GraphSchedule s, std::int64_t budget,
              const std::string& source) {
  GraphScheduleStats st;
  try {
    st = simulate_graph_schedule(g, s);
  } catch (const Error&) {
    return;  // a rounding that does not give a valid schedule
  }
  if (st.peak > budget) return;
  if (!best || st.cost < best->stats.cost || (st.cost == best->stats.cost && st.peak < best->stats.peak))
    best = ScheduleCandidate{std::move(s), st, source};
}

// keep[t][v] of a stage-form schedule: an instance of v made before stage t is read in stage t
// or later (its canonical S).
std::vector<std::vector<char>> keep_sets(const TrainingGraph& g, const GraphSchedule& s) {
  std::vector<std::vector<char>> keep(static_cast<std::size_t>(g.size()), std::vector<char>(g.values.size(), 0));
  std::vector<int> stage_of(s.steps.size());
  for (std::size_t i = 0, frontier = 0; i < s.steps.size(); ++i) {
    stage_of[i] = static_cast<int>(frontier);
    if (s.steps[i] == static_cast<int>(frontier)) ++frontier;
  }
  std::vector<int> made(g.values.size(), -1), last(g.values.size(), -1);
  auto close = [&](int v) {
    if (made[static_cast<std::size_t>(v)] < 0) return;
    for (int t = stage_of[static_cast<std::size_t>(made[static_cast<std::size_t>(v)])] + 1;
         t <= stage_of[static_cast<std::size_t>(last[static_cast<std::size_t>(v)])]; ++t)
      keep[static_cast<std::size_t>(t)][static_cast<std::size_t>(v)] = 1;
  };
  for (std::size_t i = 0; i < s.steps.size(); ++i) {
    const GraphNode& node = g.nodes[static_cast<std::size_t>(s.steps[i])];
    for (int v : node.inputs) last[static_cast<std::size_t>(v)] = static_cast<int>(i);
    for (int v : node.outputs) {
      close(v);
      made[static_cast<std::size_t>(v)] = last[static_cast<std::size_t>(v)] = static_cast<int>(i);
    }
  }
  for (std::size_t v = 0; v < g.values.size(); ++v) close(static_cast<int>(v));
  return keep;
}

// A local search of remat's own (not in Checkmate): replace a recomputation by keeping the
// value since its previous instance, when the peak still fits; the costliest recomputation
// first, first improvement, until none improves (at most 4000 tries).
void improve(std::optional<ScheduleCandidate>& best, const TrainingGraph& g, std::int64_t budget, Clock::time_point deadline) {
  if (!best || !in_stage_form(g, best->schedule)) return;
  // A count of tried moves, not the clock, ends the search (so that it is deterministic);
  // the deadline only guards against huge graphs.
  int tries = 4000;
  bool improved = true;
  while (improved && tries > 0 && Clock::now() < deadline) {
    improved = false;
    const GraphSchedule& cur = best->schedule;
    std::vector<int> stage_of(cur.steps.size()), order;
    std::vector<char> seen(static_cast<std::size_t>(g.size()), 0);
    for (std::size_t i = 0, frontier = 0; i < cur.steps.size(); ++i) {
      stage_of[i] = static_cast<int>(frontier);
      if (cur.steps[i] == static_cast<int>(frontier)) ++frontier;
      if (seen[static_cast<std::size_t>(cur.steps[i])]++) order.push_back(static_cast<int>(i));
    }
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return g.nodes[static_cast<std::size_t>(cur.steps[static_cast<std::size_t>(a)])].cost >
             g.nodes[static_cast<std::size_t>(cur.steps[static_cast<std::size_t>(b)])].cost;
    });
    const auto base = keep_sets(g, cur);
    for (int i : order) {
      if (--tries < 0 || Clock::now() >= deadline) return;
      const int p = cur.steps[static_cast<std::size_t>(i)], b = stage_of[static_cast<std::size_t>(i)];
      auto keep = base;
      for (int v : g.nodes[static_cast<std::size_t>(p)].outputs) {
        // the stage of the previous instance of v
        int a = -1;
        for (int j = i - 1; j >= 0 && a < 0; --j)
          if (cur.steps[static_cast<std::size_t>(j)] == p) a = stage_of[static_cast<std::size_t>(j)];
        for (int t = a + 1; t <= b; ++t) keep[static_cast<std::size_t>(t)][static_cast<std::size_t>(v)] = 1;
      }
      const double before = best->stats.cost;
      consider(best, g, recover_r(g, keep), budget, best->source + " + local search");
      if (best->stats.cost < before) {
        improved = true;
        break;
      }
    }
  }
}

std::string node_text(const TrainingGraph& g, int k) {
  const GraphNode& node = g.nodes[static_cast<std::size_t>(k)];
  return node.name == node.id ? fmt::format("node {}", node.id) : fmt::format("node {} '{}'", node.id, node.name);
}

}  // namespace

// ---- entry points ----

std::int64_t checkmate_accounting_peak(const TrainingGraph& g, const GraphSchedule& schedule) {
  if (!in_stage_form(g, schedule)) throw Error("[checkmate] the schedule is not in stage form (to_stage_form regroups one)");
  simulate_graph_schedule(g, schedule);  // validity
  const Model m = build_model(g, std::nullopt);
  const Point p = canonical_solution(m, g, schedule);
  if (!p.missing.empty())
    throw Error("[checkmate] the schedule uses " + p.missing + ", which the model leaves out (a useless computation?)");
  for (std::size_t r = 0; r < m.rows.size(); ++r) {
    const Row& row = m.rows[r];
    const double a = row_activity(row, p.x);
    const double tol = 1e-6 * std::max(1.0, std::fabs(a));
    if (a < row.lo - tol || a > row.hi + tol)
      throw Error(fmt::format("[checkmate] internal: the schedule's canonical point violates model row {} ({} not in [{}, {}])",
                              r, a, row.lo, row.hi));
  }
  for (int c = 0; c < m.columns(); ++c)
    if (p.x[static_cast<std::size_t>(c)] < m.lo[static_cast<std::size_t>(c)] - 1e-9 ||
        p.x[static_cast<std::size_t>(c)] > m.hi[static_cast<std::size_t>(c)] + 1e-9)
      throw Error(fmt::format("[checkmate] internal: column {} = {} outside its bounds [{}, {}]", c, p.x[static_cast<std::size_t>(c)],
                              m.lo[static_cast<std::size_t>(c)], m.hi[static_cast<std::size_t>(c)]));
  double peak = 0;
  for (int t = 0; t < m.n; ++t)
    for (int k : m.stage_nodes[static_cast<std::size_t>(t)])
      if (p.x[static_cast<std::size_t>(m.R[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)])] > 0.5)
        peak = std::max(peak, p.x[static_cast<std::size_t>(m.U[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)])] +
                                  static_cast<double>(g.nodes[static_cast<std::size_t>(k)].workspace));
  return static_cast<std::int64_t>(std::llround(peak));
}

CheckmatePlan solve_checkmate(const TrainingGraph& g, std::int64_t budget, const CheckmateOptions& options) {
  const auto start = Clock::now();
  const std::string who = options.lp_relaxation ? "checkmate-lp" : "checkmate";
  if (g.size() == 0) throw Error("[" + who + "] the training graph has no nodes");
  if (!(options.time_limit > 0)) throw Error(fmt::format("[{}] the time limit must be > 0 seconds, got {}", who, options.time_limit));
  // The stage-by-node grid has n (n + 1) / 2 R cells and up to n V S cells, and its memory
  // rows about as many coefficients again per stage: beyond this many cells the model alone
  // takes gigabytes before CLP starts (and CBC cannot stop a root LP that large), so such
  // graphs are refused up front instead of exhausting the host.
  {
    const double n = g.size(), cells = n * (n + 1) / 2 + n * static_cast<double>(g.values.size());
    if (cells > static_cast<double>(max_checkmate_grid_cells))
      throw Error(fmt::format("[{}] the training graph has {} nodes and {} values: its stage-by-node grid would have "
                              "{:.3g} cells, more than the {:.3g} this solver builds; plan it with optimal or greedy "
                              "(which scale to it), or give checkmate a smaller graph",
                              who, g.size(), g.values.size(), cells, static_cast<double>(max_checkmate_grid_cells)));
  }
  int at = -1;
  const std::int64_t need = minimum_step_memory(g, &at);
  if (budget < need) {
    const HeuristicSchedule least = least_memory_heuristic_schedule(g);
    throw InfeasibleBudget(
        fmt::format("[{}] budget {} is below {}, the memory of computing {} (its inputs, outputs and workspace, and the "
                    "values of non-recomputable nodes that must be kept across it), which no schedule can meet; the "
                    "smallest budget remat can certify is {} ({})",
                    who, budget, need, node_text(g, at), least.stats.peak, least.name),
        static_cast<std::size_t>(least.stats.peak));
  }
  CheckmatePlan plan;
  plan.budget = budget;
  const double trivial_bound = g.total_cost();  // every node at least once
  auto remaining = [&] { return options.time_limit - seconds_since(start); };

  // Warm starts.
  std::optional<ScheduleCandidate> best;     // in stage form: the MIP start and the MILP's class
  std::optional<ScheduleCandidate> outside;  // a warm start outside stage form, kept only if it is cheaper
  for (std::size_t i = 0; i < options.warm_starts.size(); ++i) {
    try {
      const GraphSchedule raw = drop_unused_recomputations(g, options.warm_starts[i]);
      if (!in_stage_form(g, raw))
        consider(outside, g, raw, budget, fmt::format("warm start {} (outside stage form)", i));
      consider(best, g, drop_unused_recomputations(g, to_stage_form(g, raw)), budget, fmt::format("warm start {}", i));
    } catch (const Error&) {
      // a warm start that is not a valid schedule of this graph is ignored
    }
  }
  if (options.heuristic_warm_start)
    if (auto h = best_heuristic_schedule(g, budget)) consider(best, g, h->schedule, budget, "warm start: " + h->name);
  if (best) plan.warm_start_cost = best->stats.cost;
  improve(best, g, budget, start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(0.2 * options.time_limit)));

  double bound = trivial_bound;
  bool proven_optimal = false, proven_infeasible = false, interrupted = false, rejected_over_budget = false;
  // Every node at least once bounds every schedule's cost from below: a warm start that meets
  // the bound (store-all, when the budget holds it) is optimal without a solve.
  const bool meets_trivial_bound = best && best->stats.cost <= trivial_bound * (1 + 1e-12);
  if (!meets_trivial_bound) {
    const Model m = build_model(g, budget);
    plan.columns = m.columns();
    plan.rows = static_cast<int>(m.rows.size());
    plan.integer_columns = m.integer_columns;

    // The LP relaxation and its two-phase roundings (Sec. 5): checkmate-lp's answer, and for
    // the MILP a first bound and more warm starts (a rounding can beat every heuristic), in at
    // most a fifth of its time.
    {
      const double lp_start = seconds_since(start);
      const double lp_time = options.lp_relaxation ? remaining() : 0.2 * remaining();
      auto lp_remaining = [&] { return lp_time - (seconds_since(start) - lp_start); };
      const LpOutcome lp = run_clp(m, lp_remaining(), options.log);
      if (options.lp_relaxation) interrupted = !lp.solved;
      if (lp.solved) {
        plan.lp_bound = lp.objective * m.cost_unit;
        bound = std::max(bound, *plan.lp_bound);
        std::mt19937_64 rng(options.seed);
        // The column layout does not depend on the budget: m's maps index every LP below.
        for (double scale : {1.0, 0.9, 0.8}) {
          LpOutcome at_scale;
          if (scale == 1.0) {
            at_scale = lp;
          } else {
            if (best && best->source.rfind("lp rounding", 0) == 0) break;
            if (lp_remaining() <= 0) break;
            const auto reduced = std::max<std::int64_t>(need, static_cast<std::int64_t>(static_cast<double>(budget) * scale));
            at_scale = run_clp(build_model(g, reduced), lp_remaining(), options.log);
            if (!at_scale.solved) break;
          }
          auto round = [&](auto keep_value, const std::string& how) {
            std::vector<std::vector<char>> keep(static_cast<std::size_t>(g.size()), std::vector<char>(g.values.size(), 0));
            for (int t = 0; t < g.size(); ++t)
              for (std::size_t v = 0; v < g.values.size(); ++v) {
                const int c = m.S[static_cast<std::size_t>(t)][v];
                if (c >= 0) keep[static_cast<std::size_t>(t)][v] = keep_value(at_scale.x[static_cast<std::size_t>(c)]) ? 1 : 0;
              }
            consider(best, g, recover_r(g, keep), budget,
                     fmt::format("lp rounding: {} (LP at {:.0f}% of the budget)", how, 100 * scale));
          };
          for (int i = 1; i <= 19; ++i) {
            const double threshold = 0.05 * i;
            round([&](double x) { return x >= threshold - 1e-9; }, fmt::format("threshold {:.2f}", threshold));
          }
          std::uniform_real_distribution<double> uniform(0.0, 1.0);
          for (int i = 0; i < options.rounding_samples; ++i)
            round([&](double x) { return uniform(rng) < x; }, fmt::format("randomised sample {}", i));
        }
      }
    }
    if (!options.lp_relaxation) {
      std::optional<Point> warm;
      if (best) {
        Point p = canonical_solution(m, g, best->schedule);
        if (p.missing.empty()) warm = std::move(p);
      }
      const MilpOutcome out = run_cbc(m, warm ? &warm->x : nullptr, remaining(), options.threads, options.log);
      interrupted = out.interrupted;
      bool accepted = false;
      if (!out.solution.empty()) {
        const GraphSchedule s = schedule_from_solution(m, g, out.solution.data());
        consider(best, g, s, budget, "milp");
        accepted = best && best->source == "milp";
        if (!accepted && best && best->schedule.steps != s.steps) {
          // The solver's point rounds to a schedule that is not better than the warm start (or
          // breaks the budget by a tolerance): keep the warm start, whose cost then bounds the optimum
          // only through the solver's bound.
          const GraphScheduleStats st = simulate_graph_schedule(g, s);
          if (st.peak > budget) rejected_over_budget = true;
        }
      }
      if (std::isfinite(out.bound)) bound = std::max(bound, out.bound * m.cost_unit);
      proven_optimal = out.proven_optimal && (accepted || (best && std::fabs(best->stats.cost - out.objective * m.cost_unit) <=
                                                                     1e-9 * std::max(1.0, best->stats.cost)));
      proven_infeasible = out.proven_infeasible;
    }
  }

  plan.solve_seconds = seconds_since(start);
  if (outside && (!best || outside->stats.cost < best->stats.cost)) {
    // Cheaper than every stage-form schedule found: it answers, and when the stage-form
    // optimum is proven it is at least as good as that optimum.
    if (best && proven_optimal) bound = best->stats.cost;
    best = std::move(outside);
  }
  if (best) {
    plan.schedule = best->schedule;
    plan.stats = best->stats;
    plan.incumbent = best->stats.cost;
    plan.source = best->source;
    plan.lower_bound = bound;  // of the stage-form optimum (can exceed a schedule outside stage form)
    plan.gap = plan.incumbent > 0 ? std::max(0.0, (plan.incumbent - bound) / plan.incumbent) : 0.0;
    const bool met_bound = plan.incumbent <= bound * (1 + 1e-9) + 1e-12;
    plan.status = (proven_optimal || met_bound) ? CheckmateStatus::optimal : CheckmateStatus::feasible;
    if (plan.status == CheckmateStatus::optimal) {
      plan.gap = 0;
      plan.lower_bound = plan.incumbent;
    }
  } else {
    plan.incumbent = inf;
    plan.gap = inf;
    plan.lower_bound = bound;
    plan.status = proven_infeasible ? CheckmateStatus::infeasible : CheckmateStatus::no_solution;
  }
  plan.message = fmt::format("[{}] {}: cost {} (lower bound {}, gap {:.2f}%) peak {} of budget {} in {:.2f} s{}; {} "
                             "columns, {} rows",
                             who, checkmate_status_name(plan.status), plan.incumbent, plan.lower_bound, 100 * plan.gap,
                             plan.stats.peak, budget, plan.solve_seconds,
                             interrupted ? " (stopped at the time limit)" : "", plan.columns, plan.rows);
  if (rejected_over_budget)
    plan.message += "; the solver's schedule broke the budget by a rounding tolerance and was not used";
  return plan;
}

InfeasibleBudget checkmate_refusal(const std::string& who, const std::string& subject, const TrainingGraph& g,
                                   const CheckmatePlan& plan, const std::string& unit) {
  const HeuristicSchedule least = least_memory_heuristic_schedule(g);
  return InfeasibleBudget(fmt::format("[{}] {}: {} ({}); the smallest budget remat can certify is {}{} ({})", who, subject,
                                      plan.status == CheckmateStatus::infeasible
                                          ? "no stage-form schedule fits (proven by the MILP)"
                                          : "no schedule within the budget was found before the time limit",
                                      plan.message, least.stats.peak, unit, least.name),
                          static_cast<std::size_t>(least.stats.peak));
}

nlohmann::json checkmate_plan_json(const TrainingGraph& g, const CheckmatePlan& plan) {
  nlohmann::json j;
  if (plan.schedule) j = schedule_to_json(g, *plan.schedule);
  j["status"] = checkmate_status_name(plan.status);
  j["budget"] = plan.budget;
  j["incumbent"] = std::isfinite(plan.incumbent) ? nlohmann::json(plan.incumbent) : nlohmann::json(nullptr);
  j["lower_bound"] = plan.lower_bound;
  j["gap"] = std::isfinite(plan.gap) ? nlohmann::json(plan.gap) : nlohmann::json(nullptr);
  j["lp_bound"] = plan.lp_bound ? nlohmann::json(*plan.lp_bound) : nlohmann::json(nullptr);
  j["solve_seconds"] = plan.solve_seconds;
  j["source"] = plan.source;
  j["warm_start_cost"] = plan.warm_start_cost ? nlohmann::json(*plan.warm_start_cost) : nlohmann::json(nullptr);
  j["columns"] = plan.columns;
  j["rows"] = plan.rows;
  return j;
}

CheckmateTapePlan plan_checkmate(const Tape& tape, int loss, const Budget& budget, const CheckmateOptions& options) {
  const std::string who = options.lp_relaxation ? "checkmate-lp" : "checkmate";
  CheckmateTapePlan out;
  out.graph = training_graph_from_tape(tape, loss, options.costs);
  const TrainingGraph& g = out.graph;
  if (!budget.bytes) {
    out.program = lower_to_program(tape, g, topological_schedule(g), who);
    out.simulated_peak = simulate(tape, out.program).peak_bytes;
    out.plan.status = CheckmateStatus::optimal;
    out.plan.schedule = topological_schedule(g);
    out.plan.stats = simulate_graph_schedule(g, *out.plan.schedule);
    out.plan.incumbent = out.plan.lower_bound = out.plan.stats.cost;
    out.plan.source = "store-all (no budget)";
    return out;
  }
  const auto b = static_cast<std::int64_t>(std::min<std::size_t>(*budget.bytes, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())));
  CheckmateOptions opts = options;
  // The greedy planner's schedule, regrouped into stage form, competes as a warm start.
  try {
    Program greedy = plan_budget_greedy(tape, loss, *budget.bytes, "dtr");
    opts.warm_starts.push_back(graph_schedule_from_program(g, greedy));
  } catch (const Error&) {
    // the greedy planner refuses this budget (InfeasibleBudget)
  }
  out.plan = solve_checkmate(g, b, opts);
  if (!out.plan.schedule) throw checkmate_refusal(who, fmt::format("budget {} bytes", b), g, out.plan, " bytes");
  out.program = lower_to_program(tape, g, *out.plan.schedule, who);
  out.simulated_peak = simulate(tape, out.program).peak_bytes;
  if (out.simulated_peak > *budget.bytes)
    throw Error(fmt::format("[{}] internal: the graph accounts {} bytes but the executor peaks at {} (budget {}); the "
                            "graph's accounting must never be below the executor's",
                            who, out.plan.stats.peak, out.simulated_peak, *budget.bytes));
  return out;
}

PlanReport CheckmateStrategy::plan_report(const PlanRequest& request) const {
  CheckmateOptions o = options_;
  if (request.costs) o.costs = tape_graph_costs(*request.costs);
  CheckmateTapePlan p = plan_checkmate(request.tape, request.loss, request.budget, o);
  PlanReport report;
  report.strategy = name();
  report.program = std::move(p.program);
  report.predicted = simulate(request.tape, report.program);
  report.candidates_simulated = 1;
  report.setting = fmt::format("{}: {}", checkmate_status_name(p.plan.status), p.plan.source);
  report.solver = std::make_shared<const nlohmann::json>(checkmate_plan_json(p.graph, p.plan));
  if (p.plan.status != CheckmateStatus::optimal)
    report.notes.push_back(fmt::format("not proven optimal within {:.0f} s: gap {:.2f}%", o.time_limit, 100 * p.plan.gap));
  return report;
}

std::unique_ptr<RematStrategy> make_checkmate_strategy(const CheckmateOptions& options) {
  return std::make_unique<CheckmateStrategy>(options);
}

}  // namespace remat
