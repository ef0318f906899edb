// Contract: gpu_bench, the CUDA backend's printed figures (run by gpu/check.sh on a
// GPU machine; not a test). Needs a CUDA device; says so and exits 2 without one.
//  1. gemm: remat's CudaBackend::gemm against cublasSgemm called directly on the
//     same sizes (TFLOP/s; both use CUBLAS_DEFAULT_MATH, so no TF32).
//  2. elementwise kernels (copy, relu, add, bias add, axpy) against a
//     device-to-device cudaMemcpy of the same bytes (GB/s counts bytes read + written).
//  3. one training step of the 100-layer MLP and of a transformer under every
//     strategy: step time (median, the stream synchronised), the metered peak
//     (budgeted bytes) against simulate(), recomputed ops, gradients bitwise equal
//     to store-all, and device memory: tensor bytes allocated during the step
//     (parameter gradients included, as torch.cuda.max_memory_allocated counts them)
//     and the pool's reservation.
// Options: --json FILE (every figure, for gpu/summarize.py), --steps N (timed steps
// per strategy, default 10), --mlp SPEC, --transformer SPEC, --no-kernels.
#include "models/models.hpp"
#include "gpu/cuda_backend.hpp"
#include "strategies/strategies.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>

using namespace remat;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("[gpu_bench] ") + what + ": " + cudaGetErrorString(e));
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string("[gpu_bench] ") + what + ": " + cublasGetStatusString(s));
}

// Median seconds of `repeat` calls of f, after `warmup` calls; `sync` waits for the device.
template <class F, class S>
double time_median(int warmup, int repeat, F&& f, S&& sync) {
  for (int i = 0; i < warmup; ++i) f();
  sync();
  std::vector<double> t;
  for (int i = 0; i < repeat; ++i) {
    auto t0 = Clock::now();
    f();
    sync();
    t.push_back(seconds_since(t0));
  }
  return median(t);
}

// ---- 1. gemm ----

nlohmann::json bench_gemm(Backend& backend) {
  nlohmann::json rows = nlohmann::json::array();
  fmt::print("\n== gemm (f32, row-major C = A @ B): remat vs cublasSgemm called directly ==\n");
  fmt::print("{:>22} {:>14} {:>14} {:>8}\n", "m x n x k", "remat TFLOP/s", "cuBLAS TFLOP/s", "ratio");
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  cublasHandle_t handle;
  check(cublasCreate(&handle), "cublasCreate");
  check(cublasSetStream(handle, stream), "cublasSetStream");
  void* workspace = nullptr;
  check(cudaMalloc(&workspace, 32u << 20), "cudaMalloc");
  check(cublasSetWorkspace(handle, workspace, 32u << 20), "cublasSetWorkspace");
  check(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  struct Size { std::int64_t m, n, k; };
  for (Size s : {Size{256, 512, 512}, Size{1024, 1024, 1024}, Size{2048, 2048, 2048}, Size{4096, 4096, 4096},
                 Size{8192, 8192, 8192}}) {
    Tensor a = backend.empty({{s.m, s.k}, DType::f32}, MemoryCategory::workspace);
    Tensor b = backend.empty({{s.k, s.n}, DType::f32}, MemoryCategory::workspace);
    Tensor c = backend.empty({{s.m, s.n}, DType::f32}, MemoryCategory::workspace);
    backend.fill(a, 0.5);
    backend.fill(b, 0.25);
    cuda_synchronize(backend);  // the direct cuBLAS calls run on another stream
    GemmArgs g;
    g.m = s.m; g.n = s.n; g.k = s.k;
    g.a = &a; g.lda = s.k; g.b = &b; g.ldb = s.n; g.c = &c; g.ldc = s.n;
    const double flops = 2.0 * static_cast<double>(s.m * s.n * s.k);
    const int repeat = flops > 1e11 ? 10 : 50;
    const double t_remat = time_median(3, repeat, [&] { backend.gemm(g); }, [&] { cuda_synchronize(backend); });
    const float alpha = 1, beta = 0;
    const int m = static_cast<int>(s.m), n = static_cast<int>(s.n), k = static_cast<int>(s.k);
    const double t_blas = time_median(3, repeat, [&] {
      check(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, b.data<float>(), n, a.data<float>(), k, &beta,
                        c.data<float>(), n), "cublasSgemm");
    }, [&] { check(cudaStreamSynchronize(stream), "cudaStreamSynchronize"); });
    const double remat_tflops = flops / t_remat / 1e12, blas_tflops = flops / t_blas / 1e12;
    fmt::print("{:>22} {:>14.2f} {:>14.2f} {:>8.3f}\n", fmt::format("{} x {} x {}", s.m, s.n, s.k), remat_tflops,
               blas_tflops, remat_tflops / blas_tflops);
    rows.push_back({{"m", s.m}, {"n", s.n}, {"k", s.k}, {"remat_tflops", remat_tflops}, {"cublas_tflops", blas_tflops}});
  }
  cublasDestroy(handle);
  cudaFree(workspace);
  cudaStreamDestroy(stream);
  return rows;
}

// ---- 2. elementwise ----

nlohmann::json bench_elementwise(Backend& backend) {
  nlohmann::json rows = nlohmann::json::array();
  const std::int64_t n = std::int64_t{1} << 26;  // 64 Mi f32 = 256 MiB per tensor
  const double bytes = static_cast<double>(n) * 4;
  const std::int64_t width = 1024;
  Tensor x = backend.empty({{n / width, width}, DType::f32}, MemoryCategory::workspace);
  Tensor y = backend.empty({{n / width, width}, DType::f32}, MemoryCategory::workspace);
  Tensor z = backend.empty({{n / width, width}, DType::f32}, MemoryCategory::workspace);
  Tensor bias = backend.empty({{width}, DType::f32}, MemoryCategory::workspace);
  backend.fill(x, 0.5);
  backend.fill(y, -0.25);
  backend.fill(bias, 1.0);
  cuda_synchronize(backend);  // the direct copy below runs on another stream
  auto sync = [&] { cuda_synchronize(backend); };
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  const double t_copy = time_median(3, 20, [&] {
    check(cudaMemcpyAsync(z.raw(), x.raw(), x.bytes(), cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync");
  }, [&] { check(cudaStreamSynchronize(stream), "cudaStreamSynchronize"); });
  cudaStreamDestroy(stream);
  const double copy_gbs = 2 * bytes / t_copy / 1e9;
  fmt::print("\n== elementwise (f32, {} elements): GB/s of bytes read + written, against cudaMemcpy D2D ==\n", n);
  fmt::print("{:<28} {:>10} {:>10}\n", "kernel", "GB/s", "vs copy");
  fmt::print("{:<28} {:>10.0f} {:>10.3f}\n", "cudaMemcpy device-to-device", copy_gbs, 1.0);
  rows.push_back({{"kernel", "cudaMemcpy D2D"}, {"gbs", copy_gbs}, {"vs_copy", 1.0}});
  struct Kernel { const char* name; double traffic; std::function<void()> run; };
  const Kernel kernels[] = {
      {"copy", 2 * bytes, [&] { backend.copy(x, z); }},
      {"unary relu", 2 * bytes, [&] { backend.unary(UnaryKind::relu, 0, x, z); }},
      {"unary gelu", 2 * bytes, [&] { backend.unary(UnaryKind::gelu, 0, x, z); }},
      {"binary add", 3 * bytes, [&] { backend.binary(BinaryKind::add, x, y, z); }},
      {"binary add (bias row)", 2 * bytes, [&] { backend.binary(BinaryKind::add, x, bias, z); }},
      {"axpy", 3 * bytes, [&] { backend.axpy(0.5, x, z); }},
      {"relu backward", 3 * bytes, [&] { backend.unary_backward(UnaryKind::relu, 0, Tensor(), y, x, z); }},
  };
  for (const Kernel& k : kernels) {
    const double t = time_median(3, 20, k.run, sync);
    const double gbs = k.traffic / t / 1e9;
    fmt::print("{:<28} {:>10.0f} {:>10.3f}\n", k.name, gbs, gbs / copy_gbs);
    rows.push_back({{"kernel", k.name}, {"gbs", gbs}, {"vs_copy", gbs / copy_gbs}});
  }
  return rows;
}

// ---- 3. training steps under every strategy ----

struct Plan {
  std::string strategy, setting;
  std::optional<std::size_t> budget;
};

nlohmann::json bench_model(Backend& backend, const std::string& spec, int steps) {
  Model m = build_model(spec);
  const Tape& tape = *m.tape;
  const Bindings data = m.batch(0);
  const Program store_all = store_all_program(tape, m.loss.id);
  StrategyOptions options;
  const std::size_t sqrt_peak = simulate(tape, make_strategy("sqrt", options)->plan(tape, m.loss.id, Budget{})).peak_bytes;
  // Every strategy of the registry at its default, as `remat compare` has them.
  std::vector<Plan> plans;
  for (const auto& row : strategy_registry())
    if (!row.solver)
      plans.push_back(row.compared_at_sqrt_peak ? Plan{row.name, "budget = sqrt's peak", sqrt_peak}
                                              : Plan{row.name, row.default_setting, std::nullopt});
  fmt::print("\n== one training step of {} on the GPU ==\n", m.spec);
  fmt::print("{:<12} {:<26} {:>10} {:>12} {:>12} {:>12} {:>10} {:>9} {:>9} {:>7}\n", "strategy", "setting", "plan s",
             "peak meas.", "peak plan", "device peak", "recomputed", "step ms", "overhead", "grads");
  std::map<int, HostArray> reference;
  double base_ms = 0;
  nlohmann::json rows = nlohmann::json::array();
  for (const Plan& plan : plans) {
    auto t0 = Clock::now();
    Program p;
    try {
      p = make_strategy(plan.strategy, options)->plan(tape, m.loss.id, Budget{plan.budget});
    } catch (const InfeasibleBudget& e) {
      fmt::print("{:<12} {:<26} infeasible: smallest feasible budget {} bytes\n", plan.strategy, plan.setting,
                 e.min_feasible_bytes);
      continue;
    }
    const double plan_seconds = seconds_since(t0);
    const StepReport predicted = simulate(tape, p);
    Executor ex(tape, backend);
    for (int w = 0; w < 2; ++w) ex.run(p, data);  // warm-up: the pool reaches its working set
    cuda_synchronize(backend);
    // Device memory of one step: tensor bytes beyond the resident parameters and state.
    cuda_reset_peak_memory(backend);
    const CudaMemoryStats before = cuda_memory_stats(backend);
    StepResult measured = ex.run(p, data);
    cuda_synchronize(backend);
    const CudaMemoryStats after = cuda_memory_stats(backend);
    const std::size_t device_peak = after.allocated_peak_bytes - before.allocated_bytes;
    bool equal = true;
    for (auto& [id, g] : measured.gradients) {
      HostArray h = backend.download(g);
      if (plan.strategy == "store-all") {
        reference.emplace(id, std::move(h));
      } else {
        const HostArray& r = reference.at(id);
        equal &= std::memcmp(h.bytes.data(), r.bytes.data(), h.bytes.size()) == 0;
      }
    }
    const StepReport report = measured.report;
    measured = StepResult{};
    std::vector<double> times;
    for (int k = 0; k < steps; ++k) {
      auto t1 = Clock::now();
      StepResult r = ex.run(p, data);
      cuda_synchronize(backend);
      times.push_back(seconds_since(t1));
    }
    const double ms = median(times) * 1e3;
    if (plan.strategy == "store-all") base_ms = ms;
    const bool promises = equal && report.peak_bytes == predicted.peak_bytes &&
                          report.recomputed_ops == predicted.recomputed_ops &&
                          (!plan.budget || report.peak_bytes <= *plan.budget);
    fmt::print("{:<12} {:<26} {:>10.3f} {:>12} {:>12} {:>12} {:>10} {:>9.2f} {:>8.1f}% {:>7}\n", plan.strategy,
               plan.setting, plan_seconds, report.peak_bytes, predicted.peak_bytes, device_peak, report.recomputed_ops,
               ms, base_ms > 0 ? (ms / base_ms - 1) * 100 : 0.0, equal ? "equal" : "DIFFER");
    rows.push_back({{"strategy", plan.strategy},
                    {"setting", plan.setting},
                    {"budget_bytes", plan.budget ? nlohmann::json(*plan.budget) : nlohmann::json(nullptr)},
                    {"plan_seconds", plan_seconds},
                    {"peak_bytes_measured", report.peak_bytes},
                    {"peak_bytes_predicted", predicted.peak_bytes},
                    {"device_step_peak_bytes", device_peak},
                    {"reserved_peak_bytes", after.reserved_peak_bytes},
                    {"parameter_bytes", report.parameter_bytes},
                    {"recomputed_ops", report.recomputed_ops},
                    {"step_ms_median", ms},
                    {"grads_bitwise_equal", equal},
                    {"promises_hold", promises}});
  }
  return {{"model", m.spec}, {"rows", rows}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, mlp = "mlp:layers=100,width=512,batch=256",
                         transformer = "transformer:layers=8,width=256,heads=8,seq=128,batch=16,vocab=4096";
  int steps = 10;
  bool kernels = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error("[gpu_bench] " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--json") json_path = value();
    else if (a == "--steps") steps = std::stoi(value());
    else if (a == "--mlp") mlp = value();
    else if (a == "--transformer") transformer = value();
    else if (a == "--no-kernels") kernels = false;
    else {
      std::cerr << "usage: gpu_bench [--json FILE] [--steps N] [--mlp SPEC] [--transformer SPEC] [--no-kernels]\n";
      return 2;
    }
  }
  try {
    if (cuda_device_count() == 0) {
      std::cerr << "[gpu_bench] no CUDA device is present on this machine: " << cuda_device_description(0) << "\n";
      return 2;
    }
    auto backend = make_cuda_backend(0);
    fmt::print("gpu_bench on {}\n", cuda_device_description(0));
    nlohmann::json out{{"device", cuda_device_description(0)}};
    if (kernels) {
      out["gemm"] = bench_gemm(*backend);
      out["elementwise"] = bench_elementwise(*backend);
    }
    out["models"] = nlohmann::json::array();
    for (const std::string& spec : {mlp, transformer})
      if (!spec.empty()) out["models"].push_back(bench_model(*backend, spec, steps));
    if (!json_path.empty()) {
      std::ofstream f(json_path);
      if (!f) throw Error("[gpu_bench] cannot write " + json_path);
      f << out.dump(2) << "\n";
    }
    bool ok = true;
    for (const auto& model : out["models"])
      for (const auto& row : model["rows"]) ok &= row["promises_hold"].get<bool>();
    if (!ok) {
      std::cerr << "[gpu_bench] a promise was broken on the GPU: see the rows above\n";
      return 4;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
