// Contract: paper_seed_claims, the claims of the page remat grew from, answered with
// numbers (experiments/seed_claims/README.md has the claims and the verdicts):
//  1. "checkpointing enables full fine-tuning of 7B+ models on single GPUs with
//     16-24 GB", and "LoRA + checkpointing" fine-tunes on affordable hardware, also
//     on long documents: the LLaMA-7B shape (llama:preset=7b, bf16 weights and
//     activations, Adam with f32 master weights, batch 1) at sequence lengths 512 to
//     32768, full fine-tuning and LoRA rank 16, naive and fused attention. Planned
//     only (shape-only tapes on the metering backend: no tensor data): the total device
//     memory (weights, gradients, optimizer state, master weights, activation peak)
//     under store-all, sqrt and optimal (at its smallest feasible budget, and the
//     least-overhead plan that fits 16 GiB and 24 GiB in total), with the planned
//     recompute overhead (roofline costs).
//  2. "On 100 layers sqrt(n) gives roughly 10x less activation memory for about 33%
//     more compute": measured on the CPU on the 100-layer mlp (width 512, batch 256):
//     store-all, sqrt, optimal at sqrt's peak, and optimal at a tenth of store-all's
//     peak (or, when no plan reaches a tenth, at the smallest feasible budget), every
//     run checked by the three promises; and planned at LLM size on a 100-layer
//     LLaMA-7B-width stack (seq 2048, bf16).
// --quick: a two-layer llama and a 16-layer mlp at toy sizes (the ctest smoke test).
// Writes results/seed_claims/{llm_memory,hundred_layers}.{csv,json} and seed_claims.png.
// Exit status: 0; 2 on bad arguments or errors; 4 when a promise broke.
#include "autodiff/training_memory.hpp"
#include "experiments/common/bench.hpp"
#include "strategies/planning.hpp"

#include <iostream>

using namespace remat;
using namespace remat::papers;

namespace {

constexpr const char* about =
    "paper_seed_claims: the seed's claims on checkpointing at LLM scale (7B full fine-tuning and LoRA\n"
    "on 16-24 GiB, long context) and on 100 layers (10x less memory for 33% more compute).";

constexpr std::size_t GiB = std::size_t{1} << 30;

double mib(std::size_t bytes) { return static_cast<double>(bytes) / 1048576.0; }
double gib(std::size_t bytes) { return static_cast<double>(bytes) / static_cast<double>(GiB); }

// One planned row of the LLM table.
struct Planned {
  bool feasible = false;
  std::size_t activation_peak = 0;
  std::size_t min_feasible_activation = 0;  // when infeasible
  double overhead = 0;
  double plan_seconds = 0;
  std::string setting;
};

// Plans `strategy` on the model at an activation budget (none: the strategy's default).
Planned plan_on(const Model& m, const NodeCosts& costs, const std::string& strategy, std::optional<std::size_t> budget) {
  Planned p;
  try {
    auto s = make_strategy(strategy);
    PlanReport r = plan(*s, PlanRequest{*m.tape, m.loss.id, Budget{budget}, &costs});
    p.feasible = true;
    p.activation_peak = r.predicted.peak_bytes;
    p.overhead = r.planned_overhead();
    p.plan_seconds = r.plan_seconds;
    p.setting = r.setting;
  } catch (const InfeasibleBudget& e) {
    p.min_feasible_activation = e.min_feasible_bytes;
  }
  return p;
}

// Part 1: total training memory of the LLaMA-7B shape, planned.
void llm_memory(const DriverOptions& o) {
  const std::vector<std::int64_t> seqs = o.quick ? std::vector<std::int64_t>{32, 64}
                                                 : std::vector<std::int64_t>{512, 2048, 4096, 8192, 16384, 32768};
  const std::string shape = o.quick ? "llama:layers=2,width=64,heads=4,kv_heads=2,ffn=128,vocab=256" : "llama:preset=7b";
  // The two device sizes of the claim; --quick scales them to the toy model.
  const std::vector<std::pair<std::string, std::size_t>> devices =
      o.quick ? std::vector<std::pair<std::string, std::size_t>>{{"2MiB", 2 << 20}, {"4MiB", 4 << 20}}
              : std::vector<std::pair<std::string, std::size_t>>{{"16GiB", 16 * GiB}, {"24GiB", 24 * GiB}};
  Table table({"model", "tuning", "attention", "seq", "strategy", "device_budget", "feasible", "weights",
               "parameter_gradients", "optimizer_state", "master_weights", "activation_peak", "total", "fits_small",
               "fits_large", "planned_overhead", "plan_seconds", "setting"});
  for (const std::string tuning : {"full", "lora16"}) {
    for (const std::string attention : {"naive", "fused"}) {
      for (std::int64_t seq : seqs) {
        const std::string spec = fmt::format("{},seq={},batch=1,dtype=bf16,attention={}{}", shape, seq, attention,
                                             tuning == "lora16" ? ",lora=16" : "");
        std::cerr << fmt::format("[seed_claims] {}\n", spec);
        const Model m = build_model(spec);
        const NodeCosts costs = analytic_node_costs(*m.tape);
        const StepReport store_all_step = simulate(*m.tape, store_all_program(*m.tape, m.loss.id));
        TrainingMemory fixed = training_memory(*m.tape, store_all_step, Optimizer::adam, DType::f32);
        auto add_row = [&](const std::string& strategy, const std::string& device, const Planned& p) {
          TrainingMemory mem = fixed;
          mem.activation_peak = p.feasible ? p.activation_peak : p.min_feasible_activation;
          table.add({m.spec, tuning, attention, seq, strategy, device, p.feasible,
                     static_cast<std::int64_t>(mem.weights), static_cast<std::int64_t>(mem.parameter_gradients),
                     static_cast<std::int64_t>(mem.optimizer_state), static_cast<std::int64_t>(mem.master_weights),
                     static_cast<std::int64_t>(mem.activation_peak), static_cast<std::int64_t>(mem.total()),
                     p.feasible && mem.total() <= devices[0].second, p.feasible && mem.total() <= devices[1].second,
                     optional_cell(p.feasible, p.overhead), p.plan_seconds, p.setting});
        };
        add_row("store-all", "", plan_on(m, costs, "store-all", std::nullopt));
        add_row("sqrt", "", plan_on(m, costs, "sqrt", std::nullopt));
        // optimal at its smallest feasible budget: the least activation memory any plan reaches.
        Planned least = plan_on(m, costs, "optimal", std::size_t{1});
        add_row("optimal (least memory)", "", plan_on(m, costs, "optimal", least.min_feasible_activation));
        for (const auto& [name, bytes] : devices) {
          if (fixed.fixed() >= bytes) {
            Planned none;  // the fixed parts alone exceed the device: no activation budget is left
            none.min_feasible_activation = least.min_feasible_activation;
            add_row("optimal", name, none);
          } else {
            add_row("optimal", name, plan_on(m, costs, "optimal", bytes - fixed.fixed()));
          }
        }
      }
    }
  }
  // The summary: per tuning and attention, the longest sequence that fits each device.
  for (const std::string tuning : {"full", "lora16"})
    for (const std::string attention : {"naive", "fused"}) {
      std::string line = fmt::format("{} fine-tuning, {} attention:", tuning, attention);
      for (std::size_t d = 0; d < devices.size(); ++d) {
        std::int64_t longest = 0;
        double overhead = 0;
        for (const auto& row : table.rows()) {
          if (std::get<std::string>(row[1]) != tuning || std::get<std::string>(row[2]) != attention) continue;
          if (std::get<std::string>(row[5]) != devices[d].first || !std::get<bool>(row[6])) continue;
          const std::int64_t seq = std::get<std::int64_t>(row[3]);
          if (seq > longest) longest = seq, overhead = std::get<double>(row[15]);
        }
        line += longest ? fmt::format(" fits {} up to seq {} (optimal, {:+.1f}% planned);", devices[d].first, longest,
                                      100 * overhead)
                        : fmt::format(" does not fit {} at any length;", devices[d].first);
      }
      std::cout << line << "\n";
    }
  for (const auto& row : table.rows())
    if (std::get<std::string>(row[4]) == "store-all" && std::get<std::int64_t>(row[3]) == seqs.front() &&
        std::get<std::string>(row[2]) == "naive")
      std::cout << fmt::format("{}: fixed memory {:.2f} GiB (weights {:.2f}, gradients {:.2f}, Adam {:.2f}, masters {:.2f})\n",
                               std::get<std::string>(row[1]),
                               gib(static_cast<std::size_t>(std::get<std::int64_t>(row[7]) + std::get<std::int64_t>(row[8]) +
                                                            std::get<std::int64_t>(row[9]) + std::get<std::int64_t>(row[10]))),
                               gib(static_cast<std::size_t>(std::get<std::int64_t>(row[7]))),
                               gib(static_cast<std::size_t>(std::get<std::int64_t>(row[8]))),
                               gib(static_cast<std::size_t>(std::get<std::int64_t>(row[9]))),
                               gib(static_cast<std::size_t>(std::get<std::int64_t>(row[10]))));
  write_results(o, "llm_memory", table, nlohmann::json{{"optimizer", "adam"}, {"master_weights", "f32"}});
}

// Part 2: the 100-layer claim, measured on the CPU and planned at LLM size.
void hundred_layers(const DriverOptions& o, int threads) {
  Table table({"model", "where", "strategy", "setting", "budget_bytes", "store_all_peak", "peak_bytes",
               "memory_ratio", "planned_overhead", "measured_overhead", "median_seconds", "grads_bitwise_equal",
               "promises_hold"});
  {
    const std::string spec = o.quick ? "mlp:layers=16,width=32,batch=8,act=relu" : "mlp:layers=100,width=512,batch=256,act=relu";
    std::cerr << fmt::format("[seed_claims] measured on the cpu: {}\n", spec);
    ModelBench bench(spec, o.paper);
    const std::size_t full = bench.store_all_peak();
    std::vector<Outcome> outs;
    outs.push_back(bench.plan({"store-all", "", std::nullopt, {}}));
    outs.push_back(bench.plan({"sqrt", "round(sqrt(L)) segments", std::nullopt, {}}));
    outs.push_back(bench.plan({"optimal", "at sqrt's peak", outs[1].predicted.peak_bytes, {}}));
    Outcome tenth = bench.plan({"optimal", "a tenth of store-all", full / 10, {}});
    if (!tenth.feasible())
      tenth = bench.plan({"optimal", "least feasible (a tenth is infeasible)", tenth.min_feasible_bytes, {}});
    outs.push_back(tenth);
    for (const Outcome& x : outs)
      if (!x.feasible()) throw Error(fmt::format("[seed_claims] {} could not be planned on {}: {}", x.attempt.strategy, spec, x.error));
    std::vector<Outcome*> ptrs;
    for (auto& x : outs) ptrs.push_back(&x);
    bench.execute(ptrs, o.repeat);
    for (const Outcome& x : outs) {
      table.add({bench.spec(), fmt::format("measured on the cpu ({} threads)", threads), x.attempt.strategy,
                 x.attempt.setting, optional_cell(x.attempt.budget.has_value(), static_cast<std::int64_t>(x.attempt.budget.value_or(0))),
                 static_cast<std::int64_t>(full), static_cast<std::int64_t>(x.measured.peak_bytes),
                 static_cast<double>(full) / static_cast<double>(x.measured.peak_bytes), x.planned_overhead,
                 x.measured_overhead, x.median_seconds, x.grads_bitwise_equal, x.promises_hold});
      std::cout << fmt::format("{} {} ({}): peak {:.2f} MiB ({:.2f}x less than store-all), {:+.1f}% measured, {:+.1f}% planned\n",
                               bench.spec(), x.attempt.strategy, x.attempt.setting, mib(x.measured.peak_bytes),
                               static_cast<double>(full) / static_cast<double>(x.measured.peak_bytes),
                               100 * x.measured_overhead, 100 * x.planned_overhead);
    }
  }
  {
    const std::string spec = o.quick ? "llama:layers=16,width=64,heads=4,kv_heads=2,ffn=128,vocab=256,seq=32,batch=1,dtype=bf16"
                                     : "llama:preset=7b,layers=100,seq=2048,batch=1,dtype=bf16";
    std::cerr << fmt::format("[seed_claims] planned: {}\n", spec);
    const Model m = build_model(spec);
    const NodeCosts costs = analytic_node_costs(*m.tape);
    const Planned all = plan_on(m, costs, "store-all", std::nullopt);
    const std::size_t full = all.activation_peak;
    std::vector<std::pair<std::string, Planned>> rows{{"", all}, {"round(sqrt(L)) segments", plan_on(m, costs, "sqrt", std::nullopt)}};
    rows.emplace_back("at sqrt's peak", plan_on(m, costs, "optimal", rows[1].second.activation_peak));
    Planned tenth = plan_on(m, costs, "optimal", full / 10);
    std::string tenth_setting = "a tenth of store-all";
    if (!tenth.feasible) {
      tenth = plan_on(m, costs, "optimal", tenth.min_feasible_activation);
      tenth_setting = "least feasible (a tenth is infeasible)";
    }
    rows.emplace_back(tenth_setting, tenth);
    const char* names[] = {"store-all", "sqrt", "optimal", "optimal"};
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const Planned& p = rows[k].second;
      table.add({m.spec, "planned (roofline)", std::string(names[k]), rows[k].first, Cell{}, static_cast<std::int64_t>(full),
                 static_cast<std::int64_t>(p.activation_peak), static_cast<double>(full) / static_cast<double>(p.activation_peak),
                 p.overhead, Cell{}, Cell{}, Cell{}, Cell{}});
      std::cout << fmt::format("{} {} ({}): activation peak {:.2f} GiB ({:.2f}x less than store-all), {:+.1f}% planned\n",
                               m.spec, names[k], rows[k].first, gib(p.activation_peak),
                               static_cast<double>(full) / static_cast<double>(p.activation_peak), 100 * p.overhead);
    }
  }
  write_results(o, "hundred_layers", table, nlohmann::json{{"threads", threads}, {"repeat", o.repeat}});
}

void run(const DriverOptions& o, int threads) {
  llm_memory(o);
  hundred_layers(o, threads);
}

}  // namespace

int main(int argc, char** argv) { return paper_main(argc, argv, "seed_claims", about, run); }
