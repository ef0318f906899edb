// Contract: elementwise ops. Unary maps (one class, parameterised by UnaryKind)
// and the four broadcasting binary ops. A broadcast input's gradient is the
// full-shape contribution summed back to its shape (through workspace).
// What each vjp reads (saves()) is taken from the table next to the derivative
// formulas in autodiff/kernel_math/elementwise.hpp, so the two cannot drift apart.
#include "autodiff/kernel_math/elementwise.hpp"
#include "autodiff/ops.hpp"

#include <fmt/format.h>

namespace remat {
namespace {

struct UnaryInfo {
  const char* name;
  double flops;  // per element, forward
};

UnaryInfo unary_info(UnaryKind kind) {
  switch (kind) {
    case UnaryKind::neg: return {"neg", 1};
    case UnaryKind::exp: return {"exp", 8};
    case UnaryKind::log: return {"log", 8};
    case UnaryKind::tanh: return {"tanh", 10};
    case UnaryKind::sigmoid: return {"sigmoid", 10};
    case UnaryKind::relu: return {"relu", 1};
    case UnaryKind::gelu: return {"gelu", 16};
    case UnaryKind::square: return {"square", 1};
    case UnaryKind::pow: return {"pow", 10};
    case UnaryKind::scale: return {"scale", 1};
    case UnaryKind::erf: return {"erf", 16};
  }
  return {"?", 1};
}

class UnaryOp final : public Op {
 public:
  UnaryOp(UnaryKind kind, double param) : kind_(kind), param_(param) {}
  std::string name() const override { return unary_info(kind_).name; }
  std::string attributes() const override {
    if (kind_ == UnaryKind::pow) return fmt::format("exponent={}", param_);
    if (kind_ == UnaryKind::scale) return fmt::format("factor={}", param_);
    return {};
  }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    return in[0];
  }
  void forward(const ForwardArgs& a) const override { a.backend.unary(kind_, param_, a.inputs[0], a.output); }
  void vjp(const VjpArgs& a) const override {
    static const Tensor none;
    a.backend.unary_backward(kind_, param_, a.inputs[0] ? *a.inputs[0] : none, a.output ? *a.output : none,
                             a.grad_output, *a.grad_inputs[0]);
  }
  SavedValues saves(std::size_t) const override {
    const auto reads = kernel_math::unary_derivative_reads(kind_);
    return {{reads.input}, reads.output};
  }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    return elementwise_cost(in, out, unary_info(kind_).flops);
  }

 private:
  UnaryKind kind_;
  double param_;
};

const char* binary_name(BinaryKind kind) {
  switch (kind) {
    case BinaryKind::add: return "add";
    case BinaryKind::sub: return "sub";
    case BinaryKind::mul: return "mul";
    case BinaryKind::div: return "div";
  }
  return "?";
}

class BinaryOp final : public Op {
 public:
  explicit BinaryOp(BinaryKind kind) : kind_(kind) {}
  std::string name() const override { return binary_name(kind_); }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "left operand");
    expect_floating(name(), in[1], "right operand");
    expect_same_dtype(name(), in);
    return {broadcast_shapes(name(), in[0].shape, in[1].shape), in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override { a.backend.binary(kind_, a.inputs[0], a.inputs[1], a.output); }
  void vjp(const VjpArgs& a) const override {
    static const Tensor none;
    const Tensor& lhs = a.inputs[0] ? *a.inputs[0] : none;
    const Tensor& rhs = a.inputs[1] ? *a.inputs[1] : none;
    for (int which = 0; which < 2; ++which) {
      Tensor* g = a.grad_inputs[static_cast<std::size_t>(which)];
      if (!g) continue;
      if (g->shape() == a.grad_output.shape()) {
        a.backend.binary_backward(kind_, which, lhs, rhs, a.grad_output, *g);
      } else {  // broadcast input: full-shape contribution, then sum back
        Tensor full = a.backend.empty(a.grad_output.meta(), MemoryCategory::workspace);
        a.backend.binary_backward(kind_, which, lhs, rhs, a.grad_output, full);
        a.backend.sum_to_shape(full, *g);
      }
    }
  }
  // What either partial reads (kernel_math::binary_partial_reads): the output is never read.
  SavedValues saves(std::size_t) const override {
    const auto da = kernel_math::binary_partial_reads(kind_, 0), db = kernel_math::binary_partial_reads(kind_, 1);
    return {{da.a || db.a, da.b || db.b}, false};
  }
  std::size_t vjp_workspace_bytes(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    return (in[0].shape != out.shape || in[1].shape != out.shape) ? out.bytes() : 0;
  }

 private:
  BinaryKind kind_;
};

Value record_unary(UnaryKind kind, Value x, double param = 0) {
  if (!x.tape) throw Error(std::string("[") + unary_info(kind).name + "] input was not recorded on a tape");
  return x.tape->record(std::make_shared<UnaryOp>(kind, param), {x});
}

Value record_binary(BinaryKind kind, Value a, Value b) {
  if (!a.tape) throw Error(std::string("[") + binary_name(kind) + "] input was not recorded on a tape");
  return a.tape->record(std::make_shared<BinaryOp>(kind), {a, b});
}

}  // namespace

Value add(Value a, Value b) { return record_binary(BinaryKind::add, a, b); }
Value sub(Value a, Value b) { return record_binary(BinaryKind::sub, a, b); }
Value mul(Value a, Value b) { return record_binary(BinaryKind::mul, a, b); }
Value div(Value a, Value b) { return record_binary(BinaryKind::div, a, b); }
Value neg(Value x) { return record_unary(UnaryKind::neg, x); }
Value exp(Value x) { return record_unary(UnaryKind::exp, x); }
Value log(Value x) { return record_unary(UnaryKind::log, x); }
Value tanh(Value x) { return record_unary(UnaryKind::tanh, x); }
Value sigmoid(Value x) { return record_unary(UnaryKind::sigmoid, x); }
Value relu(Value x) { return record_unary(UnaryKind::relu, x); }
Value gelu(Value x) { return record_unary(UnaryKind::gelu, x); }
Value erf(Value x) { return record_unary(UnaryKind::erf, x); }
Value square(Value x) { return record_unary(UnaryKind::square, x); }
Value pow(Value x, double exponent) { return record_unary(UnaryKind::pow, x, exponent); }
Value scale(Value x, double factor) { return record_unary(UnaryKind::scale, x, factor); }

}  // namespace remat
