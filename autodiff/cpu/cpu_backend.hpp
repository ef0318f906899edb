// Contract: the CPU backend. Memory from the C++ heap (64-byte aligned), metered
// through Backend::empty in logical bytes. Freed blocks are kept in a per-size
// cache and reused (a training loop allocates the same sizes every step; going
// back to the OS each time costs page faults); reserved_bytes() reports what
// the cache holds from the heap, release_cached() returns it. Elementwise kernels use xtensor expressions over
// OpenMP-partitioned chunks; matrix products use CBLAS (OpenBLAS). Parallel loops
// use static partitioning and every reduction sums in a fixed order, so results
// are bitwise identical run to run for a given thread count.
// Kernels live in cpu_kernels.cpp (memory, elementwise, reductions, gemm) and
// cpu_nn_kernels.cpp (softmax, losses, normalisation, conv helpers, pooling...).
#pragma once

#include "autodiff/backend.hpp"

#include <unordered_map>
#include <vector>

namespace remat {

// Sets the threads of the OpenMP loops and of OpenBLAS (benchmarks pin both).
void set_cpu_threads(int threads);
int cpu_threads();

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  std::string name() const override { return "cpu"; }
  ~CpuBackend() override;
  std::size_t reserved_bytes() const { return reserved_bytes_; }  // live + cached heap bytes
  void release_cached();

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
  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override;
  void embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) override;
  void clamp(const Tensor& x, double lo, double hi, Tensor& y) override;
  void clamp_backward(const Tensor& x, double lo, double hi, const Tensor& gy, Tensor& gx) override;
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
  std::unordered_map<std::size_t, std::vector<void*>> cached_;  // rounded size -> free blocks
  std::size_t reserved_bytes_ = 0;
};

}  // namespace remat
