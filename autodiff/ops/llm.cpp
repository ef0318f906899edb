// Contract: ops that large-language-model workloads need beyond the core families.
//  - cast: converts a value to another floating dtype (f32 master weights feeding
//    bf16 activations, say); its vjp converts the gradient back to the input's
//    dtype. It reads nothing saved.
#include "autodiff/ops.hpp"

namespace remat {
namespace {

class CastOp final : public Op {
 public:
  explicit CastOp(DType to) : to_(to) {}
  std::string name() const override { return "cast"; }
  std::string attributes() const override { return std::string("to=") + dtype_name(to_); }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    if (!is_floating(to_)) throw_op_error(name(), std::string("target dtype must be floating, got ") + dtype_name(to_));
    return {in[0].shape, to_};
  }
  void forward(const ForwardArgs& a) const override { a.backend.convert(a.inputs[0], a.output); }
  void vjp(const VjpArgs& a) const override { a.backend.convert(a.grad_output, *a.grad_inputs[0]); }
  SavedValues saves(std::size_t) const override { return {{false}, false}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    return elementwise_cost(in, out, 1.0);
  }

 private:
  DType to_;
};

}  // namespace

Value cast(Value x, DType dtype) {
  if (!x.tape) throw Error("[cast] input was not recorded on a tape");
  return x.tape->record(std::make_shared<CastOp>(dtype), {x});
}

}  // namespace remat
