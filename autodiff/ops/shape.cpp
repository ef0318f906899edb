// Contract: shape ops. Every output is a fresh contiguous tensor (no aliasing),
// so each value's bytes are metered once and liveness stays per node.
// reshape copies; permute, slice and concat are strided copies.
#include "autodiff/ops.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <numeric>

namespace remat {
namespace {

int normalise_axis(const std::string& op, int axis, std::size_t rank) {
  int r = static_cast<int>(rank);
  int a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r) throw_op_error(op, fmt::format("axis {} is out of range for rank {}", axis, r));
  return a;
}

StridedView whole(const Shape& shape) { return {0, shape, contiguous_strides(shape)}; }

class ReshapeOp final : public Op {
 public:
  explicit ReshapeOp(Shape shape) : shape_(std::move(shape)) {}
  std::string name() const override { return "reshape"; }
  std::string attributes() const override { return "shape=" + shape_string(shape_); }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    Shape out = shape_;
    std::int64_t known = 1;
    int unknown = -1;
    for (std::size_t d = 0; d < out.size(); ++d) {
      if (out[d] == -1) {
        if (unknown >= 0) throw_op_error(name(), "more than one -1 in " + shape_string(shape_));
        unknown = static_cast<int>(d);
      } else if (out[d] < 0) {
        throw_op_error(name(), "negative extent in " + shape_string(shape_));
      } else {
        known *= out[d];
      }
    }
    if (unknown >= 0 && known > 0 && in[0].numel() % known == 0) out[static_cast<std::size_t>(unknown)] = in[0].numel() / known;
    if (element_count(out) != in[0].numel())
      throw_op_error(name(), "cannot reshape " + shape_string(in[0].shape) + " into " + shape_string(shape_));
    return {out, in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override { a.backend.copy(a.inputs[0], a.output); }
  void vjp(const VjpArgs& a) const override { a.backend.copy(a.grad_output, *a.grad_inputs[0]); }  // dx = reshape(dy)
  SavedValues saves(std::size_t) const override { return {{false}, false}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override { return elementwise_cost(in, out, 0); }

 private:
  Shape shape_;
};

class PermuteOp final : public Op {
 public:
  explicit PermuteOp(std::vector<int> order) : order_(std::move(order)) {}
  std::string name() const override { return "permute"; }
  std::string attributes() const override { return fmt::format("order=[{}]", fmt::join(order_, ",")); }
  std::vector<int> order(std::size_t rank) const {
    if (order_.size() != rank)
      throw_op_error(name(), fmt::format("order [{}] does not match rank {}", fmt::join(order_, ","), rank));
    std::vector<int> o;
    for (int a : order_) o.push_back(normalise_axis(name(), a, rank));
    auto sorted = o;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < sorted.size(); ++i)
      if (sorted[i] != static_cast<int>(i))
        throw_op_error(name(), fmt::format("order [{}] is not a permutation", fmt::join(order_, ",")));
    return o;
  }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    auto o = order(in[0].shape.size());
    Shape out;
    for (int a : o) out.push_back(in[0].shape[static_cast<std::size_t>(a)]);
    return {out, in[0].dtype};
  }
  // out[i0, i1, ...] = x[..] with x's axis order[k] at position k.
  static void permuted_copy(Backend& b, const Tensor& src, const std::vector<int>& o, Tensor& dst, bool inverse) {
    // Walk dst contiguously; read src through permuted strides (or the reverse).
    auto src_strides = contiguous_strides(src.shape());
    if (!inverse) {
      StridedView from{0, dst.shape(), {}};
      for (int a : o) from.strides.push_back(src_strides[static_cast<std::size_t>(a)]);
      b.copy_strided(src, from, dst, whole(dst.shape()), false);
    } else {  // dst = inverse permutation of src: write src contiguously into permuted dst strides
      auto dst_strides = contiguous_strides(dst.shape());
      StridedView to{0, src.shape(), {}};
      for (int a : o) to.strides.push_back(dst_strides[static_cast<std::size_t>(a)]);
      b.copy_strided(src, whole(src.shape()), dst, to, false);
    }
  }
  void forward(const ForwardArgs& a) const override {
    permuted_copy(a.backend, a.inputs[0], order(a.inputs[0].shape().size()), a.output, false);
  }
  void vjp(const VjpArgs& a) const override {  // dx = permute(dy, order^-1)
    permuted_copy(a.backend, a.grad_output, order(a.grad_output.shape().size()), *a.grad_inputs[0], true);
  }
  SavedValues saves(std::size_t) const override { return {{false}, false}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override { return elementwise_cost(in, out, 0); }

 private:
  std::vector<int> order_;
};

class SliceOp final : public Op {
 public:
  SliceOp(int axis, std::int64_t start, std::int64_t end) : axis_(axis), start_(start), end_(end) {}
  std::string name() const override { return "slice"; }
  std::string attributes() const override { return fmt::format("axis={} range=[{},{})", axis_, start_, end_); }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    int a = normalise_axis(name(), axis_, in[0].shape.size());
    std::int64_t extent = in[0].shape[static_cast<std::size_t>(a)];
    if (start_ < 0 || end_ > extent || start_ >= end_)
      throw_op_error(name(), fmt::format("range [{},{}) is empty or outside axis {} of shape {}", start_, end_, axis_,
                                         shape_string(in[0].shape)));
    Shape out = in[0].shape;
    out[static_cast<std::size_t>(a)] = end_ - start_;
    return {out, in[0].dtype};
  }
  StridedView window(const Shape& full, const Shape& part) const {
    int a = normalise_axis(name(), axis_, full.size());
    auto strides = contiguous_strides(full);
    return {start_ * strides[static_cast<std::size_t>(a)], part, strides};
  }
  void forward(const ForwardArgs& a) const override {
    a.backend.copy_strided(a.inputs[0], window(a.inputs[0].shape(), a.output.shape()), a.output,
                           whole(a.output.shape()), false);
  }
  void vjp(const VjpArgs& a) const override {  // dx = dy inside the window, 0 elsewhere
    Tensor& gx = *a.grad_inputs[0];
    a.backend.fill(gx, 0.0);
    a.backend.copy_strided(a.grad_output, whole(a.grad_output.shape()), gx, window(gx.shape(), a.grad_output.shape()),
                           false);
  }
  SavedValues saves(std::size_t) const override { return {{false}, false}; }
  Cost cost(std::span<const TensorMeta>, const TensorMeta& out) const override {
    return {0, static_cast<double>(out.bytes()), static_cast<double>(out.bytes())};
  }

 private:
  int axis_;
  std::int64_t start_, end_;
};

class ConcatOp final : public Op {
 public:
  // extents: each input's extent along the axis, so the vjp can place the window
  // of an input that wants no gradient (a placeholder) without its tensor.
  ConcatOp(int axis, std::vector<std::int64_t> extents) : axis_(axis), extents_(std::move(extents)) {}
  std::string name() const override { return "concat"; }
  std::string attributes() const override { return fmt::format("axis={}", axis_); }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    if (in.empty()) throw_op_error(name(), "needs at least one input");
    expect_same_dtype(name(), in);
    int a = normalise_axis(name(), axis_, in[0].shape.size());
    Shape out = in[0].shape;
    out[static_cast<std::size_t>(a)] = 0;
    for (const auto& m : in) {
      bool ok = m.shape.size() == out.size();
      for (std::size_t d = 0; ok && d < out.size(); ++d)
        ok = static_cast<int>(d) == a || m.shape[d] == in[0].shape[d];
      if (!ok)
        throw_op_error(name(), fmt::format("shapes {} and {} differ outside axis {}", shape_string(in[0].shape),
                                           shape_string(m.shape), axis_));
      out[static_cast<std::size_t>(a)] += m.shape[static_cast<std::size_t>(a)];
    }
    return {out, in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override {
    int ax = normalise_axis(name(), axis_, a.output.shape().size());
    auto strides = contiguous_strides(a.output.shape());
    std::int64_t offset = 0;
    for (const Tensor& x : a.inputs) {
      a.backend.copy_strided(x, whole(x.shape()), a.output, {offset * strides[static_cast<std::size_t>(ax)], x.shape(), strides}, false);
      offset += x.shape()[static_cast<std::size_t>(ax)];
    }
  }
  void vjp(const VjpArgs& a) const override {  // dx_i = dy restricted to x_i's window
    const Tensor& gy = a.grad_output;
    int ax = normalise_axis(name(), axis_, gy.shape().size());
    auto strides = contiguous_strides(gy.shape());
    std::int64_t offset = 0;
    for (std::size_t i = 0; i < a.grad_inputs.size(); ++i) {
      if (Tensor* g = a.grad_inputs[i])
        a.backend.copy_strided(gy, {offset * strides[static_cast<std::size_t>(ax)], g->shape(), strides}, *g, whole(g->shape()), false);
      offset += extents_[i];
    }
  }
  SavedValues saves(std::size_t count) const override { return {std::vector<bool>(count, false), false}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override { return elementwise_cost(in, out, 0); }

 private:
  int axis_;
  std::vector<std::int64_t> extents_;
};

Tape& tape_of(const char* op, Value v) {
  if (!v.tape) throw Error(std::string("[") + op + "] input was not recorded on a tape");
  return *v.tape;
}

}  // namespace

Value reshape(Value x, Shape shape) { return tape_of("reshape", x).record(std::make_shared<ReshapeOp>(std::move(shape)), {x}); }
Value permute(Value x, std::vector<int> order) {
  return tape_of("permute", x).record(std::make_shared<PermuteOp>(std::move(order)), {x});
}
Value transpose(Value x, int axis0, int axis1) {
  int r = static_cast<int>(x.shape().size());
  int a0 = normalise_axis("transpose", axis0, static_cast<std::size_t>(r));
  int a1 = normalise_axis("transpose", axis1, static_cast<std::size_t>(r));
  std::vector<int> order(static_cast<std::size_t>(r));
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[static_cast<std::size_t>(a0)], order[static_cast<std::size_t>(a1)]);
  return permute(x, order);
}
Value slice(Value x, int axis, std::int64_t start, std::int64_t end) {
  return tape_of("slice", x).record(std::make_shared<SliceOp>(axis, start, end), {x});
}
Value concat(std::vector<Value> xs, int axis) {
  if (xs.empty()) throw Error("[concat] needs at least one input");
  std::vector<std::int64_t> extents;  // along the axis; infer() rejects inputs whose ranks differ
  for (const Value& x : xs) {
    const Shape& shape = tape_of("concat", x).node(x.id).meta.shape;
    int r = static_cast<int>(shape.size()), a = axis < 0 ? axis + r : axis;
    extents.push_back(a >= 0 && a < r ? shape[static_cast<std::size_t>(a)] : 0);
  }
  return tape_of("concat", xs[0]).record(std::make_shared<ConcatOp>(axis, std::move(extents)), std::move(xs));
}

}  // namespace remat
