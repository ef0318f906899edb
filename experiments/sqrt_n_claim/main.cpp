// Contract: paper_sqrt_n_claim, the folk claim of sqrt(n) checkpointing (Chen et al.
// 2016, arXiv:1604.06174, Sec. 4): a 100-layer network keeps about 10x less
// activation memory for about 33% more compute, with identical gradients.
// For mlp and resmlp (100 layers, width 512, batch 256; --quick: 16 layers, width 32,
// batch 8) it plans, simulates and executes store-all and sqrt (k = round(sqrt(L))
// segments) and reports: peak budgeted bytes (measured = simulated), the peak of
// the `saved` category (values kept for a backward: the tape), the ratio of each to
// store-all's, the planned overhead (analytic roofline time), the measured overhead
// (median over interleaved rounds), recomputed ops and the bitwise gradient check.
// Writes results/sqrt_n_claim/{sqrt_n_claim,trace}.{csv,json} and sqrt_n_claim.png.
// Exit status: 0; 2 on bad arguments or errors; 4 when a promise broke.
#include "experiments/common/bench.hpp"

#include <iostream>

using namespace remat;
using namespace remat::papers;

namespace {

constexpr const char* about =
    "paper_sqrt_n_claim: store-all against sqrt(n) checkpointing on 100-layer mlp and resmlp\n"
    "(memory ratio, planned and measured time overhead, recomputed ops, bitwise gradients).";

void run(const DriverOptions& o, int threads) {
  const std::string size = o.quick ? "layers=16,width=32,batch=8" : "layers=100,width=512,batch=256";
  Table table({"model", "strategy", "stages", "peak_bytes_measured", "peak_bytes_predicted", "saved_peak_bytes",
               "memory_ratio", "saved_memory_ratio", "recomputed_ops", "forward_ops", "planned_overhead",
               "measured_overhead", "median_seconds", "grads_bitwise_equal", "promises_hold"});
  Table trace({"model", "strategy", "instruction", "live_bytes"});
  nlohmann::json meta{{"threads", threads}, {"repeat", o.repeat}, {"models", nlohmann::json::array()}};

  for (const std::string family : {"mlp", "resmlp"}) {
    const std::string spec = family + ":" + size + ",act=relu";
    std::cerr << fmt::format("[sqrt_n_claim] {}\n", spec);
    ModelBench bench(spec, o.paper);
    meta["models"].push_back(bench.spec());
    std::vector<Outcome> outs;
    for (const std::string name : {"store-all", "sqrt"}) {
      Attempt a{name, name == "sqrt" ? "round(sqrt(L)) segments" : "", std::nullopt, {}};
      outs.push_back(bench.plan(a));
      if (!outs.back().feasible())
        throw Error(fmt::format("[sqrt_n_claim] {} could not be planned on {}: {}", name, spec, outs.back().error));
    }
    std::vector<Outcome*> ptrs;
    for (auto& x : outs) ptrs.push_back(&x);
    bench.execute(ptrs, o.repeat, /*record_trace=*/true);
    const auto saved = static_cast<std::size_t>(MemoryCategory::saved);
    const double base_peak = static_cast<double>(outs[0].measured.peak_bytes);
    const double base_saved = static_cast<double>(outs[0].measured.peak_by_category[saved]);
    for (const Outcome& x : outs) {
      const double peak = static_cast<double>(x.measured.peak_bytes);
      const double saved_peak = static_cast<double>(x.measured.peak_by_category[saved]);
      table.add({bench.spec(), x.attempt.strategy, std::int64_t{bench.view().chain.length()},
                 static_cast<std::int64_t>(x.measured.peak_bytes), static_cast<std::int64_t>(x.predicted.peak_bytes),
                 static_cast<std::int64_t>(x.measured.peak_by_category[saved]), base_peak / peak, base_saved / saved_peak,
                 x.measured.recomputed_ops, x.measured.forward_ops, x.planned_overhead, x.measured_overhead,
                 x.median_seconds, x.grads_bitwise_equal, x.promises_hold});
      for (std::size_t i = 0; i < x.measured.live_bytes.size(); ++i)
        trace.add({family, x.attempt.strategy, static_cast<std::int64_t>(i), static_cast<std::int64_t>(x.measured.live_bytes[i])});
    }
    const Outcome& s = outs[1];
    std::cout << fmt::format(
        "{}: store-all peak {:.2f} MiB -> sqrt {:.2f} MiB ({:.2f}x less; saved values {:.2f}x less); "
        "time {:+.1f}% measured (median of {} interleaved rounds, store-all {:.3f} s), {:+.1f}% planned; "
        "{} recomputed ops of {} forward; gradients {}\n",
        family, base_peak / 1048576.0, static_cast<double>(s.measured.peak_bytes) / 1048576.0,
        base_peak / static_cast<double>(s.measured.peak_bytes),
        base_saved / static_cast<double>(s.measured.peak_by_category[saved]), 100 * s.measured_overhead, o.repeat,
        bench.store_all_median(), 100 * s.planned_overhead, s.measured.recomputed_ops, outs[0].measured.forward_ops,
        s.grads_bitwise_equal ? "bitwise equal" : "DIFFER");
  }
  write_results(o, "sqrt_n_claim", table, meta);
  write_results(o, "trace", trace, meta);
}

}  // namespace

int main(int argc, char** argv) { return paper_main(argc, argv, "sqrt_n_claim", about, run); }
