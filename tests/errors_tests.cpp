// Contract: bad input gets a clear error, never a crash. Each case checks the
// message (it names its source: "[op]", "[budget]", "[chain <spec>]", ...) and,
// through run_cli (the whole `remat` command line as a function), the exit code
// (2: input error, 3: infeasible budget) and what reaches stdout and stderr.
// Covered: shape and dtype mismatches; NaN and Inf in inputs and gradients
// (RunOptions::check_finite); zero, negative and too-small budgets; unknown
// strategies, heuristics and models; malformed and missing chain files;
// allocations no machine can satisfy (and sizes that overflow); --device cuda
// without CUDA built in.
#include "models/models.hpp"
#include "gpu/cuda_backend.hpp"
#include "cli_harness.hpp"
#include "gradcheck.hpp"
#include "strategies/budget.hpp"
#include "strategies/strategies.hpp"
#ifdef REMAT_HAVE_CLI
#include "experiments/cli/commands.hpp"
#endif

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unistd.h>

// The out-of-memory cases ask for petabytes on purpose. AddressSanitizer treats a
// request above its limit as a fatal report unless the allocator may return null,
// which is what this test binary needs (the environment's ASAN_OPTIONS still win).
#if defined(__SANITIZE_ADDRESS__)
#define REMAT_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REMAT_UNDER_ASAN 1
#endif
#endif
#ifdef REMAT_UNDER_ASAN
extern "C" __attribute__((visibility("default"), used)) const char* __asan_default_options() {
  return "allocator_may_return_null=1";
}
#endif

using namespace remat;
using remat::testing::cli;
using remat::testing::CliOutcome;
using remat::testing::message_of;
using remat::testing::ScratchDir;

namespace {

Value f32_input(Tape& t, const std::string& name, const Shape& shape) {
  return t.input(name, testing::random_array(shape, 7, -1, 1, DType::f32));
}

}  // namespace

// ---- shapes and dtypes: refused at record time, naming the op and the shapes ----

TEST_CASE("errors: shape mismatches name the op and the shapes") {
  Tape t;
  auto a = f32_input(t, "a", {2, 3});
  auto b = f32_input(t, "b", {4, 5});
  auto v = f32_input(t, "v", {4});
  CHECK_THROWS_WITH_AS(matmul(a, b), "[matmul] inner dimensions differ: (2,3) @ (4,5)", Error);
  CHECK_THROWS_WITH_AS(add(a, v), "[add] shapes do not broadcast: (2,3) and (4,)", Error);
  CHECK_THROWS_WITH_AS(mse(a, b), "[mse] shapes differ: a (2,3), b (4,5)", Error);
  CHECK_THROWS_WITH_AS(concat({a, b}, 0), "[concat] shapes (2,3) and (4,5) differ outside axis 0", Error);
  CHECK_THROWS_WITH_AS(reshape(a, {4, 2}), "[reshape] cannot reshape (2,3) into (4,2)", Error);
  CHECK_THROWS_WITH_AS(slice(a, 1, 2, 5), "[slice] range [2,5) is empty or outside axis 1 of shape (2,3)", Error);
  CHECK_THROWS_WITH_AS(sum(a, {2}), "[sum] axis 2 is out of range for shape (2,3)", Error);
  auto w = t.parameter("w", testing::random_array({4, 5}, 1, -1, 1, DType::f32));
  CHECK_THROWS_WITH_AS(linear(a, w), doctest::Contains("[linear] input features differ from weight: x (2,3), W (4,5)"),
                       Error);
  // A failed record leaves the tape as it was.
  CHECK(t.size() == 4);
}

TEST_CASE("errors: dtype mismatches name the op and the dtypes") {
  Tape t;
  auto a = f32_input(t, "a", {3});
  auto d = t.input("d", testing::random_array({3}, 2, -1, 1, DType::f64));
  auto ids = t.input("ids", HostArray::from({3}, std::vector<std::int32_t>{0, 1, 2}));
  CHECK_THROWS_WITH_AS(add(a, d), "[add] inputs have different dtypes: f32 and f64", Error);
  CHECK_THROWS_WITH_AS(tanh(ids), "[tanh] input must be floating (f32, f64, bf16 or f16), got i32", Error);
  CHECK_THROWS_WITH_AS(t.parameter("p", HostArray::from({2}, std::vector<std::int32_t>{1, 2})),
                       "[tape] parameter 'p' must be floating (f32, f64, bf16 or f16)", Error);

  // A binding of the wrong dtype or shape is refused by the executor, naming the placeholder.
  Tape u;
  auto x = u.placeholder("x", {{3}, DType::f32});
  auto w = u.parameter("w", HostArray::from({3}, std::vector<float>{1, 2, 3}));
  auto loss = sum(mul(x, w));
  CpuBackend cpu;
  Executor ex(u, cpu);
  Program p = store_all_program(u, loss.id);
  CHECK_THROWS_WITH_AS(ex.run(p, {{x.id, HostArray::from({3}, std::vector<double>{1, 2, 3})}}),
                       "[executor] instruction 0 (compute n0 x): placeholder 'x' expects (3,) f32, the binding is (3,) f64",
                       Error);
  CHECK_THROWS_WITH_AS(ex.write_parameter(w.id, HostArray::from({2}, std::vector<float>{1, 2})),
                       "[executor] parameter n1 w expects (3,) f32, got (2,) f32", Error);
  CHECK(cpu.meter().budgeted_current() == 0);  // the failed step released what it had allocated
}

// ---- NaN and Inf: check_finite names the first node that produced one ----

TEST_CASE("errors: check_finite names the first node that produced NaN or Inf") {
  SUBCASE("in an input binding") {
    Tape t;
    auto x = t.placeholder("x", {{3}, DType::f32});
    auto w = t.parameter("w", HostArray::from({3}, std::vector<float>{1, 2, 3}));
    auto loss = sum(tanh(mul(x, w)));
    CpuBackend cpu;
    Executor ex(t, cpu);
    Bindings nan_input{{x.id, HostArray::from({3}, std::vector<float>{0.5f, std::nanf(""), 1})}};
    RunOptions checked;
    checked.check_finite = true;
    CHECK_THROWS_WITH_AS(ex.run(store_all_program(t, loss.id), nan_input, checked),
                         "[check_finite] the binding of n0 x produced a non-finite value (nan) at element 1", Error);
    // Unchecked, the NaN flows through silently: the check is what finds it.
    StepResult r = ex.run(store_all_program(t, loss.id), nan_input);
    CHECK(std::isnan(r.loss->at(0)));
  }
  SUBCASE("in a forward") {
    Tape t;
    auto w = t.parameter("w", HostArray::from({3}, std::vector<double>{1, -2, 3}));
    auto big = t.input("big", HostArray::from({3}, std::vector<double>{1, 1, 1000}));
    auto logs = log(w);                 // n2: log(-2) is NaN
    auto exps = exp(mul(big, w));       // n4: exp(3000) is Inf
    auto loss = sum(add(logs, exps));
    CpuBackend cpu;
    Executor ex(t, cpu);
    RunOptions checked;
    checked.check_finite = true;
    const std::string nan_message = message_of([&] { grad(ex, loss, {}, checked); });  // the NaN's sign varies
    CHECK(nan_message.rfind("[check_finite] forward of n2 log produced a non-finite value (", 0) == 0);
    CHECK(nan_message.find("nan) at element 1") != std::string::npos);
    ex.write_parameter(w.id, HostArray::from({3}, std::vector<double>{1, 2, 3}));
    CHECK_THROWS_WITH_AS(grad(ex, loss, {}, checked),
                         "[check_finite] forward of n4 exp produced a non-finite value (inf) at element 2", Error);
    CHECK(cpu.meter().budgeted_current() == 0);
  }
  SUBCASE("in a gradient") {
    // sqrt is finite at 0; its derivative 0.5 / sqrt(0) is not.
    Tape t;
    auto w = t.parameter("w", HostArray::from({3}, std::vector<float>{4, 0, 1}));
    auto loss = sum(pow(w, 0.5));
    CpuBackend cpu;
    Executor ex(t, cpu);
    RunOptions checked;
    checked.check_finite = true;
    CHECK_THROWS_WITH_AS(
        grad(ex, loss, {}, checked),
        "[check_finite] backward of n1 pow (gradient of input 0) produced a non-finite value (inf) at element 1", Error);
  }
}

// ---- budgets: zero, negative, unparsable, too small ----

TEST_CASE("errors: budgets that are zero, negative, unparsable, bare fractions or too large") {
  CHECK(*parse_budget("1048576").bytes == 1048576);
  CHECK(*parse_budget("512KiB").bytes == 512 * 1024);
  CHECK(*parse_budget("1.5GiB").bytes == 1536ull * 1024 * 1024);
  CHECK(*parse_budget("60%").percent == 60.0);
  CHECK(parse_budget("100%").resolve(14624) == 14624);  // exactly store-all's peak
  CHECK(parse_budget("50%").resolve(1001) == 500);      // rounded down
  CHECK(parse_budget("64MiB").resolve(1) == 64u << 20);
  const std::string forms = "give bytes (1048576, 512KiB, 64MiB, 2GiB) or a percentage of store-all's peak (60%)";
  struct Bad { const char* text; const char* why; };
  for (Bad b : {Bad{"0", "must be at least one byte"}, Bad{"-64MiB", "must be positive"}, Bad{"nan", "cannot be parsed"},
                Bad{"inf", "cannot be parsed"}, Bad{"1e30", "has an unknown unit 'e30'"}, Bad{"", "is empty"},
                Bad{"abc", "cannot be parsed"}, Bad{"12XB", "has an unknown unit 'XB'"}, Bad{"MiB", "cannot be parsed"},
                Bad{"64 MiB", "has an unknown unit ' MiB'"}, Bad{"0.5", "is a bare fraction, neither bytes nor a share"},
                Bad{"0%", "must be positive"}, Bad{"x%", "is not a percentage"}, Bad{"99999999999%", "is too large"},
                Bad{"9999999999GiB", "is too large (at most 2^62 bytes)"}}) {
    CAPTURE(b.text);
    CHECK_THROWS_WITH_AS(parse_budget(b.text), (std::string("[budget] '") + b.text + "' " + b.why + ": " + forms).c_str(),
                         Error);
  }
}

TEST_CASE("errors: every strategy refuses a zero or too-small budget, naming the smallest feasible one") {
  Model m = build_model("mlp:layers=6,width=8,batch=2");
  const Tape& tape = *m.tape;
  for (const auto& name : strategy_names()) {
    for (std::size_t budget : {std::size_t{0}, std::size_t{1}, std::size_t{100}}) {
      CAPTURE(name);
      CAPTURE(budget);
      auto s = make_strategy(name);
      try {
        s->plan(tape, m.loss.id, Budget{budget});
        FAIL("a budget of " << budget << " bytes was accepted");
      } catch (const InfeasibleBudget& e) {
        CHECK(std::string(e.what()).rfind("[" + name + "] budget " + std::to_string(budget), 0) == 0);
        CHECK(e.min_feasible_bytes > budget);
        CHECK(std::string(e.what()).find(std::to_string(e.min_feasible_bytes)) != std::string::npos);
        CHECK(simulate(tape, s->plan(tape, m.loss.id, Budget{e.min_feasible_bytes})).peak_bytes <= e.min_feasible_bytes);
      }
    }
  }
  // At the chain level as well, where budgets are in the chain's own units.
  StrategyOptions o;
  auto optimal = make_strategy("optimal", o);
  CHECK_THROWS_WITH_AS(optimal->plan_chain(Chain::uniform(10), Budget{0}),
                       doctest::Contains("the smallest feasible budget is"), InfeasibleBudget);
}

// ---- names: strategies, heuristics, models ----

TEST_CASE("errors: unknown strategies, heuristics and models are named with the known ones") {
  CHECK_THROWS_WITH_AS(make_strategy("magic"), doctest::Contains("[strategy] unknown strategy 'magic'; expected one of: store-all"),
                       Error);
  StrategyOptions o;
  o.heuristic = "oracle";
  CHECK_THROWS_WITH_AS(make_strategy("greedy", o), doctest::Contains("[greedy] unknown heuristic 'oracle'"), Error);
  CHECK_THROWS_WITH_AS(build_model("vgg:layers=3"), doctest::Contains("[model] unknown model 'vgg'; known models:"),
                       Error);
  CHECK_THROWS_WITH_AS(build_model(""), "[model] empty model name in spec ''", Error);
  CHECK_THROWS_WITH_AS(build_model("mlp:width=wide"), "[model mlp] width=wide must be an integer in [1, 1073741824]",
                       Error);
  CHECK_THROWS_WITH_AS(build_model("mlp:act=swish"), "[model mlp] act=swish is not one of: gelu, relu, sigmoid, tanh",
                       Error);
  CHECK_THROWS_WITH_AS(build_model("mlp:layers=2,layers=3"), doctest::Contains("key 'layers' given twice"), Error);
}

// ---- chain files and specs ----

TEST_CASE("errors: malformed and missing chain files name the spec and the field") {
  ScratchDir dir;
  const std::string good = R"({"fw":[1,1],"bw":[2,2,0],"cw":[1,1,1],"cbw":[2,2,2]})";
  CHECK(Chain::parse_spec("file:" + dir.write("good.json", good)).length() == 2);

  struct Case {
    const char* file;
    const char* text;
    const char* expected;  // after "[chain file:PATH] "
  };
  const Case cases[] = {
      {"truncated.json", R"({"fw":[1,1],"bw":[2,2)", "not valid JSON: "},
      {"empty.json", "", "not valid JSON: "},
      {"array.json", "[1,2,3]", "expected a JSON object with arrays fw, bw, cw, cbw (ftmp, btmp optional), got array"},
      {"missing.json", R"({"fw":[1],"bw":[2,0],"cw":[1,1]})", "missing field 'cbw'"},
      {"unknown.json", R"({"fw":[1],"bw":[2,0],"cw":[1,1],"cbw":[2,2],"speed":3})", "unknown field 'speed'"},
      {"length.json", R"({"fw":[1,1],"bw":[2,0],"cw":[1,1,1],"cbw":[2,2,2]})", "bw has 2 entries, expected L+1 = 3"},
      {"negative.json", R"({"fw":[1],"bw":[2,0],"cw":[1,-1],"cbw":[2,2]})", "cw[1] = -1 is negative"},
      {"float.json", R"({"fw":[1.5],"bw":[2,0],"cw":[1,1],"cbw":[2,2]})", "fw[0] must be an integer, got number 1.5"},
      {"string.json", R"({"fw":"1","bw":[2,0],"cw":[1,1],"cbw":[2,2]})", "field 'fw' must be an array of integers, got string"},
      {"huge.json", R"({"fw":[18446744073709551615],"bw":[2,0],"cw":[1,1],"cbw":[2,2]})", "fw[0] = 18446744073709551615 is too large"},
      {"cbw.json", R"({"fw":[1],"bw":[2,0],"cw":[1,3],"cbw":[2,2]})", "cbw[1] = 2 is smaller than cw[1] = 3"},
      {"empty_chain.json", R"({"fw":[],"bw":[0],"cw":[1],"cbw":[1]})", "fw is empty: a chain needs at least one stage"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.file);
    const std::string spec = "file:" + dir.write(c.file, c.text);
    CHECK_THROWS_WITH_AS(Chain::parse_spec(spec), doctest::Contains(("[chain " + spec + "] " + c.expected).c_str()), Error);
  }
  const std::string missing = "file:" + (dir.path / "no_such_file.json").string();
  const std::string cannot_open = "[chain " + missing + "] cannot open '" + missing.substr(5) + "' for reading: no such file";
  CHECK_THROWS_WITH_AS(Chain::parse_spec(missing), cannot_open.c_str(), Error);
  CHECK_THROWS_WITH_AS(Chain::parse_spec("file:"), "[chain file:] the file path is empty", Error);
  CHECK_THROWS_WITH_AS(Chain::parse_spec("uniform:n=0"),
                       "[chain uniform:n=0] N must be an integer between 1 and 10000000, got '0'", Error);
  CHECK_THROWS_WITH_AS(Chain::parse_spec("uniform:n=12abc"), doctest::Contains("got '12abc'"), Error);
  CHECK_THROWS_WITH_AS(Chain::parse_spec("chain.json"),
                       "[chain chain.json] unknown chain spec: expected 'uniform:n=N' or 'file:PATH'", Error);
  // A directory opens as a stream on Linux but cannot be read as a file.
  CHECK_THROWS_AS(Chain::parse_spec("file:" + dir.path.string()), Error);
}

// ---- memory the machine cannot provide ----

TEST_CASE("errors: an allocation no machine can satisfy is a clear out-of-memory error") {
  const Shape huge{std::int64_t{1} << 40, std::int64_t{1} << 10};  // 2^50 f32 values: 4 PiB
  SUBCASE("directly from the backend") {
    CpuBackend cpu;
    CHECK_THROWS_WITH_AS(cpu.empty({huge, DType::f32}, MemoryCategory::activation),
                         doctest::Contains("[cpu] out of memory: could not allocate 4503599627370496 bytes"), Error);
    CHECK(cpu.meter().budgeted_current() == 0);  // nothing was metered for the failed request
    CHECK(cpu.empty({{4}, DType::f32}, MemoryCategory::activation).defined());  // and the backend still works
  }
  SUBCASE("a placeholder computed by the executor") {
    Tape t;
    auto x = t.placeholder("x", {huge, DType::f32});
    auto w = t.parameter("w", HostArray::from({1}, std::vector<float>{2}));
    auto loss = mean(mul(x, w));
    StepReport planned = simulate(t, store_all_program(t, loss.id));  // planning is free: no bytes exist
    CHECK(planned.peak_bytes >= (std::size_t{1} << 52));
    CpuBackend cpu;
    Executor ex(t, cpu);
    CHECK_THROWS_WITH_AS(ex.run(store_all_program(t, loss.id)), doctest::Contains("[cpu] out of memory"), Error);
    CHECK(cpu.meter().budgeted_current() == 0);
  }
  SUBCASE("an op whose broadcast output is huge") {
    const std::int64_t n = std::int64_t{1} << 17;  // (n,1,1) + (1,n,1) + (1,1,n): 2^51 values from 1.5 MiB of inputs
    Tape t;
    auto a = t.input("a", HostArray(TensorMeta{{n, 1, 1}, DType::f32}));
    auto b = t.input("b", HostArray(TensorMeta{{1, n, 1}, DType::f32}));
    auto c = t.parameter("c", HostArray(TensorMeta{{1, 1, n}, DType::f32}));
    auto loss = sum(add(add(a, b), c));
    CpuBackend cpu;
    Executor ex(t, cpu);
    CHECK_THROWS_WITH_AS(grad(ex, loss), doctest::Contains("[cpu] out of memory: could not allocate"), Error);
    CHECK(cpu.meter().budgeted_current() == 0);
  }
  SUBCASE("sizes that overflow are refused, not wrapped") {
    // 2^61 f64 values are 2^64 bytes: the byte count wraps to 0 unless checked.
    CHECK_THROWS_WITH_AS(TensorMeta({{std::int64_t{1} << 61}, DType::f64}).bytes(),
                         "[shape] (2305843009213693952,) f64 needs more bytes than a size_t can count", Error);
    CHECK_THROWS_WITH_AS(element_count({std::int64_t{1} << 40, std::int64_t{1} << 30}),
                         "[shape] (1099511627776,1073741824) has more elements than an int64 can count", Error);
    CpuBackend cpu;
    CHECK_THROWS_WITH_AS(cpu.empty({{std::int64_t{1} << 62, 4}, DType::f32}, MemoryCategory::activation),
                         doctest::Contains("more elements than an int64 can count"), Error);
    Tape t;
    CHECK_THROWS_WITH_AS(t.placeholder("x", {{-1, 3}, DType::f32}),
                         "[tape] placeholder 'x' has a negative extent in (-1,3)", Error);
  }
}

// Host arrays go through operator new, which neither valgrind nor AddressSanitizer
// lets fail with std::bad_alloc (both abort instead): .ci/run leaves this case out
// of its valgrind subset, and a sanitized build skips it.
TEST_CASE("errors: a model too large for the host is an out-of-memory error, not std::bad_alloc") {
#ifdef REMAT_UNDER_ASAN
  MESSAGE("skipped under AddressSanitizer: its operator new aborts instead of throwing std::bad_alloc");
  return;
#endif
  CHECK_THROWS_WITH_AS(HostArray(TensorMeta{{std::int64_t{1} << 40, std::int64_t{1} << 10}, DType::f32}),
                       "[HostArray] out of memory: could not allocate 4503599627370496 bytes for (1099511627776,1024) f32",
                       Error);
  CHECK_THROWS_WITH_AS(build_model("mlp:layers=1,width=1073741824,batch=1073741824"),
                       doctest::Contains("[HostArray] out of memory: could not allocate"), Error);
#ifdef REMAT_HAVE_CLI
  CliOutcome o = cli({"plan", "--model", "mlp:layers=1,width=1073741824,batch=2", "--strategy", "store-all"});
  CHECK(o.code == 2);
  CHECK(o.err.find("[HostArray] out of memory") == 0);
#endif
}

// ---- CUDA ----

TEST_CASE("errors: --device cuda without CUDA built in says how to get it") {
  if (cuda_built()) {
    MESSAGE("CUDA is built in: the stub's message is not reachable here");
    return;
  }
  CHECK(cuda_device_count() == 0);
  CHECK_THROWS_WITH_AS(make_cuda_backend(), doctest::Contains("[cuda] remat was built without the CUDA backend"), Error);
#ifdef REMAT_HAVE_CLI
  CliOutcome o = cli({"run", "--model", "mlp:layers=2,width=4,batch=2", "--strategy", "store-all", "--device", "cuda"});
  CHECK(o.code == 2);
  CHECK(o.err.find("[cuda] remat was built without the CUDA backend: reconfigure with -DREMAT_CUDA=ON") !=
        std::string::npos);
  CHECK(o.out.empty());
#endif
}

// ---- the command line: exit codes and messages ----

#ifdef REMAT_HAVE_CLI
TEST_CASE("errors: the CLI turns bad input into exit code 2 and a message on stderr") {
  ScratchDir dir;
  const std::string tiny = "mlp:layers=2,width=4,batch=2";
  const std::string malformed = "file:" + dir.write("bad.json", "{\"fw\": [1, 2");
  struct Case {
    std::vector<std::string> args;
    std::string expected;  // a part of stderr
  };
  const std::vector<Case> cases = {
      {{"plan", "--chain", "uniform:n=10", "--strategy", "magic"}, "[strategy] unknown strategy 'magic'"},
      {{"plan", "--model", tiny, "--strategy", "greedy", "--heuristic", "oracle"}, "[greedy] unknown heuristic 'oracle'"},
      {{"plan", "--model", "vgg", "--strategy", "optimal"}, "[model] unknown model 'vgg'"},
      {{"run", "--model", "mlp:layers=0", "--strategy", "store-all"}, "[model mlp] layers=0 must be an integer"},
      {{"plan", "--chain", "uniform:n=10", "--strategy", "revolve", "--budget", "0"}, "[budget] '0' must be at least one byte"},
      {{"plan", "--chain", "uniform:n=10", "--strategy", "revolve", "--budget", "-5"}, "[budget] '-5' must be positive"},
      {{"run", "--model", tiny, "--strategy", "optimal", "--budget", "lots"}, "[budget] 'lots' cannot be parsed"},
      {{"compare", "--model", tiny, "--budgets", "50%,abc"}, "[budget] 'abc' cannot be parsed"},
      {{"compare", "--model", tiny, "--budgets", "0.5"}, "[budget] '0.5' is a bare fraction"},
      // Found by fuzz_cli: a huge fraction was converted to size_t (undefined behaviour).
      {{"compare", "--model", tiny, "--budgets", "2" + std::string(120, '2') + ".5%"}, "is too large"},
      {{"compare", "--model", tiny, "--budgets", "1.2.3"}, "[budget] '1.2.3' cannot be parsed"},
      {{"plan", "--chain", "file:" + (dir.path / "missing.json").string(), "--strategy", "optimal"}, "cannot open"},
      {{"plan", "--chain", malformed, "--strategy", "optimal"}, "[chain " + malformed + "] not valid JSON"},
      {{"plan", "--chain", "uniform:n=10", "--strategy", "greedy", "--heuristic", "lru"},
       "[greedy] on a graph without a tape only the dtr heuristic is defined, got 'lru'"},
      {{"plan", "--chain", "uniform:n=10", "--model", tiny, "--strategy", "sqrt"},
       "[plan] give exactly one of --chain, --model, --onnx or --graph"},
      {{"plan", "--graph", "file:/nonexistent/g.json", "--strategy", "greedy"}, "[graph /nonexistent/g.json]"},
      {{"plan", "--chain", "uniform:n=10", "--strategy", "sqrt", "--export-graph", "/tmp/x.json"},
       "[plan] --export-graph with --chain needs a node-level strategy"},
      {{"run", "--chain", "uniform:n=10", "--strategy", "sqrt"}, "--chain"},
      {{"run", "--model", tiny, "--strategy", "sqrt", "--repeat", "0"}, "[run] --repeat must be between 1 and 100000, got 0"},
      {{"run", "--model", tiny, "--strategy", "sqrt", "--device", "tpu"}, "[remat] --device must be cpu or cuda, got 'tpu'"},
      {{"plan", "--model", tiny, "--strategy", "sqrt", "--costs", "guessed"}, "--costs must be analytic or measured"},
      {{"plan", "--model", tiny, "--strategy", "optimal", "--dp-slots", "0"}, "[plan] --dp-slots must be between 1 and 1000000, got 0"},
      {{"plan", "--model", tiny, "--strategy", "revolve", "--slots", "0"}, "[revolve] --slots = 0 must be in 1..3"},
      {{"plan", "--model", tiny, "--strategy", "revolve", "--slots", "100000"}, "[revolve] --slots = 100000 must be in 1..3"},
      {{"plan", "--model", tiny, "--strategy", "optimal", "--slots", "3"},
       "[plan] --slots does not apply to strategy 'optimal' (it applies to: sqrt, revolve)"},
      {{"plan", "--model", tiny, "--strategy", "revolve", "--heuristic", "lru"},
       "[plan] --heuristic does not apply to strategy 'revolve' (it applies to: greedy)"},
      {{"run", "--model", tiny, "--strategy", "greedy", "--dp-slots", "10"},
       "[run] --dp-slots does not apply to strategy 'greedy' (it applies to: optimal)"},
      {{"plan", "--chain", "uniform:n=10", "--strategy", "sqrt", "--costs", "measured"},
       "[plan] --costs measured needs --model"},
      {{"run", "--model", tiny, "--strategy", "sqrt", "--threads", "0"}, "[run] --threads must be between 1 and 4096, got 0"},
      {{"compare", "--model", tiny, "--threads", "-1"}, "[compare] --threads must be between 1 and 4096, got -1"},
      {{"run", "--model", tiny, "--strategy", "sqrt", "--program"}, "The following argument was not expected: --program"},
      {{"plan", "--model", tiny}, "--strategy is required"},
      {{"plan", "--model", tiny, "--strategy", "sqrt", "--budget"}, "--budget"},
      {{"plan", "--model", tiny, "--strategy", "sqrt", "--slots", "many"}, "--slots"},
      {{"frobnicate"}, "[remat]"},
      {{}, "[remat]"},
  };
  for (const auto& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    CAPTURE(joined);
    CliOutcome o = cli(c.args);
    CHECK(o.code == 2);
    CHECK_MESSAGE(o.err.find(c.expected) != std::string::npos, "stderr: " << o.err);
  }
}

TEST_CASE("errors: the CLI exits 3 on an infeasible budget and names the smallest feasible one") {
  const std::string tiny = "mlp:layers=3,width=4,batch=2";
  for (const std::string strategy : {"store-all", "sqrt", "chen-greedy", "revolve", "optimal", "greedy"}) {
    CAPTURE(strategy);
    CliOutcome o = cli({"plan", "--model", tiny, "--strategy", strategy, "--budget", "16", "--json"});
    CHECK(o.code == 3);
    CHECK(o.err.find("[" + strategy + "] budget 16") == 0);
    auto j = nlohmann::json::parse(o.out);
    CHECK(j["feasible"] == false);
    const auto smallest = j["min_feasible_budget"].get<std::size_t>();
    CHECK(smallest > 16);
    CHECK(o.err.find(std::to_string(smallest)) != std::string::npos);
    // The smallest feasible budget is accepted, and the run keeps its promises (exit 0).
    CliOutcome ok = cli({"run", "--model", tiny, "--strategy", strategy, "--budget", std::to_string(smallest),
                         "--repeat", "1", "--json"});
    CHECK(ok.code == 0);
    auto r = nlohmann::json::parse(ok.out);
    CHECK(r["grads_bitwise_equal"] == true);
    CHECK(r["peak_bytes_measured"] == r["peak_bytes_predicted"]);
    CHECK(r["peak_bytes_measured"].get<std::size_t>() <= smallest);
  }
  CliOutcome chain = cli({"plan", "--chain", "uniform:n=10", "--strategy", "revolve", "--budget", "3"});
  CHECK(chain.code == 3);
  CHECK(chain.err.find("[revolve] budget 3 is infeasible for chain uniform:n=10") == 0);
}

// Regression: --costs measured used to fail with "[chain] measured costs need input
// bindings" because the CLI never handed the model's batch to the chain view.
TEST_CASE("errors: --costs measured is accepted by plan and run on a model") {
  const std::string tiny = "mlp:layers=4,width=8,batch=2";
  CliOutcome plan = cli({"plan", "--model", tiny, "--strategy", "optimal", "--costs", "measured", "--json"});
  CHECK_MESSAGE(plan.code == 0, "stderr: " << plan.err);
  CliOutcome run = cli({"run", "--model", tiny, "--strategy", "revolve", "--costs", "measured", "--repeat", "1", "--json"});
  CHECK_MESSAGE(run.code == 0, "stderr: " << run.err);
  if (run.code == 0) CHECK(nlohmann::json::parse(run.out)["grads_bitwise_equal"] == true);
}

TEST_CASE("errors: with --json an error is also one JSON object on stdout") {
  CliOutcome o = cli({"plan", "--chain", "uniform:n=5", "--strategy", "magic", "--json"});
  CHECK(o.code == 2);
  auto j = nlohmann::json::parse(o.out);
  CHECK(j["error"].get<std::string>().find("[strategy] unknown strategy 'magic'") == 0);
  CliOutcome usage = cli({"plan", "--json", "--no-such-flag"});
  CHECK(usage.code == 2);
  CHECK(nlohmann::json::parse(usage.out).contains("error"));
  // Found by fuzz_cli: a message quoting invalid UTF-8 made dump() throw in the error path (abort).
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"plan", "--model", "mlp\x82", "--strategy", "store-all", "--json"},
           {"plan", "--json", "--no-such-\xf6\x91"}}) {
    CliOutcome binary = cli(args);
    CHECK(binary.code == 2);
    CHECK(nlohmann::json::parse(binary.out).contains("error"));
  }
}
#endif
