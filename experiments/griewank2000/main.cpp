// Contract: paper_griewank2000, Griewank and Walther 2000, "Algorithm 799: revolve"
// (ACM TOMS 26(1):19-45, doi:10.1145/347837.347846): the least number of recomputed
// forward steps p(n, s) for n steps and s checkpoint slots (slot 0 holds x(0)).
// Part 1 (counts): for n in {10, 100, 1000, 10^4, 10^5} and s = 1..32 it puts side by side
//   - the closed form p(n, s) = r n - beta(s+1, r-1) (revolve_recomputations),
//   - an independent dynamic program written here, p(n, s) = min_i [i + p(i, s) + p(n-i, s-1)]
//     (n <= 1000: it costs O(n^2 s)),
//   - the generator's own recursion (revolve_forward_count_table(...) - n),
//   - the replay of revolve_schedule on the uniform chain (simulate_schedule), when the
//     schedule has at most 10 million recomputations (a few hundred MB otherwise),
//   and the reference values of docs/papers.md. Any disagreement is a broken promise.
// Part 2 (execution): the `heat` model (1-D heat equation, one marked stage per time step,
//   11 ops per step, plus a loss stage) planned by revolve with s slots and executed:
//   measured recomputed ops = simulated = sum over stages of (forward executions - 1) x
//   (ops of that stage), and the stage-level recomputations equal p(L, s), L = steps + 1.
// Writes results/griewank2000/{counts,references,heat}.{csv,json} and griewank2000.png.
// Exit status: 0; 2 on errors; 4 when a count or a promise disagrees.
#include "experiments/common/bench.hpp"

#include <iostream>

using namespace remat;
using namespace remat::papers;

namespace {

constexpr const char* about =
    "paper_griewank2000: Revolve's recomputation counts p(n, s) for n up to 10^5 and s = 1..32 (closed\n"
    "form, an independent recursion, the generator and the simulated schedule), and real execution of\n"
    "the heat model under revolve with measured recomputed ops against the plan.";

// p(n, s) for n <= max_n, s <= max_s by the recursion of docs/papers.md, independently of the library.
std::vector<std::vector<std::int64_t>> recursion_table(int max_n, int max_s) {
  std::vector<std::vector<std::int64_t>> p(static_cast<std::size_t>(max_s) + 1,
                                           std::vector<std::int64_t>(static_cast<std::size_t>(max_n) + 1, 0));
  for (int n = 1; n <= max_n; ++n) p[1][static_cast<std::size_t>(n)] = std::int64_t{n} * (n - 1) / 2;
  for (int s = 2; s <= max_s; ++s) {
    auto& row = p[static_cast<std::size_t>(s)];
    const auto& fewer = p[static_cast<std::size_t>(s) - 1];
    for (int n = 2; n <= max_n; ++n) {
      std::int64_t best = std::numeric_limits<std::int64_t>::max();
      for (int i = 1; i < n; ++i)
        best = std::min(best, i + row[static_cast<std::size_t>(i)] + fewer[static_cast<std::size_t>(n - i)]);
      row[static_cast<std::size_t>(n)] = best;
    }
  }
  return p;
}

void disagree(const std::string& what) {
  std::cerr << "[griewank2000] promise broken: " << what << "\n";
  ++broken_promises();
}

void run(const DriverOptions& o, int threads) {
  const std::vector<std::int64_t> ns = o.quick ? std::vector<std::int64_t>{10, 100, 1000}
                                               : std::vector<std::int64_t>{10, 100, 1000, 10000, 100000};
  const int max_s = o.quick ? 8 : 32;
  const int recursion_max_n = 1000;
  const std::int64_t max_replayed = 10'000'000;

  // ---- Part 1: counts ----
  std::cerr << "[griewank2000] counts: closed form, recursion, generator, schedule replay\n";
  auto recursion = recursion_table(recursion_max_n, max_s);
  const int table_n = static_cast<int>(ns.back());
  auto generator = revolve_forward_count_table(table_n, max_s);
  Table counts({"n", "s", "p_closed_form", "p_recursion", "p_generator", "p_schedule", "forward_steps_per_n",
                "all_agree"});
  for (std::int64_t n : ns) {
    for (int s = 1; s <= max_s; ++s) {
      const std::int64_t closed = revolve_recomputations(n, s);
      Cell rec, sched;
      bool agree = true;
      if (n <= recursion_max_n) {
        rec = recursion[static_cast<std::size_t>(s)][static_cast<std::size_t>(n)];
        agree &= std::get<std::int64_t>(rec) == closed;
      }
      const std::int64_t gen = generator[static_cast<std::size_t>(n) * static_cast<std::size_t>(max_s + 1) + static_cast<std::size_t>(s)] - n;
      agree &= gen == closed;
      if (closed <= max_replayed) {
        Chain chain = Chain::uniform(static_cast<int>(n));
        ScheduleStats st = simulate_schedule(chain, revolve_schedule(chain, s));
        sched = st.recomputed_steps;
        agree &= st.recomputed_steps == closed;
      }
      if (!agree) disagree(fmt::format("p({}, {}) disagrees: closed form {}, generator {}", n, s, closed, gen));
      counts.add({n, std::int64_t{s}, closed, rec, gen, sched, static_cast<double>(closed + n) / static_cast<double>(n), agree});
    }
    std::cout << fmt::format("n = {:>6}: p(n, s) for s = 1, 2, 4, 8, {}: {} {} {} {} {}  (forward steps / n at s = {}: {:.2f})\n", n,
                             max_s, revolve_recomputations(n, 1), revolve_recomputations(n, 2), revolve_recomputations(n, 4),
                             revolve_recomputations(n, 8), revolve_recomputations(n, max_s), max_s,
                             static_cast<double>(revolve_recomputations(n, max_s) + n) / static_cast<double>(n));
  }

  // The reference values quoted in docs/papers.md.
  struct Reference { std::int64_t n, s, p; };
  const std::vector<Reference> refs{{10, 3, 15},      {14, 3, 27},      {100, 1, 4950},    {100, 2, 845},
                                    {100, 3, 490},    {100, 5, 316},    {100, 10, 222},    {1000, 5, 6284},
                                    {1000, 10, 3636}, {1000, 20, 2747}, {10000, 10, 57624}, {10000, 20, 37976}};
  Table references({"n", "s", "p_reference", "p_closed_form", "equal"});
  int refs_equal = 0;
  for (const auto& r : refs) {
    std::int64_t p = revolve_recomputations(r.n, r.s);
    references.add({r.n, r.s, r.p, p, p == r.p});
    refs_equal += p == r.p;
    if (p != r.p) disagree(fmt::format("p({}, {}) = {} but the reference value is {}", r.n, r.s, p, r.p));
  }
  std::cout << fmt::format("reference values of docs/papers.md reproduced: {} of {}\n", refs_equal, refs.size());

  // ---- Part 2: heat, executed ----
  struct Case { int steps, slots; };
  const std::vector<Case> cases = o.quick ? std::vector<Case>{{10, 3}, {20, 2}}
                                          : std::vector<Case>{{10, 3}, {100, 2}, {100, 5}, {100, 10}, {1000, 5}, {1000, 10}, {1000, 20}};
  Table heat({"steps", "stages", "slots", "p_closed_form", "stage_recomputed", "ops_per_step", "ops_from_schedule",
              "ops_closed_form", "recomputed_ops_predicted", "recomputed_ops_measured", "forward_ops", "peak_bytes_measured",
              "peak_bytes_predicted", "median_seconds", "measured_overhead", "grads_bitwise_equal", "promises_hold"});
  for (const Case& c : cases) {
    const std::string spec = fmt::format("heat:steps={},grid=64", c.steps);
    std::cerr << fmt::format("[griewank2000] {} with revolve, {} slots\n", spec, c.slots);
    ModelBench bench(spec, o.paper);
    StrategyOptions so;
    so.slots = c.slots;
    Outcome x = bench.plan(Attempt{"revolve", fmt::format("{} slots", c.slots), std::nullopt, so});
    if (!x.feasible()) throw Error(fmt::format("[griewank2000] revolve could not be planned on {}: {}", spec, x.error));
    bench.execute({&x}, o.repeat);
    const ChainView& view = bench.view();
    const int L = view.chain.length();
    // Ops (op nodes) computed by one forward of each stage.
    std::vector<std::int64_t> ops(static_cast<std::size_t>(L), 0);
    for (int i = 0; i < L; ++i)
      for (int id : view.stage_nodes[static_cast<std::size_t>(i)]) ops[static_cast<std::size_t>(i)] += bench.tape().node(id).kind == NodeKind::op;
    std::vector<std::int64_t> forwards(static_cast<std::size_t>(L), 0);
    for (const StageAction& a : revolve_schedule(view.chain, c.slots).actions)
      if (a.kind == StageActionKind::forward_none || a.kind == StageActionKind::forward_checkpoint ||
          a.kind == StageActionKind::forward_taped)
        ++forwards[static_cast<std::size_t>(a.stage)];
    std::int64_t from_schedule = 0;
    for (int i = 0; i < L; ++i) from_schedule += (forwards[static_cast<std::size_t>(i)] - 1) * ops[static_cast<std::size_t>(i)];
    const std::int64_t p = revolve_recomputations(L, c.slots);
    const std::int64_t per_step = ops[0];
    if (x.stage->recomputed_steps != p) disagree(fmt::format("{}: stage recomputations {} != p({}, {}) = {}", spec, x.stage->recomputed_steps, L, c.slots, p));
    if (x.measured.recomputed_ops != from_schedule)
      disagree(fmt::format("{}: measured recomputed ops {} != {} counted from the schedule", spec, x.measured.recomputed_ops, from_schedule));
    heat.add({std::int64_t{c.steps}, std::int64_t{L}, std::int64_t{c.slots}, p, x.stage->recomputed_steps, per_step, from_schedule,
              p * per_step, x.predicted.recomputed_ops, x.measured.recomputed_ops, x.measured.forward_ops,
              static_cast<std::int64_t>(x.measured.peak_bytes), static_cast<std::int64_t>(x.predicted.peak_bytes),
              x.median_seconds, x.measured_overhead, x.grads_bitwise_equal, x.promises_hold});
    std::cout << fmt::format("heat steps={:<5} L={:<5} s={:<3} p(L,s)={:<6} ops/step={}  recomputed ops: measured {} = simulated {} "
                             "= schedule {} (p x ops/step = {}); gradients {}\n",
                             c.steps, L, c.slots, p, per_step, x.measured.recomputed_ops, x.predicted.recomputed_ops,
                             from_schedule, p * per_step, x.grads_bitwise_equal ? "bitwise equal" : "DIFFER");
  }
  nlohmann::json meta{{"threads", threads}, {"repeat", o.repeat}, {"max_slots", max_s}, {"recursion_max_n", recursion_max_n},
                      {"max_replayed_recomputations", max_replayed}};
  write_results(o, "counts", counts, meta);
  write_results(o, "references", references, meta);
  write_results(o, "heat", heat, meta);
}

}  // namespace

int main(int argc, char** argv) { return paper_main(argc, argv, "griewank2000", about, run); }
