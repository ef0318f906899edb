// Contract: runs a Program for one step (see executor.hpp). Validation errors are
// prefixed "[executor]" and name the instruction index and node.
#include "autodiff/executor.hpp"

#include "autodiff/metering_backend.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

namespace remat {

Executor::Executor(const Tape& tape, Backend& backend) : tape_(tape), backend_(backend) {
  for (int id : tape.parameters()) {
    const HostArray& init = tape.parameter_initial(id);
    Tensor t = backend.empty(init.meta, MemoryCategory::parameter);
    backend.upload(init, t);
    parameters_.emplace(id, std::move(t));
  }
  for (const Node& n : tape.nodes()) {
    if (n.kind != NodeKind::op) continue;
    std::vector<TensorMeta> metas;
    for (int in : n.inputs) metas.push_back(tape.node(in).meta);
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

Tensor& Executor::parameter(int id) {
  auto it = parameters_.find(id);
  if (it == parameters_.end()) throw Error("[executor] n" + std::to_string(id) + " is not a parameter");
  return it->second;
}

HostArray Executor::read_parameter(int id) const {
  auto it = parameters_.find(id);
  if (it == parameters_.end()) throw Error("[executor] n" + std::to_string(id) + " is not a parameter");
  return backend_.download(it->second);
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
  for (const auto& [id, g] : result.gradients) backend_.axpy(-learning_rate, g, parameter(id));
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
  auto start = std::chrono::steady_clock::now();
  const std::size_t node_count = tape_.size();
  std::vector<Tensor> values(node_count), grads(node_count);
  std::vector<int> computed(node_count, 0);
  std::vector<bool> is_saved(node_count, false);
  for (const auto& ins : program.instructions)
    if (ins.kind == InstructionKind::backward)
      for (int s : saved_for_backward(tape_, ins.node)) is_saved[static_cast<std::size_t>(s)] = true;

  StepResult result;
  StepReport& report = result.report;
  MemoryMeter& meter = backend_.meter();
  meter.reset_peaks();

  auto fail = [&](std::size_t index, const Instruction& ins, const std::string& why) -> void {
    throw Error(fmt::format("[executor] instruction {} ({} {}): {}", index, instruction_kind_name(ins.kind),
                            tape_.node(ins.node).label(), why));
  };

  for (std::size_t index = 0; index < program.instructions.size(); ++index) {
    const Instruction& ins = program.instructions[index];
    const Node& node = tape_.node(ins.node);
    auto instruction_start = options.record_times ? std::chrono::steady_clock::now() : start;
    const auto id = static_cast<std::size_t>(ins.node);
    switch (ins.kind) {
      case InstructionKind::compute: {
        if (node.kind == NodeKind::parameter) break;  // always resident
        if (values[id].defined()) fail(index, ins, "its value is already resident");
        if (node.kind == NodeKind::placeholder) {
          Tensor t = backend_.empty(node.meta, MemoryCategory::input);
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
          std::vector<Tensor> inputs;
          inputs.reserve(node.inputs.size());
          for (int in : node.inputs) {
            if (tape_.node(in).kind == NodeKind::parameter) {
              inputs.push_back(parameters_.at(in));
              continue;
            }
            if (!values[static_cast<std::size_t>(in)].defined())
              fail(index, ins, "input " + tape_.node(in).label() + " is not resident");
            inputs.push_back(values[static_cast<std::size_t>(in)]);
          }
          Tensor out = backend_.empty(node.meta, is_saved[id] ? MemoryCategory::saved : MemoryCategory::activation);
          node.op->forward(ForwardArgs{backend_, inputs, out, OpContext{options.seed, static_cast<std::uint64_t>(ins.node)}});
          ++report.forward_ops;
          if (computed[id] > 0) {
            ++report.recomputed_ops;
          } else if (auto st = state_.find(ins.node); st != state_.end()) {
            // First forward of this node in this step: the only time its state moves.
            node.op->commit_state(backend_, inputs, st->second);
          }
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
        backend_.fill(grads[id], 1.0);
        break;
      case InstructionKind::backward: {
        if (node.kind != NodeKind::op) fail(index, ins, "only op nodes have a backward");
        if (!grads[id].defined()) fail(index, ins, "its output gradient is not present");
        SavedValues saves = node.op->saves(node.inputs.size());
        VjpArgs args{backend_, {}, nullptr, grads[id], {}, OpContext{options.seed, static_cast<std::uint64_t>(ins.node)}};
        for (std::size_t i = 0; i < node.inputs.size(); ++i) {
          const Tensor* p = nullptr;
          if (i < saves.inputs.size() && saves.inputs[i]) {
            auto in = static_cast<std::size_t>(node.inputs[i]);
            if (tape_.node(node.inputs[i]).kind == NodeKind::parameter) {
              p = &parameters_.at(node.inputs[i]);
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
        // Gradient buffers: a fresh gradient is written in place; an existing one
        // (or a repeated input) receives the contribution through a temporary.
        std::vector<Tensor> temporaries;
        std::vector<std::pair<std::size_t, std::size_t>> pending;  // (temporary, input id)
        temporaries.reserve(node.inputs.size());
        std::vector<bool> assigned(node.inputs.size(), false);
        for (std::size_t i = 0; i < node.inputs.size(); ++i) {
          auto in = static_cast<std::size_t>(node.inputs[i]);
          const Node& input = tape_.node(node.inputs[i]);
          if (!(input.requires_grad && node.op->differentiable_input(i))) {
            args.grad_inputs.push_back(nullptr);
            continue;
          }
          bool repeated = false;
          for (std::size_t j = 0; j < i; ++j) repeated |= assigned[j] && node.inputs[j] == node.inputs[i];
          if (!grads[in].defined() && !repeated) {
            grads[in] = backend_.empty(input.meta, input.kind == NodeKind::parameter ? MemoryCategory::parameter_gradient
                                                                                     : MemoryCategory::gradient);
            args.grad_inputs.push_back(&grads[in]);
          } else {
            temporaries.push_back(backend_.empty(input.meta, MemoryCategory::workspace));
            pending.emplace_back(temporaries.size() - 1, in);
            args.grad_inputs.push_back(&temporaries.back());
          }
          assigned[i] = true;
        }
        node.op->vjp(args);
        for (auto [t, in] : pending) backend_.accumulate(temporaries[t], grads[in]);
        temporaries.clear();
        ++report.backward_ops;
        if (options.check_finite)
          for (std::size_t i = 0; i < node.inputs.size(); ++i)
            if (args.grad_inputs[i])
              check_finite_or_throw(backend_, grads[static_cast<std::size_t>(node.inputs[i])],
                                    "backward of " + node.label() + " (gradient of input " + std::to_string(i) + ")");
        break;
      }
      case InstructionKind::free_grad:
        if (!grads[id].defined()) fail(index, ins, "its gradient is not present");
        grads[id] = Tensor();
        break;
    }
    if (options.record_trace) report.live_bytes.push_back(meter.budgeted_current());
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
    result.gradients.emplace(p, grads[id]);
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
