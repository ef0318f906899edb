// Contract: LowPrecisionCpuBackend, the CPU backend for models that store bf16 or
// f16 tensors. 16-bit tensors are storage only: 2 bytes per element in memory and in
// the meter (the logical bytes a device running them natively would hold). Each
// kernel runs on an inner CpuBackend in f32: every 16-bit argument is widened into
// an f32 staging copy, the f32 kernel runs (so sums accumulate in f32), and every
// output is narrowed back, rounding to nearest even. f32, f64 and i32 arguments pass
// through untouched, so an all-f32 model runs exactly as on CpuBackend.
// Staging copies live on the inner backend's own meter, never on this one: they are
// the emulation's cost, not the model's, and planned peaks (metering backend) still
// equal measured ones. Results are deterministic like CpuBackend's.
#pragma once

#include "autodiff/cpu/cpu_backend.hpp"

namespace remat {

class LowPrecisionCpuBackend final : public Backend {
 public:
  LowPrecisionCpuBackend();
  ~LowPrecisionCpuBackend() override;
  std::string name() const override { return "cpu"; }
  bool supports(DType) const override { return true; }
  // The staging meter: f32 copies of 16-bit arguments, live only during a kernel.
  const MemoryMeter& staging_meter() const { return inner_.meter(); }

  void convert(const Tensor& src, Tensor& dst) override;
  void upload(const HostArray& src, Tensor& dst) override;
  HostArray download(const Tensor& src) override;
  void fill(Tensor& dst, double value) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void copy_strided(const Tensor& src, const StridedView& from, Tensor& dst, const StridedView& to,
                    bool accumulate) override;
  void unary(UnaryKind kind, double param, const Tensor& x, Tensor& y) override;
  void unary_backward(UnaryKind kind, double param, const Tensor& x, const Tensor& y, const Tensor& gy,
                      Tensor& gx) override;
  void binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& out) override;
  void binary_backward(BinaryKind kind, int which, const Tensor& a, const Tensor& b, const Tensor& gy,
                       Tensor& g) override;
  void sum_to_shape(const Tensor& x, Tensor& out) override;
  void broadcast_to(const Tensor& x, double scale, Tensor& out) override;
  void accumulate(const Tensor& src, Tensor& dst) override;
  void axpy(double alpha, const Tensor& x, Tensor& y) override;
  void reduce(ReduceKind kind, const Tensor& x, const std::vector<bool>& axes, Tensor& out) override;
  void reduce_max_backward(const Tensor& x, const Tensor& out, const Tensor& gy, const std::vector<bool>& axes,
                           Tensor& gx) override;
  void gemm(const GemmArgs& args) override;
  void softmax(const Tensor& x, bool log, Tensor& y) override;
  void softmax_backward(const Tensor& y, const Tensor& gy, bool log, Tensor& gx) override;
  void cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& out) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& gy, Tensor& glogits) override;
  void mse(const Tensor& a, const Tensor& b, Tensor& out) override;
  void mse_backward(const Tensor& a, const Tensor& b, const Tensor& gy, double sign, Tensor& g) override;
  void layernorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y) override;
  void layernorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps, Tensor* gx,
                          Tensor* ggamma, Tensor* gbeta) override;
  void dropout(const Tensor& x, double p, std::uint64_t seed, std::uint64_t key, Tensor& y) override;
  void clamp(const Tensor& x, double lo, double hi, Tensor& y) override;
  void clamp_backward(const Tensor& x, double lo, double hi, const Tensor& gy, Tensor& gx) override;
  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override;
  void embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) override;
  void im2col(const Tensor& x, std::int64_t image, const Conv2dGeometry& g, Tensor& col) override;
  void col2im(const Tensor& col, std::int64_t image, const Conv2dGeometry& g, Tensor& gx) override;
  void pool2d(PoolKind kind, const Pool2dGeometry& g, const Tensor& x, Tensor& y) override;
  void pool2d_backward(PoolKind kind, const Pool2dGeometry& g, const Tensor& x, const Tensor& y, const Tensor& gy,
                       Tensor& gx) override;
  void upsample_nearest(const Tensor& x, std::int64_t scale, Tensor& y) override;
  void upsample_nearest_backward(const Tensor& gy, std::int64_t scale, Tensor& gx) override;
  void batchnorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y) override;
  void batchnorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps, Tensor* gx,
                          Tensor* ggamma, Tensor* gbeta) override;
  void batchnorm_update_running(const Tensor& x, double momentum, Tensor& running_mean,
                                Tensor& running_var) override;

 protected:
  void* raw_allocate(std::size_t bytes) override;
  void raw_free(void* data, std::size_t bytes) override;

 private:
  CpuBackend inner_;
};

}  // namespace remat
