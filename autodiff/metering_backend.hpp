// Contract: the metering-only backend. It hands out Storage without data and
// every kernel does nothing, so running the Executor on it costs microseconds
// and meters exactly the allocations a real run makes: it is the planners'
// simulator, and the reason measured and predicted peaks agree to the byte.
#pragma once

#include "autodiff/backend.hpp"

namespace remat {

class MeteringBackend final : public Backend {
 public:
  std::string name() const override { return "metering"; }
  bool computes() const override { return false; }
  bool supports(DType) const override { return true; }  // shapes and bytes only
  void convert(const Tensor&, Tensor&) override {}

  void upload(const HostArray&, Tensor&) override {}
  HostArray download(const Tensor& src) override { return HostArray(src.meta()); }
  void fill(Tensor&, double) override {}
  void copy(const Tensor&, Tensor&) override {}
  void copy_strided(const Tensor&, const StridedView&, Tensor&, const StridedView&, bool) override {}
  void unary(UnaryKind, double, const Tensor&, Tensor&) override {}
  void unary_backward(UnaryKind, double, const Tensor&, const Tensor&, const Tensor&, Tensor&) override {}
  void binary(BinaryKind, const Tensor&, const Tensor&, Tensor&) override {}
  void binary_backward(BinaryKind, int, const Tensor&, const Tensor&, const Tensor&, Tensor&) override {}
  void sum_to_shape(const Tensor&, Tensor&) override {}
  void broadcast_to(const Tensor&, double, Tensor&) override {}
  void accumulate(const Tensor&, Tensor&) override {}
  void axpy(double, const Tensor&, Tensor&) override {}
  void reduce(ReduceKind, const Tensor&, const std::vector<bool>&, Tensor&) override {}
  void reduce_max_backward(const Tensor&, const Tensor&, const Tensor&, const std::vector<bool>&, Tensor&) override {}
  void gemm(const GemmArgs&) override {}
  void softmax(const Tensor&, bool, Tensor&) override {}
  void softmax_backward(const Tensor&, const Tensor&, bool, Tensor&) override {}
  void cross_entropy(const Tensor&, const Tensor&, Tensor&) override {}
  void cross_entropy_backward(const Tensor&, const Tensor&, const Tensor&, Tensor&) override {}
  void mse(const Tensor&, const Tensor&, Tensor&) override {}
  void mse_backward(const Tensor&, const Tensor&, const Tensor&, double, Tensor&) override {}
  void layernorm(const Tensor&, const Tensor&, const Tensor&, double, Tensor&) override {}
  void layernorm_backward(const Tensor&, const Tensor&, const Tensor&, double, Tensor*, Tensor*, Tensor*) override {}
  void dropout(const Tensor&, double, std::uint64_t, std::uint64_t, Tensor&) override {}
  void embedding(const Tensor&, const Tensor&, Tensor&) override {}
  void embedding_backward(const Tensor&, const Tensor&, Tensor&) override {}
  void clamp(const Tensor&, double, double, Tensor&) override {}
  void clamp_backward(const Tensor&, double, double, const Tensor&, Tensor&) override {}
  void im2col(const Tensor&, std::int64_t, const Conv2dGeometry&, Tensor&) override {}
  void col2im(const Tensor&, std::int64_t, const Conv2dGeometry&, Tensor&) override {}
  void pool2d(PoolKind, const Pool2dGeometry&, const Tensor&, Tensor&) override {}
  void pool2d_backward(PoolKind, const Pool2dGeometry&, const Tensor&, const Tensor&, const Tensor&, Tensor&) override {}
  void upsample_nearest(const Tensor&, std::int64_t, Tensor&) override {}
  void upsample_nearest_backward(const Tensor&, std::int64_t, Tensor&) override {}
  void batchnorm(const Tensor&, const Tensor&, const Tensor&, double, Tensor&) override {}
  void batchnorm_backward(const Tensor&, const Tensor&, const Tensor&, double, Tensor*, Tensor*, Tensor*) override {}
  void batchnorm_update_running(const Tensor&, double, Tensor&, Tensor&) override {}
  void attention(const Tensor&, const Tensor&, const Tensor&, bool, double, Tensor&, Tensor&) override {}
  void attention_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool, double, Tensor*,
                          Tensor*, Tensor*, Tensor&) override {}

 protected:
  void* raw_allocate(std::size_t) override { return nullptr; }
  void raw_free(void*, std::size_t) override {}
};

}  // namespace remat
