// Contract: `models_bench [--quick] [--steps=N] [--models=zoo|real|all]` runs every zoo
// model, and the real architectures that scripts/export_models.py exports to ONNX
// (resnet18, resnet50, mobilenet_v2, densenet121, gpt2_tiny, vit_tiny; exported into a
// temporary folder at start and loaded with load_onnx, whose time is printed), against
// its PyTorch twin (benchmarks/torch_models.py, a child process on /usr/bin/python3 whose
// steps alternate with ours; an imported model's twin is the very module exported, cut
// into its top-level blocks) and prints, as a markdown table, the median training step time
// (forward + backward) and the peak of
//   remat store-all  against  PyTorch plain autograd, and
//   remat sqrt       against  torch.utils.checkpoint.checkpoint_sequential
// with the ratios remat / PyTorch (unet: store-all only; its skip connections leave no
// chain of blocks for either side to checkpoint). Each model's parameter count is taken
// from both sides and printed; a difference is an error (exit 1), since then the two
// sides do not run the same architecture. Peaks: remat's measured budgeted peak
// (checked equal to simulate()'s), PyTorch's by its allocator replay (parameters and
// their gradients excluded on both sides).
// Threads: OMP_NUM_THREADS (default 2) is applied here with set_cpu_threads and passed
// as OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and --threads to the twin; the rest of the
// environment (OMP_WAIT_POLICY=passive: docs/benchmarks.md) is inherited by it.
// Exit status: 0, 1 on a parameter-count mismatch or a failed model, 77 when
// /usr/bin/python3 cannot import torch (ctest reads 77 as skipped). --quick: small
// sizes and few steps (the ctest smoke test, seconds).
#include "experiments/common/subprocess.hpp"
#include "models/models.hpp"
#include "models/onnx/onnx_import.hpp"
#include "strategies/strategies.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace remat;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string mib(double bytes) { return fmt::format("{:.1f}", bytes / (1024.0 * 1024.0)); }

// The sizes of issue 13's table; --quick shrinks every one.
std::vector<std::string> model_specs(bool quick) {
  if (quick)
    return {"transformer:layers=2,width=32,heads=4,seq=16,batch=2,vocab=50", "mlp:layers=4,width=64,batch=16,act=tanh",
            "mlp:layers=4,width=64,batch=16,act=gelu", "resmlp:layers=4,width=64,batch=16,act=relu",
            "lstm:steps=8,hidden=16,input=8,batch=4", "resnet:blocks=2,width=8,batch=2,image=8",
            "unet:levels=2,width=4,batch=2,image=16"};
  return {"transformer:layers=4,width=256,heads=4,seq=128,batch=8,vocab=1000",
          "mlp:layers=32,width=512,batch=256,act=tanh",
          "mlp:layers=32,width=512,batch=256,act=gelu",
          "resmlp:layers=32,width=512,batch=256,act=relu",
          "lstm:steps=64,hidden=256,input=128,batch=32",
          "resnet:blocks=3,width=32,batch=16,image=32",
          "unet:levels=3,width=16,batch=8,image=64"};
}

// The imported architectures (scripts/export_models.py), each at a batch that steps in
// about a second on 2 cores; --quick: two small ones.
struct RealModel {
  std::string name;
  int batch = 2, image = 64, context = 16, classes = 1000;
};
std::vector<RealModel> real_models(bool quick) {
  if (quick) return {{"resnet18", 2, 32, 16, 10}, {"gpt2_tiny", 2, 32, 16, 64}};
  return {{"resnet18", 8, 64},     {"resnet50", 4, 64}, {"mobilenet_v2", 8, 64},
          {"densenet121", 4, 64}, {"gpt2_tiny", 8, 64, 64}, {"vit_tiny", 8, 64}};
}

struct Row {
  std::string spec;
  std::int64_t parameters = 0, torch_parameters = -1;
  std::string sqrt_setting;
  int segments = 0;
  double store_all = NAN, sqrt = NAN, torch_none = NAN, torch_ckpt = NAN;
  double store_all_peak = NAN, sqrt_peak = NAN, torch_none_peak = NAN, torch_ckpt_peak = NAN;
  double load_seconds = NAN;  // load_onnx's time, for an imported model
  int torch_segments = 0, torch_blocks = 0;
  std::string failure;
};

std::int64_t parameter_count(const Tape& tape) {
  std::int64_t n = 0;
  for (int id : tape.parameters()) n += tape.parameter_initial(id).numel();
  return n;
}

// What one row benches: a zoo spec, or an ONNX file exported by scripts/export_models.py
// whose twin is the torchvision (or TinyGpt) module it came from.
struct Subject {
  std::string label;       // the row's name
  std::string twin_spec;   // torch_models.py --model
  std::string onnx_path;   // empty for a zoo model
  bool chain = true;       // false: store-all only (unet)
};

Row bench_model(const Subject& subject, int threads, int warmup, int steps, std::chrono::milliseconds pause) {
  Row row;
  row.spec = subject.label;
  Model m;
  if (subject.onnx_path.empty()) {
    m = build_model(subject.twin_spec);
  } else {
    const auto t0 = Clock::now();
    m = std::move(load_onnx(subject.onnx_path).model);
    row.load_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  row.parameters = parameter_count(*m.tape);
  const bool chain = subject.chain;
  struct Plan {
    Program program;
    std::size_t predicted = 0;
  };
  std::vector<Plan> plans;
  plans.push_back({store_all_program(*m.tape, m.loss.id), 0});
  if (chain) {
    const PlanReport r = plan(*make_strategy("sqrt", StrategyOptions{}), PlanRequest{*m.tape, m.loss.id, Budget{}});
    row.sqrt_setting = r.setting;
    // remat's sqrt: round(sqrt(L)) segments of the L stages; a zoo twin gets as many (its
    // blocks are remat's stages), an imported model's twin round(sqrt(its own blocks)).
    const int stages = r.stage ? r.stage->view->chain.length() : 1;
    row.segments = std::max(1, static_cast<int>(std::lround(std::sqrt(static_cast<double>(stages)))));
    plans.push_back({r.program, 0});
  }
  for (auto& p : plans) p.predicted = simulate(*m.tape, p.program).peak_bytes;

  CpuBackend cpu;
  Executor ex(*m.tape, cpu);
  const Bindings data = m.batch(0);
  std::vector<std::vector<double>> ours(plans.size());
  std::vector<std::size_t> measured(plans.size(), 0);
  auto our_step = [&](std::size_t k) {
    const auto t0 = Clock::now();
    StepResult result = ex.run(plans[k].program, data);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    measured[k] = std::max(measured[k], result.report.peak_bytes);
    return s;
  };
  for (int i = 0; i < warmup; ++i)
    for (std::size_t k = 0; k < plans.size(); ++k) our_step(k);

  const std::string t = std::to_string(threads);
  std::vector<std::string> argv{"/usr/bin/python3", std::string(REMAT_BENCH_SOURCE_DIR) + "/torch_models.py", "--model",
                                subject.twin_spec, "--threads", t, "--warmup", std::to_string(warmup)};
  if (chain && subject.onnx_path.empty()) argv.insert(argv.end(), {"--segments", std::to_string(row.segments)});
  ChildProcess twin(argv, {"OMP_NUM_THREADS=" + t, "OPENBLAS_NUM_THREADS=" + t});
  const nlohmann::json ready = nlohmann::json::parse(twin.ask(nullptr));
  row.torch_parameters = ready.at("parameters").get<std::int64_t>();
  row.torch_segments = ready.value("segments", 0);
  row.torch_blocks = ready.value("blocks", 0);
  const char* modes[] = {"step none", "step ckpt"};
  std::vector<std::vector<double>> theirs(plans.size());
  // Interleaved: each round runs every mode on both sides, the side going first
  // alternating, each step after a pause so the other process's threads are asleep.
  for (int i = 0; i < steps; ++i)
    for (std::size_t k = 0; k < plans.size(); ++k) {
      auto torch_step = [&] {
        std::this_thread::sleep_for(pause);
        theirs[k].push_back(std::stod(twin.ask(modes[k])));
      };
      if (i % 2) torch_step();
      std::this_thread::sleep_for(pause);
      ours[k].push_back(our_step(k));
      if (i % 2 == 0) torch_step();
    }
  const nlohmann::json report = nlohmann::json::parse(twin.ask("report"));
  for (std::size_t k = 0; k < plans.size(); ++k)
    if (measured[k] != plans[k].predicted)
      row.failure += fmt::format("{} measured peak {} != planned {}; ", k ? "sqrt" : "store-all", measured[k],
                                 plans[k].predicted);
  row.store_all = median(ours[0]);
  row.torch_none = median(theirs[0]);
  row.store_all_peak = static_cast<double>(measured[0]);
  row.torch_none_peak = report.at("peaks").at("none").get<double>();
  if (chain) {
    row.sqrt = median(ours[1]);
    row.torch_ckpt = median(theirs[1]);
    row.sqrt_peak = static_cast<double>(measured[1]);
    row.torch_ckpt_peak = report.at("peaks").at("ckpt").get<double>();
  }
  return row;
}

std::string ratio(double a, double b) { return std::isnan(a) || std::isnan(b) || b <= 0 ? "-" : fmt::format("{:.2f}x", a / b); }
std::string ms(double s) { return std::isnan(s) ? "-" : fmt::format("{:.1f}", s * 1e3); }

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int steps = 0;
  std::string which = "all";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") quick = true;
    else if (arg.rfind("--steps=", 0) == 0) {
      try {
        steps = std::stoi(arg.substr(8));
      } catch (const std::exception&) {
        steps = 0;
      }
      if (steps < 1 || steps > 1000) {
        fmt::print(stderr, "[models_bench] --steps must be an integer in 1..1000, got '{}'\n", arg.substr(8));
        return 2;
      }
    } else if (arg.rfind("--models=", 0) == 0) {
      which = arg.substr(9);
      if (which != "zoo" && which != "real" && which != "all") {
        fmt::print(stderr, "[models_bench] --models must be zoo, real or all, got '{}'\n", which);
        return 2;
      }
    } else {
      fmt::print(stderr, "[models_bench] unknown argument '{}' (usage: models_bench [--quick] [--steps=N] "
                         "[--models=zoo|real|all])\n", arg);
      return 2;
    }
  }
  if (steps == 0) steps = quick ? 2 : 7;
  const int warmup = quick ? 1 : 2;
  const auto pause = std::chrono::milliseconds(quick ? 10 : 100);
  const char* env = std::getenv("OMP_NUM_THREADS");
  const int threads = env && std::atoi(env) > 0 ? std::atoi(env) : 2;
  set_cpu_threads(threads);
  if (run_process({"/usr/bin/python3", "-c", "import torch"}) != 0) {
    fmt::print("[models_bench] /usr/bin/python3 cannot import torch: nothing to compare against (skipped)\n");
    return 77;
  }
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  fmt::print("remat models_bench{}: {} threads (OMP_WAIT_POLICY={}); median of {} interleaved steps after {} warm-up\n"
             "steps each; peaks in MiB without parameters and their gradients; ratio = remat / PyTorch\n\n",
             quick ? " --quick" : "", threads, wait ? wait : "unset", steps, warmup);
  fmt::print("| model | parameters (both) | store-all ms | torch ms | time | sqrt ms | ckpt_seq ms | time | "
             "store-all MiB | torch MiB | peak | sqrt MiB | ckpt_seq MiB | peak |\n"
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::fflush(stdout);
  int failures = 0;
  std::vector<std::string> notes;
  std::vector<Subject> subjects;
  if (which != "real")
    for (const auto& spec : model_specs(quick)) subjects.push_back({spec, spec, "", spec.rfind("unet", 0) != 0});
  // The imported models are exported here, now, by the same script users run.
  std::filesystem::path export_dir;
  if (which != "zoo") {
    std::string pattern = (std::filesystem::temp_directory_path() / "remat_models_bench_XXXXXX").string();
    if (!mkdtemp(pattern.data())) {
      fmt::print(stderr, "[models_bench] cannot create a temporary folder for the ONNX exports\n");
      return 1;
    }
    export_dir = pattern;
    if (run_process({"/usr/bin/python3", "-c", "import torchvision"}) != 0) {
      notes.push_back("imported models skipped: /usr/bin/python3 cannot import torchvision");
    } else {
      for (const auto& r : real_models(quick)) {
        const std::filesystem::path dir = export_dir / fmt::format("{}_b{}", r.name, r.batch);
        const std::string script = std::string(REMAT_BENCH_SOURCE_DIR) + "/../scripts/export_models.py";
        const int rc = run_process({"/usr/bin/python3", script, "--out", dir.string(), "--models", r.name, "--batch",
                                    std::to_string(r.batch), "--image", std::to_string(r.image), "--context",
                                    std::to_string(r.context), "--classes", std::to_string(r.classes)},
                                   {}, (export_dir / (r.name + ".log")).string());
        const bool image_input = r.name != "gpt2_tiny";
        const std::string label = image_input ? fmt::format("onnx:{} batch {}, {}x{}", r.name, r.batch, r.image, r.image)
                                              : fmt::format("onnx:{} batch {}, context {}", r.name, r.batch, r.context);
        const std::string twin = fmt::format("torchvision:model={},batch={},image={},context={},classes={}", r.name,
                                             r.batch, r.image, r.context, r.classes);
        if (rc != 0) {
          ++failures;
          fmt::print("| {} | FAILED: scripts/export_models.py exited with {} (see its log) |\n", label, rc);
          continue;
        }
        subjects.push_back({label, twin, (dir / (r.name + ".onnx")).string(), true});
      }
    }
  }
  for (const auto& subject : subjects) {
    const std::string& spec = subject.label;
    Row r;
    try {
      r = bench_model(subject, threads, warmup, steps, pause);
    } catch (const std::exception& e) {
      r.spec = spec;
      r.failure = e.what();
    }
    if (r.torch_parameters >= 0 && r.torch_parameters != r.parameters)
      r.failure += fmt::format("parameter counts differ: remat {} PyTorch {}; ", r.parameters, r.torch_parameters);
    if (!r.failure.empty()) {
      ++failures;
      fmt::print("| {} | FAILED: {} |\n", spec, r.failure);
      std::fflush(stdout);
      continue;
    }
    fmt::print("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.spec, r.parameters,
               ms(r.store_all), ms(r.torch_none), ratio(r.store_all, r.torch_none), ms(r.sqrt), ms(r.torch_ckpt),
               ratio(r.sqrt, r.torch_ckpt), mib(r.store_all_peak), mib(r.torch_none_peak),
               ratio(r.store_all_peak, r.torch_none_peak), std::isnan(r.sqrt_peak) ? "-" : mib(r.sqrt_peak),
               std::isnan(r.torch_ckpt_peak) ? "-" : mib(r.torch_ckpt_peak), ratio(r.sqrt_peak, r.torch_ckpt_peak));
    std::fflush(stdout);
    if (!r.sqrt_setting.empty() && subject.onnx_path.empty())
      notes.push_back(fmt::format("{}: remat sqrt {}; checkpoint_sequential with {} segments", r.spec, r.sqrt_setting,
                                  r.segments));
    else if (!r.sqrt_setting.empty())
      notes.push_back(fmt::format("{}: loaded in {:.2f} s; remat sqrt {} of its tape's stages; checkpoint_sequential "
                                  "with {} segments of the module's {} top-level blocks",
                                  r.spec, r.load_seconds, r.sqrt_setting, r.torch_segments, r.torch_blocks));
  }
  if (!export_dir.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(export_dir, ignored);
  }
  fmt::print("\n");
  for (const auto& n : notes) fmt::print("- {}\n", n);
  fmt::print("\nParameter counts: equal on both sides for every model printed; measured peaks equal simulate()'s.\n");
  return failures ? 1 : 0;
}
