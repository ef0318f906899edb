// Contract: the Python extension `remat._remat` (pybind11), a thin layer over the
// library's public entry points; the package python/remat/__init__.py re-exports it.
// This file binds models, strategies, plans, runs and explain; tape_bindings.cpp binds
// recording (Tape, Value, ops); chain_bindings.cpp binds chain files.
//  - Errors: remat::Error becomes remat.Error (a RuntimeError) and
//    remat::InfeasibleBudget becomes remat.InfeasibleBudget (a subclass of remat.Error)
//    with the attribute min_feasible_bytes; the messages are the C++ ones, unchanged.
//  - build_model(spec) -> Model: the zoo model (models/models.hpp); Model keeps the tape
//    alive for every PlanReport and Program planned on it. remat.Tape is a Model too.
//  - make_strategy(name, slots, heuristic, dp_slots, time_limit) -> Strategy: the registry
//    (strategies/strategies.hpp), with the CLI's option checks (an option the strategy
//    does not read is an Error "[strategy] ...").
//  - plan(model, strategy, budget) -> PlanReport: strategies/planning.hpp's plan() with
//    analytic costs. budget: None (unlimited), an int of bytes or a string in the one
//    budget syntax (strategies/budget.hpp); ints go through the same parser, so the same
//    values are refused. Percentages resolve against store-all's simulated peak, as the
//    CLI does, so Python and `remat run` plan the same Program.
//  - run(model, plan, batch, inputs) / Executor(model).run(plan, batch, gradients, inputs)
//    -> StepResult: one training step on the CPU backend with the model's batch `batch`,
//    placeholders rebound by name from `inputs`. Gradients are numpy arrays over the
//    backend's own gradient buffers (no copy; bindings.hpp, PyBuffer): they stay valid
//    after the StepResult, the Executor and its backend are gone. Executor.parameter(name)
//    is a read-only view of the executor's parameter in the same way.
//  - explain(model, strategy, budget) -> dict: strategies/explain.hpp's document.
// plan, run and explain release the GIL while the library works; nothing here keeps a
// pointer into Python objects while the GIL is released. An Executor runs one step at a
// time (its lock), and its buffers return their bytes under that lock.
#include "bindings.hpp"

#include <strategies/explain.hpp>
#include <strategies/planning.hpp>

#include <nlohmann/json.hpp>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace remat_python {

using remat::Error;

py::dtype numpy_dtype(remat::DType dtype) {
  switch (dtype) {
    case remat::DType::f32: return py::dtype::of<float>();
    case remat::DType::f64: return py::dtype::of<double>();
    case remat::DType::i32: return py::dtype::of<std::int32_t>();
    case remat::DType::f16: return py::dtype("float16");
    case remat::DType::bf16: break;  // NumPy has no bf16: to_numpy_view widens it
  }
  throw Error(std::string("[python] NumPy has no dtype for ") + remat::dtype_name(dtype));
}

std::string type_name(const py::handle& object) { return py::str(py::type::of(object).attr("__name__")); }

py::array to_numpy_view(std::unique_ptr<PyBuffer> buffer, bool writeable) {
  const remat::TensorMeta meta = buffer->meta();
  void* data = buffer->data();
  std::vector<py::ssize_t> shape(meta.shape.begin(), meta.shape.end());
  if (meta.dtype == remat::DType::bf16) {  // no NumPy bf16: a copy widened exactly to f32
    py::array_t<float> wide(shape);
    const auto* bits = static_cast<const std::uint16_t*>(data);
    for (std::int64_t i = 0; i < meta.numel(); ++i) wide.mutable_data()[i] = remat::bf16_to_f32(bits[i]);
    return wide;
  }
  py::object base = py::cast(std::move(buffer));  // the array's base: it owns the bytes
  if (!data) {  // zero elements: numpy needs no bytes, but a non-null pointer
    static std::byte none[8];
    data = none;
    writeable = false;
  }
  py::array out(numpy_dtype(meta.dtype), shape, py::array::StridesContainer{}, data, base);
  if (out.size() == 0 && meta.numel() != 0) throw Error("[python] internal: array size mismatch");
  if (!writeable) out.attr("flags").attr("writeable") = false;
  return out;
}

py::array to_numpy(remat::HostArray array, bool writeable) {
  auto buffer = std::make_unique<PyBuffer>();
  buffer->host = std::make_shared<remat::HostArray>(std::move(array));
  return to_numpy_view(std::move(buffer), writeable);
}

remat::HostArray host_array(const py::handle& object, const std::string& what) {
  py::array a = py::array::ensure(object, py::array::c_style);
  if (!a) {
    PyErr_Clear();
    throw Error("[python] " + what + ": expected a numpy array, got " + type_name(object));
  }
  remat::DType dtype;
  if (a.dtype().equal(py::dtype::of<float>())) dtype = remat::DType::f32;
  else if (a.dtype().equal(py::dtype::of<double>())) dtype = remat::DType::f64;
  else if (a.dtype().equal(py::dtype::of<std::int32_t>())) dtype = remat::DType::i32;
  else
    throw Error("[python] " + what + ": dtype " + std::string(py::str(a.dtype())) +
                " is not supported (remat has float32, float64, int32; convert with .astype())");
  remat::Shape shape(a.shape(), a.shape() + a.ndim());
  remat::HostArray out(remat::TensorMeta{shape, dtype});  // "[HostArray] out of memory ..."
  if (!out.bytes.empty()) std::memcpy(out.bytes.data(), a.data(), out.bytes.size());
  return out;
}

std::optional<remat::BudgetSpec> budget_spec(const py::object& budget) {
  if (budget.is_none()) return std::nullopt;
  if (py::isinstance<py::bool_>(budget))
    throw py::type_error("budget must be None, an int of bytes or a string such as '60%' or '64MiB', got a bool");
  if (py::isinstance<py::int_>(budget)) return remat::parse_budget(py::str(budget).cast<std::string>());
  if (py::isinstance<py::str>(budget)) return remat::parse_budget(budget.cast<std::string>());
  throw py::type_error("budget must be None, an int of bytes or a string such as '60%' or '64MiB', got " +
                       type_name(budget));
}

namespace {

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
  std::size_t parameter_bytes = 0;
  std::size_t parameter_gradient_bytes = 0;
  double loss = 0;
  double seconds = 0;
  py::dict gradients;
};

// Leaked on purpose: Python objects must not be released after the interpreter ends.
py::handle exception_error;
py::handle exception_infeasible;

std::size_t store_all_peak(const remat::Model& m) {
  return remat::simulate(*m.tape, remat::store_all_program(*m.tape, m.loss.id)).peak_bytes;
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

int node_named(const remat::Tape& tape, const std::string& name, remat::NodeKind kind, const char* what) {
  std::string known;
  for (const remat::Node& n : tape.nodes())
    if (n.kind == kind) {
      if (n.name == name) return n.id;
      known += (known.empty() ? "" : ", ") + n.name;
    }
  throw Error(std::string("[python] ") + what + ": no " +
              (kind == remat::NodeKind::placeholder ? "placeholder" : "parameter") + " named '" + name +
              "' (there are: " + known + ")");
}

// The bindings of one step: the model's batch `batch`, then `inputs` {name: array} on top.
remat::Bindings bindings_for(const remat::Model& m, std::int64_t batch, const py::object& inputs) {
  if (batch < 0) throw py::value_error("batch must be >= 0, got " + std::to_string(batch));
  remat::Bindings data = m.batch(static_cast<std::uint64_t>(batch));
  if (inputs.is_none()) return data;
  if (!py::isinstance<py::dict>(inputs))
    throw py::type_error("inputs must be a dict {placeholder name: numpy array}, got " + type_name(inputs));
  for (auto [key, value] : inputs.cast<py::dict>()) {
    if (!py::isinstance<py::str>(key)) throw py::type_error("inputs: keys are placeholder names (str)");
    const std::string name = key.cast<std::string>();
    data[node_named(*m.tape, name, remat::NodeKind::placeholder, "inputs")] = host_array(value, "inputs['" + name + "']");
  }
  return data;
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
  const remat::Model& m = model->ready();
  PyPlanReport out;
  out.model = model;
  out.budget_bytes = resolve_budget(m, budget);
  {
    py::gil_scoped_release release;
    out.report = remat::plan(*strategy.strategy, remat::PlanRequest{*m.tape, m.loss.id, remat::Budget{out.budget_bytes}});
  }
  return out;
}

// Whether a plan made for `made_for` may run on `model`: the same object, or two zoo models
// of one spec (the same tape, node for node). A recorded tape runs only its own plans.
void check_same_model(const std::shared_ptr<const PyModel>& made_for, const std::shared_ptr<const PyModel>& model,
                      const char* what) {
  if (!made_for || made_for.get() == model.get()) return;
  const bool recorded = dynamic_cast<const PyTape*>(made_for.get()) || dynamic_cast<const PyTape*>(model.get());
  if (recorded || made_for->model.spec != model->model.spec)
    throw Error(std::string("[python] the ") + what + " was made for model '" + made_for->model.spec + "', not '" +
                model->model.spec + "'" + (recorded ? " (a recorded tape runs only the plans made on it)" : ""));
}

// The Program of a PlanReport or a Program made for `model` (and its predicted peak when
// the report carries one); an Error for another model's plan, a TypeError otherwise.
const remat::Program* program_of(const std::shared_ptr<const PyModel>& model, const py::object& what,
                                 std::optional<std::size_t>& predicted) {
  if (py::isinstance<PyPlanReport>(what)) {
    const auto& r = what.cast<const PyPlanReport&>();
    check_same_model(r.model, model, "plan");
    predicted = r.report.predicted.peak_bytes;
    return &r.report.program;
  }
  if (py::isinstance<PyProgram>(what)) {
    const auto& p = what.cast<const PyProgram&>();
    check_same_model(p.model, model, "program");
    return &p.program;
  }
  throw py::type_error("run() takes a PlanReport or a Program, got " + type_name(what));
}

// One step of `program` on `ex`, the GIL released and `lock` (when given) held while it
// runs; the gradients become numpy arrays over the step's own buffers (no copy).
PyStepResult run_step(const remat::Model& m, remat::Executor& ex, const remat::Program& program,
                      const remat::Bindings& data, std::optional<std::size_t> predicted, bool gradients,
                      const std::shared_ptr<std::mutex>& lock) {
  PyStepResult out;
  std::optional<remat::StepResult> step;
  {
    py::gil_scoped_release release;
    std::unique_lock<std::mutex> hold;
    if (lock) hold = std::unique_lock<std::mutex>(*lock);
    remat::validate_program(*m.tape, program);
    if (!predicted) predicted = remat::simulate(*m.tape, program).peak_bytes;
    step = ex.run(program, data);
    if (!gradients) step->gradients.clear();  // back to the backend under the lock
  }
  const remat::StepReport& r = step->report;
  out.peak_bytes = r.peak_bytes;
  out.recomputed_ops = r.recomputed_ops;
  out.forward_ops = r.forward_ops;
  out.backward_ops = r.backward_ops;
  out.parameter_bytes = r.parameter_bytes;
  out.parameter_gradient_bytes = r.parameter_gradient_bytes;
  out.seconds = r.seconds;
  out.loss = step->loss ? step->loss->at(0) : 0.0;
  out.predicted_peak_bytes = *predicted;
  for (auto& [id, tensor] : step->gradients) {
    auto buffer = std::make_unique<PyBuffer>();
    buffer->tensor = std::move(tensor);
    buffer->executor_lock = lock;
    out.gradients[py::str(m.tape->node(id).name)] = to_numpy_view(std::move(buffer), true);
  }
  return out;
}

// A CPU backend and an executor kept across steps (remat.Executor): the allocator's cache
// and the parameters stay warm, as in `remat run --repeat`.
struct PyExecutor {
  std::shared_ptr<const PyModel> model;
  std::shared_ptr<std::mutex> lock = std::make_shared<std::mutex>();
  std::unique_ptr<remat::CpuBackend> cpu = std::make_unique<remat::CpuBackend>();
  std::unique_ptr<remat::Executor> executor;
  std::int64_t batch_index = -1;
  remat::Bindings data;
  explicit PyExecutor(std::shared_ptr<const PyModel> m) : model(std::move(m)) {
    executor = std::make_unique<remat::Executor>(*model->ready().tape, *cpu);
  }
  ~PyExecutor() {
    std::lock_guard<std::mutex> hold(*lock);  // buffers of this backend may be returning bytes
    executor.reset();
    cpu.reset();
  }
  PyStepResult run(const py::object& what, std::int64_t batch, bool gradients, const py::object& inputs) {
    if (batch < 0) throw py::value_error("batch must be >= 0, got " + std::to_string(batch));
    std::optional<std::size_t> predicted;
    const remat::Program* program = program_of(model, what, predicted);
    py::object keep = what;  // the program stays alive while the GIL is released
    if (!inputs.is_none()) {
      remat::Bindings fresh = bindings_for(model->model, batch, inputs);
      return run_step(model->model, *executor, *program, fresh, predicted, gradients, lock);
    }
    if (batch != batch_index) {
      data = model->model.batch(static_cast<std::uint64_t>(batch));
      batch_index = batch;
    }
    return run_step(model->model, *executor, *program, data, predicted, gradients, lock);
  }
  py::array parameter(const std::string& name) {
    const int id = node_named(*model->model.tape, name, remat::NodeKind::parameter, "Executor.parameter");
    auto buffer = std::make_unique<PyBuffer>();
    {
      std::lock_guard<std::mutex> hold(*lock);
      buffer->tensor = executor->parameter(id);
    }
    buffer->executor_lock = lock;
    return to_numpy_view(std::move(buffer), false);
  }
};

PyStepResult run(const std::shared_ptr<const PyModel>& model, const py::object& what, std::int64_t batch,
                 const py::object& inputs) {
  const remat::Model& m = model->ready();
  std::optional<std::size_t> predicted;
  const remat::Program* program = program_of(model, what, predicted);
  py::object keep = what;  // the program stays alive while the GIL is released
  const remat::Bindings data = bindings_for(m, batch, inputs);
  // The backend goes when this returns; the gradients' buffers outlive it (BackendLife).
  remat::CpuBackend cpu;
  remat::Executor ex(*m.tape, cpu);
  return run_step(m, ex, *program, data, predicted, true, nullptr);
}

py::object explain(const std::shared_ptr<const PyModel>& model, const PyStrategy& strategy, const py::object& budget) {
  const remat::Model& m = model->ready();
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

}  // namespace remat_python

using namespace remat_python;

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

  py::class_<PyBuffer>(mod, "Buffer", py::buffer_protocol(),
                       "Bytes remat owns (a gradient or parameter buffer of a backend, or a host array): "
                       "the base object of the numpy arrays remat returns without copying.")
      .def_buffer([](PyBuffer& b) {
        const remat::TensorMeta& meta = b.meta();
        std::vector<py::ssize_t> shape(meta.shape.begin(), meta.shape.end());
        std::vector<py::ssize_t> strides(shape.size());
        py::ssize_t stride = static_cast<py::ssize_t>(remat::dtype_size(meta.dtype));
        for (std::size_t i = shape.size(); i-- > 0;) {
          strides[i] = stride;
          stride *= shape[i];
        }
        return py::buffer_info(b.data(), static_cast<py::ssize_t>(remat::dtype_size(meta.dtype)),
                               py::str(numpy_dtype(meta.dtype).attr("char")).cast<std::string>(),
                               static_cast<py::ssize_t>(shape.size()), shape, strides);
      })
      .def_property_readonly("nbytes", [](const PyBuffer& b) { return b.meta().bytes(); }, "Bytes held.")
      .def("__repr__", [](const PyBuffer& b) {
        return "<remat.Buffer " + remat::shape_string(b.meta().shape) + " " + remat::dtype_name(b.meta().dtype) + ">";
      });

  py::class_<PyModel, std::shared_ptr<PyModel>>(mod, "Model", "A zoo model: a recorded tape, its loss and its batches.")
      .def_property_readonly(
          "spec", [](const PyModel& m) { return m.model.spec; }, "The canonical spec, defaults filled in.")
      .def_property_readonly(
          "loss",
          [](const PyModel& m) { return m.model.loss.id >= 0 ? std::optional<int>(m.model.loss.id) : std::nullopt; },
          "The node id of the scalar loss (None for a tape whose loss is not set yet).")
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
          "store_all_peak", [](const PyModel& m) { return store_all_peak(m.ready()); },
          "Store-all's simulated peak (budgeted bytes): what percentage budgets are of.")
      .def(
          "batch",
          [](const PyModel& m, std::int64_t step) {
            if (step < 0) throw py::value_error("batch index must be >= 0, got " + std::to_string(step));
            remat::Bindings b = m.model.batch(static_cast<std::uint64_t>(step));
            py::dict out;
            for (auto& [id, array] : b) out[py::str(m.model.tape->node(id).name)] = to_numpy(std::move(array));
            return out;
          },
          py::arg("i"), "The deterministic inputs of training step i: {placeholder name: numpy array}.")
      .def(
          "initial_parameters",
          [](const PyModel& m) {
            py::dict out;
            for (int id : m.model.tape->parameters())
              out[py::str(m.model.tape->node(id).name)] = to_numpy(m.model.tape->parameter_initial(id));
            return out;
          },
          "{parameter name: numpy array}: the initial values (copies), in recording order.")
      .def_property_readonly(
          "placeholders",
          [](const PyModel& m) {
            std::vector<std::string> names;
            for (int id : m.model.tape->placeholders()) names.push_back(m.model.tape->node(id).name);
            return names;
          },
          "The placeholder names, in recording order (what inputs= binds).")
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
      .def_readonly("parameter_bytes", &PyStepResult::parameter_bytes, "Bytes of parameters (not budgeted).")
      .def_readonly("parameter_gradient_bytes", &PyStepResult::parameter_gradient_bytes,
                    "Bytes of parameter gradients (not budgeted).")
      .def_readonly("gradients", &PyStepResult::gradients,
                    "{parameter name: numpy array}: views of the step's own gradient buffers (no copy); each array's "
                    "base is the remat.Buffer that owns the bytes, valid after the Executor is gone.")
      .def("__repr__", [](const PyStepResult& r) {
        return "<remat.StepResult loss " + std::to_string(r.loss) + ", peak " + human_bytes(r.peak_bytes) + ">";
      });

  mod.def(
      "build_model",
      [](const std::string& spec) {
        auto out = std::make_shared<PyModel>();
        out->model = remat::build_model(spec);
        return out;
      },
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
      .def("parameter", &PyExecutor::parameter, py::arg("name"),
           "A read-only numpy view of the executor's parameter (no copy; it outlives the executor).")
      .def("run", &PyExecutor::run, py::arg("plan"), py::arg("batch") = 0, py::arg("gradients") = true,
           py::arg("inputs") = py::none(),
           "One training step of a PlanReport or Program on this executor (the GIL is released). With "
           "gradients=False StepResult.gradients is empty (the buffers go back to the backend at once). inputs: "
           "{placeholder name: numpy array} rebinding placeholders for this step.");
  mod.def("run", &run, py::arg("model"), py::arg("plan"), py::arg("batch") = 0, py::arg("inputs") = py::none(),
          "Runs a PlanReport's (or a Program's) step on a fresh CPU backend with the model's batch `batch` "
          "(a recorded tape: its default bindings), placeholders rebound by name from `inputs`.");
  mod.def("explain", &explain, py::arg("model"), py::arg("strategy"), py::arg("budget") = py::none(),
          "The explain document of a plan (tape, chain, schedule, program, live bytes) as a dict.");
  mod.def(
      "parse_budget",
      [](const std::string& text, std::size_t store_all_peak) { return remat::parse_budget(text).resolve(store_all_peak); },
      py::arg("text"), py::arg("store_all_peak"), "Bytes of a budget string given store-all's peak.");
  bind_tape(mod);
  bind_chain(mod);
}
