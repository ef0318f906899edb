// Contract: the CUDA backend's entry points (cuda_backend.hpp), its lifetime
// (stream, tensor pool, cuBLAS handle and workspace, scratch), memory, host
// transfers, fills and copies, and gemm through cuBLAS. The other kernels live in
// cuda_elementwise.cu and cuda_nn.cu; cuda_internal.cuh states the rules they share.
//  - Memory: tensor bytes come from a pool owned by the backend
//    (cudaMallocFromPoolAsync / cudaFreeAsync on the backend's stream). A plain
//    cudaFree synchronises the whole device and every step frees hundreds of
//    tensors, so the pool keeps released blocks (release threshold: never) and
//    hands them out again in stream order. Logical bytes are metered by
//    Backend::empty as on every backend; the pool's reservation, which is what
//    the driver sees, is reported by cuda_memory_stats(). Out of memory: the pool
//    is trimmed and the allocation retried once, then an Error
//    "[cuda] out of memory: could not allocate N bytes (...)".
//  - Transfers: upload and download copy on the backend's stream and wait for it,
//    so a HostArray can be reused or read as soon as they return.
//  - gemm: row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so
//    cuBLAS (opened on first use, see cuda_blas.cuh) is called with the operands
//    swapped and m, n exchanged. The handle uses CUBLAS_DEFAULT_MATH (no TF32:
//    f32 products are full f32), no atomics, and a fixed workspace set after the
//    stream, which is what makes cuBLAS results reproducible run to run on one
//    GPU model.
//  - Devices: the constructor makes its device current; use a backend from the
//    host thread that made it (several devices from one thread: not supported).
#include "gpu/cuda_internal.cuh"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>

namespace remat {

namespace cuda {

void throw_cuda_error(cudaError_t error, const char* call) {
  throw Error(std::string("[cuda] ") + call + " failed: " + cudaGetErrorString(error) + " (" +
              cudaGetErrorName(error) + ")");
}

void throw_cublas_error(cublasStatus_t status, const char* call) {
  throw Error(std::string("[cuda] ") + call + " failed: " + blas_api().status_string(status));
}

void throw_dtype_error(const char* source, DType dtype) {
  throw Error(std::string("[") + source + "] expects f32 or f64, got " + dtype_name(dtype));
}

void check_launch(const char* kernel) {
  cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess)
    throw Error(std::string("[cuda] kernel ") + kernel + " could not be launched: " + cudaGetErrorString(error));
}

}  // namespace cuda

using cuda::check_launch;
using cuda::launch_for_each;

// ---- entry points ----

bool cuda_built() { return true; }

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the (non-sticky) error: no driver or no device
    return 0;
  }
  return count;
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  const int count = cuda_device_count();
  if (count == 0) throw Error("[cuda] no CUDA device is present on this machine; use --device cpu");
  if (device < 0 || device >= count)
    throw Error("[cuda] device " + std::to_string(device) + " does not exist: this machine has " +
                std::to_string(count) + " CUDA device(s), numbered from 0");
  return std::make_unique<CudaBackend>(device);
}

namespace {
CudaBackend& as_cuda(Backend& backend, const char* what) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (!cuda) throw Error(std::string("[cuda] ") + what + " needs a CUDA backend, got '" + backend.name() + "'");
  return *cuda;
}
}  // namespace

CudaMemoryStats cuda_memory_stats(Backend& backend) { return as_cuda(backend, "cuda_memory_stats").memory_stats(); }
void cuda_reset_peak_memory(Backend& backend) { as_cuda(backend, "cuda_reset_peak_memory").reset_peak_memory(); }
void cuda_synchronize(Backend& backend) { as_cuda(backend, "cuda_synchronize").synchronize(); }

std::string cuda_device_description(int device) {
  const int count = cuda_device_count();
  if (count == 0) return "none (no CUDA device is present on this machine)";
  if (device < 0 || device >= count) return "none (device " + std::to_string(device) + " does not exist)";
  cudaDeviceProp p{};
  REMAT_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  char text[512];
  std::snprintf(text, sizeof text, "%s (sm_%d%d, %d SMs, %.0f GiB)", p.name, p.major, p.minor, p.multiProcessorCount,
                static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

// ---- lifetime ----

CudaBackend::CudaBackend(int device) : device_(device) {
  try {
    REMAT_CUDA_CHECK(cudaSetDevice(device_));
    REMAT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));

    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.handleTypes = cudaMemHandleTypeNone;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device_;
    REMAT_CUDA_CHECK(cudaMemPoolCreate(&pool_, &props));
    std::uint64_t keep_everything = std::numeric_limits<std::uint64_t>::max();
    REMAT_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep_everything));

    const cuda::BlasApi& blas = cuda::blas_api();
    cuda::check(blas.create(&blas_), "cublasCreate");
    cuda::check(blas.set_stream(blas_, stream_), "cublasSetStream");  // resets the workspace: set ours after it
    blas_workspace_bytes_ = 32u << 20;                                 // cuBLAS's recommendation for Hopper
    REMAT_CUDA_CHECK(cudaMalloc(&blas_workspace_, blas_workspace_bytes_));
    cuda::check(blas.set_workspace(blas_, blas_workspace_, blas_workspace_bytes_), "cublasSetWorkspace");
    cuda::check(blas.set_math_mode(blas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    cuda::check(blas.set_atomics_mode(blas_, CUBLAS_ATOMICS_NOT_ALLOWED), "cublasSetAtomicsMode");
    cuda::check(blas.set_pointer_mode(blas_, CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");

    const std::size_t partial_bytes = partial_capacity * sizeof(double);
    const std::size_t row_stat_bytes = row_stat_capacity * 2 * sizeof(double);
    scratch_bytes_ = partial_bytes + row_stat_bytes + 2 * sizeof(long long);
    REMAT_CUDA_CHECK(cudaMalloc(&scratch_, scratch_bytes_));
    partials_ = static_cast<double*>(scratch_);
    row_stats_ = static_cast<char*>(scratch_) + partial_bytes;
    flag_ = reinterpret_cast<long long*>(static_cast<char*>(scratch_) + partial_bytes + row_stat_bytes);
    REMAT_CUDA_CHECK(cudaMallocHost(&flag_host_, 2 * sizeof(long long)));
  } catch (...) {
    release();
    throw;
  }
}

CudaBackend::~CudaBackend() { release(); }

void CudaBackend::release() noexcept {
  // Nothing here may throw: report and carry on.
  auto warn = [](cudaError_t e, const char* what) {
    if (e != cudaSuccess) std::fprintf(stderr, "[cuda] %s failed during shutdown: %s\n", what, cudaGetErrorString(e));
  };
  cudaSetDevice(device_);
  if (stream_) warn(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  if (blas_) cuda::blas_api().destroy(blas_);  // blas_ is set only once cuBLAS is loaded
  if (blas_workspace_) warn(cudaFree(blas_workspace_), "cudaFree(cuBLAS workspace)");
  if (scratch_) warn(cudaFree(scratch_), "cudaFree(scratch)");
  if (flag_host_) warn(cudaFreeHost(flag_host_), "cudaFreeHost");
  // Blocks still held by live tensors keep the pool alive until they are freed.
  if (pool_) warn(cudaMemPoolDestroy(pool_), "cudaMemPoolDestroy");
  if (stream_) warn(cudaStreamDestroy(stream_), "cudaStreamDestroy");
  blas_ = nullptr;
  blas_workspace_ = scratch_ = nullptr;
  flag_host_ = nullptr;
  pool_ = nullptr;
  stream_ = nullptr;
}

void CudaBackend::synchronize() { REMAT_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

CudaMemoryStats CudaBackend::memory_stats() const {
  CudaMemoryStats s;
  s.allocated_bytes = allocated_bytes_;
  s.allocated_peak_bytes = allocated_peak_bytes_;
  std::uint64_t reserved = 0, reserved_high = 0;
  REMAT_CUDA_CHECK(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemCurrent, &reserved));
  REMAT_CUDA_CHECK(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemHigh, &reserved_high));
  s.reserved_bytes = reserved;
  s.reserved_peak_bytes = reserved_high;
  s.fixed_bytes = blas_workspace_bytes_ + scratch_bytes_;
  return s;
}

void CudaBackend::reset_peak_memory() {
  allocated_peak_bytes_ = allocated_bytes_;
  std::uint64_t zero = 0;  // the only value the driver accepts: restart from the current reservation
  REMAT_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReservedMemHigh, &zero));
}

// ---- memory ----

void* CudaBackend::raw_allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  cudaError_t error = cudaMallocFromPoolAsync(&p, bytes, pool_, stream_);
  if (error == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    // Give cached blocks back to the driver (they may be fragmented) and retry once.
    REMAT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    REMAT_CUDA_CHECK(cudaMemPoolTrimTo(pool_, 0));
    error = cudaMallocFromPoolAsync(&p, bytes, pool_, stream_);
  }
  if (error != cudaSuccess) {
    cudaGetLastError();
    std::size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) cudaGetLastError();
    // A request larger than the device may be refused as an invalid value: it is out of memory too.
    if (error == cudaErrorMemoryAllocation || (total_bytes > 0 && bytes > total_bytes))
      throw Error("[cuda] out of memory: could not allocate " + std::to_string(bytes) + " bytes on device " +
                  std::to_string(device_) + " (" + std::to_string(meter().budgeted_current()) +
                  " budgeted bytes live, " + std::to_string(allocated_bytes_) + " tensor bytes live, " +
                  std::to_string(free_bytes) + " of " + std::to_string(total_bytes) +
                  " device bytes free); lower the budget or the batch");
    cuda::throw_cuda_error(error, "cudaMallocFromPoolAsync");
  }
  allocated_bytes_ += bytes;
  if (allocated_bytes_ > allocated_peak_bytes_) allocated_peak_bytes_ = allocated_bytes_;
  return p;
}

void CudaBackend::raw_free(void* data, std::size_t bytes) {
  if (!data) return;
  allocated_bytes_ -= bytes;
  // Called from Storage's destructor: it must not throw.
  cudaError_t error = cudaFreeAsync(data, stream_);
  if (error != cudaSuccess) std::fprintf(stderr, "[cuda] cudaFreeAsync failed: %s\n", cudaGetErrorString(error));
}

// ---- transfers and copies ----

void CudaBackend::upload(const HostArray& src, Tensor& dst) {
  if (src.bytes.size() != dst.bytes())
    throw Error("[cuda upload] size mismatch: host array of " + std::to_string(src.bytes.size()) +
                " bytes, tensor of " + std::to_string(dst.bytes()));
  if (!dst.bytes()) return;
  REMAT_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.bytes.data(), dst.bytes(), cudaMemcpyHostToDevice, stream_));
  REMAT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

HostArray CudaBackend::download(const Tensor& src) {
  HostArray h(src.meta());
  if (!src.bytes()) return h;
  REMAT_CUDA_CHECK(cudaMemcpyAsync(h.bytes.data(), src.raw(), src.bytes(), cudaMemcpyDeviceToHost, stream_));
  REMAT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return h;
}

void CudaBackend::fill(Tensor& dst, double value) {
  const std::int64_t n = dst.numel();
  if (n == 0) return;
  if (value == 0.0 && !std::signbit(value)) {  // all-zero bits in every dtype
    REMAT_CUDA_CHECK(cudaMemsetAsync(dst.raw(), 0, dst.bytes(), stream_));
    return;
  }
  switch (dst.dtype()) {
    case DType::f32: {
      float* p = dst.data<float>();
      const float v = static_cast<float>(value);
      launch_for_each(stream_, n, "fill", [=] __device__(std::int64_t i) { p[i] = v; });
      break;
    }
    case DType::f64: {
      double* p = dst.data<double>();
      launch_for_each(stream_, n, "fill", [=] __device__(std::int64_t i) { p[i] = value; });
      break;
    }
    case DType::i32: {
      std::int32_t* p = dst.data<std::int32_t>();
      const std::int32_t v = static_cast<std::int32_t>(value);
      launch_for_each(stream_, n, "fill", [=] __device__(std::int64_t i) { p[i] = v; });
      break;
    }
  }
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  if (src.bytes() != dst.bytes()) throw Error("[cuda copy] size mismatch");
  if (src.raw() != dst.raw() && src.bytes())
    REMAT_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), src.bytes(), cudaMemcpyDeviceToDevice, stream_));
}

namespace {
cuda::IndexMap strided_map(const StridedView& from, const StridedView& to) {
  if (from.shape.size() > static_cast<std::size_t>(cuda::max_rank))
    throw Error("[cuda copy_strided] rank " + std::to_string(from.shape.size()) + " exceeds the CUDA backend's " +
                std::to_string(cuda::max_rank));
  cuda::IndexMap m;
  m.rank = static_cast<int>(from.shape.size());
  for (int d = 0; d < m.rank; ++d) {
    m.extent[d] = from.shape[static_cast<std::size_t>(d)];
    m.stride0[d] = from.strides[static_cast<std::size_t>(d)];
    m.stride1[d] = to.strides[static_cast<std::size_t>(d)];
  }
  return m;
}
}  // namespace

namespace {
template <class T>
void copy_strided_typed(cudaStream_t stream, const T* s, T* d, const cuda::IndexMap& map, std::int64_t n,
                        bool accumulate) {
  // Each destination element is written by one thread (the views do not overlap).
  if (accumulate)
    launch_for_each(stream, n, "copy_strided", [=] __device__(std::int64_t i) {
      std::int64_t ps, pd;
      map.offsets(i, ps, pd);
      d[pd] += s[ps];
    });
  else
    launch_for_each(stream, n, "copy_strided", [=] __device__(std::int64_t i) {
      std::int64_t ps, pd;
      map.offsets(i, ps, pd);
      d[pd] = s[ps];
    });
}
}  // namespace

void CudaBackend::copy_strided(const Tensor& src, const StridedView& from, Tensor& dst, const StridedView& to,
                               bool accumulate) {
  const cuda::IndexMap map = strided_map(from, to);
  const std::int64_t n = element_count(from.shape);
  if (src.dtype() == DType::i32) {
    if (accumulate) throw Error("[cuda copy_strided] cannot accumulate integers");
    copy_strided_typed(stream_, src.data<std::int32_t>() + from.offset, dst.data<std::int32_t>() + to.offset, map, n,
                       false);
    return;
  }
  REMAT_CUDA_FLOATING(src.dtype(), "copy_strided",
                      copy_strided_typed(stream_, src.data<T>() + from.offset, dst.data<T>() + to.offset, map, n,
                                         accumulate));
}

// ---- data checks on the device ----

namespace {
// One block: each thread finds its first bad position (strided), then the block
// takes the minimum, so the first bad element in index order is reported.
__global__ void __launch_bounds__(1024) first_out_of_range_kernel(const std::int32_t* ids, std::int64_t n, std::int64_t limit,
                                          long long* result) {
  __shared__ long long shared[32];
  long long first = LLONG_MAX;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x)
    if (ids[i] < 0 || ids[i] >= limit) {
      first = i;
      break;
    }
  first = cuda::block_reduce(first, cuda::MinIndex{}, LLONG_MAX, shared);
  if (threadIdx.x == 0) {
    result[0] = first == LLONG_MAX ? -1 : first;
    result[1] = first == LLONG_MAX ? 0 : ids[first];
  }
}
}  // namespace

std::int64_t CudaBackend::first_out_of_range(const Tensor& ids, std::int64_t limit, std::int64_t& value) {
  const std::int64_t n = ids.numel();
  if (n == 0) return -1;
  first_out_of_range_kernel<<<1, 1024, 0, stream_>>>(ids.data<std::int32_t>(), n, limit, flag_);
  check_launch("first_out_of_range");
  REMAT_CUDA_CHECK(cudaMemcpyAsync(flag_host_, flag_, 2 * sizeof(long long), cudaMemcpyDeviceToHost, stream_));
  REMAT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  value = flag_host_[1];
  return flag_host_[0];
}

// ---- gemm ----

namespace {

// C = beta C over an m x n row-major window (BLAS semantics of a product with k = 0).
template <class T>
void scale_matrix(cudaStream_t stream, T* c, std::int64_t rows, std::int64_t cols, std::int64_t ldc, T beta) {
  launch_for_each(stream, rows * cols, "gemm(k=0)", [=] __device__(std::int64_t i) {
    T& v = c[(i / cols) * ldc + i % cols];
    v = beta == T(0) ? T(0) : beta * v;
  });
}

// The typed cuBLAS calls; arguments already in cuBLAS's column-major order.
struct BlasCall {
  cublasOperation_t op_a, op_b;
  int m, n, k, lda, ldb, ldc, batch;
  long long stride_a, stride_b, stride_c;
};
// cublas{S,D}gemm for T = float, double (strided-batched when batch > 1).
template <class T>
void blas_gemm(cublasHandle_t h, const BlasCall& c, T alpha, const T* a, const T* b, T beta, T* out) {
  const cuda::BlasApi& blas = cuda::blas_api();
  constexpr bool single = std::is_same_v<T, float>;
  if (c.batch == 1) {
    const auto gemm = [&] {
      if constexpr (single) return blas.sgemm; else return blas.dgemm;
    }();
    cuda::check(gemm(h, c.op_a, c.op_b, c.m, c.n, c.k, &alpha, a, c.lda, b, c.ldb, &beta, out, c.ldc),
                single ? "cublasSgemm" : "cublasDgemm");
    return;
  }
  const auto batched = [&] {
    if constexpr (single) return blas.sgemm_strided_batched; else return blas.dgemm_strided_batched;
  }();
  cuda::check(batched(h, c.op_a, c.op_b, c.m, c.n, c.k, &alpha, a, c.lda, c.stride_a, b, c.ldb, c.stride_b, &beta, out,
                      c.ldc, c.stride_c, c.batch),
              single ? "cublasSgemmStridedBatched" : "cublasDgemmStridedBatched");
}

}  // namespace

void CudaBackend::gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  constexpr std::int64_t int_max = std::numeric_limits<int>::max();
  for (std::int64_t v : {g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.batch})
    if (v > int_max) throw Error("[cuda gemm] dimension " + std::to_string(v) + " exceeds cuBLAS's 32-bit range");
  // Column-major view: C^T (n x m) = op(B)^T (n x k) @ op(A)^T (k x m), so cuBLAS's
  // A is our B and its B is our A; a row-major X is the column-major X^T.
  BlasCall call;
  call.op_a = g.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  call.op_b = g.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  call.m = static_cast<int>(g.n);
  call.n = static_cast<int>(g.m);
  call.k = static_cast<int>(g.k);
  call.lda = static_cast<int>(std::max<std::int64_t>(g.ldb, 1));
  call.ldb = static_cast<int>(std::max<std::int64_t>(g.lda, 1));
  call.ldc = static_cast<int>(std::max<std::int64_t>(g.ldc, 1));
  call.batch = static_cast<int>(g.batch);
  call.stride_a = g.b_batch_stride;
  call.stride_b = g.a_batch_stride;
  call.stride_c = g.c_batch_stride;
  REMAT_CUDA_FLOATING(g.c->dtype(), "gemm", {
    T* c = g.c->data<T>() + g.c_offset;
    if (g.k == 0) {
      for (std::int64_t bi = 0; bi < g.batch; ++bi)
        scale_matrix(stream_, c + bi * g.c_batch_stride, g.m, g.n, g.ldc, static_cast<T>(g.beta));
    } else {
      blas_gemm(blas_, call, static_cast<T>(g.alpha), g.b->data<T>() + g.b_offset, g.a->data<T>() + g.a_offset,
                static_cast<T>(g.beta), c);
    }
  });
}

}  // namespace remat
