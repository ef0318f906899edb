// Contract: CUDA kernels for elementwise maps, NumPy broadcasting and reductions
// (see backend.hpp for each kernel's contract, cuda_internal.cuh for the rules).
//  - Maps: one thread per output element (grid-stride); each output is written by
//    exactly one thread, so `out` may alias an input of the same shape.
//  - Broadcasting: the output's flat index is decoded once into the offsets of
//    both operands (IndexMap, rank <= 8, decoded by kernel_math::strided_offsets,
//    the CPU's decoder); same-shape and bias-row operands skip it.
//  - Reductions, in a fixed order chosen from the shape only:
//      leading axes reduced (bias gradients): 32 columns per block, each summed
//        by row groups in index order, the groups' partials added in order;
//      short groups (<= 32 elements): one thread per output, in index order;
//      otherwise one block per output: strided partial sums, then a fixed tree.
//    max keeps the first maximal element on ties (contiguous chunks per thread,
//    combined left to right) and propagates NaN, as the CPU does; its backward
//    routes the gradient to the first element equal to the maximum.
#include "autodiff/kernel_math/elementwise.hpp"
#include "gpu/cuda_internal.cuh"

namespace remat {

using cuda::launch_for_each;

namespace {

// ---- unary maps: the formulas are autodiff/kernel_math/elementwise.hpp's, as on the CPU ----

using kernel_math::binary_partial;
using kernel_math::binary_value;
using kernel_math::unary_derivative;
using kernel_math::unary_value;

template <class T>
void unary_typed(cudaStream_t s, UnaryKind kind, T param, const T* x, T* y, std::int64_t n) {
  if (kind == UnaryKind::relu) {  // the hot case in MLPs: no switch per element
    launch_for_each(s, n, "relu", [=] __device__(std::int64_t i) { y[i] = x[i] > T(0) ? x[i] : T(0); });
    return;
  }
  launch_for_each(s, n, "unary", [=] __device__(std::int64_t i) { y[i] = unary_value<T>(kind, x[i], param); });
}

template <class T>
void unary_backward_typed(cudaStream_t s, UnaryKind kind, T param, const T* x, const T* y, const T* gy, T* gx,
                          std::int64_t n) {
  if (kind == UnaryKind::relu) {
    launch_for_each(s, n, "relu_backward", [=] __device__(std::int64_t i) { gx[i] = y[i] > T(0) ? gy[i] : T(0); });
    return;
  }
  launch_for_each(s, n, "unary_backward", [=] __device__(std::int64_t i) {
    gx[i] = gy[i] * unary_derivative<T>(kind, x ? x[i] : T(0), y ? y[i] : T(0), param);
  });
}

// ---- binary maps ----

// The index map of `target` with the broadcast strides of up to two operands.
cuda::IndexMap broadcast_map(const char* source, const Shape& target, const Shape* first, const Shape* second) {
  if (target.size() > static_cast<std::size_t>(cuda::max_rank))
    throw Error(std::string("[cuda ") + source + "] rank " + std::to_string(target.size()) +
                " exceeds the CUDA backend's " + std::to_string(cuda::max_rank));
  cuda::IndexMap m;
  m.rank = static_cast<int>(target.size());
  const auto s0 = first ? kernel_math::broadcast_strides(*first, target) : std::vector<std::int64_t>(target.size(), 0);
  const auto s1 = second ? kernel_math::broadcast_strides(*second, target) : std::vector<std::int64_t>(target.size(), 0);
  for (int d = 0; d < m.rank; ++d) {
    m.extent[d] = target[static_cast<std::size_t>(d)];
    m.stride0[d] = s0[static_cast<std::size_t>(d)];
    m.stride1[d] = s1[static_cast<std::size_t>(d)];
  }
  return m;
}

template <class T>
void binary_typed(cudaStream_t s, BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& out) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  const std::int64_t n = out.numel();
  const std::int64_t inner = out.shape().empty() ? 1 : out.shape().back();
  if (a.shape() == out.shape() && b.shape() == out.shape()) {
    launch_for_each(s, n, "binary", [=] __device__(std::int64_t i) { po[i] = binary_value<T>(kind, pa[i], pb[i]); });
  } else if (a.shape() == out.shape() && b.numel() == inner && !b.shape().empty() && b.shape().back() == inner) {
    // b is a row broadcast over every leading axis (a bias)
    launch_for_each(s, n, "binary(bias)",
                    [=] __device__(std::int64_t i) { po[i] = binary_value<T>(kind, pa[i], pb[i % inner]); });
  } else {
    const cuda::IndexMap map = broadcast_map("binary", out.shape(), &a.shape(), &b.shape());
    launch_for_each(s, n, "binary(broadcast)", [=] __device__(std::int64_t i) {
      std::int64_t oa, ob;
      map.offsets(i, oa, ob);
      po[i] = binary_value<T>(kind, pa[oa], pb[ob]);
    });
  }
}

template <class T>
void binary_backward_typed(cudaStream_t s, BinaryKind kind, int which, const Tensor& a, const Tensor& b,
                           const Tensor& gy, Tensor& g) {
  const T* pa = a.defined() ? a.data<T>() : nullptr;
  const T* pb = b.defined() ? b.data<T>() : nullptr;
  const T* pg = gy.data<T>();
  T* po = g.data<T>();
  const std::int64_t n = gy.numel();
  const bool a_full = !pa || a.shape() == gy.shape(), b_full = !pb || b.shape() == gy.shape();
  if (a_full && b_full) {
    launch_for_each(s, n, "binary_backward", [=] __device__(std::int64_t i) {
      po[i] = binary_partial<T>(kind, which, pa ? pa[i] : T(0), pb ? pb[i] : T(0), pg[i]);
    });
    return;
  }
  const cuda::IndexMap map =
      broadcast_map("binary_backward", gy.shape(), pa ? &a.shape() : nullptr, pb ? &b.shape() : nullptr);
  launch_for_each(s, n, "binary_backward(broadcast)", [=] __device__(std::int64_t i) {
    std::int64_t oa, ob;
    map.offsets(i, oa, ob);
    po[i] = binary_partial<T>(kind, which, pa ? pa[oa] : T(0), pb ? pb[ob] : T(0), pg[i]);
  });
}

template <class T>
void broadcast_typed(cudaStream_t s, const Tensor& x, T scale, Tensor& out) {
  const T* px = x.data<T>();
  T* po = out.data<T>();
  const cuda::IndexMap map = broadcast_map("broadcast_to", out.shape(), &x.shape(), nullptr);
  launch_for_each(s, out.numel(), "broadcast_to", [=] __device__(std::int64_t i) {
    std::int64_t ox, unused;
    map.offsets(i, ox, unused);
    po[i] = px[ox] * scale;
  });
}

template <class T>
void axpy_typed(cudaStream_t s, T alpha, bool plain_add, const T* x, T* y, std::int64_t n) {
  if (plain_add)
    launch_for_each(s, n, "accumulate", [=] __device__(std::int64_t i) { y[i] += x[i]; });
  else
    launch_for_each(s, n, "axpy", [=] __device__(std::int64_t i) { y[i] += alpha * x[i]; });
}

// ---- reductions ----

// x's axes split into kept and reduced; output o covers the reduced block at base(o).
struct ReduceLayout {
  int kept_rank = 0, reduced_rank = 0;
  std::int64_t kept_extent[cuda::max_rank] = {}, kept_stride[cuda::max_rank] = {};
  std::int64_t reduced_extent[cuda::max_rank] = {}, reduced_stride[cuda::max_rank] = {};
  std::int64_t kept_count = 1, reduced_count = 1;
  bool leading = true;  // every reduced axis comes before every kept axis

  __device__ std::int64_t base(std::int64_t o) const {
    return kernel_math::strided_offset(o, kept_rank, kept_extent, kept_stride);
  }
  // Offset, from base, of element j of the reduced block (row-major over the reduced axes).
  __device__ std::int64_t offset(std::int64_t j) const {
    return kernel_math::strided_offset(j, reduced_rank, reduced_extent, reduced_stride);
  }
};

ReduceLayout reduce_layout(const Shape& shape, const std::vector<bool>& axes) {
  if (shape.size() > static_cast<std::size_t>(cuda::max_rank))
    throw Error("[cuda reduce] rank " + std::to_string(shape.size()) + " exceeds the CUDA backend's " +
                std::to_string(cuda::max_rank));
  ReduceLayout p;
  const auto strides = contiguous_strides(shape);
  bool seen_kept = false;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    const bool reduced = d < axes.size() && axes[d];
    if (reduced) {
      if (seen_kept) p.leading = false;
      p.reduced_extent[p.reduced_rank] = shape[d];
      p.reduced_stride[p.reduced_rank++] = strides[d];
      p.reduced_count *= shape[d];
    } else {
      seen_kept = true;
      p.kept_extent[p.kept_rank] = shape[d];
      p.kept_stride[p.kept_rank++] = strides[d];
      p.kept_count *= shape[d];
    }
  }
  return p;
}

// Leading axes reduced (bias gradients): a block owns 32 columns and `groups` row
// groups; thread (column, g) sums rows g, g + groups, ... in order, then the
// groups' partials are added in order g = 0, 1, ... (blockDim = (32, groups)).
template <class T>
__global__ void __launch_bounds__(1024) reduce_columns(const T* x, T* out, std::int64_t rows, std::int64_t cols, bool mean) {
  __shared__ T partial[32][33];
  const std::int64_t j = blockIdx.x * 32 + threadIdx.x;
  const unsigned groups = blockDim.y, g = threadIdx.y;
  T s = T(0);
  if (j < cols)
    for (std::int64_t r = g; r < rows; r += groups) s += x[r * cols + j];
  partial[g][threadIdx.x] = s;
  __syncthreads();
  if (g == 0 && j < cols) {
    T total = partial[0][threadIdx.x];
    for (unsigned k = 1; k < groups; ++k) total += partial[k][threadIdx.x];
    out[j] = mean ? total * (T(1) / static_cast<T>(rows)) : total;
  }
}
// Row groups for reduce_columns: about 32 rows per thread, at most 32 groups.
unsigned column_groups(std::int64_t rows) {
  unsigned groups = 1;
  while (groups < 32 && static_cast<std::int64_t>(groups) * 32 < rows) groups *= 2;
  return groups;
}

// Short groups: one thread per output, walking its group in index order.
template <class T>
__global__ void __launch_bounds__(1024) reduce_serial(ReduceKind kind, const T* x, T* out, ReduceLayout p) {
  for (std::int64_t o = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; o < p.kept_count;
       o += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
    const std::int64_t base = p.base(o);
    if (kind == ReduceKind::max) {
      T m = kernel_math::negative_infinity<T>();
      for (std::int64_t j = 0; j < p.reduced_count; ++j) m = cuda::Max{}(m, x[base + p.offset(j)]);
      out[o] = m;
    } else {
      T s = T(0);
      for (std::int64_t j = 0; j < p.reduced_count; ++j) s += x[base + p.offset(j)];
      out[o] = kind == ReduceKind::mean ? s / static_cast<T>(p.reduced_count) : s;
    }
  }
}

// Long groups: one block per output. Sums: thread t takes elements t, t + blockDim,
// ... (coalesced); max: thread t takes a contiguous chunk, so that combining left
// to right keeps the first maximum.
template <class T>
__global__ void __launch_bounds__(1024) reduce_blocks(ReduceKind kind, const T* x, T* out, ReduceLayout p) {
  __shared__ T shared[32];
  const std::int64_t count = p.reduced_count, threads = blockDim.x, t = threadIdx.x;
  for (std::int64_t o = blockIdx.x; o < p.kept_count; o += gridDim.x) {
    const std::int64_t base = p.base(o);
    if (kind == ReduceKind::max) {
      T m = kernel_math::negative_infinity<T>();
      for (std::int64_t j = count * t / threads, end = count * (t + 1) / threads; j < end; ++j)
        m = cuda::Max{}(m, x[base + p.offset(j)]);
      m = cuda::block_reduce(m, cuda::Max{}, kernel_math::negative_infinity<T>(), shared);
      if (t == 0) out[o] = m;
    } else {
      T s = T(0);
      for (std::int64_t j = t; j < count; j += threads) s += x[base + p.offset(j)];
      s = cuda::block_reduce(s, cuda::Sum{}, T(0), shared);
      if (t == 0) out[o] = kind == ReduceKind::mean ? s / static_cast<T>(count) : s;
    }
  }
}

// d max: the gradient goes to the first element (in index order) equal to the maximum.
template <class T>
__global__ void __launch_bounds__(1024) reduce_max_backward_kernel(const T* x, const T* m, const T* gy, T* gx, ReduceLayout p) {
  __shared__ long long shared[32];
  for (std::int64_t o = blockIdx.x; o < p.kept_count; o += gridDim.x) {
    const std::int64_t base = p.base(o);
    const T target = m[o];
    long long first = LLONG_MAX;
    for (std::int64_t j = threadIdx.x; j < p.reduced_count; j += blockDim.x)
      if (x[base + p.offset(j)] == target) {
        first = j;
        break;
      }
    first = cuda::block_reduce(first, cuda::MinIndex{}, LLONG_MAX, shared);
    if (threadIdx.x == 0 && first != LLONG_MAX) gx[base + p.offset(first)] = gy[o];
  }
}

template <class T>
void reduce_typed(cudaStream_t s, ReduceKind kind, const Tensor& x, const std::vector<bool>& axes, Tensor& out) {
  const ReduceLayout p = reduce_layout(x.shape(), axes);
  const T* px = x.data<T>();
  T* po = out.data<T>();
  if (p.kept_count == 0) return;
  if (kind != ReduceKind::max && p.leading && p.reduced_rank > 0 && p.kept_count > 1 &&
      (p.kept_count >= 32 || p.reduced_count <= 64)) {
    const dim3 block(32, column_groups(p.reduced_count));
    const auto blocks = static_cast<unsigned>((p.kept_count + 31) / 32);
    reduce_columns<T><<<blocks, block, 0, s>>>(px, po, p.reduced_count, p.kept_count, kind == ReduceKind::mean);
    cuda::check_launch("reduce_columns");
  } else if (p.reduced_count <= 32) {
    reduce_serial<T><<<cuda::grid_for(p.kept_count), cuda::block_threads, 0, s>>>(kind, px, po, p);
    cuda::check_launch("reduce_serial");
  } else {
    const unsigned blocks = static_cast<unsigned>(std::min<std::int64_t>(p.kept_count, 65536));
    reduce_blocks<T><<<blocks, cuda::block_threads, 0, s>>>(kind, px, po, p);
    cuda::check_launch("reduce_blocks");
  }
}

}  // namespace

// ---- the backend's entry points ----

void CudaBackend::unary(UnaryKind kind, double param, const Tensor& x, Tensor& y) {
  REMAT_CUDA_FLOATING(x.dtype(), "unary",
                      unary_typed<T>(stream_, kind, static_cast<T>(param), x.data<T>(), y.data<T>(), x.numel()));
}

void CudaBackend::unary_backward(UnaryKind kind, double param, const Tensor& x, const Tensor& y, const Tensor& gy,
                                 Tensor& gx) {
  REMAT_CUDA_FLOATING(gy.dtype(), "unary_backward",
                      unary_backward_typed<T>(stream_, kind, static_cast<T>(param),
                                              x.defined() ? x.data<T>() : nullptr, y.defined() ? y.data<T>() : nullptr,
                                              gy.data<T>(), gx.data<T>(), gy.numel()));
}

void CudaBackend::binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& out) {
  REMAT_CUDA_FLOATING(out.dtype(), "binary", binary_typed<T>(stream_, kind, a, b, out));
}

void CudaBackend::binary_backward(BinaryKind kind, int which, const Tensor& a, const Tensor& b, const Tensor& gy,
                                  Tensor& g) {
  REMAT_CUDA_FLOATING(gy.dtype(), "binary_backward", binary_backward_typed<T>(stream_, kind, which, a, b, gy, g));
}

void CudaBackend::broadcast_to(const Tensor& x, double scale, Tensor& out) {
  REMAT_CUDA_FLOATING(out.dtype(), "broadcast_to", broadcast_typed<T>(stream_, x, static_cast<T>(scale), out));
}

void CudaBackend::accumulate(const Tensor& src, Tensor& dst) {
  REMAT_CUDA_FLOATING(dst.dtype(), "accumulate",
                      axpy_typed<T>(stream_, T(1), true, src.data<T>(), dst.data<T>(), dst.numel()));
}

void CudaBackend::axpy(double alpha, const Tensor& x, Tensor& y) {
  REMAT_CUDA_FLOATING(y.dtype(), "axpy",
                      axpy_typed<T>(stream_, static_cast<T>(alpha), false, x.data<T>(), y.data<T>(), y.numel()));
}

void CudaBackend::reduce(ReduceKind kind, const Tensor& x, const std::vector<bool>& axes, Tensor& out) {
  REMAT_CUDA_FLOATING(x.dtype(), "reduce", reduce_typed<T>(stream_, kind, x, axes, out));
}

void CudaBackend::reduce_max_backward(const Tensor& x, const Tensor& out, const Tensor& gy,
                                      const std::vector<bool>& axes, Tensor& gx) {
  fill(gx, 0.0);
  const ReduceLayout p = reduce_layout(x.shape(), axes);
  if (p.kept_count == 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<std::int64_t>(p.kept_count, 65536));
  const int threads = p.reduced_count <= 32 ? 32 : cuda::block_threads;
  REMAT_CUDA_FLOATING(x.dtype(), "reduce_max_backward", {
    reduce_max_backward_kernel<T><<<blocks, threads, 0, stream_>>>(x.data<T>(), out.data<T>(), gy.data<T>(),
                                                                   gx.data<T>(), p);
    cuda::check_launch("reduce_max_backward");
  });
}

void CudaBackend::sum_to_shape(const Tensor& x, Tensor& out) {
  const Shape& xs = x.shape();
  const Shape& os = out.shape();
  std::vector<bool> axes(xs.size(), false);
  const std::size_t shift = xs.size() - os.size();
  for (std::size_t d = 0; d < xs.size(); ++d) axes[d] = d < shift || (os[d - shift] == 1 && xs[d] != 1);
  reduce(ReduceKind::sum, x, axes, out);
}

}  // namespace remat
