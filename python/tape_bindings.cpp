// Contract: recording a Tape from Python (remat.Tape, remat.Value, remat.ops, remat.eval).
//  - remat.Tape(name="tape") is a remat.Model whose tape Python records: placeholder(name,
//    value) binds a default value (Tape::input) and placeholder(name, shape=, dtype=)
//    declares one bound per run; parameter(name, array) takes float32/float64 arrays;
//    mark_stage(v) cuts the chain there; set_loss(v) marks the scalar loss and closes
//    recording (see bindings.hpp). Names of placeholders and parameters are unique on a
//    tape, since inputs and gradients are keyed by them.
//  - remat.Value wraps a node; + - * / @ and unary - record ops. A Python scalar on one
//    side: v * s and s * v record scale(v, s); v + s, s + v, v - s, s - v, v / s and s / v
//    record the op against a 0-d constant placeholder of v's dtype ("const<k>", bound
//    by default), so results round exactly as the op on two values; v ** p records pow.
//  - remat.ops.<op> is every function of autodiff/ops.hpp under its C++ name, with the
//    C++ defaults; each checks that recording is open, then calls the op, whose Error
//    (shape, dtype, values of two tapes) reaches Python unchanged as remat.Error.
//  - remat.eval(v) / v.eval(): autodiff/eval.hpp (store-all on the CPU backend from the
//    default bindings), returned as a numpy array without a copy.
// Everything here holds the GIL: recording is cheap, and it is what keeps a recording
// tape from being read by a planner in another thread (planning needs the loss set).
#include "bindings.hpp"

#include <autodiff/eval.hpp>

#include <pybind11/stl.h>

#include <cstring>
#include <vector>

namespace remat_python {

namespace {

using remat::Error;

remat::DType dtype_from(const py::object& dtype) {
  py::dtype d = py::dtype::from_args(dtype);
  if (d.is(py::dtype::of<float>()) || d.equal(py::dtype::of<float>())) return remat::DType::f32;
  if (d.equal(py::dtype::of<double>())) return remat::DType::f64;
  if (d.equal(py::dtype::of<std::int32_t>())) return remat::DType::i32;
  throw Error("[python] dtype " + std::string(py::str(d)) + " is not supported (remat has float32, float64, int32)");
}

std::string dtype_text(remat::DType dtype) { return py::str(numpy_dtype(dtype)); }

void check_unique_name(const PyTape& t, const std::string& name) {
  if (name.empty()) throw Error("[tape] a placeholder or parameter needs a non-empty name");
  for (const remat::Node& n : t.tape().nodes())
    if (n.kind != remat::NodeKind::op && n.name == name)
      throw Error("[tape] the name '" + name + "' is already used on this tape (" + n.label() + ")");
}

PyValue wrap(const PyValue& on, remat::Value v) { return PyValue{on.tape, v.id}; }

// Records `f()` on the tape of `first` once recording is known to be open.
template <class F>
PyValue record(const char* op, const PyValue& first, F&& f) {
  first.tape->check_recording(op);
  return wrap(first, f());
}

// A 0-d constant of v's dtype, bound by default, for a Python scalar operand.
remat::Value constant_like(const PyValue& v, double scalar) {
  PyTape& t = *v.tape;
  t.check_recording("tape");
  remat::DType dtype = v.value().meta().dtype;
  if (!remat::is_floating(dtype))
    throw Error("[python] a Python scalar with an int32 value (" + v.value().tape->node(v.id).label() +
                ") is not supported");
  remat::HostArray c(remat::TensorMeta{{}, dtype});
  c.set(0, scalar);
  std::string name;
  do name = "const" + std::to_string(t.constants++);
  while ([&] {
    for (const remat::Node& n : t.tape().nodes())
      if (n.kind != remat::NodeKind::op && n.name == name) return true;
    return false;
  }());
  return t.tape().input(name, std::move(c));
}

py::tuple shape_tuple(const remat::Shape& shape) {
  py::tuple out(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i) out[i] = py::int_(shape[i]);
  return out;
}

std::string value_repr(const PyValue& v) {
  const remat::Node& n = v.tape->tape().node(v.id);
  return "<remat.Value " + n.label() + " " + remat::shape_string(n.meta.shape) + " " + dtype_text(n.meta.dtype) + ">";
}

// The Wengert list, one node a line: "n3 = linear(n0, n1, n2)   (4,16) float32".
std::string tape_text(const PyTape& t) {
  std::string out;
  for (const remat::Node& n : t.tape().nodes()) {
    std::string line = "n" + std::to_string(n.id) + " = ";
    if (n.kind == remat::NodeKind::op) {
      line += n.op->name() + "(";
      for (std::size_t i = 0; i < n.inputs.size(); ++i) line += (i ? ", n" : "n") + std::to_string(n.inputs[i]);
      std::string attributes = n.op->attributes();
      if (!attributes.empty()) line += (n.inputs.empty() ? "" : ", ") + attributes;
      line += ")";
    } else {
      line += std::string(n.kind == remat::NodeKind::parameter ? "parameter " : "placeholder ") + n.name;
    }
    line += "   " + remat::shape_string(n.meta.shape) + " " + dtype_text(n.meta.dtype);
    if (n.id == t.model.loss.id) line += "   <- loss";
    if (n.stage_mark) line += "   | stage";
    out += line + "\n";
  }
  return out;
}

std::vector<int> axes_of(const py::object& axes) {
  if (axes.is_none()) return {};
  if (py::isinstance<py::int_>(axes)) return {axes.cast<int>()};
  return axes.cast<std::vector<int>>();
}

py::array eval_value(const PyValue& v) {
  return to_numpy(remat::eval(v.value()));
}

}  // namespace

void bind_tape(py::module_& mod) {
  py::class_<PyTape, PyModel, std::shared_ptr<PyTape>>(
      mod, "Tape",
      "A tape recorded from Python: placeholders, parameters and ops (remat.ops or operators on "
      "Values). Recording computes nothing; set_loss() marks the scalar loss and closes recording, "
      "after which the tape is a Model: plan, run, explain and Executor take it.")
      .def(py::init([](const std::string& name) {
             auto t = std::make_shared<PyTape>();
             if (name.empty()) throw Error("[tape] the name must not be empty");
             t->model.spec = name;
             t->model.tape = std::make_unique<remat::Tape>();
             t->model.loss = remat::Value{t->model.tape.get(), -1};
             t->model.batch = [](std::uint64_t) { return remat::Bindings{}; };  // the defaults apply
             return t;
           }),
           py::arg("name") = "tape", "An empty tape; `name` is what reports call the model.")
      .def(
          "placeholder",
          [](const std::shared_ptr<PyTape>& t, const std::string& name, const py::object& value,
             const py::object& shape, const py::object& dtype) {
            t->check_recording("tape");
            check_unique_name(*t, name);
            if (!value.is_none()) {
              if (!shape.is_none())
                throw Error("[tape] placeholder '" + name + "': give a value or a shape, not both");
              remat::HostArray a = host_array(value, "placeholder '" + name + "'");
              if (!dtype.is_none() && dtype_from(dtype) != a.meta.dtype)
                throw Error("[tape] placeholder '" + name + "': the value is " + dtype_text(a.meta.dtype) +
                            ", dtype says " + dtype_text(dtype_from(dtype)));
              return PyValue{t, t->tape().input(name, std::move(a)).id};
            }
            if (shape.is_none()) throw Error("[tape] placeholder '" + name + "' needs a value or a shape");
            remat::Shape s = shape.cast<remat::Shape>();
            remat::TensorMeta meta{s, dtype.is_none() ? remat::DType::f32 : dtype_from(dtype)};
            (void)meta.bytes();  // "[shape] ..." for an extent product that overflows
            return PyValue{t, t->tape().placeholder(name, meta).id};
          },
          py::arg("name"), py::arg("value") = py::none(), py::kw_only(), py::arg("shape") = py::none(),
          py::arg("dtype") = py::none(),
          "An input of the step. With `value` (a numpy array) it is bound by default (runs may rebind it "
          "through inputs=); with shape= and dtype= (default float32) every run must bind it.")
      .def(
          "parameter",
          [](const std::shared_ptr<PyTape>& t, const std::string& name, const py::object& initial) {
            t->check_recording("tape");
            check_unique_name(*t, name);
            return PyValue{t, t->tape().parameter(name, host_array(initial, "parameter '" + name + "'")).id};
          },
          py::arg("name"), py::arg("initial"),
          "A trainable parameter with its initial value (a float32 or float64 array, copied).")
      .def(
          "mark_stage",
          [](const std::shared_ptr<PyTape>& t, const PyValue& v) {
            t->check_recording("mark_stage");
            t->tape().mark_stage(v.value());  // "[mark_stage] ... another tape"
          },
          py::arg("value"), "Cuts the chain after this value (chain strategies cut at the marks).")
      .def(
          "set_loss",
          [](const std::shared_ptr<PyTape>& t, const PyValue& v) {
            if (v.tape.get() != t.get()) throw Error("[set_loss] the value was recorded on another tape");
            t->check_recording("set_loss");
            const remat::TensorMeta& meta = v.value().meta();
            if (meta.numel() != 1 || !remat::is_floating(meta.dtype))
              throw Error("[set_loss] the loss must be a floating scalar, got " + remat::shape_string(meta.shape) + " " +
                          dtype_text(meta.dtype));
            t->model.loss = v.value();
          },
          py::arg("value"), "Marks the scalar loss and closes recording; the tape can then be planned and run.")
      .def_property_readonly(
          "recording", [](const PyTape& t) { return t.recording(); }, "Whether ops may still be recorded.")
      .def("__len__", [](const PyTape& t) { return t.tape().size(); }, "Nodes on the tape.")
      .def(
          "value", [](const std::shared_ptr<PyTape>& t, int id) {
            (void)t->tape().node(id);  // "[tape] no node n..."
            return PyValue{t, id};
          },
          py::arg("id"), "The Value of node `id`.")
      .def("to_string", &tape_text, "The Wengert list, one node a line.")
      .def("__repr__", [](const PyTape& t) {
        return "<remat.Tape '" + t.model.spec + "', " + std::to_string(t.tape().size()) + " nodes" +
               (t.recording() ? ", recording>" : ">");
      });

  py::class_<PyValue>(mod, "Value", "A value recorded on a Tape (nothing is computed until a run or eval).")
      .def_property_readonly("id", [](const PyValue& v) { return v.id; }, "The node id.")
      .def_property_readonly("tape", [](const PyValue& v) { return v.tape; }, "The tape it was recorded on.")
      .def_property_readonly(
          "shape", [](const PyValue& v) { return shape_tuple(v.value().meta().shape); }, "The shape, a tuple.")
      .def_property_readonly(
          "dtype", [](const PyValue& v) { return numpy_dtype(v.value().meta().dtype); }, "The numpy dtype.")
      .def_property_readonly(
          "label", [](const PyValue& v) { return v.tape->tape().node(v.id).label(); }, "'n3 linear', 'n0 x'.")
      .def("eval", &eval_value, "Computes this value (store-all from the default bindings): a numpy array.")
      .def("__repr__", &value_repr)
      .def("__add__", [](const PyValue& a, const PyValue& b) { return record("add", a, [&] { return remat::add(a.value(), b.value()); }); }, py::is_operator())
      .def("__add__", [](const PyValue& a, double s) { return record("add", a, [&] { return remat::add(a.value(), constant_like(a, s)); }); }, py::is_operator())
      .def("__radd__", [](const PyValue& a, double s) { return record("add", a, [&] { return remat::add(constant_like(a, s), a.value()); }); }, py::is_operator())
      .def("__sub__", [](const PyValue& a, const PyValue& b) { return record("sub", a, [&] { return remat::sub(a.value(), b.value()); }); }, py::is_operator())
      .def("__sub__", [](const PyValue& a, double s) { return record("sub", a, [&] { return remat::sub(a.value(), constant_like(a, s)); }); }, py::is_operator())
      .def("__rsub__", [](const PyValue& a, double s) { return record("sub", a, [&] { return remat::sub(constant_like(a, s), a.value()); }); }, py::is_operator())
      .def("__mul__", [](const PyValue& a, const PyValue& b) { return record("mul", a, [&] { return remat::mul(a.value(), b.value()); }); }, py::is_operator())
      .def("__mul__", [](const PyValue& a, double s) { return record("scale", a, [&] { return remat::scale(a.value(), s); }); }, py::is_operator())
      .def("__rmul__", [](const PyValue& a, double s) { return record("scale", a, [&] { return remat::scale(a.value(), s); }); }, py::is_operator())
      .def("__truediv__", [](const PyValue& a, const PyValue& b) { return record("div", a, [&] { return remat::div(a.value(), b.value()); }); }, py::is_operator())
      .def("__truediv__", [](const PyValue& a, double s) { return record("div", a, [&] { return remat::div(a.value(), constant_like(a, s)); }); }, py::is_operator())
      .def("__rtruediv__", [](const PyValue& a, double s) { return record("div", a, [&] { return remat::div(constant_like(a, s), a.value()); }); }, py::is_operator())
      .def("__matmul__", [](const PyValue& a, const PyValue& b) { return record("matmul", a, [&] { return remat::matmul(a.value(), b.value()); }); }, py::is_operator())
      .def("__pow__", [](const PyValue& a, double p) { return record("pow", a, [&] { return remat::pow(a.value(), p); }); }, py::is_operator())
      .def("__neg__", [](const PyValue& a) { return record("neg", a, [&] { return remat::neg(a.value()); }); })
      .def("__bool__", [](const PyValue&) -> bool {
        throw py::type_error("a remat.Value has no truth value (it is computed only when the tape runs)");
      });

  mod.def("eval", &eval_value, py::arg("value"),
          "Computes one recorded value (store-all on the CPU from the default bindings): a numpy array.");

  py::module_ ops = mod.def_submodule("ops", "The ops of autodiff/ops.hpp: each records one node and returns its Value.");
  using V = const PyValue&;
  auto unary = [&](const char* name, remat::Value (*f)(remat::Value), const char* doc) {
    ops.def(name, [name, f](V x) { return record(name, x, [&] { return f(x.value()); }); }, py::arg("x"), doc);
  };
  auto binary = [&](const char* name, remat::Value (*f)(remat::Value, remat::Value), const char* doc) {
    ops.def(name, [name, f](V a, V b) { return record(name, a, [&] { return f(a.value(), b.value()); }); }, py::arg("a"),
            py::arg("b"), doc);
  };
  binary("add", &remat::add, "a + b, broadcasting like NumPy.");
  binary("sub", &remat::sub, "a - b, broadcasting like NumPy.");
  binary("mul", &remat::mul, "a * b, broadcasting like NumPy.");
  binary("div", &remat::div, "a / b, broadcasting like NumPy.");
  unary("neg", &remat::neg, "-x.");
  unary("exp", &remat::exp, "exp(x).");
  unary("log", &remat::log, "log(x).");
  unary("tanh", &remat::tanh, "tanh(x).");
  unary("sigmoid", &remat::sigmoid, "1 / (1 + exp(-x)).");
  unary("relu", &remat::relu, "max(x, 0).");
  unary("gelu", &remat::gelu, "GELU, tanh approximation.");
  unary("square", &remat::square, "x * x.");
  unary("softmax", &remat::softmax, "Softmax over the last axis.");
  unary("log_softmax", &remat::log_softmax, "Log-softmax over the last axis.");
  binary("matmul", &remat::matmul, "(M,K) @ (K,N); batched (B...,M,K) @ (B...,K,N) or @ (K,N).");
  binary("cross_entropy", &remat::cross_entropy, "logits (N,C), labels int32 (N) -> mean cross-entropy, shape ().");
  binary("mse", &remat::mse, "mean((a - b)^2) over all elements, shape ().");
  binary("embedding", &remat::embedding, "table (V,D), ids int32 (...) -> (..., D).");
  ops.def("pow", [](V x, double e) { return record("pow", x, [&] { return remat::pow(x.value(), e); }); }, py::arg("x"),
          py::arg("exponent"), "x ** exponent.");
  ops.def("scale", [](V x, double f) { return record("scale", x, [&] { return remat::scale(x.value(), f); }); },
          py::arg("x"), py::arg("factor"), "x * factor.");
  auto reduction = [&](const char* name, remat::Value (*f)(remat::Value, std::vector<int>, bool), const char* doc) {
    ops.def(name,
            [name, f](V x, const py::object& axes, bool keepdims) {
              return record(name, x, [&] { return f(x.value(), axes_of(axes), keepdims); });
            },
            py::arg("x"), py::arg("axes") = py::none(), py::arg("keepdims") = false, doc);
  };
  reduction("sum", &remat::sum, "Sum over `axes` (an int, a list, or None: all axes).");
  reduction("mean", &remat::mean, "Mean over `axes` (an int, a list, or None: all axes).");
  reduction("max", &remat::max, "Maximum over `axes` (an int, a list, or None: all axes).");
  ops.def("linear",
          [](V x, V w, std::optional<PyValue> b) {
            return record("linear", x, [&] {
              return remat::linear(x.value(), w.value(), b ? std::optional<remat::Value>(b->value()) : std::nullopt);
            });
          },
          py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), "x (..., in), W (out, in), b (out) -> x W^T + b.");
  ops.def("reshape", [](V x, const remat::Shape& s) { return record("reshape", x, [&] { return remat::reshape(x.value(), s); }); },
          py::arg("x"), py::arg("shape"), "The same elements in another shape (one extent may be -1).");
  ops.def("permute",
          [](V x, const std::vector<int>& order) { return record("permute", x, [&] { return remat::permute(x.value(), order); }); },
          py::arg("x"), py::arg("order"), "Axes reordered.");
  ops.def("transpose",
          [](V x, int a0, int a1) { return record("transpose", x, [&] { return remat::transpose(x.value(), a0, a1); }); },
          py::arg("x"), py::arg("axis0") = -2, py::arg("axis1") = -1, "Two axes swapped (the last two by default).");
  ops.def("slice",
          [](V x, int axis, std::int64_t start, std::int64_t end) {
            return record("slice", x, [&] { return remat::slice(x.value(), axis, start, end); });
          },
          py::arg("x"), py::arg("axis"), py::arg("start"), py::arg("end"), "[start, end) along axis.");
  ops.def("concat",
          [](const std::vector<PyValue>& xs, int axis) {
            if (xs.empty()) throw Error("[concat] needs at least one value");
            std::vector<remat::Value> values;
            for (const PyValue& x : xs) values.push_back(x.value());
            return record("concat", xs.front(), [&] { return remat::concat(values, axis); });
          },
          py::arg("xs"), py::arg("axis"), "Values joined along axis.");
  ops.def("layernorm",
          [](V x, V g, V b, double eps) { return record("layernorm", x, [&] { return remat::layernorm(x.value(), g.value(), b.value(), eps); }); },
          py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("eps") = 1e-5, "Normalises the last axis.");
  ops.def("dropout", [](V x, double p) { return record("dropout", x, [&] { return remat::dropout(x.value(), p); }); },
          py::arg("x"), py::arg("p"), "Zeroes with probability p (mask keyed by seed and node: replays exactly).");
  ops.def("conv2d",
          [](V x, V w, std::optional<PyValue> b, int stride, int padding) {
            return record("conv2d", x, [&] {
              return remat::conv2d(x.value(), w.value(), b ? std::optional<remat::Value>(b->value()) : std::nullopt,
                                   stride, padding);
            });
          },
          py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("stride") = 1, py::arg("padding") = 0,
          "x (N,C,H,W), weight (K,C,R,S), bias (K) -> (N,K,Ho,Wo).");
  ops.def("max_pool2d",
          [](V x, int k, int s, int p) { return record("max_pool2d", x, [&] { return remat::max_pool2d(x.value(), k, s, p); }); },
          py::arg("x"), py::arg("kernel"), py::arg("stride") = -1, py::arg("padding") = 0, "Max pooling (stride -1: kernel).");
  ops.def("avg_pool2d",
          [](V x, int k, int s, int p) { return record("avg_pool2d", x, [&] { return remat::avg_pool2d(x.value(), k, s, p); }); },
          py::arg("x"), py::arg("kernel"), py::arg("stride") = -1, py::arg("padding") = 0, "Average pooling (stride -1: kernel).");
  ops.def("upsample_nearest",
          [](V x, int scale) { return record("upsample_nearest", x, [&] { return remat::upsample_nearest(x.value(), scale); }); },
          py::arg("x"), py::arg("scale"), "(N,C,H,W) -> (N,C,H*scale,W*scale).");
  ops.def("batchnorm",
          [](V x, V g, V b, double momentum, double eps) {
            return record("batchnorm", x, [&] { return remat::batchnorm(x.value(), g.value(), b.value(), momentum, eps); });
          },
          py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("momentum") = 0.1, py::arg("eps") = 1e-5,
          "Training-mode batch normalisation of x (N,C) or (N,C,H,W).");
}

}  // namespace remat_python
