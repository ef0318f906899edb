// Contract: what the translation units of the extension remat._remat share.
//  - PyModel: a tape with its loss and batches. A zoo model (build_model) or a tape
//    recorded from Python (PyTape, the Python class remat.Tape, a subclass of
//    remat.Model), so plan, run, explain and Executor take either.
//  - PyTape: recording is open until set_loss(); from then on the tape is frozen
//    (ops, placeholders, parameters and stage marks are refused with an Error), so that
//    a tape planned or run with the GIL released is never mutated under the planner.
//  - PyValue: a node of a PyTape; it holds the tape (shared ownership), so a value
//    never outlives its tape and "freed tape" cannot dangle.
//  - Zero-copy arrays (to_numpy_view): a numpy array whose base object is a
//    remat.Buffer that owns the bytes (a Tensor's shared storage, or a moved
//    HostArray). A Tensor's storage outlives its backend safely (tensor.hpp,
//    BackendLife); a buffer of a live Executor takes that executor's lock before it
//    returns its bytes, so that a gradient array dropped in one thread never races a
//    step running in another.
//  - host_array(): numpy -> HostArray, with dtype and contiguity checked (errors
//    "[python] ...").
#pragma once

#include <autodiff/remat.hpp>
#include <models/models.hpp>
#include <strategies/budget.hpp>
#include <strategies/strategies.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace remat_python {

namespace py = pybind11;

struct PyModel {
  remat::Model model;
  virtual ~PyModel() = default;
  // The model with its loss set; an Error "[python] ..." for a tape still recording.
  const remat::Model& ready() const {
    if (model.loss.id < 0)
      throw remat::Error("[python] the tape has no loss yet: call tape.set_loss(value) before planning, "
                         "simulating or running it");
    return model;
  }
};

struct PyTape : PyModel {
  int constants = 0;  // constants recorded for Python scalars (const0, const1, ...)
  bool recording() const { return model.loss.id < 0; }
  // Throws "[what] ..." when recording is closed.
  void check_recording(const std::string& what) const {
    if (!recording())
      throw remat::Error("[" + what + "] the tape's loss is set, so recording is closed: record every value before "
                         "tape.set_loss()");
  }
  remat::Tape& tape() const { return *model.tape; }
};

struct PyStrategy {
  std::string name;
  std::shared_ptr<const remat::RematStrategy> strategy;
};

struct PyValue {
  std::shared_ptr<PyTape> tape;
  int id = -1;
  remat::Value value() const { return remat::Value{tape->model.tape.get(), id}; }
};

// Owns bytes a numpy array views (the array's base object).
struct PyBuffer {
  remat::Tensor tensor;                      // set for backend memory
  std::shared_ptr<remat::HostArray> host;    // set for host arrays
  std::shared_ptr<std::mutex> executor_lock;  // the live Executor the tensor belongs to, if any
  ~PyBuffer() {
    if (executor_lock) {
      std::lock_guard<std::mutex> hold(*executor_lock);
      tensor = remat::Tensor();  // returns the bytes to the backend under the executor's lock
    }
  }
  const remat::TensorMeta& meta() const { return host ? host->meta : tensor.meta(); }
  void* data() const { return host ? static_cast<void*>(host->bytes.data()) : tensor.raw(); }
};

py::dtype numpy_dtype(remat::DType dtype);
// A numpy array over the buffer's bytes, whose base is the buffer (no copy).
py::array to_numpy_view(std::unique_ptr<PyBuffer> buffer, bool writeable);
// A HostArray moved into a buffer, viewed as numpy (no copy).
py::array to_numpy(remat::HostArray array, bool writeable = true);
// numpy (or anything np.asarray takes) -> HostArray: float32, float64 or int32 only.
remat::HostArray host_array(const py::handle& object, const std::string& what);
// None, an int of bytes or a budget string -> the parsed spec (none: unlimited); ints go
// through the same parser, so they are refused exactly as the same text would be.
std::optional<remat::BudgetSpec> budget_spec(const py::object& budget);
// The name of a Python object's type, for messages.
std::string type_name(const py::handle& object);

// Defined in tape_bindings.cpp and chain_bindings.cpp, called by PYBIND11_MODULE.
void bind_tape(py::module_& mod);
void bind_chain(py::module_& mod);

}  // namespace remat_python
