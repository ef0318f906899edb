// Contract: runs a Program for one step (see executor.hpp). Validation errors are
// prefixed "[executor]" and name the instruction index and node.
#include "autodiff/executor.hpp"

#include "autodiff/memory_policy.hpp"
#include "autodiff/metering_backend.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

namespace remat {

Executor::Executor(const Tape& tape, Backend& backend) : tape_(tape), backend_(backend) {
  parameters_.resize(tape.size());
  for (const Node& n : tape.nodes()) {
    if (n.kind != NodeKind::parameter) continue;
    // A metering backend holds no data: the initial values are neither read nor made
    // (a lazily initialised parameter stays unallocated on the host).
    Tensor t = backend.empty(n.meta, MemoryCategory::parameter);
    if (backend.computes()) backend.upload(tape.parameter_initial(n.id), t);
    parameters_[static_cast<std::size_t>(n.id)] = std::move(t);
  }
  std::vector<TensorMeta> metas;  // reused: element assignment keeps each shape's buffer
  for (const Node& n : tape.nodes()) {
    if (n.kind != NodeKind::op) continue;
    metas.resize(n.inputs.size());
    for (std::size_t i = 0; i < n.inputs.size(); ++i) metas[i] = tape.node(n.inputs[i]).meta;
    auto states = n.op->initial_state(metas);
    if (states.empty()) continue;
    auto& list = state_[n.id];
    for (auto& s : states) {
      Tensor t = backend.empty(s.initial.meta, MemoryCategory::parameter);
      backend.upload(s.initial, t);
      list.push_back(std::move(t));
    }
  }
}

Executor::~Executor() = default;

const Tensor* Executor::find_parameter(int id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= parameters_.size()) return nullptr;
  const Tensor& t = parameters_[static_cast<std::size_t>(id)];
  return t.defined() ? &t : nullptr;
}

Tensor& Executor::parameter(int id) {
  const Tensor* t = find_parameter(id);
  if (!t) throw Error("[executor] n" + std::to_string(id) + " is not a parameter");
  return parameters_[static_cast<std::size_t>(id)];
}

HostArray Executor::read_parameter(int id) const {
  const Tensor* t = find_parameter(id);
  if (!t) throw Error("[executor] n" + std::to_string(id) + " is not a parameter");
  return backend_.download(*t);
}

void Executor::write_parameter(int id, const HostArray& value) {
  Tensor& t = parameter(id);
  if (!(value.meta == t.meta()))
    throw Error("[executor] parameter " + tape_.node(id).label() + " expects " + shape_string(t.shape()) + " " +
                dtype_name(t.dtype()) + ", got " + shape_string(value.meta.shape) + " " + dtype_name(value.meta.dtype));
  backend_.upload(value, t);
}

const std::vector<Tensor>& Executor::state(int node) const {
  static const std::vector<Tensor> none;
  auto it = state_.find(node);
  return it == state_.end() ? none : it->second;
}

void Executor::sgd_step(const StepResult& result, double learning_rate) {
  if (!std::isfinite(learning_rate))
    throw Error(fmt::format("[sgd_step] the learning rate must be finite, got {}", learning_rate));
  if (result.executor != this)
    throw Error("[sgd_step] the StepResult comes from another executor (or none): pass the result of this "
                "executor's run()");
  for (const auto& [id, g] : result.gradients) {
    Tensor& w = parameter(id);
    if (!(g.meta() == w.meta()))
      throw Error(fmt::format("[sgd_step] the gradient of {} is {} {}, the parameter {} {}", tape_.node(id).label(),
                              shape_string(g.shape()), dtype_name(g.dtype()), shape_string(w.shape()),
                              dtype_name(w.dtype())));
    if (&g.backend() != &backend_) throw Error("[sgd_step] the gradient of " + tape_.node(id).label() + " lives on another backend");
    backend_.axpy(-learning_rate, g, w);
  }
}

namespace {

void check_finite_or_throw(Backend& backend, const Tensor& t, const std::string& what) {
  if (!backend.computes() || !is_floating(t.dtype())) return;
  HostArray h = backend.download(t);
  for (std::int64_t i = 0; i < h.numel(); ++i) {
    double v = h.at(i);
    if (!std::isfinite(v))
      throw Error(fmt::format("[check_finite] {} produced a non-finite value ({}) at element {}", what, v, i));
  }
}

}  // namespace

StepResult Executor::run(const Program& program, const Bindings& bindings, const RunOptions& options) {
  validate_program(tape_, program);
  for (const auto& [id, array] : bindings)
    if (id < 0 || static_cast<std::size_t>(id) >= tape_.size() || tape_.node(id).kind != NodeKind::placeholder)
      throw Error(fmt::format("[executor] a binding names n{}, which is not a placeholder of this tape", id));
  auto start = std::chrono::steady_clock::now();
  const std::size_t node_count = tape_.size();
  std::vector<Tensor> values(node_count), grads(node_count);
  std::vector<bool> has_gradient(node_count, false);
  std::vector<int> computed(node_count, 0);
  const std::vector<bool> read_by_backward = values_read_by_backward(tape_, program);
  // Parameters by node id (a map lookup per read was the simulator's largest cost on
  // long graphs); the map's elements do not move during the step.
  std::vector<const Tensor*> parameter_at(node_count, nullptr);
  for (std::size_t id = 0; id < parameters_.size() && id < node_count; ++id)
    if (parameters_[id].defined()) parameter_at[id] = &parameters_[id];
  // The arguments of each forward, reused from one instruction to the next (assignment
  // keeps each shape's buffer); their storage references are dropped after the call,
  // so no buffer outlives its free.
  std::vector<Tensor> inputs;
  // The same for each backward's argument lists and gradient plan (moved into VjpArgs
  // and back, cleared before reuse).
  std::vector<const Tensor*> vjp_inputs;
  std::vector<Tensor*> vjp_grad_inputs;
  std::vector<GradientWrite> writes;
  std::vector<Tensor> temporaries;

  StepResult result;
  result.executor = this;
  StepReport& report = result.report;
  MemoryMeter& meter = backend_.meter();
  meter.reset_peaks();

  auto fail = [&](std::size_t index, const Instruction& ins, const std::string& why) -> void {
    throw Error(fmt::format("[executor] instruction {} ({} {}): {}", index, instruction_kind_name(ins.kind),
                            tape_.node(ins.node).label(), why));
  };
  const auto reserve = options.record_trace ? program.instructions.size() : 0;
  report.live_bytes.reserve(reserve);
  report.peak_bytes_within.reserve(reserve);
  report.live_by_category.reserve(reserve);

  for (std::size_t index = 0; index < program.instructions.size(); ++index) {
    const Instruction& ins = program.instructions[index];
    const Node& node = tape_.node(ins.node);
    auto instruction_start = options.record_times ? std::chrono::steady_clock::now() : start;
    meter.start_window();
    const auto id = static_cast<std::size_t>(ins.node);
    switch (ins.kind) {
      case InstructionKind::compute: {
        if (node.kind == NodeKind::parameter) break;  // always resident
        if (values[id].defined()) fail(index, ins, "its value is already resident");
        const MemoryCategory category = value_category(node, read_by_backward[id]);
        if (node.kind == NodeKind::placeholder) {
          Tensor t = backend_.empty(node.meta, category);
          if (backend_.computes()) {
            auto it = bindings.find(ins.node);
            const HostArray* bound = it != bindings.end() ? &it->second : nullptr;
            if (!bound) {
              auto d = tape_.default_bindings().find(ins.node);
              if (d != tape_.default_bindings().end()) bound = &d->second;
            }
            if (!bound) fail(index, ins, "no value is bound to placeholder '" + node.name + "'");
            if (!(bound->meta == node.meta))
              fail(index, ins, fmt::format("placeholder '{}' expects {} {}, the binding is {} {}", node.name,
                                           shape_string(node.meta.shape), dtype_name(node.meta.dtype),
                                           shape_string(bound->meta.shape), dtype_name(bound->meta.dtype)));
            backend_.upload(*bound, t);
            // A non-finite input is named as such, not as the first op that reads it.
            if (options.check_finite) check_finite_or_throw(backend_, t, "the binding of " + node.label());
          }
          values[id] = std::move(t);
        } else {
          if (inputs.size() < node.inputs.size()) inputs.resize(node.inputs.size());
          const std::span<Tensor> args(inputs.data(), node.inputs.size());
          for (std::size_t i = 0; i < node.inputs.size(); ++i) {
            const auto in = static_cast<std::size_t>(node.inputs[i]);
            if (const Tensor* parameter = parameter_at[in]) {
              args[i] = *parameter;
              continue;
            }
            if (!values[in].defined()) fail(index, ins, "input " + tape_.node(node.inputs[i]).label() + " is not resident");
            args[i] = values[in];
          }
          Tensor out = backend_.empty(node.meta, category);
          node.op->forward(ForwardArgs{backend_, args, out, OpContext{options.seed, static_cast<std::uint64_t>(ins.node)}});
          ++report.forward_ops;
          if (computed[id] > 0) {
            ++report.recomputed_ops;
          } else if (auto st = state_.find(ins.node); st != state_.end()) {
            // First forward of this node in this step: the only time its state moves.
            node.op->commit_state(backend_, args, st->second);
          }
          for (Tensor& a : args) a.drop_storage();
          if (options.check_finite) check_finite_or_throw(backend_, out, "forward of " + node.label());
          values[id] = std::move(out);
        }
        if (computed[id] == 0 && ins.node == program.loss && backend_.computes())
          result.loss = backend_.download(values[id]);
        ++computed[id];
        break;
      }
      case InstructionKind::free:
        if (node.kind == NodeKind::parameter) break;
        if (!values[id].defined()) fail(index, ins, "its value is not resident");
        values[id] = Tensor();
        break;
      case InstructionKind::seed_grad:
        if (grads[id].defined()) fail(index, ins, "its gradient already exists");
        grads[id] = backend_.empty(node.meta, MemoryCategory::gradient);
        has_gradient[id] = true;
        backend_.fill(grads[id], 1.0);
        break;
      case InstructionKind::backward: {
        if (node.kind != NodeKind::op) fail(index, ins, "only op nodes have a backward");
        if (!grads[id].defined()) fail(index, ins, "its output gradient is not present");
        SavedValues saves = node.op->saves(node.inputs.size());
        vjp_inputs.clear();
        VjpArgs args{backend_, std::move(vjp_inputs), nullptr, grads[id], std::move(vjp_grad_inputs),
                     OpContext{options.seed, static_cast<std::uint64_t>(ins.node)}};
        for (std::size_t i = 0; i < node.inputs.size(); ++i) {
          const Tensor* p = nullptr;
          if (i < saves.inputs.size() && saves.inputs[i]) {
            auto in = static_cast<std::size_t>(node.inputs[i]);
            if (parameter_at[in]) {
              p = parameter_at[in];
            } else {
              if (!values[in].defined())
                fail(index, ins, "saved input " + tape_.node(node.inputs[i]).label() + " is not resident");
              p = &values[in];
            }
          }
          args.inputs.push_back(p);
        }
        if (saves.output) {
          if (!values[id].defined()) fail(index, ins, "its saved output is not resident");
          args.output = &values[id];
        }
        // Gradient buffers by the memory policy: in place into a new buffer, or through
        // a workspace temporary accumulated afterwards in slot order.
        gradient_writes(tape_, ins.node, has_gradient, writes);
        args.grad_inputs.assign(node.inputs.size(), nullptr);
        temporaries.clear();
        temporaries.reserve(writes.size());  // no reallocation below: grad_inputs point into it
        for (const auto& w : writes) {
          auto in = static_cast<std::size_t>(w.input);
          if (w.in_place) {
            grads[in] = backend_.empty(tape_.node(w.input).meta, w.category);
            has_gradient[in] = true;
            args.grad_inputs[w.slot] = &grads[in];
          } else {
            temporaries.push_back(backend_.empty(tape_.node(w.input).meta, w.category));
            args.grad_inputs[w.slot] = &temporaries.back();
          }
        }
        node.op->vjp(args);
        std::size_t t = 0;
        for (const auto& w : writes)
          if (!w.in_place) backend_.accumulate(temporaries[t++], grads[static_cast<std::size_t>(w.input)]);
        temporaries.clear();
        ++report.backward_ops;
        if (options.check_finite)
          for (const auto& w : writes)
            check_finite_or_throw(backend_, grads[static_cast<std::size_t>(w.input)],
                                  "backward of " + node.label() + " (gradient of input " + std::to_string(w.slot) + ")");
        vjp_inputs = std::move(args.inputs);  // their buffers serve the next backward
        vjp_grad_inputs = std::move(args.grad_inputs);
        break;
      }
      case InstructionKind::free_grad:
        if (!grads[id].defined()) fail(index, ins, "its gradient is not present");
        grads[id] = Tensor();
        has_gradient[id] = false;
        break;
    }
    if (options.record_trace) {
      report.live_bytes.push_back(meter.budgeted_current());
      report.peak_bytes_within.push_back(meter.window_peak());
      std::array<std::size_t, memory_category_count> by_category{};
      for (std::size_t c = 0; c < memory_category_count; ++c) by_category[c] = meter.current(static_cast<MemoryCategory>(c));
      report.live_by_category.push_back(by_category);
    }
    if (options.observer) options.observer(index, ins, values, grads);
    if (options.record_resident) {
      std::vector<StepReport::Resident> now;
      for (std::size_t n = 0; n < node_count; ++n) {
        if (values[n].defined()) now.push_back({static_cast<int>(n), false, values[n].category(), values[n].bytes()});
        if (grads[n].defined()) now.push_back({static_cast<int>(n), true, grads[n].category(), grads[n].bytes()});
      }
      report.resident.push_back(std::move(now));
    }
    if (options.record_times) backend_.synchronize();
    if (options.record_times)
      report.instruction_seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - instruction_start).count());
  }

  for (int p : program.grad_targets) {
    auto id = static_cast<std::size_t>(p);
    if (!grads[id].defined()) {  // the loss does not depend on it: its gradient is zero
      grads[id] = backend_.zeros(tape_.node(p).meta, MemoryCategory::parameter_gradient);
    }
    result.gradients.emplace_hint(result.gradients.end(), p, grads[id]);  // grad_targets ascend, usually
  }
  values.clear();
  grads.clear();
  backend_.synchronize();  // the step is over when the device is done, not when the last launch returned

  report.peak_bytes = meter.budgeted_peak();
  for (std::size_t c = 0; c < memory_category_count; ++c)
    report.peak_by_category[c] = meter.peak(static_cast<MemoryCategory>(c));
  report.parameter_bytes = meter.current(MemoryCategory::parameter);
  report.parameter_gradient_bytes = meter.current(MemoryCategory::parameter_gradient);
  report.allocations = static_cast<std::int64_t>(meter.allocation_count());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

StepReport simulate(const Tape& tape, const Program& program) {
  MeteringBackend backend;
  Executor executor(tape, backend);
  return executor.run(program).report;
}

StepResult grad(Executor& executor, Value loss, const Bindings& bindings, const RunOptions& options) {
  return executor.run(store_all_program(executor.tape(), loss.id), bindings, options);
}

}  // namespace remat
