// Contract: strategy benchmarks (printed figures, not tests).
//  1. Planning time of each strategy against chain length: revolve to n = 10^6
//     (s = 20), optimal to L = 200 with 1000 memory slots, sqrt and chen-greedy
//     on the same chains, greedy (DTR) on node graphs to 10^5 nodes.
//  2. Measured time overhead of each strategy against its planned (analytic)
//     overhead, on the 100-layer MLP (width 512, batch 256, f32, relu).
// Medians over repeats; ratios are measured in the same run.
// Usage: strategy_bench [--quick]
#include "models/models.hpp"
#include "strategies/stage_schedules.hpp"
#include "strategies/strategies.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

using namespace remat;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

template <class F>
double time_median(int repeats, F&& f) {
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return median(t);
}

// A heterogeneous chain: costs and sizes drawn from a fixed seed.
Chain random_chain(int L, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int64_t> time(1, 20), size(1000, 5000);
  Chain c;
  c.name = fmt::format("random-{}", L);
  for (int i = 0; i < L; ++i) {
    c.fw.push_back(time(rng));
    c.ftmp.push_back(size(rng) / 4);
  }
  for (int i = 0; i <= L; ++i) {
    c.bw.push_back(i == L ? 0 : 2 * c.fw[static_cast<std::size_t>(i)]);
    c.cw.push_back(size(rng));
    c.cbw.push_back(c.cw.back() + size(rng));
    c.btmp.push_back(size(rng) / 4);
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  set_cpu_threads(2);
  fmt::print("remat strategy_bench{} (medians; 2 threads)\n\n", quick ? " --quick" : "");

  fmt::print("## Planning time against chain length\n\n");
  fmt::print("| strategy | chain | stages | setting | plan ms | recomputed steps |\n|---|---|---:|---|---:|---:|\n");
  std::vector<std::int64_t> revolve_sizes{1000, 10000, 100000, 1000000};
  if (quick) revolve_sizes = {1000, 10000};
  for (auto n : revolve_sizes) {
    Chain c = Chain::uniform(static_cast<int>(n));
    Schedule s;
    double t = time_median(quick ? 1 : 3, [&] { s = revolve_schedule(c, 20); });
    fmt::print("| revolve | uniform | {} | s=20 | {:.1f} | {} |\n", n, t * 1e3, revolve_recomputations(n, 20));
  }
  std::vector<int> dp_sizes{25, 50, 100, 200};
  if (quick) dp_sizes = {25, 50};
  for (int L : dp_sizes) {
    Chain c = random_chain(L, 7 + static_cast<std::uint32_t>(L));
    std::int64_t full = simulate_schedule(c, store_all_schedule(c)).peak_memory;
    std::int64_t budget = full / 3;
    Schedule s;
    double t = time_median(1, [&] { s = optimal_schedule(c, budget, 1000); });
    auto st = simulate_schedule(c, s);
    fmt::print("| optimal | random | {} | 1000 slots, budget = store-all/3 | {:.1f} | {} |\n", L, t * 1e3, st.recomputed_steps);
    double ts = time_median(3, [&] { s = sqrt_schedule(c); });
    fmt::print("| sqrt | random | {} | sqrt(L) segments | {:.3f} | {} |\n", L, ts * 1e3, simulate_schedule(c, s).recomputed_steps);
    double tc = time_median(3, [&] { s = chen_greedy_schedule(c, full); });
    fmt::print("| chen-greedy | random | {} | least memory | {:.3f} | {} |\n", L, tc * 1e3, simulate_schedule(c, s).recomputed_steps);
  }
  std::vector<int> greedy_layers{200, 2000, 20000};  // 5 nodes a layer: 10^3 .. 10^5 nodes
  if (quick) greedy_layers = {200, 2000};
  for (int layers : greedy_layers) {
    Model m = build_model(fmt::format("mlp:layers={},width=4,batch=2", layers));
    std::size_t full = simulate(*m.tape, store_all_program(*m.tape, m.loss.id)).peak_bytes;
    Program p;
    double t = time_median(1, [&] { p = plan_budget_greedy(*m.tape, m.loss.id, full / 10, "dtr-eq"); });
    fmt::print("| greedy (dtr-eq) | mlp width 4 | {} nodes | budget = store-all/10 | {:.1f} | {} |\n", m.tape->size(),
               t * 1e3, simulate(*m.tape, p).recomputed_ops);
  }

  fmt::print("\n## Measured against planned time overhead\n\n");
  std::string spec = quick ? "mlp:layers=20,width=128,batch=32,act=relu" : "mlp:layers=100,width=512,batch=256,act=relu";
  Model m = build_model(spec);
  const Tape& tape = *m.tape;
  Bindings data = m.batch(0);
  CpuBackend cpu;
  Program base = store_all_program(tape, m.loss.id);
  std::size_t full = simulate(tape, base).peak_bytes;
  std::int64_t base_units = analytic_program_time(tape, base);
  struct Entry { std::string name, setting; std::optional<std::size_t> budget; std::string heuristic; };
  std::vector<Entry> entries{{"store-all", "-", std::nullopt, ""},
                             {"sqrt", "sqrt(L) segments", std::nullopt, ""},
                             {"chen-greedy", "least memory", std::nullopt, ""},
                             {"revolve", "log4(L) slots", std::nullopt, ""},
                             {"optimal", "budget = store-all/4", full / 4, ""},
                             {"greedy", "dtr, budget = store-all/4", full / 4, "dtr"}};
  fmt::print("model {} ({} threads)\n\n", spec, cpu_threads());
  fmt::print("| strategy | setting | peak MiB | recomputed ops | step s | measured overhead | planned overhead |\n");
  fmt::print("|---|---|---:|---:|---:|---:|---:|\n");
  double base_seconds = 0;
  for (const auto& e : entries) {
    StrategyOptions o;
    if (!e.heuristic.empty()) o.heuristic = e.heuristic;
    Program p = make_strategy(e.name, o)->plan(tape, m.loss.id, Budget{e.budget});
    Executor ex(tape, cpu);
    StepReport report;
    double t = time_median(quick ? 2 : 3, [&] { report = ex.run(p, data).report; });
    if (e.name == "store-all") base_seconds = t;
    double planned = static_cast<double>(analytic_program_time(tape, p)) / static_cast<double>(base_units) - 1;
    fmt::print("| {} | {} | {:.1f} | {} | {:.3f} | {:+.1f}% | {:+.1f}% |\n", e.name, e.setting,
               static_cast<double>(report.peak_bytes) / (1 << 20), report.recomputed_ops, t,
               100 * (t / base_seconds - 1), 100 * planned);
  }
  return 0;
}
