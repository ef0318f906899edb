// Contract: the Backend interface, everything an op may ask of a device.
//  - Memory: empty() is the only way to obtain tensor bytes; it meters them in a
//    MemoryCategory, and Storage's destructor gives them back (metered again).
//  - Kernels: plain functions of tensors. They never allocate tensor memory; an op
//    that needs scratch allocates it with empty(..., MemoryCategory::workspace).
//  - Determinism: the same inputs and thread count give the same bits; no kernel
//    that feeds a gradient may use atomics or a thread-count-free reduction order.
//  - computes() is false on the metering-only backend: every kernel is a no-op
//    there, so running the executor on it predicts the memory of a real run.
// Dimension legends: N = batch, C = channels, H/W = height/width, K = output
// channels, R/S = kernel height/width, M/N/K in gemm are the BLAS ones.
#pragma once

#include "autodiff/tensor.hpp"

#include <string>
#include <vector>

namespace remat {

enum class UnaryKind : std::uint8_t { neg, exp, log, tanh, sigmoid, relu, gelu, square, pow, scale, erf };
enum class BinaryKind : std::uint8_t { add, sub, mul, div };
enum class ReduceKind : std::uint8_t { sum, mean, max };
enum class PoolKind : std::uint8_t { max, avg };

// A strided window over a tensor's elements: element (i0, i1, ...) is at
// offset + sum(i_k * strides[k]). Used for permute, slice and concat.
struct StridedView {
  std::int64_t offset = 0;
  Shape shape;
  std::vector<std::int64_t> strides;
};
// The contiguous row-major strides of a shape.
std::vector<std::int64_t> contiguous_strides(const Shape& shape);

// C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b] for b < batch, row-major.
struct GemmArgs {
  bool transpose_a = false, transpose_b = false;
  std::int64_t m = 0, n = 0, k = 0, batch = 1;
  double alpha = 1.0, beta = 0.0;
  const Tensor* a = nullptr; std::int64_t a_offset = 0, lda = 0, a_batch_stride = 0;
  const Tensor* b = nullptr; std::int64_t b_offset = 0, ldb = 0, b_batch_stride = 0;
  Tensor* c = nullptr;       std::int64_t c_offset = 0, ldc = 0, c_batch_stride = 0;
};

// x: (N, C, H, W), w: (K, C, R, S), y: (N, K, Ho, Wo). A grouped convolution runs
// im2col/col2im once per group on the group's c channels, which start at channel
// first_channel of x's x_channels (0: x has exactly c channels); input position
// ih = oh * stride_h - pad_h + r * dilation_h (likewise for w).
struct Conv2dGeometry {
  std::int64_t n, c, h, w, k, r, s, stride_h, stride_w, pad_h, pad_w, out_h, out_w;
  std::int64_t dilation_h = 1, dilation_w = 1, x_channels = 0, first_channel = 0;
  // Offset of channel first_channel of image `image` in x (or gx), in elements.
  std::int64_t image_offset(std::int64_t image) const {
    return (image * (x_channels ? x_channels : c) + first_channel) * h * w;
  }
};
// x: (N, C, H, W), y: (N, C, Ho, Wo); avg pooling divides by the full window (padding counted).
struct Pool2dGeometry {
  std::int64_t n, c, h, w, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, out_h, out_w;
};

class Backend {
 public:
  virtual ~Backend() { life_->alive = false; }
  virtual std::string name() const = 0;
  virtual bool computes() const { return true; }
  // Waits until every kernel launched so far has finished (asynchronous devices);
  // the executor calls it before reading a clock.
  virtual void synchronize() {}

  // Whether tensors of `dtype` may live here: empty() refuses the others with an
  // Error "[<name>] ...". By default the 16-bit formats are refused; a backend that
  // runs them (the metering backend, LowPrecisionCpuBackend) says so.
  virtual bool supports(DType dtype) const { return !is_16bit(dtype); }
  // dst = src converted element by element to dst's dtype (shapes equal). The default
  // goes through host copies (download, convert, upload); backends may do better.
  virtual void convert(const Tensor& src, Tensor& dst);

  MemoryMeter& meter() { return meter_; }
  const MemoryMeter& meter() const { return meter_; }

  // Metered allocation; contents are unspecified.
  Tensor empty(const TensorMeta& meta, MemoryCategory category);
  Tensor zeros(const TensorMeta& meta, MemoryCategory category);
  // Called by Storage's destructor only.
  void release(void* data, std::size_t bytes, MemoryCategory category);

  // ---- transfers and copies ----
  virtual void upload(const HostArray& src, Tensor& dst) = 0;
  virtual HostArray download(const Tensor& src) = 0;
  virtual void fill(Tensor& dst, double value) = 0;
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  // dst[to] (+)= src[from], element by element over from.shape (== to.shape).
  virtual void copy_strided(const Tensor& src, const StridedView& from, Tensor& dst,
                            const StridedView& to, bool accumulate) = 0;

  // ---- elementwise ----
  // y = f(x); param is the exponent of pow and the factor of scale.
  virtual void unary(UnaryKind kind, double param, const Tensor& x, Tensor& y) = 0;
  // gx = gy * f'(x), reading x or y = f(x) as the kind needs.
  virtual void unary_backward(UnaryKind kind, double param, const Tensor& x, const Tensor& y,
                              const Tensor& gy, Tensor& gx) = 0;
  // out = a (op) b with NumPy broadcasting; out may alias a when shapes agree.
  virtual void binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // g = gy * d(a op b)/d(input `which`), at the broadcast (output) shape.
  virtual void binary_backward(BinaryKind kind, int which, const Tensor& a, const Tensor& b,
                               const Tensor& gy, Tensor& g) = 0;
  // out = sum of x over the axes where out (right-aligned) has extent 1 or is absent.
  virtual void sum_to_shape(const Tensor& x, Tensor& out) = 0;
  // out = scale * x broadcast to out's shape.
  virtual void broadcast_to(const Tensor& x, double scale, Tensor& out) = 0;
  virtual void accumulate(const Tensor& src, Tensor& dst) = 0;  // dst += src
  virtual void axpy(double alpha, const Tensor& x, Tensor& y) = 0;  // y += alpha * x

  // ---- reductions over the axes marked true; out holds the kept axes in order ----
  virtual void reduce(ReduceKind kind, const Tensor& x, const std::vector<bool>& axes, Tensor& out) = 0;
  // gx = gy routed to the first maximal element of each reduced group.
  virtual void reduce_max_backward(const Tensor& x, const Tensor& out, const Tensor& gy,
                                   const std::vector<bool>& axes, Tensor& gx) = 0;

  // ---- linear algebra ----
  virtual void gemm(const GemmArgs& args) = 0;

  // ---- neural-network kernels (rows = all leading axes, features = last axis) ----
  virtual void softmax(const Tensor& x, bool log, Tensor& y) = 0;
  virtual void softmax_backward(const Tensor& y, const Tensor& gy, bool log, Tensor& gx) = 0;
  // out = mean over rows of -log_softmax(logits)[row, label]; logits (N, C), labels i32 (N).
  virtual void cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& out) = 0;
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& labels,
                                      const Tensor& gy, Tensor& glogits) = 0;
  // out = mean((a - b)^2); g = sign * 2 (a - b) gy / numel.
  virtual void mse(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  virtual void mse_backward(const Tensor& a, const Tensor& b, const Tensor& gy, double sign, Tensor& g) = 0;
  virtual void layernorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y) = 0;
  // Any of gx, ggamma, gbeta may be null (not needed).
  virtual void layernorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps,
                                  Tensor* gx, Tensor* ggamma, Tensor* gbeta) = 0;
  // Keeps each element with probability 1 - p, scaled by 1/(1-p); the mask is a
  // Philox draw keyed by (seed, key, element index), so it replays bit for bit.
  // The vjp is this kernel on the output gradient with the same key (same mask, same scale).
  virtual void dropout(const Tensor& x, double p, std::uint64_t seed, std::uint64_t key, Tensor& y) = 0;
  // y = min(max(x, lo), hi); gx = gy where lo < x < hi, else 0 (PyTorch's hardtanh/ReLU6
  // convention: a value sitting on a bound passes no gradient, like relu at 0).
  virtual void clamp(const Tensor& x, double lo, double hi, Tensor& y) = 0;
  virtual void clamp_backward(const Tensor& x, double lo, double hi, const Tensor& gy, Tensor& gx) = 0;
  // table (V, D), ids i32 (...), out (..., D); ids out of range are an error.
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& out) = 0;
  virtual void embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) = 0;
  // col (C*R*S, Ho*Wo) of image `image` of x; col2im adds col back into gx's image.
  virtual void im2col(const Tensor& x, std::int64_t image, const Conv2dGeometry& g, Tensor& col) = 0;
  virtual void col2im(const Tensor& col, std::int64_t image, const Conv2dGeometry& g, Tensor& gx) = 0;
  virtual void pool2d(PoolKind kind, const Pool2dGeometry& g, const Tensor& x, Tensor& y) = 0;
  virtual void pool2d_backward(PoolKind kind, const Pool2dGeometry& g, const Tensor& x, const Tensor& y,
                               const Tensor& gy, Tensor& gx) = 0;
  // x (N, C, H, W) -> y (N, C, H*scale, W*scale)
  virtual void upsample_nearest(const Tensor& x, std::int64_t scale, Tensor& y) = 0;
  virtual void upsample_nearest_backward(const Tensor& gy, std::int64_t scale, Tensor& gx) = 0;
  // Training-mode batch normalisation over N (and H, W) per channel; x (N, C) or (N, C, H, W).
  virtual void batchnorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y) = 0;
  virtual void batchnorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps,
                                  Tensor* gx, Tensor* ggamma, Tensor* gbeta) = 0;
  // running = (1 - momentum) * running + momentum * batch statistic (unbiased variance).
  virtual void batchnorm_update_running(const Tensor& x, double momentum, Tensor& running_mean,
                                        Tensor& running_var) = 0;
  // Fused attention (ops/attention.cpp, kernel_math/attention.hpp): q, k, v (B, H, T, D);
  // out (B, H, T, D + 2) packed: softmax(scale q k^T [+ causal mask]) v, then the row's
  // log-sum-exp as hi + lo. `workspace` holds B*H*attention_forward_scratch(D) (vjp:
  // attention_backward_scratch) elements of the compute type (f64 for f64, else f32).
  // The vjp reads q, k, v, out and gout's first D columns; gq, gk, gv may be null.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale, Tensor& out,
                         Tensor& workspace) = 0;
  virtual void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& gout, bool causal, double scale, Tensor* gq, Tensor* gk, Tensor* gv,
                                  Tensor& workspace) = 0;

 protected:
  virtual void* raw_allocate(std::size_t bytes) = 0;
  virtual void raw_free(void* data, std::size_t bytes) = 0;
  // How a Storage that outlives this backend returns its bytes (see BackendLife).
  void set_orphan_free(void (*free_orphan)(void*, std::size_t)) { life_->free_orphan = free_orphan; }

 private:
  MemoryMeter meter_;
  std::shared_ptr<BackendLife> life_ = std::make_shared<BackendLife>();
};

// Every kernel of the interface above, declared as an override. A backend that runs
// all of them (CpuBackend, CudaBackend, LowPrecisionCpuBackend) writes
// REMAT_BACKEND_KERNEL_OVERRIDES in its class body, so a new kernel is declared here
// once and each backend only defines it.
#define REMAT_BACKEND_KERNEL_OVERRIDES \
  void upload(const HostArray& src, Tensor& dst) override; \
  HostArray download(const Tensor& src) override; \
  void fill(Tensor& dst, double value) override; \
  void copy(const Tensor& src, Tensor& dst) override; \
  void copy_strided(const Tensor& src, const StridedView& from, Tensor& dst, const StridedView& to, bool accumulate) override; \
  void unary(UnaryKind kind, double param, const Tensor& x, Tensor& y) override; \
  void unary_backward(UnaryKind kind, double param, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx) override; \
  void binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& out) override; \
  void binary_backward(BinaryKind kind, int which, const Tensor& a, const Tensor& b, const Tensor& gy, Tensor& g) override; \
  void sum_to_shape(const Tensor& x, Tensor& out) override; \
  void broadcast_to(const Tensor& x, double scale, Tensor& out) override; \
  void accumulate(const Tensor& src, Tensor& dst) override; \
  void axpy(double alpha, const Tensor& x, Tensor& y) override; \
  void reduce(ReduceKind kind, const Tensor& x, const std::vector<bool>& axes, Tensor& out) override; \
  void reduce_max_backward(const Tensor& x, const Tensor& out, const Tensor& gy, const std::vector<bool>& axes, Tensor& gx) override; \
  void gemm(const GemmArgs& args) override; \
  void softmax(const Tensor& x, bool log, Tensor& y) override; \
  void softmax_backward(const Tensor& y, const Tensor& gy, bool log, Tensor& gx) override; \
  void cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& out) override; \
  void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& gy, Tensor& glogits) override; \
  void mse(const Tensor& a, const Tensor& b, Tensor& out) override; \
  void mse_backward(const Tensor& a, const Tensor& b, const Tensor& gy, double sign, Tensor& g) override; \
  void layernorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y) override; \
  void layernorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps, Tensor* gx, Tensor* ggamma, Tensor* gbeta) override; \
  void dropout(const Tensor& x, double p, std::uint64_t seed, std::uint64_t key, Tensor& y) override; \
  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override; \
  void embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) override; \
  void clamp(const Tensor& x, double lo, double hi, Tensor& y) override; \
  void clamp_backward(const Tensor& x, double lo, double hi, const Tensor& gy, Tensor& gx) override; \
  void im2col(const Tensor& x, std::int64_t image, const Conv2dGeometry& g, Tensor& col) override; \
  void col2im(const Tensor& col, std::int64_t image, const Conv2dGeometry& g, Tensor& gx) override; \
  void pool2d(PoolKind kind, const Pool2dGeometry& g, const Tensor& x, Tensor& y) override; \
  void pool2d_backward(PoolKind kind, const Pool2dGeometry& g, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx) override; \
  void upsample_nearest(const Tensor& x, std::int64_t scale, Tensor& y) override; \
  void upsample_nearest_backward(const Tensor& gy, std::int64_t scale, Tensor& gx) override; \
  void batchnorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y) override; \
  void batchnorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps, Tensor* gx, Tensor* ggamma, Tensor* gbeta) override; \
  void batchnorm_update_running(const Tensor& x, double momentum, Tensor& running_mean, Tensor& running_var) override; \
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale, Tensor& out, Tensor& workspace) override; \
  void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& gout, bool causal, double scale, Tensor* gq, Tensor* gk, Tensor* gv, Tensor& workspace) override;

// Picks an implementation by dtype: f(float{}) or f(double{}); i32 is refused.
template <class F>
decltype(auto) dispatch_floating(DType dtype, const char* source, F&& f) {
  switch (dtype) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    default: throw Error(std::string("[") + source + "] expects f32 or f64, got " + dtype_name(dtype));
  }
}

}  // namespace remat
