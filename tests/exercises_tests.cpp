// Contract: docs/exercises.md's solutions agree with remat. Every `<!-- check: KEY ARGS =
// VALUE -->` comment of the page is recomputed here from the library (the solution's
// figure is the oracle remat must reproduce, and the page cannot drift from the code):
//   store_all_peak SPEC              simulated peak of store-all on a zoo model (bytes)
//   revolve_recomputed N S           recomputed steps of revolve with S slots on uniform:n=N
//   revolve_forward N S              its forward executions (Gruslys's Q)
//   min_budget STRATEGY SPEC         the smallest budget the strategy accepts on a model
//   chain_min_budget STRATEGY N      the same on uniform:n=N (stage units)
//   chain_store_all_peak N           store-all's stage peak on uniform:n=N
//   chain_revolve_peak N S           revolve's stage peak with S slots
//   chain_sqrt_recomputed N K        sqrt's recomputed steps with K segments
//   every_third_recomputed N, every_third_peak N   exercise 7's strategy, written here
// The page must hold 6 to 10 exercises, each with at least one check.
#include "models/models.hpp"
#include "strategies/chain_planner.hpp"
#include "strategies/stage_schedules.hpp"
#include "strategies/strategies.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

using namespace remat;

namespace {

// Exercise 7's solution, as the page prints it.
class EveryThirdStage final : public ChainPlanner {
 public:
  using ChainPlanner::ChainPlanner;
  std::string name() const override { return "every-third"; }

 protected:
  std::vector<NamedSchedule> family(const Chain& chain, bool) const override {
    std::vector<int> starts;
    for (int i = 0; i < chain.length(); i += 3) starts.push_back(i);
    return {{"segments of three stages", segments_schedule_at(chain, starts)}};
  }
};

std::int64_t min_budget_of(const std::function<void()>& plan_at_one) {
  try {
    plan_at_one();
  } catch (const InfeasibleBudget& e) {
    return static_cast<std::int64_t>(e.min_feasible_bytes);
  }
  FAIL("a budget of 1 was accepted");
  return -1;
}

std::int64_t evaluate(const std::string& key, const std::vector<std::string>& args) {
  auto n = [&](std::size_t i) { return std::stoi(args.at(i)); };
  auto chain_plan = [&](const std::string& strategy, int stages, std::optional<int> slots, Budget budget = {}) {
    StrategyOptions o;
    o.slots = slots;
    return make_strategy(strategy, o)->plan_chain(Chain::uniform(stages), budget);
  };
  if (key == "store_all_peak") {
    Model m = build_model(args.at(0));
    return static_cast<std::int64_t>(simulate(*m.tape, store_all_program(*m.tape, m.loss.id)).peak_bytes);
  }
  if (key == "revolve_recomputed") return chain_plan("revolve", n(0), n(1)).stats.recomputed_steps;
  if (key == "revolve_forward") return chain_plan("revolve", n(0), n(1)).stats.forward_steps;
  if (key == "chain_revolve_peak") return chain_plan("revolve", n(0), n(1)).stats.peak_memory;
  if (key == "chain_sqrt_recomputed") return chain_plan("sqrt", n(0), n(1)).stats.recomputed_steps;
  if (key == "chain_store_all_peak") return chain_plan("store-all", n(0), std::nullopt).stats.peak_memory;
  if (key == "chain_min_budget")
    return min_budget_of([&] { chain_plan(args.at(0), n(1), std::nullopt, Budget{1}); });
  if (key == "min_budget") {
    Model m = build_model(args.at(1));
    return min_budget_of([&] { plan(*make_strategy(args.at(0)), PlanRequest{*m.tape, m.loss.id, Budget{1}}); });
  }
  if (key == "every_third_recomputed" || key == "every_third_peak") {
    const StagePlan p = EveryThirdStage(StrategyOptions{}).plan_chain(Chain::uniform(n(0)), Budget{});
    return key == "every_third_peak" ? p.stats.peak_memory : p.stats.recomputed_steps;
  }
  FAIL("unknown check key '" << key << "'");
  return -1;
}

}  // namespace

TEST_CASE("exercises: every figure of docs/exercises.md's solutions is what remat computes") {
  std::ifstream f(std::string(REMAT_SOURCE_DIR) + "/docs/exercises.md");
  REQUIRE(f);
  std::stringstream buffer;
  buffer << f.rdbuf();
  const std::string page = buffer.str();
  const std::regex check(R"(<!-- check: (\S+)((?: \S+)*) = (-?\d+) -->)");
  const std::regex heading(R"(\n## Exercise \d+)");
  int exercises = 0, checks = 0;
  // Split the page into exercises and count the checks of each.
  std::vector<std::size_t> starts;
  for (auto it = std::sregex_iterator(page.begin(), page.end(), heading); it != std::sregex_iterator(); ++it)
    starts.push_back(static_cast<std::size_t>(it->position()));
  exercises = static_cast<int>(starts.size());
  CHECK(exercises >= 6);
  CHECK(exercises <= 10);
  for (std::size_t e = 0; e < starts.size(); ++e) {
    const std::size_t end = e + 1 < starts.size() ? starts[e + 1] : page.size();
    const std::string section = page.substr(starts[e], end - starts[e]);
    int here = 0;
    for (auto it = std::sregex_iterator(section.begin(), section.end(), check); it != std::sregex_iterator(); ++it) {
      const std::string key = (*it)[1];
      std::vector<std::string> args;
      std::istringstream words((*it)[2].str());
      for (std::string w; words >> w;) args.push_back(w);
      const std::int64_t expected = std::stoll((*it)[3]);
      CAPTURE(it->str());
      CHECK(evaluate(key, args) == expected);
      ++here;
      ++checks;
    }
    CAPTURE(section.substr(0, 40));
    CHECK(here >= 1);
  }
  CHECK(checks >= exercises);
}
