// Contract: chain files from Python (remat.Chain, remat.load_chain, remat.parse_chain,
// remat.plan_chain, remat.ChainPlan), the same path as `remat plan --chain SPEC`:
//  - load_chain(path) is parse_chain("file:" + path): the CLI's checks (a regular file of
//    at most 64 MiB, nesting, duplicate keys, value bounds), then Chain::validate();
//    errors are remat.Error "[chain ...] ...". Chain.from_dict(doc) reads the same JSON
//    object from a dict.
//  - plan_chain(chain, strategy, budget) plans a chain strategy on the stage model
//    (RematStrategy::plan_chain); a percentage budget is of store-all's stage peak,
//    as the CLI resolves it, so the figures equal the CLI's JSON keys of the same
//    names (setting, forward_steps, recomputed_steps, makespan, peak, store_all_peak).
//    A node-level strategy (greedy, checkmate) is refused with its Error.
// Planning releases the GIL; the Chain is immutable once made.
#include "bindings.hpp"

#include <strategies/budget.hpp>
#include <strategies/chain.hpp>
#include <strategies/stage_schedules.hpp>
#include <strategies/strategies.hpp>

#include <nlohmann/json.hpp>
#include <pybind11/stl.h>

#include <sstream>

namespace remat_python {

namespace {

struct PyChain {
  remat::Chain chain;
  std::int64_t store_all_peak = 0;  // store_all_stats(chain).peak_memory
};

std::shared_ptr<PyChain> make_chain(remat::Chain chain) {
  chain.validate();
  auto out = std::make_shared<PyChain>();
  out->store_all_peak = remat::store_all_stats(chain).peak_memory;
  out->chain = std::move(chain);
  return out;
}

struct PyChainPlan {
  std::string strategy, chain, setting;
  std::optional<std::size_t> budget;
  int stages = 0;
  remat::StagePlan plan;
  std::int64_t store_all_peak = 0;
};

std::vector<std::string> schedule_lines(const remat::Schedule& s) {
  std::vector<std::string> out;
  std::istringstream in(s.to_string());
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

}  // namespace

void bind_chain(py::module_& mod) {
  py::class_<PyChain, std::shared_ptr<PyChain>>(
      mod, "Chain", "A stage chain (rotor's costs: fw, bw, cw, cbw, ftmp, btmp), as in a chain file.")
      .def_property_readonly("name", [](const PyChain& c) { return c.chain.name; }, "The chain's name.")
      .def_property_readonly("length", [](const PyChain& c) { return c.chain.length(); }, "Stages L.")
      .def_property_readonly("fw", [](const PyChain& c) { return c.chain.fw; }, "Forward times (L).")
      .def_property_readonly("bw", [](const PyChain& c) { return c.chain.bw; }, "Backward times (L+1).")
      .def_property_readonly("cw", [](const PyChain& c) { return c.chain.cw; }, "Sizes of x(i) (L+1).")
      .def_property_readonly("cbw", [](const PyChain& c) { return c.chain.cbw; }, "Sizes of xbar(i) (L+1).")
      .def_property_readonly("ftmp", [](const PyChain& c) { return c.chain.ftmp; }, "Forward temporaries (L).")
      .def_property_readonly("btmp", [](const PyChain& c) { return c.chain.btmp; }, "Backward temporaries (L+1).")
      .def_property_readonly(
          "store_all_peak", [](const PyChain& c) { return c.store_all_peak; },
          "Store-all's stage-model peak: what percentage budgets are of.")
      .def("to_dict", [](const PyChain& c) { return py::module_::import("json").attr("loads")(c.chain.to_json().dump()); },
           "The chain as a dict in the chain-file format.")
      .def_static(
          "from_dict",
          [](const py::object& doc) {
            std::string text = py::module_::import("json").attr("dumps")(doc).cast<std::string>();
            return make_chain(remat::Chain::parse_text(text, "dict"));
          },
          py::arg("doc"), "A chain from a dict in the chain-file format (checked as a file is).")
      .def("__len__", [](const PyChain& c) { return c.chain.length(); })
      .def("__repr__", [](const PyChain& c) {
        return "<remat.Chain '" + c.chain.name + "', " + std::to_string(c.chain.length()) + " stages>";
      });

  py::class_<PyChainPlan>(mod, "ChainPlan", "A stage schedule planned on a Chain, with the stage model's figures.")
      .def_readonly("strategy", &PyChainPlan::strategy, "The strategy's name.")
      .def_readonly("chain", &PyChainPlan::chain, "The chain's name.")
      .def_readonly("budget", &PyChainPlan::budget, "The budget it was planned under (None: unlimited).")
      .def_readonly("stages", &PyChainPlan::stages, "Stages L.")
      .def_readonly("setting", &PyChainPlan::setting, "What it chose ('3 slots', ...).")
      .def_property_readonly("forward_steps", [](const PyChainPlan& p) { return p.plan.stats.forward_steps; },
                             "Stage forwards, recomputations included.")
      .def_property_readonly("recomputed_steps", [](const PyChainPlan& p) { return p.plan.stats.recomputed_steps; },
                             "forward_steps - L.")
      .def_property_readonly("makespan", [](const PyChainPlan& p) { return p.plan.stats.makespan; },
                             "The sum of fw and bw over the schedule's actions.")
      .def_property_readonly("peak", [](const PyChainPlan& p) { return p.plan.stats.peak_memory; },
                             "The stage model's peak, x(0) included.")
      .def_readonly("store_all_peak", &PyChainPlan::store_all_peak, "Store-all's stage-model peak.")
      .def_property_readonly("memory_after", [](const PyChainPlan& p) { return p.plan.stats.memory_after; },
                             "Live memory after each action.")
      .def_property_readonly("schedule", [](const PyChainPlan& p) { return schedule_lines(p.plan.schedule); },
                             "The actions, one string each ('F_ck 0', 'B 3', ...).")
      .def("__repr__", [](const PyChainPlan& p) {
        return "<remat.ChainPlan " + p.strategy + " on '" + p.chain + "' (" + p.setting + "), peak " +
               std::to_string(p.plan.stats.peak_memory) + ">";
      });

  mod.def(
      "parse_chain", [](const std::string& spec) { return make_chain(remat::Chain::parse_spec(spec)); }, py::arg("spec"),
      "A chain from the CLI's --chain syntax: 'uniform:n=N' or 'file:PATH'.");
  mod.def(
      "load_chain", [](const std::string& path) { return make_chain(remat::Chain::parse_spec("file:" + path)); },
      py::arg("path"), "A chain file (rotor JSON), read and checked as `remat plan --chain file:PATH` does.");
  mod.def(
      "plan_chain",
      [](const std::shared_ptr<PyChain>& chain, const PyStrategy& strategy, const py::object& budget) {
        std::optional<remat::BudgetSpec> spec = budget_spec(budget);
        PyChainPlan out;
        if (spec) out.budget = spec->resolve(static_cast<std::size_t>(chain->store_all_peak));
        {
          py::gil_scoped_release release;
          out.plan = strategy.strategy->plan_chain(chain->chain, remat::Budget{out.budget});
        }
        out.strategy = strategy.name;
        out.chain = chain->chain.name;
        out.setting = out.plan.note;
        out.stages = chain->chain.length();
        out.store_all_peak = chain->store_all_peak;
        return out;
      },
      py::arg("chain"), py::arg("strategy"), py::arg("budget") = py::none(),
      "Plans a chain strategy on the chain's stage model. budget: None, an int or a string ('60%' of "
      "store-all's stage peak). Raises InfeasibleBudget when nothing fits.");
}

}  // namespace remat_python
