// Contract: `remat explain` (experiments/cli/explain.hpp) tells the truth about a
// plan. For every strategy on chain and non-chain models: the Wengert list names
// every node; the JSON parses and holds one row per Program instruction; the
// live bytes are the executor's trace and their category split sums to it; the
// per-instruction peak (live + workspace) reaches exactly simulate()'s peak (and
// on an MLP, with no workspace, so do the live bytes); recomputations and the
// chain schedule's counts agree with the executor and simulate_schedule; the CSV
// has a row per instruction; infeasible budgets and bad options fail clearly, and
// through run_cli with the CLI's exit codes. Needs the CLI library (REMAT_HAVE_CLI).
#ifdef REMAT_HAVE_CLI
#include "experiments/cli/commands.hpp"
#include "experiments/cli/explain.hpp"
#include "strategies/stage_schedules.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

using namespace remat;
using Json = nlohmann::json;

namespace {

ExplainOptions options_for(const std::string& model, const std::string& strategy) {
  ExplainOptions o;
  o.model = model;
  o.strategy = strategy;
  return o;
}

// The three promises' view of a plan, from the library itself, to compare with explain.
StepReport simulated(const ExplainOptions& o, std::optional<std::size_t> budget) {
  Model m = build_model(o.model);
  StrategyOptions so;
  so.slots = o.slots;
  so.heuristic = o.heuristic.value_or("dtr");
  Program p = make_strategy(o.strategy, so)->plan(*m.tape, m.loss.id, Budget{budget});
  return simulate(*m.tape, p);
}

// Runs the CLI with stdout captured; returns the exit code.
int run_captured(std::vector<std::string> args, std::string& out) {
  args.insert(args.begin(), "remat");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream captured;
  auto* old = std::cout.rdbuf(captured.rdbuf());
  std::streambuf* old_err = std::cerr.rdbuf();
  std::ostringstream err;
  std::cerr.rdbuf(err.rdbuf());
  int rc = run_cli(static_cast<int>(argv.size()), argv.data());
  std::cout.rdbuf(old);
  std::cerr.rdbuf(old_err);
  out = captured.str() + err.str();
  return rc;
}

}  // namespace

TEST_CASE("explain's Wengert list names every node, and the text has every section") {
  ExplainOptions o = options_for("mlp:layers=3,width=8,batch=2", "revolve");
  o.slots = 2;
  std::ostringstream out;
  CHECK(command_explain(o, out) == 0);
  const std::string text = out.str();
  Model m = build_model(o.model);
  for (const Node& n : m.tape->nodes()) {
    CAPTURE(n.label());
    CHECK(text.find(fmt::format("\n  n{:<4} ", n.id)) != std::string::npos);
  }
  for (const char* section : {"== Tape", "== Chain", "== Schedule", "== Program", "== Summary", "F_ck 0", "B 0"})
    CHECK(text.find(section) != std::string::npos);
  CHECK(text.find("linear(n0, n2, n3)") != std::string::npos);  // op, inputs
  CHECK(text.find("its output") != std::string::npos);          // relu's vjp keeps its output
}

TEST_CASE("explain's JSON agrees with the executor, simulate and the stage schedule") {
  struct Case { const char* model; const char* strategy; std::optional<double> fraction; };
  const Case cases[] = {
      {"mlp:layers=6,width=8,batch=4", "store-all", std::nullopt},
      {"mlp:layers=6,width=8,batch=4", "sqrt", std::nullopt},
      {"mlp:layers=6,width=8,batch=4", "chen-greedy", std::nullopt},
      {"mlp:layers=6,width=8,batch=4", "revolve", 0.8},
      {"mlp:layers=6,width=8,batch=4", "optimal", 0.8},
      {"mlp:layers=6,width=8,batch=4", "greedy", 0.6},
      {"resnet:blocks=1,width=4,batch=2,image=8", "greedy", 0.7},  // conv workspace, not a chain of layers
      {"lstm:steps=6,hidden=8,input=4,batch=2", "revolve", 0.7},     // shared weights: accumulation temporaries
      {"lstm:steps=6,hidden=8,input=4,batch=2", "optimal", 0.7},
      {"transformer:layers=1,width=16,heads=2,seq=8,batch=2,vocab=16", "greedy", 0.7},
  };
  for (const Case& c : cases) {
    const std::string model = c.model, strategy = c.strategy;
    CAPTURE(model);
    CAPTURE(strategy);
    ExplainOptions o = options_for(c.model, c.strategy);
    if (c.fraction) o.budget = parse_budget(std::to_string(*c.fraction * 100) + "%");
    o.format = "json";
    std::ostringstream out;
    REQUIRE(command_explain(o, out) == 0);
    const Json doc = Json::parse(out.str());  // one object on one line
    Model m = build_model(c.model);
    const std::optional<std::size_t> budget =
        doc.at("budget_bytes").is_null() ? std::nullopt : std::optional<std::size_t>(doc.at("budget_bytes").get<std::size_t>());
    const StepReport expected = simulated(o, budget);

    CHECK(doc.at("tape").size() == m.tape->size());
    const Json& rows = doc.at("program").at("instructions");
    const auto& live = doc.at("live_bytes");
    REQUIRE(rows.size() == live.size());
    std::size_t max_peak = 0, max_live = 0;
    std::int64_t recomputes = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Json& r = rows[i];
      const std::size_t sum = r.at("input").get<std::size_t>() + r.at("activation").get<std::size_t>() +
                              r.at("saved").get<std::size_t>() + r.at("gradient").get<std::size_t>();
      CHECK(sum == live[i].get<std::size_t>());
      CHECK(r.at("live_bytes") == live[i]);
      CHECK(r.at("peak_bytes").get<std::size_t>() == sum + r.at("workspace").get<std::size_t>());
      max_peak = std::max(max_peak, r.at("peak_bytes").get<std::size_t>());
      max_live = std::max(max_live, live[i].get<std::size_t>());
      recomputes += r.at("recompute").get<bool>() && !r.at("rebind").get<bool>();  // recomputed_ops counts op runs
      // The resident buffers listed after each instruction add up to its live bytes.
      std::size_t listed = 0;
      for (const auto& v : r.at("resident")) listed += v.at("bytes").get<std::size_t>();
      CHECK(listed == live[i].get<std::size_t>());
    }
    CHECK(max_peak == expected.peak_bytes);
    CHECK(doc.at("summary").at("peak_bytes").get<std::size_t>() == expected.peak_bytes);
    CHECK(max_live <= expected.peak_bytes);
    if (std::string(c.model).rfind("mlp", 0) == 0) CHECK(max_live == expected.peak_bytes);  // no workspace
    if (budget) CHECK(max_peak <= *budget);
    CHECK(recomputes == expected.recomputed_ops);
    CHECK(doc.at("summary").at("recomputed_ops").get<std::int64_t>() == expected.recomputed_ops);

    const Json& schedule = doc.at("schedule");
    // Greedy plans node by node (and optimal returns greedy's plan when that is
    // faster): no stage schedule behind them.
    const bool stage_level = std::string(c.strategy) != "greedy";
    if (!stage_level || (std::string(c.strategy) == "optimal" && schedule.is_null())) {
      if (std::string(c.strategy) != "optimal") CHECK(schedule.is_null());
    } else {
      REQUIRE(!schedule.is_null());
      ChainView view = chain_view(*m.tape, m.loss.id);
      CHECK(doc.at("chain").at("length").get<int>() == view.chain.length());
      CHECK(doc.at("chain").at("stages").size() == static_cast<std::size_t>(view.chain.length()));
      std::int64_t recomputed_steps = 0;
      for (const auto& a : schedule.at("actions")) recomputed_steps += a.at("recompute").get<bool>();
      CHECK(recomputed_steps == schedule.at("recomputed_steps").get<std::int64_t>());
      // A lowered schedule maps every instruction back to its stage action.
      if (std::string(c.strategy) != "store-all")  // store-all runs the plain sweep beside its stage view
        for (const auto& r : rows)
          if (r.at("kind") == "backward") CHECK(!r.at("action").is_null());
    }
  }
}

TEST_CASE("explain's revolve schedule makes exactly p(L, s) recomputations") {
  ExplainOptions o = options_for("heat:steps=20,grid=8", "revolve");
  o.slots = 3;
  const Json doc = explain(o);
  const int L = doc.at("chain").at("length").get<int>();
  CHECK(doc.at("schedule").at("recomputed_steps").get<std::int64_t>() == revolve_recomputations(L, 3));
}

TEST_CASE("explain writes one CSV row per instruction") {
  const auto path = std::filesystem::temp_directory_path() / "remat_explain_tests_memory.csv";
  ExplainOptions o = options_for("mlp:layers=4,width=8,batch=2", "sqrt");
  o.memory_csv = path.string();
  std::ostringstream out;
  REQUIRE(command_explain(o, out) == 0);
  std::ifstream csv(path);
  std::string header, line;
  std::getline(csv, header);
  CHECK(header == "index,kind,node,label,stage,recompute,input,activation,saved,gradient,workspace,live_bytes,peak_bytes");
  std::size_t lines = 0;
  while (std::getline(csv, line)) ++lines;
  CHECK(lines == explain(options_for(o.model, o.strategy)).at("program").at("instructions").size());
  std::filesystem::remove(path);
}

TEST_CASE("explain refuses infeasible budgets and bad options clearly") {
  ExplainOptions o = options_for("mlp:layers=4,width=8,batch=2", "optimal");
  o.budget = parse_budget("16");
  try {
    explain(o);
    FAIL("a 16-byte budget was accepted");
  } catch (const InfeasibleBudget& e) {
    CHECK(e.min_feasible_bytes > 16);
    o.budget = parse_budget(std::to_string(e.min_feasible_bytes));  // the smallest feasible budget is accepted
    CHECK(explain(o).at("summary").at("peak_bytes").get<std::size_t>() <= e.min_feasible_bytes);
  }
  ExplainOptions bad = options_for("mlp:layers=2", "revolve");
  bad.format = "xml";
  CHECK_THROWS_WITH_AS(explain(bad), doctest::Contains("[explain] --format must be text or json"), Error);
  CHECK_THROWS_WITH_AS(explain(options_for("mlp:layers=2", "bogus")), doctest::Contains("[strategy] unknown strategy"), Error);
  CHECK_THROWS_WITH_AS(explain(options_for("nosuchmodel", "sqrt")), doctest::Contains("[model] unknown model"), Error);
  ExplainOptions csv = options_for("mlp:layers=2,width=4,batch=2", "sqrt");
  csv.memory_csv = "/nonexistent-dir/x.csv";
  std::ostringstream out;
  CHECK_THROWS_WITH_AS(command_explain(csv, out), doctest::Contains("[explain] cannot write --memory-csv '/nonexistent-dir/x.csv': No such file or directory"), Error);
}

TEST_CASE("remat explain through run_cli: output and exit codes") {
  std::string out;
  CHECK(run_captured({"explain", "--model", "mlp:layers=3,width=8,batch=2", "--strategy", "greedy", "--budget", "80%",
                      "--format", "json"},
                     out) == 0);
  const Json doc = Json::parse(out.substr(0, out.find('\n')));
  CHECK(doc.at("strategy") == "greedy");
  CHECK(doc.at("heuristic") == "dtr");
  CHECK(doc.at("budget_bytes").get<std::size_t>() == doc.at("summary").at("store_all_peak_bytes").get<std::size_t>() * 8 / 10);

  CHECK(run_captured({"explain", "--model", "mlp:layers=3,width=8,batch=2", "--strategy", "revolve", "--budget", "64",
                      "--format", "json"},
                     out) == 3);
  CHECK(out.find("\"min_feasible_budget\"") != std::string::npos);
  CHECK(run_captured({"explain", "--model", "mlp:layers=3", "--strategy", "sqrt", "--budget", "half"}, out) == 2);
  CHECK(out.find("[budget] 'half' cannot be parsed") != std::string::npos);
  CHECK(run_captured({"explain", "--model", "mlp:layers=3", "--strategy", "sqrt", "--budget", "-5%"}, out) == 2);
  CHECK(run_captured({"explain", "--strategy", "sqrt"}, out) == 2);  // --model is required
  CHECK(out.find("--model") != std::string::npos);
}

#endif  // REMAT_HAVE_CLI
