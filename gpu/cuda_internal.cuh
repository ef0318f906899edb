// Contract: the inside of the CUDA backend, shared by its translation units
// (cuda_backend.cu: memory, transfers, copies, gemm; cuda_elementwise.cu:
// elementwise maps, broadcasting and reductions; cuda_nn.cu: the neural-network
// kernels). Nothing outside gpu/ includes it: the rest of remat reaches the
// backend through gpu/cuda_backend.hpp, which has no CUDA types.
//  - One stream per backend; every kernel, copy and allocation is ordered on it,
//    so a freed block can be reused at once by the next allocation on the stream.
//  - Tensor bytes come from a stream-ordered pool (cudaMallocFromPoolAsync) and
//    are metered by Backend::empty; the pool's reservation is reported apart.
//  - Fixed resources (cuBLAS handle and workspace, a small scratch area for the
//    partial sums of deterministic reductions and for error flags) are allocated
//    once at construction: they are the backend's, like the handle, not tensors.
//  - Determinism: launch shapes depend on tensor shapes only (never on the SM
//    count); every sum is a fixed tree (warp shuffles then shared memory) or a
//    sequential loop in index order; no atomics anywhere.
// Dimension legends as in autodiff/backend.hpp.
#pragma once

#include "autodiff/kernel_math/broadcast.hpp"
#include "autodiff/kernel_math/host_device.hpp"
#include "gpu/cuda_backend.hpp"
#include "gpu/cuda_blas.cuh"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace remat::cuda {

// ---- errors: every failing CUDA or cuBLAS call becomes "[cuda] <call> failed: <reason>" ----
// (cuBLAS calls go through blas_api(), so they name their call explicitly.)
[[noreturn]] void throw_cuda_error(cudaError_t error, const char* call);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call);
inline void check(cudaError_t error, const char* call) {
  if (error != cudaSuccess) throw_cuda_error(error, call);
}
inline void check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_cublas_error(status, call);
}
#define REMAT_CUDA_CHECK(call) ::remat::cuda::check((call), #call)
// After a kernel launch: configuration errors surface here, with the kernel's name.
void check_launch(const char* kernel);

// ---- launch shapes ----
inline constexpr int block_threads = 256;
// Kernels that may run with up to 1024 threads per block (row and channel kernels)
// are declared __launch_bounds__(1024), so they never need more registers than that allows.
// Blocks for a grid-stride loop over n items: enough to fill any GPU, a function of n only.
inline unsigned grid_for(std::int64_t n, int threads = block_threads) {
  const std::int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65536 ? 65536 : blocks));
}

// Calls f(i) for every i in [0, n) with a grid-stride loop.
template <class F>
__global__ void for_each_index(std::int64_t n, F f) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
    f(i);
}
template <class F>
void launch_for_each(cudaStream_t stream, std::int64_t n, const char* name, F f) {
  if (n <= 0) return;
  for_each_index<<<grid_for(n), block_threads, 0, stream>>>(n, f);
  check_launch(name);
}

// ---- shapes passed by value to kernels ----
inline constexpr int max_rank = 8;
// An index space of up to max_rank axes and the strides of up to two operands over it.
struct IndexMap {
  int rank = 0;
  std::int64_t extent[max_rank] = {};
  std::int64_t stride0[max_rank] = {};
  std::int64_t stride1[max_rank] = {};
  // Offsets of flat index i (row-major over extent) in operands 0 and 1.
  __host__ __device__ void offsets(std::int64_t i, std::int64_t& o0, std::int64_t& o1) const {
    kernel_math::strided_offsets(i, rank, extent, stride0, stride1, o0, o1);
  }
};

// ---- deterministic block reductions ----
// Every thread of the block passes its value; every thread gets the combination of
// all of them, combined in a fixed tree (lower lanes on the left), so the result
// depends on the block size and the inputs only. blockDim.x must be a multiple of
// 32 and at most 1024; `shared` holds 32 values. Ends with a barrier.
template <class T, class Combine>
__device__ T block_reduce(T value, Combine combine, T identity, T* shared) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  for (int offset = 16; offset > 0; offset >>= 1) value = combine(value, __shfl_down_sync(0xffffffffu, value, offset));
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  const unsigned warps = blockDim.x >> 5;
  if (warp == 0) {
    value = lane < warps ? shared[lane] : identity;
    for (int offset = 16; offset > 0; offset >>= 1) value = combine(value, __shfl_down_sync(0xffffffffu, value, offset));
    if (lane == 0) shared[0] = value;
  }
  __syncthreads();
  value = shared[0];
  __syncthreads();  // shared may be reused by the caller's next reduction
  return value;
}
struct Sum {
  template <class T> __device__ T operator()(T a, T b) const { return a + b; }
};
// NaN-propagating maximum that keeps the left (earlier) operand on ties: the CPU's
// `if (v > m || isnan(v)) m = v` scanning in index order.
struct Max {
  template <class T> __device__ T operator()(T a, T b) const { return (b > a || (b != b && a == a)) ? b : a; }
};
struct MinIndex {
  __device__ long long operator()(long long a, long long b) const { return b < a ? b : a; }
};

// Threads for a kernel that owns one row of `length` elements: a power of two in
// [32, 1024], a function of the length only.
inline int row_threads(std::int64_t length) {
  int t = 32;
  while (t < 1024 && t < length) t *= 2;
  return t > 256 && length < 4096 ? 256 : t;
}

// Device math (exp, log, tanh, pow, NaN, -inf) is autodiff/kernel_math/host_device.hpp's,
// the functions the CPU kernels call too.

[[noreturn]] void throw_dtype_error(const char* source, DType dtype);

// Runs the statements with `T` = float or double after `dtype` (i32 is refused,
// naming `source`). A macro rather than a generic lambda because nvcc does not
// allow __device__ lambdas inside generic lambdas.
#define REMAT_CUDA_FLOATING(dtype, source, ...)        \
  switch (dtype) {                                     \
    case ::remat::DType::f32: {                        \
      using T = float;                                 \
      __VA_ARGS__;                                     \
    } break;                                           \
    case ::remat::DType::f64: {                        \
      using T = double;                                \
      __VA_ARGS__;                                     \
    } break;                                           \
    default: ::remat::cuda::throw_dtype_error(source, dtype); \
  }

}  // namespace remat::cuda

namespace remat {

// The CUDA backend: see the contract at the top of this file and backend.hpp for
// each kernel's contract. One instance per device; use it from one host thread.
class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda"; }

  REMAT_BACKEND_KERNEL_OVERRIDES

  // ---- beyond the Backend interface (see cuda_backend.hpp) ----
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  void synchronize() override;
  CudaMemoryStats memory_stats() const;
  void reset_peak_memory();

  // Fixed scratch (not tensor memory), in units the kernels need.
  static constexpr std::int64_t partial_capacity = 65536;  // doubles for ordered partial sums
  static constexpr std::int64_t row_stat_capacity = 16384; // rows of (mean, rstd) per layernorm tile
  double* partials() const { return partials_; }
  void* row_stats() const { return row_stats_; }
  // Finds the first element of the i32 tensor `ids` outside [0, limit), on the
  // device; returns its index (or -1) and sets `value`. Synchronises the stream.
  std::int64_t first_out_of_range(const Tensor& ids, std::int64_t limit, std::int64_t& value);

 protected:
  void* raw_allocate(std::size_t bytes) override;
  void raw_free(void* data, std::size_t bytes) override;

 private:
  void release() noexcept;  // frees whatever the constructor obtained

  int device_;
  cudaStream_t stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  void* blas_workspace_ = nullptr;
  std::size_t blas_workspace_bytes_ = 0;
  void* scratch_ = nullptr;  // partials, row statistics and the error-flag slot
  std::size_t scratch_bytes_ = 0;
  double* partials_ = nullptr;
  void* row_stats_ = nullptr;
  long long* flag_ = nullptr;       // device: {index, value} of a data error
  long long* flag_host_ = nullptr;  // pinned host copy
  std::size_t allocated_bytes_ = 0, allocated_peak_bytes_ = 0;
};

}  // namespace remat
