// Contract: reductions sum, mean and max over a set of axes (all when empty),
// with or without kept (extent-1) axes. max routes its gradient to the first
// maximal element of each group, as the CPU and CUDA kernels both do.
#include "autodiff/ops.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace remat {
namespace {

class ReduceOp final : public Op {
 public:
  ReduceOp(ReduceKind kind, std::vector<int> axes, bool keepdims)
      : kind_(kind), axes_(std::move(axes)), keepdims_(keepdims) {}
  std::string name() const override {
    return kind_ == ReduceKind::sum ? "sum" : kind_ == ReduceKind::mean ? "mean" : "max";
  }
  std::string attributes() const override { return fmt::format("axes=[{}] keepdims={}", fmt::join(axes_, ","), keepdims_); }

  std::vector<bool> mask(const Shape& shape) const {
    std::vector<bool> m(shape.size(), axes_.empty());
    for (int a : axes_) {
      int r = static_cast<int>(shape.size());
      int axis = a < 0 ? a + r : a;
      if (axis < 0 || axis >= r)
        throw_op_error(name(), fmt::format("axis {} is out of range for shape {}", a, shape_string(shape)));
      if (m[static_cast<std::size_t>(axis)]) throw_op_error(name(), fmt::format("axis {} is repeated", a));
      m[static_cast<std::size_t>(axis)] = true;
    }
    return m;
  }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    auto m = mask(in[0].shape);
    Shape out;
    for (std::size_t d = 0; d < in[0].shape.size(); ++d) {
      if (!m[d]) out.push_back(in[0].shape[d]);
      else if (keepdims_) out.push_back(1);
    }
    if (in[0].numel() == 0) throw_op_error(name(), "cannot reduce an empty tensor " + shape_string(in[0].shape));
    return {out, in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override {
    a.backend.reduce(kind_, a.inputs[0], mask(a.inputs[0].shape()), a.output);
  }
  void vjp(const VjpArgs& a) const override {
    Tensor& gx = *a.grad_inputs[0];
    auto m = mask(gx.shape());
    // The gradient seen with the reduced axes kept as extent 1, to broadcast back.
    Shape kept = gx.shape();
    for (std::size_t d = 0; d < kept.size(); ++d) if (m[d]) kept[d] = 1;
    Tensor gy = a.grad_output.reshaped(kept);
    if (kind_ == ReduceKind::max) {
      a.backend.reduce_max_backward(*a.inputs[0], a.output->reshaped(kept), gy, m, gx);  // d max = [x is first max]
      return;
    }
    double count = 1;
    for (std::size_t d = 0; d < kept.size(); ++d) if (m[d]) count *= static_cast<double>(gx.shape()[d]);
    a.backend.broadcast_to(gy, kind_ == ReduceKind::mean ? 1.0 / count : 1.0, gx);  // d sum = 1, d mean = 1/count
  }
  SavedValues saves(std::size_t) const override {
    bool is_max = kind_ == ReduceKind::max;
    return {{is_max}, is_max};
  }

 private:
  ReduceKind kind_;
  std::vector<int> axes_;
  bool keepdims_;
};

Value record(ReduceKind kind, Value x, std::vector<int> axes, bool keepdims) {
  if (!x.tape) throw Error("[reduce] input was not recorded on a tape");
  return x.tape->record(std::make_shared<ReduceOp>(kind, std::move(axes), keepdims), {x});
}

}  // namespace

Value sum(Value x, std::vector<int> axes, bool keepdims) { return record(ReduceKind::sum, x, std::move(axes), keepdims); }
Value mean(Value x, std::vector<int> axes, bool keepdims) { return record(ReduceKind::mean, x, std::move(axes), keepdims); }
Value max(Value x, std::vector<int> axes, bool keepdims) { return record(ReduceKind::max, x, std::move(axes), keepdims); }

}  // namespace remat
