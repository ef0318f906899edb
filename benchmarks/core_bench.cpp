// Contract: `core_bench [--quick] [--no-torch] [--only=abcd]` prints, as markdown
// tables, the CPU backend's figures; every time is a median over repeats and every
// ratio compares two measurements taken in the same run, interleaved in time:
//  (a) sgemm through CpuBackend::gemm (GemmArgs on tensors from backend.empty) vs a
//      direct cblas_sgemm on the same buffers and shapes: GFLOP/s of each and the
//      ratio (goal >= 0.95);
//  (b) elementwise kernels (relu, exp, tanh; add, add of a broadcast row, mul) on
//      16M-element f32 tensors in GB/s (bytes read + written), vs std::memcpy moving
//      the same number of bytes, split over the same threads (and on one thread);
//  (c) executor overhead: a 10,000-node chain of tiny scale/add nodes, store-all
//      forward + backward on CpuBackend, and on the metering-only backend (an
//      Executor on MeteringBackend, and simulate()); microseconds per executed
//      instruction and per op node (goal <= 1 us per node);
//  (d) one store-all training step (forward + backward) of
//      mlp:layers=100,width=512,batch=256,act=relu f32: median step seconds and the
//      measured budgeted peak bytes; when /usr/bin/python3 can import torch, the same
//      step in PyTorch (benchmarks/torch_mlp_step.py --serve, a child process whose
//      steps alternate with ours) and the ratios ours / PyTorch (goal <= 1.0 for time).
// Threads: OMP_NUM_THREADS (default 2) is applied with omp_set_num_threads and
// openblas_set_num_threads here, and passed as OMP_NUM_THREADS, OPENBLAS_NUM_THREADS
// and torch.set_num_threads to the PyTorch script; the rest of the environment
// (OMP_WAIT_POLICY: see docs/benchmarks.md) is inherited. Denormals are not flushed
// on either side (MXCSR is left alone: OpenBLAS starts its threads before main, so a
// flush set here would not reach them); both sides rely on the scaled initial
// weights N(0, 2/width), and the subnormal count of the gradients is printed.
// --quick runs fewer repeats and smaller sizes (a smoke test, well under 30 s).
#include "experiments/common/subprocess.hpp"
#include "models/models.hpp"

#include <cblas.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>


using namespace remat;

namespace {

// ---------------------------------------------------------------- helpers ----

using Clock = std::chrono::steady_clock;

template <class F>
double seconds_of(F&& f) {
  auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// How many calls of f make one timed batch last at least `target` seconds.
template <class F>
int calibrate(F&& f, double target) {
  double one = seconds_of(f);
  if (one <= 0) return 1000;
  return std::clamp(static_cast<int>(std::ceil(target / one)), 1, 100000);
}

template <class F>
double per_call(F&& f, int calls) {
  return seconds_of([&] {
           for (int i = 0; i < calls; ++i) f();
         }) /
         calls;
}

std::string human_bytes(double b) {
  const char* unit[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) {
    b /= 1024;
    ++u;
  }
  return fmt::format("{:.2f} {}", b, unit[u]);
}

// A markdown table: the printed figures paste straight into docs/benchmarks.md.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  void print() const {
    std::vector<std::size_t> width(header_.size(), 3);
    for (std::size_t c = 0; c < header_.size(); ++c) width[c] = std::max(width[c], header_[c].size());
    for (const auto& r : rows_)
      for (std::size_t c = 0; c < r.size() && c < width.size(); ++c) width[c] = std::max(width[c], r[c].size());
    auto line = [&](const std::vector<std::string>& cells) {
      std::string s = "|";
      for (std::size_t c = 0; c < width.size(); ++c)
        s += fmt::format(" {:<{}} |", c < cells.size() ? cells[c] : "", width[c]);
      fmt::print("{}\n", s);
    };
    line(header_);
    std::string sep = "|";
    for (auto w : width) sep += std::string(w + 2, '-') + "|";
    fmt::print("{}\n", sep);
    for (const auto& r : rows_) line(r);
    fmt::print("\n");
    std::fflush(stdout);
  }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

struct Config {
  bool quick = false;
  bool torch = true;
  int threads = 2;
  std::string only = "abcd";  // sections to run
  bool runs(char section) const { return only.find(section) != std::string::npos; }
};

std::vector<std::string> goals;  // one line per goal, printed at the end

void goal(const std::string& what, bool met, const std::string& detail) {
  goals.push_back(fmt::format("- {}: {} ({})", what, met ? "met" : "NOT met", detail));
}

void fill_uniform(Tensor& t, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = u(rng);
}

// ------------------------------------------------------------------ (a) ------

struct GemmCase {
  std::int64_t m, n, k;
  bool ta, tb;
  const char* note;
};

void bench_gemm(const Config& cfg) {
  fmt::print("## (a) sgemm: CpuBackend::gemm vs direct cblas_sgemm (same buffers)\n\n");
  std::vector<GemmCase> cases = {
      {256, 512, 512, false, true, "MLP linear forward, X W^T"},
      {256, 512, 512, false, false, "MLP linear dX = dY W"},
      {512, 512, 256, true, false, "MLP linear dW = dY^T X"},
      {256, 512, 512, false, false, ""},
      {512, 512, 512, false, false, ""},
      {1024, 1024, 1024, false, false, ""},
      {256, 512, 2048, false, false, ""},
  };
  if (cfg.quick) cases.resize(3);
  const int repeats = cfg.quick ? 3 : 21;
  const double target = cfg.quick ? 0.01 : 0.04;
  CpuBackend cpu;
  Table table({"M x N x K", "op(A), op(B)", "use", "backend GFLOP/s", "cblas GFLOP/s", "backend/cblas"});
  double worst = 1e9;
  for (const auto& c : cases) {
    Tensor a = cpu.empty({c.ta ? Shape{c.k, c.m} : Shape{c.m, c.k}, DType::f32}, MemoryCategory::workspace);
    Tensor b = cpu.empty({c.tb ? Shape{c.n, c.k} : Shape{c.k, c.n}, DType::f32}, MemoryCategory::workspace);
    Tensor out = cpu.empty({{c.m, c.n}, DType::f32}, MemoryCategory::workspace);
    fill_uniform(a, 1);
    fill_uniform(b, 2);
    fill_uniform(out, 3);
    GemmArgs g;
    g.transpose_a = c.ta;
    g.transpose_b = c.tb;
    g.m = c.m;
    g.n = c.n;
    g.k = c.k;
    g.a = &a;
    g.lda = c.ta ? c.m : c.k;
    g.b = &b;
    g.ldb = c.tb ? c.k : c.n;
    g.c = &out;
    g.ldc = c.n;
    auto through_backend = [&] { cpu.gemm(g); };
    auto direct = [&] {
      cblas_sgemm(CblasRowMajor, c.ta ? CblasTrans : CblasNoTrans, c.tb ? CblasTrans : CblasNoTrans,
                  static_cast<int>(c.m), static_cast<int>(c.n), static_cast<int>(c.k), 1.0f, a.data<float>(),
                  static_cast<int>(g.lda), b.data<float>(), static_cast<int>(g.ldb), 0.0f, out.data<float>(),
                  static_cast<int>(g.ldc));
    };
    for (int i = 0; i < 2; ++i) {  // warm-up: OpenBLAS threads and caches
      through_backend();
      direct();
    }
    int calls = calibrate(direct, target);
    std::vector<double> tb, td;
    for (int r = 0; r < repeats; ++r) {
      if (r % 2 == 0) {
        tb.push_back(per_call(through_backend, calls));
        td.push_back(per_call(direct, calls));
      } else {
        td.push_back(per_call(direct, calls));
        tb.push_back(per_call(through_backend, calls));
      }
    }
    double flops = 2.0 * static_cast<double>(c.m * c.n * c.k);
    double gb = flops / median(tb) / 1e9, gd = flops / median(td) / 1e9;
    std::vector<double> paired;  // adjacent in time, so load from other processes mostly cancels
    for (std::size_t r = 0; r < tb.size(); ++r) paired.push_back(td[r] / tb[r]);
    const double ratio = median(paired);
    worst = std::min(worst, ratio);
    table.row({fmt::format("{} x {} x {}", c.m, c.n, c.k),
               fmt::format("{}, {}", c.ta ? "A^T" : "A", c.tb ? "B^T" : "B"), c.note, fmt::format("{:.1f}", gb),
               fmt::format("{:.1f}", gd), fmt::format("{:.3f}", ratio)});
  }
  table.print();
  fmt::print("Medians of {} repeats, backend and cblas interleaved (order alternating); each repeat times a batch\n"
             "of back-to-back calls calibrated to last >= {} ms. The ratio is the median of the per-repeat ratios\n"
             "(cblas time / backend time of the same repeat).\n\n",
             repeats, static_cast<int>(target * 1000));
  goal("(a) sgemm backend/cblas >= 0.95", worst >= 0.95, fmt::format("worst ratio {:.3f}", worst));
}

// ------------------------------------------------------------------ (b) ------

void parallel_memcpy(void* dst, const void* src, std::size_t bytes) {
#ifdef _OPENMP
#pragma omp parallel
  {
    // The same static partition as cpu::parallel_blocks: one block per thread.
    std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
    std::size_t n = static_cast<std::size_t>(omp_get_num_threads());
    std::size_t begin = bytes * t / n / 64 * 64, end = t + 1 == n ? bytes : bytes * (t + 1) / n / 64 * 64;
    std::memcpy(static_cast<char*>(dst) + begin, static_cast<const char*>(src) + begin, end - begin);
  }
#else
  std::memcpy(dst, src, bytes);
#endif
}

void bench_elementwise(const Config& cfg) {
  const std::int64_t cols = 512;
  const std::int64_t n = cfg.quick ? (std::int64_t{1} << 22) : (std::int64_t{1} << 24);
  const std::int64_t rows = n / cols;
  const int repeats = cfg.quick ? 3 : 15;
  fmt::print("## (b) elementwise kernels: CpuBackend vs memcpy of the same bytes ({}M f32 elements)\n\n", n >> 20);
  CpuBackend cpu;
  TensorMeta full{{rows, cols}, DType::f32};
  Tensor x = cpu.empty(full, MemoryCategory::workspace), other = cpu.empty(full, MemoryCategory::workspace);
  Tensor y = cpu.empty(full, MemoryCategory::workspace);
  Tensor row = cpu.empty({{cols}, DType::f32}, MemoryCategory::workspace);
  fill_uniform(x, 11);
  fill_uniform(other, 12);
  fill_uniform(y, 13);
  fill_uniform(row, 14);
  Tensor labels = cpu.empty({{rows}, DType::i32}, MemoryCategory::workspace);
  Tensor loss_grad = cpu.empty({{}, DType::f32}, MemoryCategory::workspace);
  for (std::int64_t r = 0; r < rows; ++r) labels.data<std::int32_t>()[r] = static_cast<std::int32_t>((r * 7) % cols);
  loss_grad.data<float>()[0] = 1.0f;
  // memcpy buffers large enough for the binary ops' traffic (3 arrays moved = 1.5 arrays copied).
  const std::size_t array_bytes = static_cast<std::size_t>(n) * sizeof(float);
  const std::size_t copy_capacity = array_bytes * 3 / 2;
  std::unique_ptr<char, decltype(&std::free)> src(static_cast<char*>(std::aligned_alloc(64, copy_capacity)), &std::free);
  std::unique_ptr<char, decltype(&std::free)> dst(static_cast<char*>(std::aligned_alloc(64, copy_capacity)), &std::free);
  std::memset(src.get(), 1, copy_capacity);
  std::memset(dst.get(), 2, copy_capacity);

  struct Case {
    const char* name;
    double bytes;  // read + written
    std::function<void()> run;
  };
  const double a = static_cast<double>(array_bytes);
  std::vector<Case> cases = {
      {"relu", 2 * a, [&] { cpu.unary(UnaryKind::relu, 0, x, y); }},
      {"exp", 2 * a, [&] { cpu.unary(UnaryKind::exp, 0, x, y); }},
      {"tanh", 2 * a, [&] { cpu.unary(UnaryKind::tanh, 0, x, y); }},
      {"add (same shape)", 3 * a, [&] { cpu.binary(BinaryKind::add, x, other, y); }},
      {"add (broadcast row of 512)", 2 * a + cols * 4.0, [&] { cpu.binary(BinaryKind::add, x, row, y); }},
      {"mul (same shape)", 3 * a, [&] { cpu.binary(BinaryKind::mul, x, other, y); }},
      {"softmax (rows of 512)", 2 * a, [&] { cpu.softmax(x, false, y); }},
      {"log_softmax (rows of 512)", 2 * a, [&] { cpu.softmax(x, true, y); }},
      {"cross_entropy backward (rows of 512)", 2 * a, [&] { cpu.cross_entropy_backward(x, labels, loss_grad, y); }},
  };
  Table table({"op", "bytes moved", "backend GB/s", "memcpy GB/s (T threads)", "ratio", "memcpy GB/s (1 thread)",
               "ratio vs 1-thread"});
  for (const auto& c : cases) {
    const auto copy_bytes = static_cast<std::size_t>(c.bytes / 2);  // memcpy reads and writes this many
    auto par = [&] { parallel_memcpy(dst.get(), src.get(), copy_bytes); };
    auto one = [&] { std::memcpy(dst.get(), src.get(), copy_bytes); };
    c.run();
    par();
    one();
    std::vector<double> top, tpar, tone;
    for (int r = 0; r < repeats; ++r) {
      switch (r % 3) {  // rotate the order so drift hits all three alike
        case 0: top.push_back(seconds_of(c.run)); tpar.push_back(seconds_of(par)); tone.push_back(seconds_of(one)); break;
        case 1: tpar.push_back(seconds_of(par)); tone.push_back(seconds_of(one)); top.push_back(seconds_of(c.run)); break;
        default: tone.push_back(seconds_of(one)); top.push_back(seconds_of(c.run)); tpar.push_back(seconds_of(par)); break;
      }
    }
    double gop = c.bytes / median(top) / 1e9, gpar = c.bytes / median(tpar) / 1e9, gone = c.bytes / median(tone) / 1e9;
    std::vector<double> rpar, rone;  // per-repeat ratios (same repeat, adjacent in time)
    for (std::size_t r = 0; r < top.size(); ++r) {
      rpar.push_back(tpar[r] / top[r]);
      rone.push_back(tone[r] / top[r]);
    }
    table.row({c.name, human_bytes(c.bytes), fmt::format("{:.1f}", gop), fmt::format("{:.1f}", gpar),
               fmt::format("{:.2f}", median(rpar)), fmt::format("{:.1f}", gone), fmt::format("{:.2f}", median(rone))});
  }
  table.print();
  fmt::print(
      "GB/s = (bytes read + bytes written) / median time over {} rotated repeats; memcpy copies half the op's\n"
      "bytes (so it too reads and writes them). T = {} threads, split in one block per thread like the kernels.\n"
      "Ratios are medians of per-repeat ratios (memcpy time / op time of the same repeat).\n\n",
      repeats, cfg.threads);
}

// ------------------------------------------------------------------ (c) ------

void bench_executor(const Config& cfg) {
  const int total_nodes = 10000;
  const int repeats = cfg.quick ? 5 : 21;
  fmt::print("## (c) executor overhead: a chain of {} tiny nodes (4-element f32), store-all forward + backward\n\n",
             total_nodes);
  Tape tape;
  Value w = tape.parameter("w", HostArray::from({4}, std::vector<float>{0.5f, -0.25f, 0.125f, 1.0f}));
  Value x = tape.input("x", HostArray::from({4}, std::vector<float>{0.1f, 0.2f, -0.3f, 0.4f}));
  Value h = add(x, w);
  // x, w, the first add and the final sum are 4 nodes; the rest alternate scale and add.
  for (int i = 0; i < total_nodes - 4; ++i) h = i % 2 == 0 ? scale(h, 0.999) : add(h, x);
  Value loss = sum(h);
  int op_nodes = 0;
  for (const Node& node : tape.nodes()) op_nodes += node.kind == NodeKind::op;
  Program program = store_all_program(tape, loss.id);
  const auto instructions = static_cast<double>(program.instructions.size());

  Table table({"backend", "median step ms", "us / instruction", "us / op node", "instructions", "op nodes"});
  auto measure = [&](const std::string& label, auto&& step) {
    for (int i = 0; i < 3; ++i) step();
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) t.push_back(seconds_of(step));
    double s = median(t);
    table.row({label, fmt::format("{:.3f}", s * 1e3), fmt::format("{:.3f}", s * 1e6 / instructions),
               fmt::format("{:.3f}", s * 1e6 / op_nodes), fmt::format("{}", program.instructions.size()),
               fmt::format("{}", op_nodes)});
    return s;
  };
  CpuBackend cpu;
  Executor ex(tape, cpu);
  double cpu_seconds = measure("cpu (Executor::run)", [&] { auto r = ex.run(program); });
  MeteringBackend metering;
  Executor exm(tape, metering);
  measure("metering (Executor::run)", [&] { auto r = exm.run(program); });
  measure("metering (simulate(): + executor setup)", [&] { auto r = simulate(tape, program); });
  table.print();
  fmt::print("Median of {} runs after 3 warm-up runs; a step is compute, free, seed_grad, backward and free_grad\n"
             "instructions; op nodes = {} of the {} tape nodes (the rest are x and w).\n\n",
             repeats, op_nodes, tape.size());
  double per_node = cpu_seconds * 1e6 / op_nodes;
  goal("(c) executor overhead <= 1 us per node (cpu)", per_node <= 1.0, fmt::format("{:.3f} us per op node", per_node));
}

// ------------------------------------------------------------------ (d) ------


void bench_mlp(const Config& cfg) {
#ifdef REMAT_BENCH_NO_MODEL
  (void)cfg;
  fmt::print("## (d) training step: skipped (built with REMAT_BENCH_NO_MODEL)\n\n");
#else
  auto count_subnormal = [](Backend& backend, const Tensor& t) {
    HostArray h = backend.download(t);
    std::int64_t n = 0;
    if (h.meta.dtype == DType::f32)
      for (std::int64_t i = 0; i < h.numel(); ++i) n += std::fpclassify(h.data<float>()[i]) == FP_SUBNORMAL;
    return n;
  };
  const int layers = cfg.quick ? 20 : 100, width = 512, batch = 256;
  const int warmup = cfg.quick ? 1 : 3, steps = cfg.quick ? 3 : 15;
  const auto pause = std::chrono::milliseconds(cfg.quick ? 50 : 200);
  const std::string spec = fmt::format("mlp:layers={},width={},batch={},act=relu", layers, width, batch);
  fmt::print("## (d) one store-all training step (forward + backward): {} f32\n\n", spec);

  Model m = build_model(spec);
  Program program = store_all_program(*m.tape, m.loss.id);
  StepReport predicted = simulate(*m.tape, program);
  CpuBackend cpu;
  Executor ex(*m.tape, cpu);
  Bindings data = m.batch(0);
  StepReport report;
  double loss = 0;
  std::int64_t subnormal = 0, gradient_values = 0;
  auto our_step = [&](bool last) {
    std::optional<StepResult> result;
    double s = seconds_of([&] { result = ex.run(program, data); });
    report = result->report;
    loss = result->loss ? result->loss->at(0) : NAN;
    if (last)
      for (const auto& [id, g] : result->gradients) {
        subnormal += count_subnormal(cpu, g);
        gradient_values += g.numel();
      }
    return s;
  };
  for (int i = 0; i < warmup; ++i) our_step(false);

  std::unique_ptr<ChildProcess> server;
  std::string torch_status;
  if (!cfg.torch) {
    torch_status = "skipped (--no-torch)";
  } else if (run_process({"/usr/bin/python3", "-c", "import torch"}) != 0) {
    torch_status = "skipped (/usr/bin/python3 cannot import torch)";
  } else {
    const std::string threads = std::to_string(cfg.threads);
    std::vector<std::string> argv{"/usr/bin/python3", std::string(REMAT_BENCH_SOURCE_DIR) + "/torch_mlp_step.py",
                                  "--serve", "--layers", std::to_string(layers), "--width", std::to_string(width),
                                  "--batch", std::to_string(batch), "--threads", threads, "--warmup",
                                  std::to_string(warmup)};
    std::vector<std::string> env{"OMP_NUM_THREADS=" + threads, "OPENBLAS_NUM_THREADS=" + threads};
    std::string command = "OMP_NUM_THREADS=" + threads + " OPENBLAS_NUM_THREADS=" + threads;
    for (const auto& a : argv) command += " " + a;
    fmt::print("PyTorch: {}\n(the rest of the environment, OMP_WAIT_POLICY included, is inherited)\n", command);
    std::fflush(stdout);
    try {
      server = std::make_unique<ChildProcess>(argv, env);
      std::string ready = server->ask(nullptr);
      if (ready != "ready") throw Error("[core_bench] the PyTorch script said '" + ready + "' instead of 'ready'");
      torch_status = "ok";
    } catch (const std::exception& e) {
      server.reset();
      torch_status = fmt::format("failed: {}", e.what());
    }
  }

  // Interleaved: ours and PyTorch's steps alternate (order swapping each round), each
  // after a short pause so the other process's spinning threads have gone to sleep.
  std::vector<double> ours_times, torch_times;
  for (int i = 0; i < steps; ++i) {
    auto run_torch = [&] {
      if (!server) return;
      std::this_thread::sleep_for(pause);
      try {
        torch_times.push_back(std::stod(server->ask("step")));
      } catch (const std::exception& e) {
        server.reset();
        torch_status = fmt::format("failed: {}", e.what());
      }
    };
    if (i % 2 == 1) run_torch();
    std::this_thread::sleep_for(pause);
    ours_times.push_back(our_step(i + 1 == steps));
    if (i % 2 == 0) run_torch();
  }
  nlohmann::json torch;
  if (server) {
    try {
      torch = nlohmann::json::parse(server->ask("report"));
    } catch (const std::exception& e) {
      torch_status = fmt::format("failed: {}", e.what());
    }
    server.reset();
  }

  const double ours = median(ours_times);
  const double ours_min = *std::min_element(ours_times.begin(), ours_times.end());
  fmt::print("ours: loss {:.6f}; budgeted peak {} (simulate() predicted {}: {}); subnormal gradient values {} of {}\n",
             loss, report.peak_bytes, predicted.peak_bytes,
             report.peak_bytes == predicted.peak_bytes ? "equal" : "DIFFERENT", subnormal, gradient_values);
  fmt::print("ours peak by category:");
  for (std::size_t c = 0; c < memory_category_count; ++c)
    if (is_budgeted(static_cast<MemoryCategory>(c)))
      fmt::print(" {} {}", memory_category_name(static_cast<MemoryCategory>(c)),
                 human_bytes(static_cast<double>(report.peak_by_category[c])));
  fmt::print(" (each category's own peak)\n\n");

  const std::string our_peak =
      fmt::format("{} ({})", report.peak_bytes, human_bytes(static_cast<double>(report.peak_bytes)));
  Table table({"", "ours (remat, store-all)", "PyTorch", "ours / PyTorch"});
  if (torch_status == "ok" && !torch_times.empty()) {
    const double ts = median(torch_times), tmin = *std::min_element(torch_times.begin(), torch_times.end());
    const double tp = torch.at("peak_activation_bytes").get<double>();
    table.row({"median step seconds", fmt::format("{:.4f}", ours), fmt::format("{:.4f}", ts),
               fmt::format("{:.3f}", ours / ts)});
    table.row({"fastest step seconds", fmt::format("{:.4f}", ours_min), fmt::format("{:.4f}", tmin),
               fmt::format("{:.3f}", ours_min / tmin)});
    table.row({"peak bytes (parameters and their gradients excluded)", our_peak,
               fmt::format("{:.0f} ({})", tp, human_bytes(tp)), fmt::format("{:.3f}", report.peak_bytes / tp)});
    table.print();
    fmt::print("{} steps each, interleaved, after {} warm-up steps each. PyTorch {} on {} threads; its peak by {};\n"
               "with parameter gradients {}; bytes autograd saved for backward {}; loss {:.6f}; subnormal gradient\n"
               "values {}.\n\n",
               steps, warmup, torch.value("torch_version", "?"), torch.value("threads", 0),
               torch.value("peak_method", "?"), human_bytes(torch.value("peak_including_parameter_gradients", 0.0)),
               human_bytes(torch.value("saved_tensor_bytes", 0.0)), torch.value("loss", 0.0),
               torch.value("subnormal_gradient_values", 0));
    goal("(d) step time ours/PyTorch <= 1.0", ours / ts <= 1.0, fmt::format("median ratio {:.3f}", ours / ts));
  } else {
    table.row({"median step seconds", fmt::format("{:.4f}", ours), "-", "-"});
    table.row({"fastest step seconds", fmt::format("{:.4f}", ours_min), "-", "-"});
    table.row({"peak bytes (parameters and their gradients excluded)", our_peak, "-", "-"});
    table.print();
    fmt::print("{} steps after {} warm-up steps. PyTorch: {}\n\n", steps, warmup, torch_status);
    goal("(d) step time ours/PyTorch <= 1.0", false, "PyTorch not measured: " + torch_status);
  }
  fmt::print("Denormals: not flushed on either side (MXCSR untouched); both rely on the scaled initial weights\n"
             "N(0, 2/width), and the subnormal counts above show whether that held.\n\n");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--quick") {
      cfg.quick = true;
    } else if (arg == "--no-torch") {
      cfg.torch = false;
    } else if (arg.rfind("--only=", 0) == 0) {
      cfg.only = arg.substr(7);
    } else if (arg == "--help" || arg == "-h") {
      fmt::print("usage: core_bench [--quick] [--no-torch] [--only=abcd]\n"
                 "  --quick     fewer repeats and smaller sizes (smoke test)\n"
                 "  --no-torch  skip the PyTorch comparison in (d)\n"
                 "  --only=...  run only the listed sections, e.g. --only=ad\n"
                 "  threads: OMP_NUM_THREADS (default 2), applied to OpenMP, OpenBLAS and PyTorch\n");
      return 0;
    } else {
      fmt::print(stderr, "core_bench: unknown argument '{}' (usage: core_bench [--quick] [--no-torch] [--only=abcd])\n", arg);
      return 2;
    }
  }
  if (const char* env = std::getenv("OMP_NUM_THREADS")) cfg.threads = std::max(1, std::atoi(env));
#ifdef _OPENMP
  omp_set_num_threads(cfg.threads);
  const int omp_threads = omp_get_max_threads();
#else
  const int omp_threads = 1;
#endif
  openblas_set_num_threads(cfg.threads);
  const char* blas_env = std::getenv("OPENBLAS_NUM_THREADS");

  fmt::print("# core_bench{}\n\n", cfg.quick ? " --quick (smoke-test sizes)" : "");
  fmt::print("threads: {} (OMP_NUM_THREADS {}; OpenMP max threads {}; OpenBLAS threads {}, OPENBLAS_NUM_THREADS {})\n",
             cfg.threads, std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "unset (default 2)",
             omp_threads, openblas_get_num_threads(), blas_env ? blas_env : "unset (set by openblas_set_num_threads)");
  fmt::print("OpenBLAS: {}\n", openblas_get_config());
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  fmt::print("OMP_WAIT_POLICY: {}{}\n", wait_policy ? wait_policy : "unset (libgomp spins after each parallel region)",
             wait_policy ? "" : "; its spinning workers compete with OpenBLAS's pthreads, see docs/benchmarks.md");
  fmt::print("every time is a median over repeats; ratios compare measurements interleaved in this run\n\n");
  std::fflush(stdout);

  auto start = Clock::now();
  try {
    if (cfg.runs('a')) bench_gemm(cfg);
    if (cfg.runs('b')) bench_elementwise(cfg);
    if (cfg.runs('c')) bench_executor(cfg);
    if (cfg.runs('d')) bench_mlp(cfg);
  } catch (const std::exception& e) {
    fmt::print(stderr, "core_bench: {}\n", e.what());
    return 1;
  }
  fmt::print("## goals\n\n");
  for (const auto& g : goals) fmt::print("{}\n", g);
  fmt::print("\ntotal wall time {:.1f} s\n",
             std::chrono::duration<double>(Clock::now() - start).count());
  return 0;
}
