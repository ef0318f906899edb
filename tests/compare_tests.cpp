// Contract: tests of `remat compare` beyond its errors (errors_tests.cpp) and hostile
// paths (hardening_tests.cpp): --budgets least plans every strategy at its own smallest
// feasible budget, which the library accepts and refuses one byte below.
#include "tests/cli_harness.hpp"

#include <doctest/doctest.h>

#ifdef REMAT_HAVE_CLI
#include "models/models.hpp"
#include "strategies/planning.hpp"
#include "strategies/strategies.hpp"

#include <nlohmann/json.hpp>

using namespace remat;

TEST_CASE("compare: --budgets least runs each strategy at the smallest budget it accepts") {
  const std::string spec = "resmlp:layers=6,width=8,batch=2";
  auto o = testing::cli({"compare", "--model", spec, "--budgets", "least", "--repeat", "1", "--json"});
  REQUIRE_MESSAGE(o.code == 0, o.err);
  const auto j = nlohmann::json::parse(o.out);
  Model m = build_model(spec);
  int strategies_seen = 0;
  for (const auto& row : j.at("rows")) {
    const std::string name = row.at("strategy");
    if (name == "store-all") continue;
    ++strategies_seen;
    CAPTURE(name);
    REQUIRE(row.at("feasible").get<bool>());
    const auto least = row.at("budget_bytes").get<std::size_t>();
    CHECK(row.at("peak_bytes_measured").get<std::size_t>() == row.at("peak_bytes_predicted").get<std::size_t>());
    CHECK(row.at("peak_bytes_predicted").get<std::size_t>() <= least);
    CHECK(row.at("grads_bitwise_equal").get<bool>());
    // The independent check: the library plans at `least` and refuses one byte less.
    auto strategy = make_strategy(name);
    CHECK_NOTHROW(plan(*strategy, PlanRequest{*m.tape, m.loss.id, Budget{least}}));
    CHECK_THROWS_AS(plan(*strategy, PlanRequest{*m.tape, m.loss.id, Budget{least - 1}}), InfeasibleBudget);
  }
  CHECK(strategies_seen == static_cast<int>(strategy_names(/*include_solvers=*/false).size()) - 1);
}
#endif
