// Contract: regression tests for what an attacker or a careless user tried
// (issue "Hardening"): no shell ever parses a path, and misuse gets a clear error.
#include "cli_harness.hpp"

#include "experiments/common/subprocess.hpp"

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>

#include <doctest/doctest.h>

#include <filesystem>

using namespace remat;
using remat::testing::ScratchDir;
using remat::testing::message_of;

TEST_CASE("hardening: subprocesses get an argument vector, never a shell") {
  ScratchDir dir;
  const auto pwned = dir.path / "PWNED";
  // Were this string pasted into a shell command, `touch` would create the file.
  const std::string hostile = "q'; touch " + pwned.string() + "; echo '";
  CHECK(run_process({"/bin/echo", hostile}) == 0);
  CHECK_FALSE(std::filesystem::exists(pwned));
  CHECK(run_process({"/bin/false"}) == 1);
  CHECK(run_process({"/no/such/program"}) == 127);
  ChildProcess cat({"/bin/cat"});
  CHECK(cat.ask(hostile.c_str()) == hostile);
}

#ifdef REMAT_HAVE_CLI
TEST_CASE("hardening: compare --plot with shell metacharacters in the path runs no command") {
  ScratchDir dir;
  // A shell would run `touch PWNED` in the working directory.
  const auto pwned = std::filesystem::current_path() / "PWNED";
  std::filesystem::remove(pwned);
  const std::string csv = (dir.path / "c.csv").string();
  const std::string plot = (dir.path / "q'; touch PWNED; echo '.png").string();
  auto o = testing::cli({"compare", "--model", "mlp:layers=2,width=4,batch=2", "--budgets", "60%", "--repeat", "1",
                         "--csv", csv, "--plot", plot});
  CHECK_FALSE(std::filesystem::exists(pwned));
  // The plot script got the hostile name as one argument and wrote exactly that file.
  CHECK_MESSAGE(o.code == 0, o.err);
  CHECK(std::filesystem::exists(plot));
}
#endif

// ---- chain files: bounded values, nesting, sizes, duplicates, odd paths ----

#include "models/models.hpp"
#include "strategies/stage_schedules.hpp"
#include "strategies/strategies.hpp"

#include <nlohmann/json.hpp>

TEST_CASE("hardening: chain costs are bounded, so no planner overflows") {
  ScratchDir dir;
  const std::string huge = dir.write(
      "huge.json", R"({"fw":[1,1],"bw":[2,2,0],"cw":[1,9223372036854775807,1],"cbw":[2,9223372036854775807,2]})");
  CHECK(message_of([&] { Chain::parse_spec("file:" + huge); }) ==
        "[chain file:" + huge + "] cw[1] = 9223372036854775807 is too large (at most 2^50 = 1125899906842624)");
  // At the bound itself every strategy plans or refuses cleanly, and every figure is exact.
  Chain c = Chain::uniform(6);
  for (auto& v : c.fw) v = chain_value_limit;
  for (auto& v : c.cw) v = chain_value_limit;
  for (auto& v : c.cbw) v = chain_value_limit;
  for (const auto& row : strategy_registry()) {
    if (row.level != StrategyLevel::chain) continue;
    CAPTURE(row.name);
    try {
      StagePlan p = row.make({})->plan_chain(c, Budget{});
      CHECK(p.stats.makespan >= 6 * chain_value_limit);
      CHECK(p.stats.peak_memory > 0);
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("too large") != std::string::npos);
    }
  }
  // Sums that could pass 2^60 are refused by the DP, not wrapped around.
  Chain wide = Chain::uniform(600);
  for (auto* f : {&wide.fw, &wide.cw, &wide.cbw})
    for (auto& v : *f) v = chain_value_limit;
  CHECK_THROWS_WITH_AS(make_strategy("optimal")->plan_chain(wide, Budget{std::size_t{1} << 62}),
                       doctest::Contains("its total time or memory reaches 2^60"), Error);
}

TEST_CASE("hardening: chain files are read within stated limits and never crash the message") {
  ScratchDir dir;
  const std::string deep = dir.write("deep.json", "{\"fw\": " + std::string(60000, '[') + std::string(60000, ']') + "}");
  CHECK(message_of([&] { Chain::parse_spec("file:" + deep); }) ==
        "[chain file:" + deep + "] arrays or objects nested 60001 deep; a chain file nests at most 16 deep");
  const std::string nested = dir.write("nested.json", R"({"fw":[[[1]]],"bw":[1,0],"cw":[1,1],"cbw":[1,1]})");
  CHECK(message_of([&] { Chain::parse_spec("file:" + nested); }) ==
        "[chain file:" + nested + "] fw[0] must be an integer, got array [...] (1 elements)");
  const std::string dup = dir.write("dup.json", R"({"fw":[1],"fw":[2],"bw":[1,0],"cw":[1,1],"cbw":[1,1]})");
  CHECK(message_of([&] { Chain::parse_spec("file:" + dup); }) == "[chain file:" + dup + "] the key 'fw' appears twice");
  CHECK(message_of([] { Chain::parse_spec("file:/dev/zero"); }) ==
        "[chain file:/dev/zero] cannot read '/dev/zero': not a regular file (a device, a pipe or a socket)");
  CHECK(message_of([&] { Chain::parse_spec("file:" + dir.path.string()); }) ==
        "[chain file:" + dir.path.string() + "] cannot read '" + dir.path.string() + "': it is a directory");
  const std::string big = dir.write("big.json", std::string((64u << 20) + 1, ' '));
  CHECK(message_of([&] { Chain::parse_spec("file:" + big); }).find("chain files may have at most 67108864 bytes") !=
        std::string::npos);
  // A path that is not UTF-8 is only a name: the chain plans, and its name is escaped in JSON.
  const std::string odd = dir.write("caf\xe9.json", R"({"fw":[1,2],"bw":[2,4,0],"cw":[1,1,1],"cbw":[2,2,2]})");
  CHECK(Chain::parse_spec("file:" + odd).length() == 2);
#ifdef REMAT_HAVE_CLI
  auto o = testing::cli({"plan", "--chain", "file:" + odd, "--strategy", "revolve", "--json"});
  CHECK(o.code == 0);
  CHECK(nlohmann::json::parse(o.out).at("stages") == 2);
#endif
}

TEST_CASE("hardening: sizes that no host holds are refused up front, naming the key") {
  CHECK(message_of([] { build_model("mlp:layers=1073741824,width=1,batch=1"); }) ==
        "[model mlp] layers=1073741824 would record about 8589934592 tape nodes; a model may have at most 10000000 (use "
        "a smaller layers)");
  CHECK(message_of([] { build_model("heat:steps=1073741824"); }).rfind("[model heat] steps=1073741824 would record", 0) == 0);
  CHECK(message_of([] { Chain::parse_spec("uniform:n=100000000"); }) ==
        "[chain uniform:n=100000000] N must be an integer between 1 and 10000000, got '100000000'");
}

TEST_CASE("hardening: planners estimate their cost and refuse beyond the time limit") {
  StrategyOptions o;
  o.time_limit_seconds = 5;
  CHECK_THROWS_WITH_AS(make_strategy("optimal", o)->plan_chain(Chain::uniform(1000), Budget{500}),
                       doctest::Contains("beyond the time limit of 5 s: raise --time-limit, or give fewer --dp-slots"),
                       Error);
  // Without a budget nothing is faster than store-all: answered without a DP.
  CHECK(make_strategy("optimal")->plan_chain(Chain::uniform(1000), Budget{}).stats.recomputed_steps == 0);
}

// ---- library misuse: clear errors, never memory corruption ----

TEST_CASE("hardening: programs naming nodes outside the tape are refused before they run") {
  Model m = build_model("mlp:layers=2,width=4,batch=2");
  const Tape& tape = *m.tape;
  Program p = store_all_program(tape, m.loss.id);
  for (int bad : {-1, 1000000}) {
    Program q = p;
    q.grad_targets.push_back(bad);
    CHECK_THROWS_WITH_AS(simulate(tape, q), doctest::Contains("is not a parameter of this tape"), Error);
    Program r = Program::from_json(p.to_json());
    r.instructions[0].node = bad;
    CHECK_THROWS_WITH_AS(simulate(tape, r), doctest::Contains("which is not a node of this tape"), Error);
    Program l = p;
    l.loss = bad;
    CHECK_THROWS_WITH_AS(simulate(tape, l), doctest::Contains("is not a node of this tape"), Error);
  }
  Program twice = p;
  twice.grad_targets.push_back(p.grad_targets.at(0));
  CHECK_THROWS_WITH_AS(simulate(tape, twice), doctest::Contains("is listed twice"), Error);
}

TEST_CASE("hardening: losses must be scalar op values, on every strategy") {
  Tape t;
  auto x = t.placeholder("x", {{2, 3}, DType::f32});
  auto w = t.parameter("w", HostArray(TensorMeta{{3, 3}, DType::f32}));
  auto y = matmul(x, w);
  for (const auto& name : strategy_names()) {
    CAPTURE(name);
    CHECK_THROWS_WITH_AS(plan(*make_strategy(name), PlanRequest{t, y.id, Budget{}}),
                         doctest::Contains("has shape (2,3); a loss must be a scalar"), Error);
    CHECK_THROWS_WITH_AS(plan(*make_strategy(name), PlanRequest{t, w.id, Budget{}}),
                         doctest::Contains("is a parameter; a loss must be computed by an op"), Error);
  }
}

TEST_CASE("hardening: sgd_step, bindings, mark_stage and budgets refuse misuse") {
  Model m = build_model("mlp:layers=2,width=4,batch=2");
  Model other = build_model("mlp:layers=2,width=4,batch=2,dtype=f64");
  CpuBackend cpu;
  Executor ex(*m.tape, cpu), ex2(*m.tape, cpu), ex64(*other.tape, cpu);
  StepResult r = ex.run(store_all_program(*m.tape, m.loss.id), m.batch(0));
  CHECK_THROWS_WITH_AS(ex2.sgd_step(r, 0.1), doctest::Contains("[sgd_step] the StepResult comes from another executor"),
                       Error);
  CHECK_THROWS_WITH_AS(ex64.sgd_step(r, 0.1), doctest::Contains("[sgd_step] the StepResult comes from another executor"),
                       Error);
  for (double lr : {std::nan(""), std::numeric_limits<double>::infinity()})
    CHECK_THROWS_WITH_AS(ex.sgd_step(r, lr), doctest::Contains("[sgd_step] the learning rate must be finite"), Error);
  CHECK_NOTHROW(ex.sgd_step(r, 0.1));
  Bindings data = m.batch(0);
  data[m.loss.id] = HostArray(TensorMeta{{1}, DType::f32});
  CHECK_THROWS_WITH_AS(ex.run(store_all_program(*m.tape, m.loss.id), data),
                       doctest::Contains("is not a placeholder of this tape"), Error);
  Tape another;
  auto v = another.placeholder("v", {{1}, DType::f32});
  CHECK_THROWS_WITH_AS(m.tape->mark_stage(v), "[mark_stage] the value was recorded on another tape (or none)", Error);
  for (const auto& name : strategy_names()) {  // the largest budget there is: accepted, not "-9223372036854775808"
    CAPTURE(name);
    CHECK_NOTHROW(plan(*make_strategy(name), PlanRequest{*m.tape, m.loss.id, Budget{SIZE_MAX}}));
  }
}

TEST_CASE("hardening: a result that outlives its backend is safe to destroy") {
  Model m = build_model("mlp:layers=2,width=4,batch=2");
  std::optional<StepResult> kept;
  {
    CpuBackend cpu;
    Executor ex(*m.tape, cpu);
    kept = ex.run(store_all_program(*m.tape, m.loss.id), m.batch(0));
  }
  CHECK(kept->gradients.size() == 4);
  kept.reset();  // under AddressSanitizer this was a use after scope
}

#ifdef REMAT_HAVE_CLI
// ---- outputs checked before compute, failures never exit 0 ----

TEST_CASE("hardening: unwritable outputs fail before any planning, and failed writes are errors") {
  ScratchDir dir;
  const std::string tiny = "mlp:layers=2,width=4,batch=2";
  auto o = testing::cli({"compare", "--model", tiny, "--csv", (dir.path / "missing" / "c.csv").string()});
  CHECK(o.code == 2);
  CHECK(o.err.find("[compare] cannot write --csv '" + (dir.path / "missing" / "c.csv").string() +
                   "': No such file or directory") != std::string::npos);
  CHECK(o.err.find("[compare] 1/") == std::string::npos);  // nothing was planned
  o = testing::cli({"compare", "--model", tiny, "--csv", dir.path.string()});
  CHECK(o.err.find("it is a directory") != std::string::npos);
  o = testing::cli({"compare", "--model", tiny, "--repeat", "1", "--csv", "/dev/full"});
  CHECK(o.code == 2);
  CHECK(o.err.find("[compare] writing --csv '/dev/full' failed: No space left on device") != std::string::npos);
  o = testing::cli({"explain", "--model", tiny, "--strategy", "sqrt", "--memory-csv", "/dev/full"});
  CHECK(o.code == 2);
  CHECK(o.err.find("[explain] writing --memory-csv '/dev/full' failed") != std::string::npos);
  // An existing file keeps its content when the command fails before writing it.
  const std::string keep = dir.write("keep.csv", "precious\n");
  o = testing::cli({"compare", "--model", "nosuchmodel", "--csv", keep});
  CHECK(o.code == 2);
  std::ifstream in(keep);
  std::string line;
  std::getline(in, line);
  CHECK(line == "precious");
  // Standard output on a full disk: the real executable, its stdout on /dev/full.
  const std::string remat = std::string(REMAT_BINARY_DIR) + "/bin/remat";
  if (std::filesystem::exists(remat))
    CHECK(run_process({remat, "plan", "--chain", "uniform:n=10", "--strategy", "revolve"}, {}, "/dev/full") == 2);
}

TEST_CASE("hardening: compare --json prints exactly one JSON object; infeasible rows carry nulls") {
  auto o = testing::cli({"compare", "--model", "mlp:layers=3,width=4,batch=2", "--budgets", "1%,60%", "--repeat", "1",
                         "--json"});
  REQUIRE(o.code == 0);
  const auto j = nlohmann::json::parse(o.out);  // throws unless stdout is one JSON document
  CHECK(o.out.find('\n') == o.out.size() - 1);
  bool infeasible = false;
  for (const auto& row : j.at("rows")) {
    if (row.at("feasible").get<bool>()) {
      CHECK(row.at("promises_hold") == true);
      continue;
    }
    infeasible = true;
    for (const char* key : {"peak_bytes_measured", "peak_bytes_predicted", "recomputed_ops", "step_seconds_median",
                            "time_overhead", "planned_overhead", "grads_bitwise_equal"})
      CHECK(row.at(key).is_null());
    CHECK(row.at("min_feasible_budget").get<std::size_t>() > 0);
  }
  CHECK(infeasible);
  CHECK(o.err.find("remat compare:") != std::string::npos);  // the table went to stderr
}
#endif
