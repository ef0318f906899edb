// Contract: neural-network ops: softmax and log_softmax (last axis), the
// cross-entropy and mean-squared-error losses, layer and batch normalisation,
// dropout (Philox mask keyed by (RunOptions::seed, node, element), never stored),
// embedding, conv2d (im2col + GEMM per image), max/avg pooling and nearest
// upsampling. Each op's saves() lists exactly what its vjp dereferences; scratch
// is allocated as workspace and declared by *_workspace_bytes(). No op branches on
// data values: the same code runs on the metering-only backend.
// Dimension legend: N = batch, C = channels, H/W = height/width, K = output
// channels, R/S = kernel height/width, D = features, V = vocabulary.
#include "autodiff/ops.hpp"

#include <fmt/format.h>

namespace remat {
namespace {

double bytes_of(std::span<const TensorMeta> metas) {
  double b = 0;
  for (const auto& m : metas) b += static_cast<double>(m.bytes());
  return b;
}

Value record_op(const char* name, std::shared_ptr<const Op> op, std::vector<Value> inputs) {
  if (!inputs[0].tape) throw Error(std::string("[") + name + "] input was not recorded on a tape");
  return inputs[0].tape->record(std::move(op), std::move(inputs));
}

// ---- softmax / log_softmax over the last axis ----

class SoftmaxOp final : public Op {
 public:
  explicit SoftmaxOp(bool log) : log_(log) {}
  std::string name() const override { return log_ ? "log_softmax" : "softmax"; }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    if (in[0].shape.empty()) throw_op_error(name(), "input must have rank >= 1, got shape ()");
    return in[0];
  }
  void forward(const ForwardArgs& a) const override { a.backend.softmax(a.inputs[0], log_, a.output); }
  void vjp(const VjpArgs& a) const override {
    // softmax: dx = y (dy - sum(dy y)); log_softmax: dx = dy - exp(y) sum(dy)
    if (Tensor* gx = a.grad_inputs[0]) a.backend.softmax_backward(*a.output, a.grad_output, log_, *gx);
  }
  SavedValues saves(std::size_t) const override { return {{false}, true}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    return elementwise_cost(in, out, 12);  // max, exp, sum, scale per element
  }

 private:
  bool log_;
};

// ---- cross-entropy: logits (N, C), labels i32 (N) -> mean over rows, shape () ----

class CrossEntropyOp final : public Op {
 public:
  std::string name() const override { return "cross_entropy"; }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "logits");
    expect_rank(name(), in[0], 2, "logits");
    if (in[1].dtype != DType::i32)
      throw_op_error(name(), std::string("labels must be i32, got ") + dtype_name(in[1].dtype));
    const Shape expected{in[0].shape[0]};
    if (in[1].shape != expected)
      throw_op_error(name(), "labels " + shape_string(in[1].shape) + " do not match logits " +
                                 shape_string(in[0].shape) + ": expected labels of shape " + shape_string(expected));
    if (in[0].numel() == 0)
      throw_op_error(name(), "needs at least one row and one class, got logits " + shape_string(in[0].shape));
    return {{}, in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override { a.backend.cross_entropy(a.inputs[0], a.inputs[1], a.output); }
  void vjp(const VjpArgs& a) const override {
    // d/dlogits = (softmax(logits) - onehot(labels)) dy / N, softmax recomputed in the kernel
    if (Tensor* g = a.grad_inputs[0])
      a.backend.cross_entropy_backward(*a.inputs[0], *a.inputs[1], a.grad_output, *g);
  }
  SavedValues saves(std::size_t) const override { return {{true, true}, false}; }
  bool differentiable_input(std::size_t index) const override { return index == 0; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    return {6.0 * static_cast<double>(in[0].numel()), bytes_of(in), static_cast<double>(out.bytes())};
  }
};

// ---- mean squared error: mean((a - b)^2), shape () ----

class MseOp final : public Op {
 public:
  std::string name() const override { return "mse"; }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "left operand");
    expect_floating(name(), in[1], "right operand");
    expect_same_dtype(name(), in);
    if (in[0].shape != in[1].shape)
      throw_op_error(name(), "shapes differ: a " + shape_string(in[0].shape) + ", b " + shape_string(in[1].shape));
    if (in[0].numel() == 0) throw_op_error(name(), "cannot average an empty tensor " + shape_string(in[0].shape));
    return {{}, in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override { a.backend.mse(a.inputs[0], a.inputs[1], a.output); }
  void vjp(const VjpArgs& a) const override {
    const Tensor& lhs = *a.inputs[0];
    const Tensor& rhs = *a.inputs[1];
    if (Tensor* ga = a.grad_inputs[0]) a.backend.mse_backward(lhs, rhs, a.grad_output, +1.0, *ga);  // d/da = 2 (a - b) dy / n
    if (Tensor* gb = a.grad_inputs[1]) a.backend.mse_backward(lhs, rhs, a.grad_output, -1.0, *gb);  // d/db = -2 (a - b) dy / n
  }
  SavedValues saves(std::size_t) const override { return {{true, true}, false}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    return {3.0 * static_cast<double>(in[0].numel()), bytes_of(in), static_cast<double>(out.bytes())};
  }
};

// ---- layer normalisation over the last axis ----

class LayerNormOp final : public Op {
 public:
  explicit LayerNormOp(double eps) : eps_(eps) {}
  std::string name() const override { return "layernorm"; }
  std::string attributes() const override { return fmt::format("eps={}", eps_); }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    if (in[0].shape.empty()) throw_op_error(name(), "input must have rank >= 1, got shape ()");
    const Shape d{in[0].shape.back()};
    if (in[1].shape != d || in[2].shape != d)
      throw_op_error(name(), "gamma and beta must have shape (D,) = " + shape_string(d) + " for x " +
                                 shape_string(in[0].shape) + ", got gamma " + shape_string(in[1].shape) + ", beta " +
                                 shape_string(in[2].shape));
    expect_same_dtype(name(), in);
    if (!(eps_ >= 0)) throw_op_error(name(), fmt::format("eps must be >= 0, got {}", eps_));
    return in[0];
  }
  void forward(const ForwardArgs& a) const override {
    a.backend.layernorm(a.inputs[0], a.inputs[1], a.inputs[2], eps_, a.output);
  }
  void vjp(const VjpArgs& a) const override {
    // xhat = (x - mean) rstd: dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy gamma;
    // dgamma = sum_rows dy xhat; dbeta = sum_rows dy (one kernel, mean/rstd recomputed)
    a.backend.layernorm_backward(*a.inputs[0], *a.inputs[1], a.grad_output, eps_, a.grad_inputs[0],
                                 a.grad_inputs[1], a.grad_inputs[2]);
  }
  SavedValues saves(std::size_t) const override { return {{true, true, false}, false}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    return {8.0 * static_cast<double>(out.numel()), bytes_of(in), static_cast<double>(out.bytes())};
  }

 private:
  double eps_;
};

// ---- dropout: y = x mask / (1 - p), mask regenerated from (seed, node, element) ----

class DropoutOp final : public Op {
 public:
  explicit DropoutOp(double p) : p_(p) {}
  std::string name() const override { return "dropout"; }
  std::string attributes() const override { return fmt::format("p={}", p_); }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    if (!(p_ >= 0 && p_ < 1)) throw_op_error(name(), fmt::format("p must be in [0, 1), got {}", p_));
    return in[0];
  }
  void forward(const ForwardArgs& a) const override {
    a.backend.dropout(a.inputs[0], p_, a.context.seed, a.context.node, a.output);
  }
  void vjp(const VjpArgs& a) const override {
    // dx = dy mask / (1 - p): the forward kernel applied to dy with the same key
    // (seed, node) draws the same mask and scales by the same 1 / (1 - p).
    if (Tensor* gx = a.grad_inputs[0]) a.backend.dropout(a.grad_output, p_, a.context.seed, a.context.node, *gx);
  }
  SavedValues saves(std::size_t) const override { return {{false}, false}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    return elementwise_cost(in, out, 16);  // a quarter of a Philox block and a multiply per element
  }

 private:
  double p_;
};

// ---- embedding: table (V, D), ids i32 (...) -> (..., D) ----

class EmbeddingOp final : public Op {
 public:
  std::string name() const override { return "embedding"; }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "table");
    expect_rank(name(), in[0], 2, "table");
    if (in[1].dtype != DType::i32) throw_op_error(name(), std::string("ids must be i32, got ") + dtype_name(in[1].dtype));
    Shape out = in[1].shape;
    out.push_back(in[0].shape[1]);
    return {out, in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override { a.backend.embedding(a.inputs[0], a.inputs[1], a.output); }
  void vjp(const VjpArgs& a) const override {
    // dtable[v] = sum of dy rows whose id is v (zeroed, then added in id order)
    if (Tensor* gt = a.grad_inputs[0]) a.backend.embedding_backward(*a.inputs[1], a.grad_output, *gt);
  }
  SavedValues saves(std::size_t) const override { return {{false, true}, false}; }
  bool differentiable_input(std::size_t index) const override { return index == 0; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    return {0.0, static_cast<double>(in[1].bytes() + out.bytes()), static_cast<double>(out.bytes())};
  }
};

// ---- conv2d: x (N, C, H, W), weight (K, C/G, R, S), bias (K) -> (N, K, Ho, Wo), G = groups ----

class Conv2dOp final : public Op {
 public:
  explicit Conv2dOp(const Conv2dParams& p) : p_(p) {}
  std::string name() const override { return "conv2d"; }
  std::string attributes() const override {
    std::string s = p_.stride_h == p_.stride_w ? fmt::format("stride={}", p_.stride_h)
                                               : fmt::format("stride={}x{}", p_.stride_h, p_.stride_w);
    s += p_.pad_h == p_.pad_w ? fmt::format(" padding={}", p_.pad_h) : fmt::format(" padding={}x{}", p_.pad_h, p_.pad_w);
    if (p_.dilation_h != 1 || p_.dilation_w != 1) s += fmt::format(" dilation={}x{}", p_.dilation_h, p_.dilation_w);
    if (p_.groups != 1) s += fmt::format(" groups={}", p_.groups);
    return s;
  }

  // The geometry of one group: c = C/G input channels, k = K/G output channels.
  Conv2dGeometry geometry(const Shape& x, const Shape& w) const {
    Conv2dGeometry g{x[0], x[1] / p_.groups, x[2], x[3], w[0] / p_.groups, w[2], w[3], p_.stride_h, p_.stride_w,
                     p_.pad_h, p_.pad_w, 0, 0};
    g.dilation_h = p_.dilation_h;
    g.dilation_w = p_.dilation_w;
    g.x_channels = x[1];
    g.out_h = (g.h + 2 * g.pad_h - g.dilation_h * (g.r - 1) - 1) / g.stride_h + 1;
    g.out_w = (g.w + 2 * g.pad_w - g.dilation_w * (g.s - 1) - 1) / g.stride_w + 1;
    return g;
  }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    expect_rank(name(), in[0], 4, "input");
    expect_rank(name(), in[1], 4, "weight");
    expect_same_dtype(name(), in);
    if (p_.stride_h < 1 || p_.stride_w < 1)
      throw_op_error(name(), fmt::format("stride must be >= 1, got {}x{}", p_.stride_h, p_.stride_w));
    if (p_.pad_h < 0 || p_.pad_w < 0)
      throw_op_error(name(), fmt::format("padding must be >= 0, got {}x{}", p_.pad_h, p_.pad_w));
    if (p_.dilation_h < 1 || p_.dilation_w < 1)
      throw_op_error(name(), fmt::format("dilation must be >= 1, got {}x{}", p_.dilation_h, p_.dilation_w));
    if (p_.groups < 1) throw_op_error(name(), fmt::format("groups must be >= 1, got {}", p_.groups));
    const Shape& x = in[0].shape;
    const Shape& w = in[1].shape;
    if (x[1] % p_.groups != 0 || w[0] % p_.groups != 0)
      throw_op_error(name(), fmt::format("groups={} must divide the input channels and the output channels: x {}, weight {}",
                                         p_.groups, shape_string(x), shape_string(w)));
    if (x[1] != w[1] * p_.groups)
      throw_op_error(name(), p_.groups == 1
                                 ? "input channels differ: x " + shape_string(x) + ", weight " + shape_string(w)
                                 : fmt::format("input channels differ: x {} has {} channels, weight {} with groups={} takes {}",
                                               shape_string(x), x[1], shape_string(w), p_.groups, w[1] * p_.groups));
    const std::int64_t extent_h = p_.dilation_h * (w[2] - 1) + 1, extent_w = p_.dilation_w * (w[3] - 1) + 1;
    if (x[2] + 2 * p_.pad_h < extent_h || x[3] + 2 * p_.pad_w < extent_w)
      throw_op_error(name(), fmt::format("kernel {}x{} is larger than the padded input {}x{}: x {}, weight {}, padding {}x{}",
                                         extent_h, extent_w, x[2] + 2 * p_.pad_h, x[3] + 2 * p_.pad_w, shape_string(x),
                                         shape_string(w), p_.pad_h, p_.pad_w));
    if (in.size() == 3 && in[2].shape != Shape{w[0]})
      throw_op_error(name(), "bias must have shape " + shape_string({w[0]}) + " for weight " + shape_string(w) +
                                 ", got " + shape_string(in[2].shape));
    auto g = geometry(x, w);
    return {{g.n, w[0], g.out_h, g.out_w}, in[0].dtype};
  }
  static TensorMeta col_meta(const Conv2dGeometry& g, DType dtype) {
    return {{g.c * g.r * g.s, g.out_h * g.out_w}, dtype};
  }

  // Per image n and group q (of G): Y[n, q] (k, Ho*Wo) = W[q] (k, c*R*S) @ col[n, q] (c*R*S, Ho*Wo).
  void forward(const ForwardArgs& a) const override {
    const Tensor& x = a.inputs[0];
    const Tensor& w = a.inputs[1];
    Conv2dGeometry g = geometry(x.shape(), w.shape());
    const std::int64_t crs = g.c * g.r * g.s, hw = g.out_h * g.out_w, k_all = g.k * p_.groups;
    Tensor col = a.backend.empty(col_meta(g, x.dtype()), MemoryCategory::workspace);
    for (std::int64_t n = 0; n < g.n; ++n)
      for (std::int64_t q = 0; q < p_.groups; ++q) {
        g.first_channel = q * g.c;
        a.backend.im2col(x, n, g, col);
        GemmArgs m;
        m.m = g.k; m.n = hw; m.k = crs;
        m.a = &w; m.a_offset = q * g.k * crs; m.lda = crs;
        m.b = &col; m.ldb = hw;
        m.c = &a.output; m.c_offset = (n * k_all + q * g.k) * hw; m.ldc = hw;
        a.backend.gemm(m);
      }
    if (a.inputs.size() == 3) {  // y (N, K, Ho*Wo) += bias (K, 1)
      Tensor y = a.output.reshaped({g.n, k_all, hw});
      a.backend.binary(BinaryKind::add, y, a.inputs[2].reshaped({k_all, 1}), y);
    }
  }
  void vjp(const VjpArgs& a) const override {
    const Tensor& x = *a.inputs[0];
    const Tensor& w = *a.inputs[1];
    const Tensor& gy = a.grad_output;
    Conv2dGeometry g = geometry(x.shape(), w.shape());
    const std::int64_t crs = g.c * g.r * g.s, hw = g.out_h * g.out_w, k_all = g.k * p_.groups;
    Tensor* gx = a.grad_inputs[0];
    Tensor* gw = a.grad_inputs[1];
    Tensor* gb = a.grad_inputs.size() == 3 ? a.grad_inputs[2] : nullptr;
    Tensor col;
    if (gx || gw) col = a.backend.empty(col_meta(g, x.dtype()), MemoryCategory::workspace);
    if (gw) {  // dW[q] = sum_n dY[n, q] (k, Ho*Wo) @ col[n, q]^T (Ho*Wo, c*R*S)
      if (g.n == 0) a.backend.fill(*gw, 0.0);
      for (std::int64_t n = 0; n < g.n; ++n)
        for (std::int64_t q = 0; q < p_.groups; ++q) {
          g.first_channel = q * g.c;
          a.backend.im2col(x, n, g, col);
          GemmArgs m;
          m.transpose_b = true;
          m.m = g.k; m.n = crs; m.k = hw;
          m.beta = n == 0 ? 0.0 : 1.0;
          m.a = &gy; m.a_offset = (n * k_all + q * g.k) * hw; m.lda = hw;
          m.b = &col; m.ldb = hw;
          m.c = gw; m.c_offset = q * g.k * crs; m.ldc = crs;
          a.backend.gemm(m);
        }
    }
    if (gx) {  // dX[n, q] = col2im(W[q]^T (c*R*S, k) @ dY[n, q] (k, Ho*Wo))
      a.backend.fill(*gx, 0.0);
      for (std::int64_t n = 0; n < g.n; ++n)
        for (std::int64_t q = 0; q < p_.groups; ++q) {
          g.first_channel = q * g.c;
          GemmArgs m;
          m.transpose_a = true;
          m.m = crs; m.n = hw; m.k = g.k;
          m.a = &w; m.a_offset = q * g.k * crs; m.lda = crs;
          m.b = &gy; m.b_offset = (n * k_all + q * g.k) * hw; m.ldb = hw;
          m.c = &col; m.ldc = hw;
          a.backend.gemm(m);
          a.backend.col2im(col, n, g, *gx);
        }
    }
    if (gb) {  // db = sum of dY over N, Ho, Wo
      Tensor db = gb->reshaped({1, k_all, 1});
      a.backend.sum_to_shape(gy.reshaped({g.n, k_all, hw}), db);
    }
  }
  SavedValues saves(std::size_t count) const override {
    std::vector<bool> reads{true, true, false};  // dX reads W, dW reads x, db reads nothing
    reads.resize(count);
    return {reads, false};
  }
  std::size_t forward_workspace_bytes(std::span<const TensorMeta> in, const TensorMeta&) const override {
    return col_meta(geometry(in[0].shape, in[1].shape), in[0].dtype).bytes();
  }
  std::size_t vjp_workspace_bytes(std::span<const TensorMeta> in, const TensorMeta&) const override {
    return col_meta(geometry(in[0].shape, in[1].shape), in[0].dtype).bytes();
  }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    const Conv2dGeometry g = geometry(in[0].shape, in[1].shape);
    double flops = 2.0 * static_cast<double>(g.n * g.k * p_.groups * g.out_h * g.out_w * g.c * g.r * g.s);
    if (in.size() == 3) flops += static_cast<double>(out.numel());
    return {flops, bytes_of(in), static_cast<double>(out.bytes())};
  }

 private:
  Conv2dParams p_;
};

// ---- max / avg pooling ----

class Pool2dOp final : public Op {
 public:
  Pool2dOp(PoolKind kind, const Pool2dParams& p) : kind_(kind), p_(p) {}
  std::string name() const override { return kind_ == PoolKind::max ? "max_pool2d" : "avg_pool2d"; }
  std::string attributes() const override {
    const bool square = p_.kernel_h == p_.kernel_w && p_.stride_h == p_.stride_w && p_.pad_h == p_.pad_w;
    std::string s = square ? fmt::format("kernel={} stride={} padding={}", p_.kernel_h, p_.stride_h, p_.pad_h)
                           : fmt::format("kernel={}x{} stride={}x{} padding={}x{}", p_.kernel_h, p_.kernel_w, p_.stride_h,
                                         p_.stride_w, p_.pad_h, p_.pad_w);
    if (p_.ceil_mode) s += " ceil_mode";
    return s;
  }
  // Output extent along one axis; ceil_mode (PyTorch's and ONNX's rule) adds a last,
  // partial window when one starts inside the input or its left padding.
  static std::int64_t out_extent(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                                 bool ceil_mode) {
    const std::int64_t span = in + 2 * pad - kernel;
    std::int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) --out;
    return out;
  }
  Pool2dGeometry geometry(const Shape& x) const {
    Pool2dGeometry g{x[0], x[1], x[2], x[3], p_.kernel_h, p_.kernel_w, p_.stride_h, p_.stride_w, p_.pad_h, p_.pad_w, 0, 0};
    g.out_h = out_extent(g.h, g.kernel_h, g.stride_h, g.pad_h, p_.ceil_mode);
    g.out_w = out_extent(g.w, g.kernel_w, g.stride_w, g.pad_w, p_.ceil_mode);
    return g;
  }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    expect_rank(name(), in[0], 4, "input");
    if (p_.kernel_h < 1 || p_.kernel_w < 1)
      throw_op_error(name(), p_.kernel_h == p_.kernel_w ? fmt::format("kernel must be >= 1, got {}", p_.kernel_h)
                                                        : fmt::format("kernel must be >= 1, got {}x{}", p_.kernel_h, p_.kernel_w));
    if (p_.stride_h < 1 || p_.stride_w < 1)
      throw_op_error(name(), p_.stride_h == p_.stride_w
                                 ? fmt::format("stride must be >= 1 (or -1 for the kernel), got {}", p_.stride_h)
                                 : fmt::format("stride must be >= 1, got {}x{}", p_.stride_h, p_.stride_w));
    if (p_.pad_h < 0 || 2 * p_.pad_h > p_.kernel_h || p_.pad_w < 0 || 2 * p_.pad_w > p_.kernel_w)
      throw_op_error(name(), p_.kernel_h == p_.kernel_w && p_.pad_h == p_.pad_w
                                 ? fmt::format("padding must be in [0, kernel/2] = [0, {}], got {}", p_.kernel_h / 2, p_.pad_h)
                                 : fmt::format("padding must be in [0, kernel/2] = [0, {}]x[0, {}], got {}x{}", p_.kernel_h / 2,
                                               p_.kernel_w / 2, p_.pad_h, p_.pad_w));
    if (p_.ceil_mode && kind_ == PoolKind::avg)
      throw_op_error(name(), "ceil_mode is supported for max pooling only (a partial average window has no single divisor)");
    const Shape& x = in[0].shape;
    if (x[2] + 2 * p_.pad_h < p_.kernel_h || x[3] + 2 * p_.pad_w < p_.kernel_w)
      throw_op_error(name(), p_.kernel_h == p_.kernel_w
                                 ? fmt::format("kernel {} is larger than the padded input {}x{} of x {}", p_.kernel_h,
                                               x[2] + 2 * p_.pad_h, x[3] + 2 * p_.pad_w, shape_string(x))
                                 : fmt::format("kernel {}x{} is larger than the padded input {}x{} of x {}", p_.kernel_h,
                                               p_.kernel_w, x[2] + 2 * p_.pad_h, x[3] + 2 * p_.pad_w, shape_string(x)));
    auto g = geometry(x);
    return {{g.n, g.c, g.out_h, g.out_w}, in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override {
    a.backend.pool2d(kind_, geometry(a.inputs[0].shape()), a.inputs[0], a.output);
  }
  void vjp(const VjpArgs& a) const override {
    static const Tensor none;
    Tensor* gx = a.grad_inputs[0];
    if (!gx) return;
    // max: dx = dy at the first maximal element of each window (reads x and y);
    // avg: dx = dy / (kernel area) over each window, padding included (reads nothing)
    a.backend.pool2d_backward(kind_, geometry(gx->shape()), a.inputs[0] ? *a.inputs[0] : none,
                              a.output ? *a.output : none, a.grad_output, *gx);
  }
  SavedValues saves(std::size_t) const override {
    const bool is_max = kind_ == PoolKind::max;
    return {{is_max}, is_max};
  }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    return {static_cast<double>(out.numel()) * p_.kernel_h * p_.kernel_w, bytes_of(in), static_cast<double>(out.bytes())};
  }

 private:
  PoolKind kind_;
  Pool2dParams p_;
};

// ---- clamp: y = min(max(x, lo), hi) (ReLU6 is clamp(x, 0, 6)) ----

class ClampOp final : public Op {
 public:
  ClampOp(double lo, double hi) : lo_(lo), hi_(hi) {}
  std::string name() const override { return "clamp"; }
  std::string attributes() const override { return fmt::format("min={} max={}", lo_, hi_); }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    if (!(lo_ <= hi_)) throw_op_error(name(), fmt::format("min must be <= max, got min={} max={}", lo_, hi_));
    return in[0];
  }
  void forward(const ForwardArgs& a) const override { a.backend.clamp(a.inputs[0], lo_, hi_, a.output); }
  void vjp(const VjpArgs& a) const override {
    // dx = dy where min < x < max, else 0
    if (Tensor* gx = a.grad_inputs[0]) a.backend.clamp_backward(*a.inputs[0], lo_, hi_, a.grad_output, *gx);
  }
  SavedValues saves(std::size_t) const override { return {{true}, false}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override { return elementwise_cost(in, out, 2); }

 private:
  double lo_, hi_;
};

// ---- nearest-neighbour upsampling ----

class UpsampleNearestOp final : public Op {
 public:
  explicit UpsampleNearestOp(int scale) : scale_(scale) {}
  std::string name() const override { return "upsample_nearest"; }
  std::string attributes() const override { return fmt::format("scale={}", scale_); }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    expect_rank(name(), in[0], 4, "input");
    if (scale_ < 1) throw_op_error(name(), fmt::format("scale must be >= 1, got {}", scale_));
    const Shape& x = in[0].shape;
    return {{x[0], x[1], x[2] * scale_, x[3] * scale_}, in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override { a.backend.upsample_nearest(a.inputs[0], scale_, a.output); }
  void vjp(const VjpArgs& a) const override {
    // dx[h, w] = sum of dy over its scale x scale block
    if (Tensor* gx = a.grad_inputs[0]) a.backend.upsample_nearest_backward(a.grad_output, scale_, *gx);
  }
  SavedValues saves(std::size_t) const override { return {{false}, false}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override { return elementwise_cost(in, out, 0); }

 private:
  int scale_;
};

// ---- batch normalisation (training mode) with running statistics as op state ----

class BatchNormOp final : public Op {
 public:
  BatchNormOp(double momentum, double eps, std::optional<BatchNormRunning> running = std::nullopt)
      : momentum_(momentum), eps_(eps), running_(std::move(running)) {}
  std::string name() const override { return "batchnorm"; }
  std::string attributes() const override { return fmt::format("momentum={} eps={}", momentum_, eps_); }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    expect_floating(name(), in[0], "input");
    const Shape& x = in[0].shape;
    if (x.size() != 2 && x.size() != 4)
      throw_op_error(name(), "input must have rank 2 (N,C) or 4 (N,C,H,W), got shape " + shape_string(x));
    const Shape c{x[1]};
    if (in[1].shape != c || in[2].shape != c)
      throw_op_error(name(), "gamma and beta must have shape (C,) = " + shape_string(c) + " for x " + shape_string(x) +
                                 ", got gamma " + shape_string(in[1].shape) + ", beta " + shape_string(in[2].shape));
    expect_same_dtype(name(), in);
    if (x[1] == 0 || in[0].numel() / x[1] < 2)
      throw_op_error(name(), "needs more than one value per channel, got x " + shape_string(x));
    if (!(momentum_ >= 0 && momentum_ <= 1))
      throw_op_error(name(), fmt::format("momentum must be in [0, 1], got {}", momentum_));
    if (!(eps_ >= 0)) throw_op_error(name(), fmt::format("eps must be >= 0, got {}", eps_));
    if (running_ && (running_->mean.meta != TensorMeta{c, in[0].dtype} || running_->var.meta != TensorMeta{c, in[0].dtype}))
      throw_op_error(name(), "running mean and variance must have shape " + shape_string(c) + " and dtype " +
                                 dtype_name(in[0].dtype) + ", got " + shape_string(running_->mean.meta.shape) + " and " +
                                 shape_string(running_->var.meta.shape));
    return in[0];
  }
  void forward(const ForwardArgs& a) const override {
    a.backend.batchnorm(a.inputs[0], a.inputs[1], a.inputs[2], eps_, a.output);
  }
  void vjp(const VjpArgs& a) const override {
    // per channel, xhat = (x - mean) rstd over N (and H, W):
    // dx = gamma rstd (dy - mean(dy) - xhat mean(dy xhat)); dgamma = sum dy xhat; dbeta = sum dy
    a.backend.batchnorm_backward(*a.inputs[0], *a.inputs[1], a.grad_output, eps_, a.grad_inputs[0],
                                 a.grad_inputs[1], a.grad_inputs[2]);
  }
  SavedValues saves(std::size_t) const override { return {{true, true, false}, false}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    return {8.0 * static_cast<double>(out.numel()), bytes_of(in), static_cast<double>(out.bytes())};
  }
  std::vector<NamedState> initial_state(std::span<const TensorMeta> in) const override {
    if (running_) return {{"running_mean", running_->mean}, {"running_var", running_->var}};
    const TensorMeta meta{{in[0].shape[1]}, in[0].dtype};
    HostArray mean(meta), var(meta);
    for (std::int64_t i = 0; i < meta.numel(); ++i) {
      mean.set(i, 0.0);
      var.set(i, 1.0);
    }
    return {{"running_mean", std::move(mean)}, {"running_var", std::move(var)}};
  }
  void commit_state(Backend& backend, std::span<const Tensor> inputs, std::span<Tensor> state) const override {
    // running = (1 - momentum) running + momentum batch statistic (unbiased variance)
    backend.batchnorm_update_running(inputs[0], momentum_, state[0], state[1]);
  }

 private:
  double momentum_, eps_;
  std::optional<BatchNormRunning> running_;  // the initial running statistics (default 0 and 1)
};

}  // namespace

Value softmax(Value x) { return record_op("softmax", std::make_shared<SoftmaxOp>(false), {x}); }
Value log_softmax(Value x) { return record_op("log_softmax", std::make_shared<SoftmaxOp>(true), {x}); }
Value cross_entropy(Value logits, Value labels) {
  return record_op("cross_entropy", std::make_shared<CrossEntropyOp>(), {logits, labels});
}
Value mse(Value a, Value b) { return record_op("mse", std::make_shared<MseOp>(), {a, b}); }
Value layernorm(Value x, Value gamma, Value beta, double eps) {
  return record_op("layernorm", std::make_shared<LayerNormOp>(eps), {x, gamma, beta});
}
Value dropout(Value x, double p) { return record_op("dropout", std::make_shared<DropoutOp>(p), {x}); }
Value embedding(Value table, Value ids) { return record_op("embedding", std::make_shared<EmbeddingOp>(), {table, ids}); }
Value conv2d(Value x, Value weight, std::optional<Value> bias, int stride, int padding) {
  Conv2dParams params;
  params.stride_h = params.stride_w = stride;
  params.pad_h = params.pad_w = padding;
  return conv2d(x, weight, std::move(bias), params);
}
Value conv2d(Value x, Value weight, std::optional<Value> bias, const Conv2dParams& params) {
  std::vector<Value> in{x, weight};
  if (bias) in.push_back(*bias);
  return record_op("conv2d", std::make_shared<Conv2dOp>(params), std::move(in));
}
namespace {
Pool2dParams square_pool(int kernel, int stride, int padding) {
  Pool2dParams p;
  p.kernel_h = p.kernel_w = kernel;
  p.stride_h = p.stride_w = stride == -1 ? kernel : stride;
  p.pad_h = p.pad_w = padding;
  return p;
}
}  // namespace
Value max_pool2d(Value x, int kernel, int stride, int padding) { return max_pool2d(x, square_pool(kernel, stride, padding)); }
Value avg_pool2d(Value x, int kernel, int stride, int padding) { return avg_pool2d(x, square_pool(kernel, stride, padding)); }
Value max_pool2d(Value x, const Pool2dParams& params) {
  return record_op("max_pool2d", std::make_shared<Pool2dOp>(PoolKind::max, params), {x});
}
Value avg_pool2d(Value x, const Pool2dParams& params) {
  return record_op("avg_pool2d", std::make_shared<Pool2dOp>(PoolKind::avg, params), {x});
}
Value clamp(Value x, double lo, double hi) { return record_op("clamp", std::make_shared<ClampOp>(lo, hi), {x}); }
Value upsample_nearest(Value x, int scale) {
  return record_op("upsample_nearest", std::make_shared<UpsampleNearestOp>(scale), {x});
}
Value batchnorm(Value x, Value gamma, Value beta, double momentum, double eps) {
  return record_op("batchnorm", std::make_shared<BatchNormOp>(momentum, eps), {x, gamma, beta});
}
Value batchnorm(Value x, Value gamma, Value beta, double momentum, double eps, BatchNormRunning running) {
  return record_op("batchnorm", std::make_shared<BatchNormOp>(momentum, eps, std::move(running)), {x, gamma, beta});
}

}  // namespace remat
