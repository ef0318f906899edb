// Contract: paper_chen2016, Chen, Xu, Zhang, Guestrin 2016, "Training Deep Nets with
// Sublinear Memory Cost" (arXiv:1604.06174): peak memory and time against depth for
// store-all, sqrt (k = round(sqrt(L)) segments, Sec. 4.1) and chen-greedy (Alg. 3,
// the least-memory segmentation its threshold search finds).
// Models: mlp and resmlp, width 128, batch 128 (--quick: width 16, batch 4), depths
// 16..1024 executed for real (promises checked, times are medians of interleaved
// rounds) and 2048..16384 simulated only (simulate() on the metering backend, which
// the executed rows show equals the measured peak to the byte). The exponent of
// peak memory against depth is a least-squares fit on log-log over all depths.
// With --onnx PATH (scripts/export_models.py), store-all, sqrt and chen-greedy also run
// on each real architecture: results/chen2016/real_models.{csv,json}.
// Writes results/chen2016/{depth,fits}.{csv,json} and chen2016.png.
// Exit status: 0; 2 on errors; 4 when a promise broke.
#include "experiments/common/bench.hpp"

#include <iostream>

using namespace remat;
using namespace remat::papers;

namespace {

constexpr const char* about =
    "paper_chen2016: peak memory and step time against depth (16 to 16384 layers) for store-all,\n"
    "sqrt and chen-greedy on mlp and resmlp; fits the exponent of memory against depth.";

void run(const DriverOptions& o, int threads) {
  const std::vector<int> executed = o.quick ? std::vector<int>{8, 16, 32} : std::vector<int>{16, 32, 64, 128, 256, 512, 1024};
  const std::vector<int> simulated = o.quick ? std::vector<int>{64} : std::vector<int>{2048, 4096, 8192, 16384};
  const std::string size = o.quick ? "width=16,batch=4" : "width=128,batch=128";
  const std::vector<std::string> strategies{"store-all", "sqrt", "chen-greedy"};

  Table table({"family", "depth", "stages", "strategy", "mode", "peak_bytes_predicted", "peak_bytes_measured",
               "recomputed_ops", "forward_ops", "stage_recomputed", "planned_time", "planned_overhead", "median_seconds",
               "measured_overhead", "plan_seconds", "grads_bitwise_equal", "promises_hold"});
  Table fits({"family", "strategy", "exponent", "prefactor_bytes", "r_squared", "points", "min_depth", "max_depth",
              "exponent_executed_only"});
  nlohmann::json meta{{"threads", threads}, {"repeat", o.repeat}, {"size", size}, {"executed_depths", executed},
                      {"simulated_depths", simulated}};

  for (const std::string family : {"mlp", "resmlp"}) {
    std::map<std::string, std::vector<double>> depth_of, peak_of, depth_exec, peak_exec;
    auto one_depth = [&](int depth, bool execute) {
      const std::string spec = fmt::format("{}:layers={},{},act=relu", family, depth, size);
      std::cerr << fmt::format("[chen2016] {} ({})\n", spec, execute ? "executed" : "simulated");
      ModelBench bench(spec, o.paper);
      std::vector<Outcome> outs;
      for (const auto& name : strategies) {
        outs.push_back(bench.plan(Attempt{name, "", std::nullopt, {}}));
        if (!outs.back().feasible())
          throw Error(fmt::format("[chen2016] {} could not be planned on {}: {}", name, spec, outs.back().error));
      }
      if (execute) {
        std::vector<Outcome*> ptrs;
        for (auto& x : outs) ptrs.push_back(&x);
        bench.execute(ptrs, o.repeat);
      }
      for (const Outcome& x : outs) {
        table.add({family, std::int64_t{depth}, std::int64_t{bench.view().chain.length()}, x.attempt.strategy,
                   std::string(execute ? "executed" : "simulated"), static_cast<std::int64_t>(x.predicted.peak_bytes),
                   optional_cell(execute, static_cast<std::int64_t>(x.measured.peak_bytes)), x.predicted.recomputed_ops,
                   x.predicted.forward_ops, x.stage ? Cell{x.stage->recomputed_steps} : Cell{}, x.planned_time,
                   x.planned_overhead, optional_cell(execute, x.median_seconds),
                   optional_cell(execute, x.measured_overhead), x.plan_seconds, optional_cell(execute, x.grads_bitwise_equal),
                   optional_cell(execute, x.promises_hold)});
        depth_of[x.attempt.strategy].push_back(depth);
        peak_of[x.attempt.strategy].push_back(static_cast<double>(x.predicted.peak_bytes));
        if (execute) {
          depth_exec[x.attempt.strategy].push_back(depth);
          peak_exec[x.attempt.strategy].push_back(static_cast<double>(x.measured.peak_bytes));
        }
      }
      std::cout << fmt::format("{:<7} depth {:>5} {:<9}", family, depth, execute ? "executed" : "simulated");
      for (const Outcome& x : outs)
        std::cout << fmt::format(" | {} {:.2f} MiB{}", x.attempt.strategy, static_cast<double>(x.predicted.peak_bytes) / 1048576.0,
                                 execute ? fmt::format(" {:.3f}s ({:+.0f}%)", x.median_seconds, 100 * x.measured_overhead) : "");
      std::cout << "\n";
    };
    for (int d : executed) one_depth(d, true);
    for (int d : simulated) one_depth(d, false);
    for (const auto& name : strategies) {
      PowerFit all = fit_power_law(depth_of[name], peak_of[name]);
      PowerFit ex = fit_power_law(depth_exec[name], peak_exec[name]);
      fits.add({family, name, all.exponent, all.prefactor, all.r_squared, std::int64_t{all.points},
                std::int64_t{static_cast<int>(depth_of[name].front())}, std::int64_t{static_cast<int>(depth_of[name].back())},
                ex.exponent});
      std::cout << fmt::format("{:<7} {:<12} peak ~ depth^{:.3f} (R^2 {:.4f}, {} depths {}..{}; executed depths only: ^{:.3f})\n",
                               family, name, all.exponent, all.r_squared, all.points, depth_of[name].front(),
                               depth_of[name].back(), ex.exponent);
    }
  }
  // --onnx: store-all, sqrt (cut at the graph's articulation points) and chen-greedy on
  // real architectures, executed with the promises checked.
  Table real({"model", "strategy", "stages", "peak_bytes_predicted", "peak_bytes_measured", "memory_ratio",
              "recomputed_ops", "forward_ops", "planned_overhead", "median_seconds", "measured_overhead",
              "grads_bitwise_equal", "promises_hold"});
  for (Model& model : real_models(o)) {
    ModelBench bench(std::move(model), o.paper);
    std::vector<Outcome> outs;
    for (const auto& name : strategies) {
      outs.push_back(bench.plan(Attempt{name, "", std::nullopt, {}}));
      if (!outs.back().feasible())
        throw Error(fmt::format("[chen2016] {} could not be planned on {}: {}", name, bench.spec(), outs.back().error));
    }
    std::vector<Outcome*> ptrs;
    for (auto& x : outs) ptrs.push_back(&x);
    bench.execute(ptrs, o.repeat);
    std::cout << fmt::format("{} ({} chain stages):", bench.spec(), bench.view().chain.length());
    for (const Outcome& x : outs) {
      const double ratio = static_cast<double>(bench.store_all_peak()) / static_cast<double>(x.measured.peak_bytes);
      real.add({bench.spec(), x.attempt.strategy, std::int64_t{bench.view().chain.length()},
                static_cast<std::int64_t>(x.predicted.peak_bytes), static_cast<std::int64_t>(x.measured.peak_bytes), ratio,
                x.measured.recomputed_ops, x.measured.forward_ops, x.planned_overhead, x.median_seconds,
                x.measured_overhead, x.grads_bitwise_equal, x.promises_hold});
      std::cout << fmt::format(" | {} {:.2f} MiB ({:.2f}x less) {:+.0f}%", x.attempt.strategy,
                               static_cast<double>(x.measured.peak_bytes) / 1048576.0, ratio, 100 * x.measured_overhead);
    }
    std::cout << "\n";
  }
  write_results(o, "depth", table, meta);
  write_results(o, "fits", fits, meta);
  if (!o.onnx.empty()) write_results(o, "real_models", real, meta);
}

}  // namespace

int main(int argc, char** argv) { return paper_main(argc, argv, "chen2016", about, run, /*takes_real_models=*/true); }
