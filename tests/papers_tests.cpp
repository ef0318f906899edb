// Contract: fast checks of the paper drivers' shared helpers (experiments/common/):
// CSV/JSON tables, the median and the log-log power-law fit, and ModelBench: plans
// that simulate, infeasible budgets reported (not thrown), executions that check the
// promises, and profiled program times that add up.
#include "experiments/common/bench.hpp"

#include <doctest/doctest.h>

using namespace remat;
using namespace remat::papers;

TEST_CASE("papers: tables write RFC 4180 CSV and JSON objects") {
  Table t({"name", "count", "ratio", "ok", "missing"});
  t.add({std::string("plain"), std::int64_t{3}, 0.5, true, Cell{}});
  t.add({std::string("a,b \"q\""), std::int64_t{-1}, std::nan(""), false, Cell{}});
  CHECK(t.to_csv() == "name,count,ratio,ok,missing\nplain,3,0.5,true,\n\"a,b \"\"q\"\"\",-1,,false,\n");
  auto j = t.to_json();
  REQUIRE(j.size() == 2);
  CHECK(j[0]["count"] == 3);
  CHECK(j[0]["ok"] == true);
  CHECK(j[0]["missing"].is_null());
  CHECK(j[1]["ratio"].is_null());  // NaN is not JSON
  CHECK_THROWS_AS(t.add({std::string("short")}), Error);
}

TEST_CASE("papers: median and power-law fit") {
  CHECK(median({3.0, 1.0, 2.0}) == 2.0);
  CHECK(median({4.0, 1.0, 2.0, 3.0}) == 2.5);
  std::vector<double> x{16, 64, 256, 1024}, y;
  for (double v : x) y.push_back(3.0 * std::pow(v, 0.5));
  PowerFit f = fit_power_law(x, y);
  CHECK(f.exponent == doctest::Approx(0.5));
  CHECK(f.prefactor == doctest::Approx(3.0));
  CHECK(f.r_squared == doctest::Approx(1.0));
  CHECK(f.points == 4);
  CHECK_THROWS_AS(fit_power_law({1.0}, {2.0}), Error);
}

TEST_CASE("papers: ModelBench plans, reports infeasible budgets and checks executions") {
  broken_promises() = 0;
  ModelBench bench("mlp:layers=9,width=8,batch=2,act=tanh", "papers_test");
  std::vector<Outcome> outs;
  outs.push_back(bench.plan(Attempt{"store-all", "", std::nullopt, {}}));
  outs.push_back(bench.plan(Attempt{"sqrt", "", std::nullopt, {}}));
  // The stage model the DP plans with bounds transients from above: give it room.
  outs.push_back(bench.plan(Attempt{"optimal", "1.5x", bench.store_all_peak() * 3 / 2, {}}));
  StrategyOptions g;
  g.heuristic = "lru";
  outs.push_back(bench.plan(Attempt{"greedy", "half", bench.store_all_peak() / 2, g}));
  Outcome tiny = bench.plan(Attempt{"revolve", "tiny", std::size_t{16}, {}});
  CHECK(tiny.status == Status::infeasible);
  CHECK(tiny.min_feasible_bytes > 16);
  for (const auto& x : outs) {
    CAPTURE(x.attempt.strategy);
    REQUIRE(x.feasible());
    if (x.attempt.budget) CHECK(x.predicted.peak_bytes <= *x.attempt.budget);
  }
  CHECK(outs[0].planned_overhead == 0.0);
  CHECK(outs[1].planned_overhead > 0.0);
  CHECK(outs[1].stage.has_value());
  CHECK_FALSE(outs[3].stage.has_value());  // greedy works on the node graph

  std::vector<Outcome*> ptrs;
  for (auto& x : outs) ptrs.push_back(&x);
  ptrs.push_back(&tiny);  // skipped: infeasible
  bench.execute(ptrs, 2);
  CHECK_FALSE(tiny.executed);
  for (const auto& x : outs) {
    CAPTURE(x.attempt.strategy);
    CHECK(x.executed);
    CHECK(x.grads_bitwise_equal);
    CHECK(x.promises_hold);
    CHECK(x.measured.peak_bytes == x.predicted.peak_bytes);
    CHECK(std::isfinite(x.measured_overhead));
  }
  CHECK(broken_promises() == 0);
  CHECK(std::isfinite(bench.store_all_median()));

  // Program times under the bench's costs: a plan that recomputes costs more than store-all.
  CHECK(profiled_program_seconds(bench.costs(), outs[1].program, bench.tape()) >
        profiled_program_seconds(bench.costs(), bench.store_all(), bench.tape()) * 0.99);
}

TEST_CASE("papers: driver options") {
  const char* argv[] = {"paper_x", "--quick", "--out", "/tmp/remat_papers_test_out", "--no-plot"};
  DriverOptions o = parse_driver_options(5, const_cast<char**>(argv), "x", "about");
  CHECK(o.quick);
  CHECK_FALSE(o.plot);
  CHECK(o.repeat == 2);
  CHECK(o.out == "/tmp/remat_papers_test_out");
  const char* bad[] = {"paper_x", "--repeat", "zero"};
  CHECK_THROWS_WITH_AS(parse_driver_options(3, const_cast<char**>(bad), "x", "about"),
                       "[x] --repeat expects a positive integer, got 'zero'", Error);
  const char* unknown[] = {"paper_x", "--fast"};
  CHECK_THROWS_WITH_AS(parse_driver_options(2, const_cast<char**>(unknown), "x", "about"),
                       "[x] unknown argument '--fast' (try --help)", Error);
}
