// Contract: matmul (2-D, batched, and batched @ 2-D) and linear (x W^T + b),
// through the backend's gemm. Dimension legend: B = batch axes, M x K @ K x N.
#include "autodiff/ops.hpp"

#include <fmt/format.h>

namespace remat {
namespace {

// The batch count and shapes of a matmul, validated.
struct MatmulShape {
  std::int64_t batch, m, k, n;
  bool b_shared;  // b is 2-D and reused for every batch element
};

MatmulShape matmul_shape(const Shape& a, const Shape& b) {
  auto fail = [&] {
    throw_op_error("matmul", "inner dimensions differ: " + shape_string(a) + " @ " + shape_string(b));
  };
  if (a.size() < 2 || b.size() < 2)
    throw_op_error("matmul", "operands must have rank >= 2, got " + shape_string(a) + " @ " + shape_string(b));
  MatmulShape s{1, a[a.size() - 2], a.back(), b.back(), b.size() == 2};
  if (b[b.size() - 2] != s.k) fail();
  for (std::size_t d = 0; d + 2 < a.size(); ++d) s.batch *= a[d];
  if (!s.b_shared) {
    if (b.size() != a.size())
      throw_op_error("matmul", "batch axes differ: " + shape_string(a) + " @ " + shape_string(b));
    for (std::size_t d = 0; d + 2 < a.size(); ++d)
      if (a[d] != b[d]) throw_op_error("matmul", "batch axes differ: " + shape_string(a) + " @ " + shape_string(b));
  }
  return s;
}

class MatmulOp final : public Op {
 public:
  std::string name() const override { return "matmul"; }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "left operand");
    expect_floating(name(), in[1], "right operand");
    expect_same_dtype(name(), in);
    matmul_shape(in[0].shape, in[1].shape);
    Shape out = in[0].shape;
    out.back() = in[1].shape.back();
    return {out, in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override {
    auto s = matmul_shape(a.inputs[0].shape(), a.inputs[1].shape());
    GemmArgs g;
    g.m = s.m; g.n = s.n; g.k = s.k; g.batch = s.batch;
    g.a = &a.inputs[0]; g.lda = s.k; g.a_batch_stride = s.m * s.k;
    g.b = &a.inputs[1]; g.ldb = s.n; g.b_batch_stride = s.b_shared ? 0 : s.k * s.n;
    g.c = &a.output; g.ldc = s.n; g.c_batch_stride = s.m * s.n;
    if (s.b_shared) {  // one (B*M, K) @ (K, N) product is faster than B small ones
      g.m = s.batch * s.m; g.batch = 1;
    }
    a.backend.gemm(g);
  }
  void vjp(const VjpArgs& a) const override {
    const Tensor& A = *a.inputs[0];
    const Tensor& B = *a.inputs[1];
    const Tensor& gy = a.grad_output;
    auto s = matmul_shape(A.shape(), B.shape());
    if (Tensor* ga = a.grad_inputs[0]) {  // dA = dY @ B^T
      GemmArgs g;
      g.transpose_b = true;
      g.m = s.b_shared ? s.batch * s.m : s.m; g.n = s.k; g.k = s.n; g.batch = s.b_shared ? 1 : s.batch;
      g.a = &gy; g.lda = s.n; g.a_batch_stride = s.m * s.n;
      g.b = &B; g.ldb = s.n; g.b_batch_stride = s.b_shared ? 0 : s.k * s.n;
      g.c = ga; g.ldc = s.k; g.c_batch_stride = s.m * s.k;
      a.backend.gemm(g);
    }
    if (Tensor* gb = a.grad_inputs[1]) {  // dB = A^T @ dY (summed over batch when B is shared)
      GemmArgs g;
      g.transpose_a = true;
      g.m = s.k; g.n = s.n;
      g.a = &A; g.lda = s.k;
      g.b = &gy; g.ldb = s.n;
      g.c = gb; g.ldc = s.n;
      if (s.b_shared) {
        g.k = s.batch * s.m; g.batch = 1;
      } else {
        g.k = s.m; g.batch = s.batch;
        g.a_batch_stride = s.m * s.k; g.b_batch_stride = s.m * s.n; g.c_batch_stride = s.k * s.n;
      }
      a.backend.gemm(g);
    }
  }
  SavedValues saves(std::size_t) const override { return {{true, true}, false}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    auto s = matmul_shape(in[0].shape, in[1].shape);
    return {2.0 * static_cast<double>(s.batch * s.m * s.n * s.k), static_cast<double>(in[0].bytes() + in[1].bytes()),
            static_cast<double>(out.bytes())};
  }
};

class LinearOp final : public Op {
 public:
  std::string name() const override { return "linear"; }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    expect_rank(name(), in[1], 2, "weight");
    expect_same_dtype(name(), in);
    if (in[0].shape.empty() || in[0].shape.back() != in[1].shape[1])
      throw_op_error(name(), "input features differ from weight: x " + shape_string(in[0].shape) + ", W " +
                                 shape_string(in[1].shape) + " (expected W of shape (out, in))");
    if (in.size() == 3 && in[2].shape != Shape{in[1].shape[0]})
      throw_op_error(name(), "bias must have shape " + shape_string({in[1].shape[0]}) + ", got " +
                                 shape_string(in[2].shape));
    Shape out = in[0].shape;
    out.back() = in[1].shape[0];
    return {out, in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override {
    const Tensor& x = a.inputs[0];
    const Tensor& w = a.inputs[1];
    std::int64_t in = w.shape()[1], outf = w.shape()[0], rows = x.numel() / in;
    GemmArgs g;  // Y (rows, out) = X (rows, in) @ W^T (+ b, written first and accumulated by the gemm)
    g.transpose_b = true;
    g.m = rows; g.n = outf; g.k = in;
    g.a = &x; g.lda = in; g.b = &w; g.ldb = in; g.c = &a.output; g.ldc = outf;
    if (a.inputs.size() == 3) {  // one pass fewer over Y than gemm-then-add
      a.backend.broadcast_to(a.inputs[2], 1.0, a.output);
      g.beta = 1.0;
    }
    a.backend.gemm(g);
  }
  void vjp(const VjpArgs& a) const override {
    const Tensor& gy = a.grad_output;
    std::int64_t outf = gy.shape().back(), rows = gy.numel() / outf;
    std::int64_t in = a.grad_inputs[1] ? a.grad_inputs[1]->shape()[1]
                                       : (a.inputs[1] ? a.inputs[1]->shape()[1] : a.inputs[0]->shape().back());
    if (Tensor* gx = a.grad_inputs[0]) {  // dX = dY @ W
      GemmArgs g;
      g.m = rows; g.n = in; g.k = outf;
      g.a = &gy; g.lda = outf; g.b = a.inputs[1]; g.ldb = in; g.c = gx; g.ldc = in;
      a.backend.gemm(g);
    }
    if (Tensor* gw = a.grad_inputs[1]) {  // dW = dY^T @ X
      GemmArgs g;
      g.transpose_a = true;
      g.m = outf; g.n = in; g.k = rows;
      g.a = &gy; g.lda = outf; g.b = a.inputs[0]; g.ldb = in; g.c = gw; g.ldc = in;
      a.backend.gemm(g);
    }
    if (a.grad_inputs.size() == 3 && a.grad_inputs[2]) a.backend.sum_to_shape(gy, *a.grad_inputs[2]);  // db = sum dY
  }
  SavedValues saves(std::size_t count) const override {
    std::vector<bool> reads{true, true, false};  // dX reads W, dW reads X, db reads nothing
    reads.resize(count);
    return {reads, false};
  }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    double flops = 2.0 * static_cast<double>(out.numel() * in[1].shape[1]);
    return {flops, static_cast<double>(in[0].bytes() + in[1].bytes()), static_cast<double>(out.bytes())};
  }
};

}  // namespace

Value matmul(Value a, Value b) {
  if (!a.tape) throw Error("[matmul] input was not recorded on a tape");
  return a.tape->record(std::make_shared<MatmulOp>(), {a, b});
}

Value linear(Value x, Value weight, std::optional<Value> bias) {
  if (!x.tape) throw Error("[linear] input was not recorded on a tape");
  std::vector<Value> in{x, weight};
  if (bias) in.push_back(*bias);
  return x.tape->record(std::make_shared<LinearOp>(), std::move(in));
}

}  // namespace remat
