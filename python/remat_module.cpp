// Contract: the Python extension `remat._remat` (pybind11), a thin layer over the
// library's public entry points; the package python/remat/__init__.py re-exports it.
//  - Errors: remat::Error becomes remat.Error (a RuntimeError) and
//    remat::InfeasibleBudget becomes remat.InfeasibleBudget (a subclass of remat.Error)
//    with the attribute min_feasible_bytes; the messages are the C++ ones, unchanged.
//  - build_model(spec) -> Model: the zoo model (models/models.hpp); Model keeps the tape
//    alive for every PlanReport and Program planned on it.
//  - make_strategy(name, slots, heuristic, dp_slots, time_limit) -> Strategy: the registry
//    (strategies/strategies.hpp), with the CLI's option checks (an option the strategy
//    does not read is an Error "[strategy] ...").
//  - plan(model, strategy, budget) -> PlanReport: strategies/planning.hpp's plan() with
//    analytic costs. budget: None (unlimited), an int of bytes or a string in the one
//    budget syntax (strategies/budget.hpp); ints go through the same parser, so the same
//    values are refused. Percentages resolve against store-all's simulated peak, as the
//    CLI does, so Python and `remat run` plan the same Program.
//  - run(model, report_or_program, batch) -> StepResult: one training step on a fresh
//    CpuBackend, with batch `batch` of the model (Model.batch); gradients are copied
//    into numpy arrays keyed by parameter name before the backend goes away.
//  - explain(model, strategy, budget) -> dict: strategies/explain.hpp's document.
// plan, run and explain release the GIL while the library works; nothing here keeps a
// pointer into Python objects while the GIL is released.
#include <autodiff/remat.hpp>
#include <models/models.hpp>
#include <strategies/budget.hpp>
#include <strategies/explain.hpp>
#include <strategies/planning.hpp>
#include <strategies/strategies.hpp>

#include <nlohmann/json.hpp>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;
using remat::Error;

namespace {

// A zoo model, shared by every report and program planned on it.
struct PyModel {
  remat::Model model;
};

struct PyStrategy {
  std::string name;
  std::shared_ptr<const remat::RematStrategy> strategy;
};

struct PyProgram {
  std::shared_ptr<const PyModel> model;  // the tape the program was planned on (may be null)
  remat::Program program;
};

struct PyPlanReport {
  std::shared_ptr<const PyModel> model;
  remat::PlanReport report;
  std::optional<std::size_t> budget_bytes;
};

struct PyStepResult {
  std::size_t peak_bytes = 0;
  std::size_t predicted_peak_bytes = 0;
  std::int64_t recomputed_ops = 0;
  std::int64_t forward_ops = 0;
  std::int64_t backward_ops = 0;
  double loss = 0;
  double seconds = 0;
  py::dict gradients;
};

// Leaked on purpose: Python objects must not be released after the interpreter ends.
py::handle exception_error;
py::handle exception_infeasible;

py::array to_numpy(const remat::HostArray& a) {
  std::vector<py::ssize_t> shape(a.meta.shape.begin(), a.meta.shape.end());
  py::dtype dtype;
  switch (a.meta.dtype) {
    case remat::DType::f32: dtype = py::dtype::of<float>(); break;
    case remat::DType::f64: dtype = py::dtype::of<double>(); break;
    case remat::DType::i32: dtype = py::dtype::of<std::int32_t>(); break;
    case remat::DType::bf16:  // NumPy has no bf16: the values, widened exactly to f32
    case remat::DType::f16: {
      py::array_t<float> wide(shape);
      for (std::int64_t i = 0; i < a.numel(); ++i) wide.mutable_data()[i] = static_cast<float>(a.at(i));
      return wide;
    }
  }
  py::array out(dtype, shape);
  if (!a.bytes.empty()) std::memcpy(out.mutable_data(), a.bytes.data(), a.bytes.size());
  return out;
}

std::size_t store_all_peak(const remat::Model& m) {
  return remat::simulate(*m.tape, remat::store_all_program(*m.tape, m.loss.id)).peak_bytes;
}

// None, an int of bytes or a budget string -> the parsed spec (no spec: unlimited).
std::optional<remat::BudgetSpec> budget_spec(const py::object& budget) {
  if (budget.is_none()) return std::nullopt;
  if (py::isinstance<py::bool_>(budget))
    throw py::type_error("budget must be None, an int of bytes or a string such as '60%' or '64MiB', got a bool");
  if (py::isinstance<py::int_>(budget)) {
    // Through the parser, so ints are refused exactly as the same text would be.
    return remat::parse_budget(py::str(budget).cast<std::string>());
  }
  if (py::isinstance<py::str>(budget)) return remat::parse_budget(budget.cast<std::string>());
  throw py::type_error("budget must be None, an int of bytes or a string such as '60%' or '64MiB', got " +
                       std::string(py::str(py::type::of(budget).attr("__name__"))));
}

std::optional<std::size_t> resolve_budget(const remat::Model& m, const py::object& budget) {
  std::optional<remat::BudgetSpec> spec = budget_spec(budget);
  if (!spec) return std::nullopt;
  if (!spec->percent) return spec->resolve(0);  // absolute: no simulation needed
  py::gil_scoped_release release;
  return spec->resolve(store_all_peak(m));
}

py::object json_to_python(const nlohmann::json& j) {
  py::object loads = py::module_::import("json").attr("loads");
  return loads(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

nlohmann::json python_to_json(const py::object& o) {
  py::object dumps = py::module_::import("json").attr("dumps");
  return nlohmann::json::parse(dumps(o).cast<std::string>());
}

const char* option_name(remat::StrategyOption o) {
  switch (o) {
    case remat::StrategyOption::slots: return "slots";
    case remat::StrategyOption::heuristic: return "heuristic";
    case remat::StrategyOption::dp_slots: return "dp_slots";
    case remat::StrategyOption::time_limit: return "time_limit";
  }
  return "?";
}

PyStrategy make_strategy(const std::string& name, std::optional<int> slots, std::optional<std::string> heuristic,
                         std::optional<int> dp_slots, double time_limit) {
  const remat::StrategyInfo& info = remat::strategy_info(name);  // Error "[strategy] unknown strategy ..."
  auto check = [&](bool given, remat::StrategyOption o) {
    if (given && !info.uses(o))
      throw Error("[strategy] option " + std::string(option_name(o)) + " does not apply to strategy '" + info.name + "'");
  };
  check(slots.has_value(), remat::StrategyOption::slots);
  check(heuristic.has_value(), remat::StrategyOption::heuristic);
  check(dp_slots.has_value(), remat::StrategyOption::dp_slots);
  remat::StrategyOptions options;
  options.slots = slots;
  if (heuristic) {
    const auto& known = remat::greedy_heuristics();
    if (std::find(known.begin(), known.end(), *heuristic) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw Error("[greedy] unknown heuristic '" + *heuristic + "'; expected one of: " + list);
    }
    options.heuristic = *heuristic;
  }
  if (dp_slots && (*dp_slots < 1 || *dp_slots > 1000000))
    throw Error("[strategy] dp_slots must be between 1 and 1000000, got " + std::to_string(*dp_slots));
  options.dp_slots = dp_slots;
  if (!(time_limit > 0) || time_limit > 1e7)
    throw Error("[strategy] time_limit must be between 0 and 10^7 seconds, got " + std::to_string(time_limit));
  options.time_limit_seconds = time_limit;
  std::unique_ptr<remat::RematStrategy> s = info.make(options);
  return PyStrategy{info.name, std::shared_ptr<const remat::RematStrategy>(std::move(s))};
}

PyPlanReport plan(std::shared_ptr<const PyModel> model, const PyStrategy& strategy, const py::object& budget) {
  PyPlanReport out;
  out.model = model;
  out.budget_bytes = resolve_budget(model->model, budget);
  {
    py::gil_scoped_release release;
    const remat::Model& m = model->model;
    out.report = remat::plan(*strategy.strategy, remat::PlanRequest{*m.tape, m.loss.id, remat::Budget{out.budget_bytes}});
  }
  return out;
}

// The Program of a PlanReport or a Program made for `model` (and its predicted peak when
// the report carries one); an Error for another model's plan, a TypeError otherwise.
const remat::Program* program_of(const std::shared_ptr<const PyModel>& model, const py::object& what,
                                 std::optional<std::size_t>& predicted) {
  const remat::Model& m = model->model;
  const remat::Program* program = nullptr;
  if (py::isinstance<PyPlanReport>(what)) {
    const auto& r = what.cast<const PyPlanReport&>();
    if (r.model && r.model.get() != model.get() && r.model->model.spec != m.spec)
      throw Error("[python] the plan was made for model '" + r.model->model.spec + "', not '" + m.spec + "'");
    program = &r.report.program;
    predicted = r.report.predicted.peak_bytes;
  } else if (py::isinstance<PyProgram>(what)) {
    const auto& p = what.cast<const PyProgram&>();
    if (p.model && p.model.get() != model.get() && p.model->model.spec != m.spec)
      throw Error("[python] the program was made for model '" + p.model->model.spec + "', not '" + m.spec + "'");
    program = &p.program;
  } else {
    throw py::type_error("run() takes a PlanReport or a Program, got " +
                         std::string(py::str(py::type::of(what).attr("__name__"))));
  }
  return program;
}

// One step of `program` on `ex` (whose backend is `cpu`), the GIL released; gradients are
// downloaded before returning and converted to numpy with the GIL held.
PyStepResult run_step(const remat::Model& m, remat::CpuBackend& cpu, remat::Executor& ex, const remat::Program& program,
                      const remat::Bindings& data, std::optional<std::size_t> predicted, bool gradients = true) {
  (void)cpu;  // the gradients are read straight from the CPU backend's host memory
  PyStepResult out;
  std::optional<remat::StepResult> step;
  {
    py::gil_scoped_release release;
    remat::validate_program(*m.tape, program);
    if (!predicted) predicted = remat::simulate(*m.tape, program).peak_bytes;
    step = ex.run(program, data);
  }
  out.peak_bytes = step->report.peak_bytes;
  out.recomputed_ops = step->report.recomputed_ops;
  out.forward_ops = step->report.forward_ops;
  out.backward_ops = step->report.backward_ops;
  out.seconds = step->report.seconds;
  out.loss = step->loss ? step->loss->at(0) : 0.0;
  out.predicted_peak_bytes = *predicted;
  // One copy, from the backend's buffer into the numpy array (no HostArray in between:
  // on this kind of machine first-touch page faults of a second copy cost as much as the step).
  for (const auto& [id, tensor] : step->gradients) {
    if (!gradients) break;
    std::vector<py::ssize_t> shape(tensor.shape().begin(), tensor.shape().end());
    py::array array(tensor.dtype() == remat::DType::f64 ? py::dtype::of<double>() : py::dtype::of<float>(), shape);
    if (tensor.bytes() && tensor.raw()) std::memcpy(array.mutable_data(), tensor.raw(), tensor.bytes());
    out.gradients[py::str(m.tape->node(id).name)] = array;
  }
  return out;
}

// A CPU backend and an executor kept across steps (remat.Executor): the allocator's cache
// and the parameters stay warm, as in `remat run --repeat`.
struct PyExecutor {
  std::shared_ptr<const PyModel> model;
  std::unique_ptr<remat::CpuBackend> cpu = std::make_unique<remat::CpuBackend>();
  std::unique_ptr<remat::Executor> executor;
  std::int64_t batch_index = -1;
  remat::Bindings data;
  explicit PyExecutor(std::shared_ptr<const PyModel> m)
      : model(std::move(m)), executor(std::make_unique<remat::Executor>(*model->model.tape, *cpu)) {}
  PyStepResult run(const py::object& what, std::int64_t batch, bool gradients) {
    if (batch < 0) throw py::value_error("batch must be >= 0, got " + std::to_string(batch));
    std::optional<std::size_t> predicted;
    const remat::Program* program = program_of(model, what, predicted);
    py::object keep = what;  // the program stays alive while the GIL is released
    if (batch != batch_index) {
      data = model->model.batch(static_cast<std::uint64_t>(batch));
      batch_index = batch;
    }
    return run_step(model->model, *cpu, *executor, *program, data, predicted, gradients);
  }
};

PyStepResult run(const std::shared_ptr<const PyModel>& model, const py::object& what, std::int64_t batch) {
  if (batch < 0) throw py::value_error("batch must be >= 0, got " + std::to_string(batch));
  const remat::Model& m = model->model;
  std::optional<std::size_t> predicted;
  const remat::Program* program = program_of(model, what, predicted);
  // Keep the Python object (and so the program) alive while the GIL is released.
  py::object keep = what;
  const remat::Bindings data = m.batch(static_cast<std::uint64_t>(batch));
  remat::CpuBackend cpu;
  remat::Executor ex(*m.tape, cpu);
  return run_step(m, cpu, ex, *program, data, predicted);
}

py::object explain(const std::shared_ptr<const PyModel>& model, const PyStrategy& strategy, const py::object& budget) {
  const remat::Model& m = model->model;
  std::optional<std::size_t> bytes = resolve_budget(m, budget);
  nlohmann::json doc;
  {
    py::gil_scoped_release release;
    doc = remat::explain_plan(*m.tape, m.loss.id, *strategy.strategy, remat::Budget{bytes});
    doc["model"] = m.spec;
  }
  return json_to_python(doc);
}

std::string human_bytes(std::size_t b) { return remat::bytes_text(b); }

}  // namespace

PYBIND11_MODULE(_remat, mod) {
  mod.doc() = "remat: reverse-mode autodiff with rematerialization strategies (C++ core, pybind11 binding).";

  auto* error = new py::exception<remat::Error>(mod, "Error", PyExc_RuntimeError);
  error->doc() = "Every user-facing error of remat; the message starts with '[source] '.";
  auto* infeasible = new py::exception<remat::InfeasibleBudget>(mod, "InfeasibleBudget", error->ptr());
  infeasible->doc() =
      "No plan of the strategy fits the budget; min_feasible_bytes is the smallest budget it accepts.";
  exception_error = *error;
  exception_infeasible = *infeasible;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const remat::InfeasibleBudget& e) {
      py::object instance = exception_infeasible(py::str(e.what()));
      instance.attr("min_feasible_bytes") = py::int_(e.min_feasible_bytes);
      PyErr_SetObject(exception_infeasible.ptr(), instance.ptr());
    } catch (const remat::Error& e) {
      PyErr_SetString(exception_error.ptr(), e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "[python] out of memory");
    }
  });

  py::class_<PyModel, std::shared_ptr<PyModel>>(mod, "Model", "A zoo model: a recorded tape, its loss and its batches.")
      .def_property_readonly(
          "spec", [](const PyModel& m) { return m.model.spec; }, "The canonical spec, defaults filled in.")
      .def_property_readonly(
          "loss", [](const PyModel& m) { return m.model.loss.id; }, "The node id of the scalar loss.")
      .def_property_readonly(
          "num_nodes", [](const PyModel& m) { return m.model.tape->size(); }, "Nodes on the tape.")
      .def_property_readonly(
          "parameters",
          [](const PyModel& m) {
            std::vector<std::string> names;
            for (int id : m.model.tape->parameters()) names.push_back(m.model.tape->node(id).name);
            return names;
          },
          "The parameter names, in recording order.")
      .def_property_readonly(
          "store_all_peak", [](const PyModel& m) { return store_all_peak(m.model); },
          "Store-all's simulated peak (budgeted bytes): what percentage budgets are of.")
      .def(
          "batch",
          [](const PyModel& m, std::int64_t step) {
            if (step < 0) throw py::value_error("batch index must be >= 0, got " + std::to_string(step));
            remat::Bindings b = m.model.batch(static_cast<std::uint64_t>(step));
            py::dict out;
            for (const auto& [id, array] : b) out[py::str(m.model.tape->node(id).name)] = to_numpy(array);
            return out;
          },
          py::arg("i"), "The deterministic inputs of training step i: {placeholder name: numpy array}.")
      .def("__repr__", [](const PyModel& m) { return "<remat.Model '" + m.model.spec + "'>"; });

  py::class_<PyStrategy>(mod, "Strategy", "A rematerialization strategy made by make_strategy().")
      .def_property_readonly(
          "name", [](const PyStrategy& s) { return s.name; }, "The registry name.")
      .def("__repr__", [](const PyStrategy& s) { return "<remat.Strategy '" + s.name + "'>"; });

  py::class_<PyProgram>(mod, "Program", "A node-level instruction list: what run() executes.")
      .def_property_readonly(
          "strategy", [](const PyProgram& p) { return p.program.strategy; }, "The strategy that emitted it.")
      .def_property_readonly(
          "loss", [](const PyProgram& p) { return p.program.loss; }, "The node whose gradient is seeded.")
      .def("__len__", [](const PyProgram& p) { return p.program.instructions.size(); }, "Instructions.")
      .def(
          "to_json", [](const PyProgram& p) { return json_to_python(p.program.to_json()); },
          "The program as a dict (Program::to_json).")
      .def(
          "to_string",
          [](const PyProgram& p) {
            if (!p.model) throw Error("[python] a program read from JSON has no tape to print against");
            return p.program.to_string(*p.model->model.tape);
          },
          "The teaching view: one instruction a line.")
      .def_static(
          "from_json",
          [](const py::object& doc) {
            PyProgram p;
            p.program = remat::Program::from_json(python_to_json(doc));
            return p;
          },
          py::arg("doc"), "A program from a dict in Program::to_json's format (run() validates it).")
      .def("__repr__", [](const PyProgram& p) {
        return "<remat.Program " + p.program.strategy + ", " + std::to_string(p.program.instructions.size()) +
               " instructions>";
      });

  py::class_<PyPlanReport>(mod, "PlanReport", "What plan() returns: the program and its predicted figures.")
      .def_property_readonly(
          "strategy", [](const PyPlanReport& r) { return r.report.strategy; }, "The strategy's name.")
      .def_property_readonly(
          "setting", [](const PyPlanReport& r) { return r.report.setting; }, "What it chose ('3 slots', ...).")
      .def_property_readonly(
          "budget_bytes", [](const PyPlanReport& r) { return r.budget_bytes; },
          "The budget in bytes it was planned under (None: unlimited).")
      .def_property_readonly(
          "peak_bytes", [](const PyPlanReport& r) { return r.report.predicted.peak_bytes; },
          "Predicted (simulated) peak of budgeted bytes.")
      .def_property_readonly(
          "recomputed_ops", [](const PyPlanReport& r) { return r.report.predicted.recomputed_ops; },
          "Predicted forward executions beyond each node's first.")
      .def_property_readonly(
          "forward_ops", [](const PyPlanReport& r) { return r.report.predicted.forward_ops; },
          "Predicted forward executions, recomputations included.")
      .def_property_readonly(
          "planned_time", [](const PyPlanReport& r) { return r.report.planned_time; },
          "Planned time under the analytic costs (ns).")
      .def_property_readonly(
          "store_all_peak", [](const PyPlanReport& r) { return r.report.store_all_peak; },
          "Store-all's simulated peak.")
      .def_property_readonly(
          "store_all_time", [](const PyPlanReport& r) { return r.report.store_all_time; },
          "Store-all's planned time (ns).")
      .def_property_readonly(
          "planned_overhead", [](const PyPlanReport& r) { return r.report.planned_overhead(); },
          "planned_time / store_all_time - 1.")
      .def_property_readonly(
          "notes", [](const PyPlanReport& r) { return r.report.notes; }, "Fallbacks, rounding, ...")
      .def_property_readonly(
          "cost_source", [](const PyPlanReport& r) { return r.report.cost_source; }, "'analytic'.")
      .def_property_readonly(
          "program", [](const PyPlanReport& r) { return PyProgram{r.model, r.report.program}; },
          "The Program (a copy).")
      .def(
          "program_json", [](const PyPlanReport& r) { return json_to_python(r.report.program.to_json()); },
          "The Program as a dict (Program::to_json).")
      .def("__repr__", [](const PyPlanReport& r) {
        return "<remat.PlanReport " + r.report.strategy + " (" + r.report.setting +
               "), peak " + human_bytes(r.report.predicted.peak_bytes) + ">";
      });

  py::class_<PyStepResult>(mod, "StepResult", "One training step run on the CPU backend.")
      .def_readonly("peak_bytes", &PyStepResult::peak_bytes, "Measured peak of budgeted bytes.")
      .def_readonly("predicted_peak_bytes", &PyStepResult::predicted_peak_bytes, "The plan's predicted peak.")
      .def_readonly("recomputed_ops", &PyStepResult::recomputed_ops, "Measured recomputations.")
      .def_readonly("forward_ops", &PyStepResult::forward_ops, "Measured forward executions.")
      .def_readonly("backward_ops", &PyStepResult::backward_ops, "Measured backward executions.")
      .def_readonly("loss", &PyStepResult::loss, "The loss value.")
      .def_readonly("seconds", &PyStepResult::seconds, "Wall time of the step.")
      .def_readonly("gradients", &PyStepResult::gradients, "{parameter name: numpy array} (copies).")
      .def("__repr__", [](const PyStepResult& r) {
        return "<remat.StepResult loss " + std::to_string(r.loss) + ", peak " + human_bytes(r.peak_bytes) + ">";
      });

  mod.def(
      "build_model", [](const std::string& spec) { return std::make_shared<PyModel>(PyModel{remat::build_model(spec)}); },
      py::arg("spec"), "A zoo model from a spec such as 'mlp:layers=8,width=16,batch=4'. Errors are '[model...] ...'.");
  mod.def("model_catalogue", &remat::model_catalogue, "The zoo's models with their keys and defaults.");
  mod.def("strategy_names", &remat::strategy_names, py::arg("include_solvers") = true,
          "Every strategy's name; without the time-limited solvers when include_solvers is False.");
  mod.def(
      "is_solver", [](const std::string& name) { return remat::strategy_info(name).solver; }, py::arg("name"),
      "Whether the strategy is a time-limited solver (checkmate).");
  mod.def("make_strategy", &make_strategy, py::arg("name"), py::arg("slots") = py::none(),
          py::arg("heuristic") = py::none(), py::arg("dp_slots") = py::none(), py::arg("time_limit") = 60.0,
          "A strategy of the registry. An option the strategy does not read is an Error.");
  mod.def("plan", &plan, py::arg("model"), py::arg("strategy"), py::arg("budget") = py::none(),
          "Plans one training step of the model. budget: None, an int of bytes or a string ('60%', '64MiB'); "
          "percentages are of store-all's simulated peak. Raises InfeasibleBudget when nothing fits.");
  py::class_<PyExecutor>(mod, "Executor",
                         "A CPU backend and an executor kept across steps: repeated run() calls reuse the "
                         "allocator's cache and the uploaded parameters, as `remat run --repeat` does.")
      .def(py::init<std::shared_ptr<const PyModel>>(), py::arg("model"), "An executor for `model` on the CPU.")
      .def("run", &PyExecutor::run, py::arg("plan"), py::arg("batch") = 0, py::arg("gradients") = true,
           "One training step of a PlanReport or Program on this executor (the GIL is released). With "
           "gradients=False the gradients are not copied out (StepResult.gradients is empty): for timing.");
  mod.def("run", &run, py::arg("model"), py::arg("plan"), py::arg("batch") = 0,
          "Runs a PlanReport's (or a Program's) step on the CPU backend with the model's batch `batch`.");
  mod.def("explain", &explain, py::arg("model"), py::arg("strategy"), py::arg("budget") = py::none(),
          "The explain document of a plan (tape, chain, schedule, program, live bytes) as a dict.");
  mod.def(
      "parse_budget",
      [](const std::string& text, std::size_t store_all_peak) { return remat::parse_budget(text).resolve(store_all_peak); },
      py::arg("text"), py::arg("store_all_peak"), "Bytes of a budget string given store-all's peak.");
}
