// Contract: remat has no hidden shared mutable state. Two tapes (or one tape with
// two executors) planned and executed in two std::threads at once give the same
// bits as the same work run one after the other: each thread owns its CpuBackend
// and Executor; Tape, Program and Strategy are only read.
// OpenMP and OpenBLAS run inside each thread. A kernel's bits depend on its thread
// count (static partitioning), and a new std::thread starts from the default
// OpenMP settings, not from the main thread's, so the sequential reference also
// runs on fresh threads (one at a time) to compare like with like.
#include "models/models.hpp"
#include "strategies/strategies.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <exception>
#include <thread>

using namespace remat;

namespace {

// Everything a step produces that must be reproducible, as bytes.
struct StepBits {
  std::vector<std::byte> loss;
  std::map<int, std::vector<std::byte>> gradients;
  std::map<int, std::vector<std::byte>> state;  // op state after the steps (batchnorm running statistics)
  std::size_t peak_bytes = 0;
  std::int64_t recomputed_ops = 0;
  bool operator==(const StepBits&) const = default;
};

// Plans `strategy` at `fraction` of store-all's peak (or its smallest feasible budget,
// if that is larger) and runs `steps` SGD steps.
struct Job {
  std::string model, strategy, heuristic = "dtr";
  double fraction = 1.0;
  int steps = 2;
};

StepBits run_job(const Job& job, const Model& m) {
  const Tape& tape = *m.tape;
  StrategyOptions o;
  o.heuristic = job.heuristic;
  const std::size_t full = simulate(tape, store_all_program(tape, m.loss.id)).peak_bytes;
  auto strategy = make_strategy(job.strategy, o);
  Program p;
  try {
    p = strategy->plan(tape, m.loss.id, Budget{static_cast<std::size_t>(job.fraction * static_cast<double>(full))});
  } catch (const InfeasibleBudget& e) {  // too tight for this strategy: its tightest plan
    p = strategy->plan(tape, m.loss.id, Budget{e.min_feasible_bytes});
  }
  CpuBackend cpu;
  Executor ex(tape, cpu);
  StepBits bits;
  RunOptions options;
  options.seed = 42;  // dropout masks
  for (int step = 0; step < job.steps; ++step) {
    StepResult r = ex.run(p, m.batch(static_cast<std::uint64_t>(step)), options);
    bits.loss = r.loss->bytes;
    bits.gradients.clear();
    for (const auto& [id, g] : r.gradients) bits.gradients[id] = cpu.download(g).bytes;
    bits.peak_bytes = r.report.peak_bytes;
    bits.recomputed_ops = r.report.recomputed_ops;
    ex.sgd_step(r, 0.05);
  }
  for (const Node& n : tape.nodes())
    for (std::size_t k = 0; k < ex.state(n.id).size(); ++k)
      bits.state[n.id * 8 + static_cast<int>(k)] = cpu.download(ex.state(n.id)[k]).bytes;
  return bits;
}

// Runs each job on its own std::thread; all at once, or one after the other.
std::vector<StepBits> run_jobs(const std::vector<Job>& jobs, const std::vector<const Model*>& models, bool at_once) {
  std::vector<StepBits> results(jobs.size());
  std::vector<std::exception_ptr> errors(jobs.size());
  auto work = [&](std::size_t i) {
    try {
      results[i] = run_job(jobs[i], *models[i]);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  };
  if (at_once) {
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < jobs.size(); ++i) threads.emplace_back(work, i);
    for (auto& t : threads) t.join();
  } else {
    for (std::size_t i = 0; i < jobs.size(); ++i) std::thread(work, i).join();
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return results;
}

void check_same_bits(const std::vector<Job>& jobs, const std::vector<const Model*>& models, int rounds) {
  std::vector<StepBits> sequential = run_jobs(jobs, models, false);
  for (int round = 0; round < rounds; ++round) {
    std::vector<StepBits> concurrent = run_jobs(jobs, models, true);
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      CAPTURE(round);
      CAPTURE(jobs[i].model);
      CAPTURE(jobs[i].strategy);
      CHECK(concurrent[i].loss == sequential[i].loss);
      CHECK(concurrent[i].gradients == sequential[i].gradients);
      CHECK(concurrent[i].state == sequential[i].state);
      CHECK(concurrent[i].peak_bytes == sequential[i].peak_bytes);
      CHECK(concurrent[i].recomputed_ops == sequential[i].recomputed_ops);
    }
  }
}

}  // namespace

TEST_CASE("concurrency: two tapes in two threads give the same bits as one after the other") {
  // Different models, so the threads' kernels interleave differently: GEMMs, dropout
  // (counter-based RNG), layernorm, softmax, convolutions and batchnorm state.
  Model a = build_model("transformer:layers=2,width=16,heads=2,seq=8,batch=2,vocab=32");
  Model b = build_model("resnet:blocks=1,width=4,batch=2,image=8,classes=4");
  std::vector<Job> jobs{{"transformer", "greedy", "dtr", 0.5, 2}, {"resnet", "optimal", "dtr", 0.6, 2}};
  check_same_bits(jobs, {&a, &b}, 3);
}

TEST_CASE("concurrency: one tape, two executors in two threads, under different strategies") {
  // The tape is shared read-only; each thread plans its own program and owns its backend.
  Model m = build_model("resmlp:layers=6,width=32,batch=8,act=gelu");
  std::vector<Job> jobs{{"resmlp", "revolve", "dtr", 0.5, 3}, {"resmlp", "greedy", "lru", 0.4, 3},
                        {"resmlp", "store-all", "dtr", 1.0, 3}};
  check_same_bits(jobs, {&m, &m, &m}, 2);
  // And every strategy's gradients agree with store-all's, whichever thread ran them.
  std::vector<StepBits> bits = run_jobs(jobs, {&m, &m, &m}, true);
  CHECK(bits[0].gradients == bits[2].gradients);
  CHECK(bits[1].gradients == bits[2].gradients);
}
