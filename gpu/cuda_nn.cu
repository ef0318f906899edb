// Contract: CUDA kernels for the neural-network ops (see backend.hpp for each
// contract; cpu_nn_kernels.cpp is the reference). Work is split so that every
// output is written by one thread or one block, and every sum has a fixed order:
//  - row kernels (softmax, layernorm, cross-entropy rows) and channel kernels
//    (batchnorm) give one block to a row or channel and reduce in a fixed tree;
//    statistics (means, variances, loss totals) accumulate in double, as on the CPU;
//  - scalar losses (cross-entropy, mse) sum fixed chunks (boundaries depend on the
//    element count only) into the backend's partial-sum scratch, then one block
//    adds the partials in a fixed tree;
//  - cross-row sums: layernorm's gamma/beta give a column to 8 row groups, each
//    adding its rows in index order, then the groups in order; embedding's table
//    gives each (vocabulary range, column) to one thread, adding rows in index
//    order (the CPU's order);
//  - scatter-adds (col2im, pooling and upsampling backward) are written as gathers:
//    each input element adds its contributions in the CPU's order.
// Data errors (labels or ids out of range) are found on the device, read back, and
// thrown on the host with the CPU backend's message, before any kernel reads them.
#include "autodiff/kernel_math/elementwise.hpp"
#include "autodiff/kernel_math/pooling.hpp"
#include "gpu/cuda_internal.cuh"

#include <cmath>

namespace remat {

using cuda::launch_for_each;

namespace {

unsigned item_grid(std::int64_t items) { return static_cast<unsigned>(std::max<std::int64_t>(1, std::min<std::int64_t>(items, 65536))); }

// Rows (all leading axes) and features (last axis), as the CPU's row_view.
struct RowView {
  std::int64_t rows, features;
};
RowView row_view(const Tensor& x) {
  const std::int64_t d = x.rank() == 0 ? 1 : x.shape().back();
  return {d == 0 ? 0 : x.numel() / d, d};
}

// The maximum m of one row and sum(exp(x - m)), computed by the whole block.
template <class T>
struct RowExpSum {
  T max, sum;
};
template <class T>
__device__ RowExpSum<T> block_row_exp_sum(const T* x, std::int64_t n, T* shared) {
  T m = kernel_math::negative_infinity<T>();
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) m = cuda::Max{}(m, x[i]);
  m = cuda::block_reduce(m, cuda::Max{}, kernel_math::negative_infinity<T>(), shared);
  T s = T(0);
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) s += kernel_math::math_exp(x[i] - m);
  s = cuda::block_reduce(s, cuda::Sum{}, T(0), shared);
  return {m, s};
}

// log(sum(exp(x))) of one row, computed by the whole block.
template <class T>
__device__ T block_logsumexp(const T* x, std::int64_t n, T* shared) {
  const RowExpSum<T> row = block_row_exp_sum(x, n, shared);
  return row.max + kernel_math::math_log(row.sum);
}

// Sum of partials[0, count) by one block in a fixed tree; out[0] = total / divisor.
template <class T>
__global__ void __launch_bounds__(1024) finish_mean(const double* partials, std::int64_t count, double divisor, T* out) {
  __shared__ double shared[32];
  double s = 0;
  for (std::int64_t i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
  s = cuda::block_reduce(s, cuda::Sum{}, 0.0, shared);
  if (threadIdx.x == 0) out[0] = static_cast<T>(s / divisor);
}

// ---- softmax family ----

template <class T>
__global__ void __launch_bounds__(1024) softmax_rows(const T* x, T* y, std::int64_t rows, std::int64_t d, bool log) {
  __shared__ T shared[32];
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * d;
    T* yr = y + r * d;
    const RowExpSum<T> row = block_row_exp_sum(xr, d, shared);
    const T m = row.max, s = row.sum;
    if (log) {
      const T shift = m + kernel_math::math_log(s);
      for (std::int64_t i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] - shift;
    } else {
      const T inv = T(1) / s;
      for (std::int64_t i = threadIdx.x; i < d; i += blockDim.x) yr[i] = kernel_math::math_exp(xr[i] - m) * inv;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(1024) softmax_backward_rows(const T* y, const T* gy, T* gx, std::int64_t rows, std::int64_t d, bool log) {
  __shared__ T shared[32];
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* yr = y + r * d;
    const T* gr = gy + r * d;
    T* out = gx + r * d;
    T s = T(0);
    for (std::int64_t i = threadIdx.x; i < d; i += blockDim.x) s += log ? gr[i] : gr[i] * yr[i];
    s = cuda::block_reduce(s, cuda::Sum{}, T(0), shared);
    if (log)  // gx = gy - softmax * sum(gy), softmax = exp(y)
      for (std::int64_t i = threadIdx.x; i < d; i += blockDim.x) out[i] = gr[i] - kernel_math::math_exp(yr[i]) * s;
    else      // gx = y * (gy - sum(gy * y))
      for (std::int64_t i = threadIdx.x; i < d; i += blockDim.x) out[i] = yr[i] * (gr[i] - s);
  }
}

// ---- losses ----

// Partial p sums -log_softmax(logits)[row, label] over rows [rows p / G, rows (p+1) / G).
template <class T>
__global__ void __launch_bounds__(1024) cross_entropy_partials(const T* x, const std::int32_t* labels, std::int64_t rows,
                                       std::int64_t classes, std::int64_t partial_count, double* partials) {
  __shared__ T shared[32];
  for (std::int64_t p = blockIdx.x; p < partial_count; p += gridDim.x) {
    double s = 0;
    for (std::int64_t r = rows * p / partial_count, end = rows * (p + 1) / partial_count; r < end; ++r) {
      const T* xr = x + r * classes;
      const T lse = block_logsumexp(xr, classes, shared);
      s += static_cast<double>(lse - xr[labels[r]]);
    }
    if (threadIdx.x == 0) partials[p] = s;
  }
}

template <class T>
__global__ void __launch_bounds__(1024) cross_entropy_backward_rows(const T* x, const std::int32_t* labels, const T* gy, T* g,
                                            std::int64_t rows, std::int64_t classes) {
  __shared__ T shared[32];
  const T scale = static_cast<T>(static_cast<double>(gy[0]) / static_cast<double>(rows));
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * classes;
    T* gr = g + r * classes;
    const T lse = block_logsumexp(xr, classes, shared);
    // d/dx_c = (softmax_c - [c == label]) * gy / N
    for (std::int64_t c = threadIdx.x; c < classes; c += blockDim.x) gr[c] = kernel_math::math_exp(xr[c] - lse) * scale;
    __syncthreads();
    if (threadIdx.x == 0) gr[labels[r]] -= scale;
  }
}

// Partial p sums (a - b)^2 over elements [n p / G, n (p+1) / G).
template <class T>
__global__ void __launch_bounds__(1024) mse_partials(const T* a, const T* b, std::int64_t n, std::int64_t partial_count, double* partials) {
  __shared__ double shared[32];
  for (std::int64_t p = blockIdx.x; p < partial_count; p += gridDim.x) {
    double s = 0;
    for (std::int64_t i = n * p / partial_count + threadIdx.x, end = n * (p + 1) / partial_count; i < end;
         i += blockDim.x) {
      const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
      s += d * d;
    }
    s = cuda::block_reduce(s, cuda::Sum{}, 0.0, shared);
    if (threadIdx.x == 0) partials[p] = s;
  }
}

// ---- layer normalisation ----

// Mean and 1/sqrt(var + eps) (biased variance) of one row, accumulated in double by the block.
template <class T>
__device__ void block_row_moments(const T* x, std::int64_t n, double eps, double* shared, double& mean, double& rstd) {
  double s = 0;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) s += static_cast<double>(x[i]);
  mean = cuda::block_reduce(s, cuda::Sum{}, 0.0, shared) / static_cast<double>(n);
  double v = 0;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double d = static_cast<double>(x[i]) - mean;
    v += d * d;
  }
  v = cuda::block_reduce(v, cuda::Sum{}, 0.0, shared);
  rstd = 1.0 / sqrt(v / static_cast<double>(n) + eps);
}

template <class T>
__global__ void __launch_bounds__(1024) layernorm_rows(const T* x, const T* gamma, const T* beta, double eps, T* y, std::int64_t rows,
                               std::int64_t d) {
  __shared__ double shared[32];
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * d;
    T* yr = y + r * d;
    double mean_d, rstd_d;
    block_row_moments(xr, d, eps, shared, mean_d, rstd_d);
    const T mean = static_cast<T>(mean_d), rstd = static_cast<T>(rstd_d);
    for (std::int64_t i = threadIdx.x; i < d; i += blockDim.x) yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
  }
}

// Rows [first, first + count): statistics into stats (mean, rstd per row) and,
// when gx is wanted, gx = rstd (g - mean(g) - xhat mean(g xhat)) with g = gy gamma.
template <class T>
__global__ void __launch_bounds__(1024) layernorm_backward_rows(const T* x, const T* gamma, const T* gy, double eps, T* gx, T* stats,
                                        std::int64_t first, std::int64_t count, std::int64_t d) {
  __shared__ double shared[32];
  for (std::int64_t i = blockIdx.x; i < count; i += gridDim.x) {
    const std::int64_t r = first + i;
    const T* xr = x + r * d;
    double mean_d, rstd_d;
    block_row_moments(xr, d, eps, shared, mean_d, rstd_d);
    const T mean = static_cast<T>(mean_d), rstd = static_cast<T>(rstd_d);
    if (threadIdx.x == 0) {
      stats[2 * i] = mean;
      stats[2 * i + 1] = rstd;
    }
    if (!gx) continue;
    const T* gr = gy + r * d;
    double sum_g = 0, sum_gx = 0;
    for (std::int64_t c = threadIdx.x; c < d; c += blockDim.x) {
      const double g = static_cast<double>(gr[c]) * static_cast<double>(gamma[c]);
      sum_g += g;
      sum_gx += g * (static_cast<double>(xr[c] - mean) * static_cast<double>(rstd));
    }
    sum_g = cuda::block_reduce(sum_g, cuda::Sum{}, 0.0, shared);
    sum_gx = cuda::block_reduce(sum_gx, cuda::Sum{}, 0.0, shared);
    const T mean_g = static_cast<T>(sum_g / static_cast<double>(d));
    const T mean_gx = static_cast<T>(sum_gx / static_cast<double>(d));
    T* out = gx + r * d;
    for (std::int64_t c = threadIdx.x; c < d; c += blockDim.x) {
      const T xhat = (xr[c] - mean) * rstd;
      out[c] = rstd * (gr[c] * gamma[c] - mean_g - xhat * mean_gx);
    }
  }
}

// dgamma[c] += sum over the tile's rows of gy xhat; dbeta[c] += sum of gy. A block
// owns 32 columns and 8 row groups: thread (c, g) adds rows g, g + 8, ... in order,
// then the groups' partials are added in order (blockDim = (32, 8)).
template <class T>
__global__ void __launch_bounds__(1024) layernorm_param_columns(const T* x, const T* gy, const T* stats, T* ggamma, T* gbeta,
                                        std::int64_t first, std::int64_t count, std::int64_t d) {
  __shared__ T partial_gamma[8][33], partial_beta[8][33];
  const std::int64_t c = blockIdx.x * 32 + threadIdx.x;
  const unsigned g = threadIdx.y;
  T gg = T(0), gb = T(0);
  if (c < d)
    for (std::int64_t i = g; i < count; i += blockDim.y) {
      const std::int64_t r = first + i;
      const T v = gy[r * d + c];
      gg += v * ((x[r * d + c] - stats[2 * i]) * stats[2 * i + 1]);
      gb += v;
    }
  partial_gamma[g][threadIdx.x] = gg;
  partial_beta[g][threadIdx.x] = gb;
  __syncthreads();
  if (g == 0 && c < d) {
    T sum_gamma = partial_gamma[0][threadIdx.x], sum_beta = partial_beta[0][threadIdx.x];
    for (unsigned k = 1; k < blockDim.y; ++k) {
      sum_gamma += partial_gamma[k][threadIdx.x];
      sum_beta += partial_beta[k][threadIdx.x];
    }
    if (ggamma) ggamma[c] += sum_gamma;
    if (gbeta) gbeta[c] += sum_beta;
  }
}

// ---- dropout: element i kept iff kernel_math::dropout_keeps(its Philox word, p) ----

template <class T>
void dropout_typed(cudaStream_t s, const T* x, T* y, std::int64_t n, double p, std::uint64_t seed,
                   std::uint64_t key) {
  const T scale = kernel_math::dropout_scale<T>(p);
  // One thread per Philox block: four consecutive elements share one draw of the generator.
  launch_for_each(s, (n + 3) / 4, "dropout", [=] __device__(std::int64_t q) {
    const PhiloxBlock block = philox_block(seed, key, static_cast<std::uint64_t>(q));
    for (int k = 0; k < 4; ++k) {
      const std::int64_t i = 4 * q + k;
      if (i >= n) break;
      y[i] = kernel_math::dropout_keeps(block.v[k], p) ? x[i] * scale : T(0);  // the vjp: this map on gy
    }
  });
}

// ---- clamp: y = min(max(x, lo), hi); gx = gy strictly inside (lo, hi) ----

template <class T>
void clamp_typed(cudaStream_t s, const T* x, T* y, std::int64_t n, T lo, T hi) {
  launch_for_each(s, n, "clamp", [=] __device__(std::int64_t i) { y[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]); });
}

template <class T>
void clamp_backward_typed(cudaStream_t s, const T* x, const T* gy, T* gx, std::int64_t n, T lo, T hi) {
  launch_for_each(s, n, "clamp_backward",
                  [=] __device__(std::int64_t i) { gx[i] = (x[i] > lo && x[i] < hi) ? gy[i] : T(0); });
}

// ---- embedding ----

template <class T>
void embedding_typed(cudaStream_t s, const T* table, const std::int32_t* ids, T* out, std::int64_t count,
                     std::int64_t d) {
  launch_for_each(s, count * d, "embedding", [=] __device__(std::int64_t i) {
    const std::int64_t j = i / d, c = i % d;
    out[i] = table[static_cast<std::int64_t>(ids[j]) * d + c];
  });
}

// dtable[id] = sum of the gy rows with that id, added in index order. Thread (b, c)
// owns column c of the table rows in vocabulary range b (ranges depend on the shape
// only): it scans every id and adds the rows that fall in its range, so each
// table element is written by one thread and sums its rows in index order.
template <class T>
void embedding_backward_typed(cudaStream_t s, const std::int32_t* ids, const T* gy, T* gtable, std::int64_t count,
                              std::int64_t vocabulary, std::int64_t d) {
  const std::int64_t ranges = std::max<std::int64_t>(1, std::min<std::int64_t>(vocabulary / 16, 64));
  launch_for_each(s, ranges * d, "embedding_backward", [=] __device__(std::int64_t q) {
    const std::int64_t b = q / d, c = q % d;
    const std::int64_t lo = vocabulary * b / ranges, hi = vocabulary * (b + 1) / ranges;
    for (std::int64_t j = 0; j < count; ++j) {
      const std::int64_t id = ids[j];
      if (id >= lo && id < hi) gtable[id * d + c] += gy[j * d + c];
    }
  });
}

// ---- convolution helpers ----

template <class T>
void im2col_typed(cudaStream_t s, const T* x, T* col, Conv2dGeometry g) {
  const std::int64_t cols = g.out_h * g.out_w, rows = g.c * g.r * g.s;
  launch_for_each(s, rows * cols, "im2col", [=] __device__(std::int64_t i) {
    const std::int64_t row = i / cols, pos = i % cols;
    const std::int64_t c = row / (g.r * g.s), r = (row / g.s) % g.r, sc = row % g.s;
    const std::int64_t oh = pos / g.out_w, ow = pos % g.out_w;
    const std::int64_t ih = oh * g.stride_h - g.pad_h + r * g.dilation_h;
    const std::int64_t iw = ow * g.stride_w - g.pad_w + sc * g.dilation_w;
    col[i] = (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) ? x[(c * g.h + ih) * g.w + iw] : T(0);
  });
}

// gx[c, ih, iw] += col rows (c, r, s) at the output position that read (ih, iw), in (r, s) order.
template <class T>
void col2im_typed(cudaStream_t s, const T* col, T* gx, Conv2dGeometry g) {
  const std::int64_t cols = g.out_h * g.out_w;
  launch_for_each(s, g.c * g.h * g.w, "col2im", [=] __device__(std::int64_t i) {
    const std::int64_t c = i / (g.h * g.w), ih = (i / g.w) % g.h, iw = i % g.w;
    T acc = gx[i];
    for (std::int64_t r = 0; r < g.r; ++r) {
      const std::int64_t th = ih + g.pad_h - r * g.dilation_h;  // = oh * stride_h
      if (th < 0 || th % g.stride_h != 0 || th / g.stride_h >= g.out_h) continue;
      const std::int64_t oh = th / g.stride_h;
      for (std::int64_t sc = 0; sc < g.s; ++sc) {
        const std::int64_t tw = iw + g.pad_w - sc * g.dilation_w;
        if (tw < 0 || tw % g.stride_w != 0 || tw / g.stride_w >= g.out_w) continue;
        acc += col[((c * g.r + r) * g.s + sc) * cols + oh * g.out_w + tw / g.stride_w];
      }
    }
    gx[i] = acc;
  });
}

// ---- pooling ----

template <class T>
void pool2d_typed(cudaStream_t s, PoolKind kind, Pool2dGeometry g, const T* x, T* y) {
  const std::int64_t per_plane = g.out_h * g.out_w;
  launch_for_each(s, g.n * g.c * per_plane, "pool2d", [=] __device__(std::int64_t o) {
    const std::int64_t p = o / per_plane, oh = (o % per_plane) / g.out_w, ow = o % g.out_w;
    y[o] = kernel_math::pool_window_value(kind, g, x + p * g.h * g.w, oh, ow);
  });
}

// Each input element gathers from the windows that contain it, in output order (the
// order in which the CPU adds them). max: only windows whose first maximal element
// it is; avg: dy / (kernel area) from every window.
template <class T>
void pool2d_backward_typed(cudaStream_t s, PoolKind kind, Pool2dGeometry g, const T* x, const T* y, const T* gy,
                           T* gx) {
  const T area = static_cast<T>(g.kernel_h * g.kernel_w);
  const bool is_max = kind == PoolKind::max;
  launch_for_each(s, g.n * g.c * g.h * g.w, "pool2d_backward", [=] __device__(std::int64_t e) {
    const std::int64_t p = e / (g.h * g.w), ih = (e / g.w) % g.h, iw = e % g.w;
    const auto rows = kernel_math::pool_windows_containing(ih, g.stride_h, g.pad_h, g.kernel_h, g.out_h);
    const auto cols = kernel_math::pool_windows_containing(iw, g.stride_w, g.pad_w, g.kernel_w, g.out_w);
    const T* plane = is_max ? x + p * g.h * g.w : nullptr;
    T acc = T(0);
    for (std::int64_t oh = rows.begin; oh < rows.end; ++oh)
      for (std::int64_t ow = cols.begin; ow < cols.end; ++ow) {
        const std::int64_t o = (p * g.out_h + oh) * g.out_w + ow;
        if (!is_max) {
          acc += gy[o] / area;
          continue;
        }
        std::int64_t first_h = 0, first_w = 0;  // the window's first element equal to its max
        if (kernel_math::pool_first_max(g, plane, oh, ow, y[o], first_h, first_w) && first_h == ih && first_w == iw)
          acc += gy[o];
      }
    gx[e] = acc;
  });
}

// ---- nearest-neighbour upsampling ----

template <class T>
void upsample_typed(cudaStream_t s, const T* x, T* y, std::int64_t planes, std::int64_t h, std::int64_t w,
                    std::int64_t scale) {
  const std::int64_t ho = h * scale, wo = w * scale;
  launch_for_each(s, planes * ho * wo, "upsample_nearest", [=] __device__(std::int64_t i) {
    const std::int64_t plane = i / (ho * wo), oh = (i / wo) % ho, ow = i % wo;
    y[i] = x[(plane * h + oh / scale) * w + ow / scale];
  });
}

// dx = sum of dy over the scale x scale block, in row order.
template <class T>
void upsample_backward_typed(cudaStream_t s, const T* gy, T* gx, std::int64_t planes, std::int64_t h,
                             std::int64_t w, std::int64_t scale) {
  const std::int64_t wo = w * scale;
  launch_for_each(s, planes * h * w, "upsample_nearest_backward", [=] __device__(std::int64_t i) {
    const std::int64_t row = i / w, iw = i % w;  // row = plane * h + ih
    const T* block = gy + row * scale * wo;
    T sum = T(0);
    for (std::int64_t a = 0; a < scale; ++a)
      for (std::int64_t c = 0; c < scale; ++c) sum += block[a * wo + iw * scale + c];
    gx[i] = sum;
  });
}

// ---- batch normalisation: x (N, C, inner), statistics per channel over (N, inner) ----

struct ChannelView {
  std::int64_t n, c, inner;
  __host__ __device__ std::int64_t per_channel() const { return n * inner; }
  // Offset of element q (in (n, inner) order) of channel ch.
  __device__ std::int64_t at(std::int64_t ch, std::int64_t q) const { return ((q / inner) * c + ch) * inner + q % inner; }
};
ChannelView channel_view(const Tensor& x) {
  const std::int64_t n = x.shape()[0], c = x.shape()[1];
  return {n, c, n * c == 0 ? 0 : x.numel() / (n * c)};
}

// Mean and sum of squared deviations of one channel, in double, by the block.
template <class T>
__device__ void block_channel_moments(const T* x, ChannelView v, std::int64_t ch, double* shared, double& mean,
                                      double& squares) {
  const std::int64_t count = v.per_channel();
  double s = 0;
  for (std::int64_t q = threadIdx.x; q < count; q += blockDim.x) s += static_cast<double>(x[v.at(ch, q)]);
  mean = cuda::block_reduce(s, cuda::Sum{}, 0.0, shared) / static_cast<double>(count);
  double sq = 0;
  for (std::int64_t q = threadIdx.x; q < count; q += blockDim.x) {
    const double d = static_cast<double>(x[v.at(ch, q)]) - mean;
    sq += d * d;
  }
  squares = cuda::block_reduce(sq, cuda::Sum{}, 0.0, shared);
}

template <class T>
__global__ void __launch_bounds__(1024) batchnorm_channels(const T* x, const T* gamma, const T* beta, double eps, T* y, ChannelView v) {
  __shared__ double shared[32];
  for (std::int64_t ch = blockIdx.x; ch < v.c; ch += gridDim.x) {
    double mean, squares;
    block_channel_moments(x, v, ch, shared, mean, squares);
    const T m = static_cast<T>(mean);
    const T rstd = static_cast<T>(1.0 / sqrt(squares / static_cast<double>(v.per_channel()) + eps));
    const T ga = gamma[ch], be = beta[ch];
    for (std::int64_t q = threadIdx.x; q < v.per_channel(); q += blockDim.x) {
      const std::int64_t i = v.at(ch, q);
      y[i] = (x[i] - m) * rstd * ga + be;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(1024) batchnorm_backward_channels(const T* x, const T* gamma, const T* gy, double eps, T* gx, T* ggamma,
                                            T* gbeta, ChannelView v) {
  __shared__ double shared[32];
  const double count = static_cast<double>(v.per_channel());
  for (std::int64_t ch = blockIdx.x; ch < v.c; ch += gridDim.x) {
    double mean, squares;
    block_channel_moments(x, v, ch, shared, mean, squares);
    const double rstd = 1.0 / sqrt(squares / count + eps);
    double sum_gy = 0, sum_gy_xhat = 0;
    for (std::int64_t q = threadIdx.x; q < v.per_channel(); q += blockDim.x) {
      const std::int64_t i = v.at(ch, q);
      const double g = static_cast<double>(gy[i]);
      sum_gy += g;
      sum_gy_xhat += g * (static_cast<double>(x[i]) - mean) * rstd;
    }
    sum_gy = cuda::block_reduce(sum_gy, cuda::Sum{}, 0.0, shared);
    sum_gy_xhat = cuda::block_reduce(sum_gy_xhat, cuda::Sum{}, 0.0, shared);
    if (threadIdx.x == 0) {
      if (ggamma) ggamma[ch] = static_cast<T>(sum_gy_xhat);  // dgamma = sum gy xhat
      if (gbeta) gbeta[ch] = static_cast<T>(sum_gy);         // dbeta = sum gy
    }
    if (!gx) continue;
    // gx = gamma rstd (gy - mean(gy) - xhat mean(gy xhat))
    const T scale = static_cast<T>(static_cast<double>(gamma[ch]) * rstd);
    const T mean_gy = static_cast<T>(sum_gy / count), mean_gy_xhat = static_cast<T>(sum_gy_xhat / count);
    const T m = static_cast<T>(mean), r = static_cast<T>(rstd);
    for (std::int64_t q = threadIdx.x; q < v.per_channel(); q += blockDim.x) {
      const std::int64_t i = v.at(ch, q);
      const T xhat = (x[i] - m) * r;
      gx[i] = scale * (gy[i] - mean_gy - xhat * mean_gy_xhat);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(1024) batchnorm_running_channels(const T* x, double momentum, T* running_mean, T* running_var,
                                           ChannelView v) {
  __shared__ double shared[32];
  const double unbiased = static_cast<double>(v.per_channel() - 1 > 1 ? v.per_channel() - 1 : 1);
  for (std::int64_t ch = blockIdx.x; ch < v.c; ch += gridDim.x) {
    double mean, squares;
    block_channel_moments(x, v, ch, shared, mean, squares);
    if (threadIdx.x == 0) {
      running_mean[ch] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_mean[ch]) + momentum * mean);
      running_var[ch] =
          static_cast<T>((1.0 - momentum) * static_cast<double>(running_var[ch]) + momentum * (squares / unbiased));
    }
  }
}

}  // namespace

// ---- softmax family ----

void CudaBackend::softmax(const Tensor& x, bool log, Tensor& y) {
  const RowView v = row_view(x);
  if (v.rows == 0) return;
  REMAT_CUDA_FLOATING(x.dtype(), "softmax", {
    softmax_rows<T><<<item_grid(v.rows), cuda::row_threads(v.features), 0, stream_>>>(x.data<T>(), y.data<T>(),
                                                                                     v.rows, v.features, log);
    cuda::check_launch("softmax");
  });
}

void CudaBackend::softmax_backward(const Tensor& y, const Tensor& gy, bool log, Tensor& gx) {
  const RowView v = row_view(y);
  if (v.rows == 0) return;
  REMAT_CUDA_FLOATING(y.dtype(), "softmax_backward", {
    softmax_backward_rows<T><<<item_grid(v.rows), cuda::row_threads(v.features), 0, stream_>>>(
        y.data<T>(), gy.data<T>(), gx.data<T>(), v.rows, v.features, log);
    cuda::check_launch("softmax_backward");
  });
}

// ---- losses ----

namespace {
void check_labels(CudaBackend& backend, const Tensor& labels, std::int64_t classes) {
  if (labels.dtype() != DType::i32)
    throw Error(std::string("[cross_entropy] labels must be i32, got ") + dtype_name(labels.dtype()));
  std::int64_t value = 0;
  const std::int64_t row = backend.first_out_of_range(labels, classes, value);
  if (row >= 0)
    throw Error("[cross_entropy] label " + std::to_string(value) + " out of range [0, " + std::to_string(classes) +
                ") at row " + std::to_string(row));
}
void check_ids(CudaBackend& backend, const Tensor& ids, std::int64_t vocabulary) {
  if (ids.dtype() != DType::i32) throw Error(std::string("[embedding] ids must be i32, got ") + dtype_name(ids.dtype()));
  std::int64_t value = 0;
  const std::int64_t position = backend.first_out_of_range(ids, vocabulary, value);
  if (position >= 0)
    throw Error("[embedding] id " + std::to_string(value) + " out of range [0, " + std::to_string(vocabulary) +
                ") at position " + std::to_string(position));
}
}  // namespace

void CudaBackend::cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& out) {
  const RowView v = row_view(logits);
  check_labels(*this, labels, v.features);
  const std::int64_t partial_count = std::min(v.rows, partial_capacity);
  REMAT_CUDA_FLOATING(logits.dtype(), "cross_entropy", {
    cross_entropy_partials<T><<<item_grid(partial_count), cuda::row_threads(v.features), 0, stream_>>>(
        logits.data<T>(), labels.data<std::int32_t>(), v.rows, v.features, partial_count, partials());
    cuda::check_launch("cross_entropy");
    finish_mean<T><<<1, 1024, 0, stream_>>>(partials(), partial_count, static_cast<double>(v.rows), out.data<T>());
    cuda::check_launch("cross_entropy(finish)");
  });
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& gy,
                                         Tensor& glogits) {
  const RowView v = row_view(logits);
  check_labels(*this, labels, v.features);
  REMAT_CUDA_FLOATING(logits.dtype(), "cross_entropy_backward", {
    cross_entropy_backward_rows<T><<<item_grid(v.rows), cuda::row_threads(v.features), 0, stream_>>>(
        logits.data<T>(), labels.data<std::int32_t>(), gy.data<T>(), glogits.data<T>(), v.rows, v.features);
    cuda::check_launch("cross_entropy_backward");
  });
}

void CudaBackend::mse(const Tensor& a, const Tensor& b, Tensor& out) {
  const std::int64_t n = a.numel();
  // Chunks of about 4096 elements: boundaries depend on n only.
  const std::int64_t partial_count = std::max<std::int64_t>(1, std::min((n + 4095) / 4096, partial_capacity));
  REMAT_CUDA_FLOATING(a.dtype(), "mse", {
    mse_partials<T><<<item_grid(partial_count), cuda::block_threads, 0, stream_>>>(a.data<T>(), b.data<T>(), n,
                                                                                   partial_count, partials());
    cuda::check_launch("mse");
    finish_mean<T><<<1, 1024, 0, stream_>>>(partials(), partial_count, static_cast<double>(n), out.data<T>());
    cuda::check_launch("mse(finish)");
  });
}

void CudaBackend::mse_backward(const Tensor& a, const Tensor& b, const Tensor& gy, double sign, Tensor& g) {
  const std::int64_t n = a.numel();
  REMAT_CUDA_FLOATING(a.dtype(), "mse_backward", {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    const T* pg = gy.data<T>();
    T* po = g.data<T>();
    launch_for_each(stream_, n, "mse_backward", [=] __device__(std::int64_t i) {
      const T factor = static_cast<T>(sign * 2.0 * static_cast<double>(pg[0]) / static_cast<double>(n));
      po[i] = factor * (pa[i] - pb[i]);  // sign * 2 (a - b) gy / n
    });
  });
}

// ---- layer normalisation ----

void CudaBackend::layernorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y) {
  const RowView v = row_view(x);
  if (v.rows == 0) return;
  REMAT_CUDA_FLOATING(x.dtype(), "layernorm", {
    layernorm_rows<T><<<item_grid(v.rows), cuda::row_threads(v.features), 0, stream_>>>(
        x.data<T>(), gamma.data<T>(), beta.data<T>(), eps, y.data<T>(), v.rows, v.features);
    cuda::check_launch("layernorm");
  });
}

void CudaBackend::layernorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps, Tensor* gx,
                                     Tensor* ggamma, Tensor* gbeta) {
  const RowView v = row_view(x);
  if (ggamma) fill(*ggamma, 0.0);
  if (gbeta) fill(*gbeta, 0.0);
  // Rows go in tiles whose statistics fit the backend's scratch; gamma/beta sums
  // add the tiles' rows in index order, per column (the CPU's tiling, larger tiles).
  REMAT_CUDA_FLOATING(x.dtype(), "layernorm_backward", {
    T* stats = static_cast<T*>(row_stats());
    T* pgx = gx ? gx->data<T>() : nullptr;
    T* pgg = ggamma ? ggamma->data<T>() : nullptr;
    T* pgb = gbeta ? gbeta->data<T>() : nullptr;
    for (std::int64_t first = 0; first < v.rows; first += row_stat_capacity) {
      const std::int64_t count = std::min(row_stat_capacity, v.rows - first);
      layernorm_backward_rows<T><<<item_grid(count), cuda::row_threads(v.features), 0, stream_>>>(
          x.data<T>(), gamma.data<T>(), gy.data<T>(), eps, pgx, stats, first, count, v.features);
      cuda::check_launch("layernorm_backward");
      if (!pgg && !pgb) continue;
      layernorm_param_columns<T><<<static_cast<unsigned>((v.features + 31) / 32), dim3(32, 8), 0, stream_>>>(
          x.data<T>(), gy.data<T>(), stats, pgg, pgb, first, count, v.features);
      cuda::check_launch("layernorm_backward(gamma, beta)");
    }
  });
}

// ---- dropout ----

void CudaBackend::dropout(const Tensor& x, double p, std::uint64_t seed, std::uint64_t key, Tensor& y) {
  REMAT_CUDA_FLOATING(x.dtype(), "dropout", dropout_typed<T>(stream_, x.data<T>(), y.data<T>(), x.numel(), p, seed, key));
}

// ---- clamp ----

void CudaBackend::clamp(const Tensor& x, double lo, double hi, Tensor& y) {
  REMAT_CUDA_FLOATING(x.dtype(), "clamp",
                      clamp_typed<T>(stream_, x.data<T>(), y.data<T>(), x.numel(), static_cast<T>(lo), static_cast<T>(hi)));
}

void CudaBackend::clamp_backward(const Tensor& x, double lo, double hi, const Tensor& gy, Tensor& gx) {
  REMAT_CUDA_FLOATING(x.dtype(), "clamp_backward",
                      clamp_backward_typed<T>(stream_, x.data<T>(), gy.data<T>(), gx.data<T>(), x.numel(),
                                              static_cast<T>(lo), static_cast<T>(hi)));
}

// ---- embedding ----

void CudaBackend::embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  const std::int64_t vocabulary = table.shape()[0], d = table.shape()[1];
  check_ids(*this, ids, vocabulary);
  REMAT_CUDA_FLOATING(table.dtype(), "embedding",
                      embedding_typed<T>(stream_, table.data<T>(), ids.data<std::int32_t>(), out.data<T>(),
                                         ids.numel(), d));
}

void CudaBackend::embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) {
  const std::int64_t vocabulary = gtable.shape()[0], d = gtable.shape()[1];
  check_ids(*this, ids, vocabulary);
  fill(gtable, 0.0);
  REMAT_CUDA_FLOATING(gtable.dtype(), "embedding_backward",
                      embedding_backward_typed<T>(stream_, ids.data<std::int32_t>(), gy.data<T>(), gtable.data<T>(),
                                                  ids.numel(), vocabulary, d));
}

// ---- convolution helpers ----

void CudaBackend::im2col(const Tensor& x, std::int64_t image, const Conv2dGeometry& g, Tensor& col) {
  REMAT_CUDA_FLOATING(x.dtype(), "im2col",
                      im2col_typed<T>(stream_, x.data<T>() + g.image_offset(image), col.data<T>(), g));
}

void CudaBackend::col2im(const Tensor& col, std::int64_t image, const Conv2dGeometry& g, Tensor& gx) {
  REMAT_CUDA_FLOATING(gx.dtype(), "col2im",
                      col2im_typed<T>(stream_, col.data<T>(), gx.data<T>() + g.image_offset(image), g));
}

// ---- pooling ----

void CudaBackend::pool2d(PoolKind kind, const Pool2dGeometry& g, const Tensor& x, Tensor& y) {
  REMAT_CUDA_FLOATING(x.dtype(), "pool2d", pool2d_typed<T>(stream_, kind, g, x.data<T>(), y.data<T>()));
}

void CudaBackend::pool2d_backward(PoolKind kind, const Pool2dGeometry& g, const Tensor& x, const Tensor& y,
                                  const Tensor& gy, Tensor& gx) {
  const bool is_max = kind == PoolKind::max;  // avg reads neither x nor y
  REMAT_CUDA_FLOATING(gx.dtype(), "pool2d_backward",
                      pool2d_backward_typed<T>(stream_, kind, g, is_max ? x.data<T>() : nullptr,
                                               is_max ? y.data<T>() : nullptr, gy.data<T>(), gx.data<T>()));
}

// ---- nearest-neighbour upsampling ----

void CudaBackend::upsample_nearest(const Tensor& x, std::int64_t scale, Tensor& y) {
  const std::int64_t planes = x.shape()[0] * x.shape()[1];
  REMAT_CUDA_FLOATING(x.dtype(), "upsample_nearest",
                      upsample_typed<T>(stream_, x.data<T>(), y.data<T>(), planes, x.shape()[2], x.shape()[3], scale));
}

void CudaBackend::upsample_nearest_backward(const Tensor& gy, std::int64_t scale, Tensor& gx) {
  const std::int64_t planes = gx.shape()[0] * gx.shape()[1];
  REMAT_CUDA_FLOATING(gx.dtype(), "upsample_nearest_backward",
                      upsample_backward_typed<T>(stream_, gy.data<T>(), gx.data<T>(), planes, gx.shape()[2],
                                                 gx.shape()[3], scale));
}

// ---- batch normalisation ----

void CudaBackend::batchnorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y) {
  const ChannelView v = channel_view(x);
  if (v.c == 0) return;
  REMAT_CUDA_FLOATING(x.dtype(), "batchnorm", {
    batchnorm_channels<T><<<item_grid(v.c), cuda::row_threads(v.per_channel()), 0, stream_>>>(
        x.data<T>(), gamma.data<T>(), beta.data<T>(), eps, y.data<T>(), v);
    cuda::check_launch("batchnorm");
  });
}

void CudaBackend::batchnorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps, Tensor* gx,
                                     Tensor* ggamma, Tensor* gbeta) {
  const ChannelView v = channel_view(x);
  if (v.c == 0) return;
  REMAT_CUDA_FLOATING(x.dtype(), "batchnorm_backward", {
    batchnorm_backward_channels<T><<<item_grid(v.c), cuda::row_threads(v.per_channel()), 0, stream_>>>(
        x.data<T>(), gamma.data<T>(), gy.data<T>(), eps, gx ? gx->data<T>() : nullptr,
        ggamma ? ggamma->data<T>() : nullptr, gbeta ? gbeta->data<T>() : nullptr, v);
    cuda::check_launch("batchnorm_backward");
  });
}

void CudaBackend::batchnorm_update_running(const Tensor& x, double momentum, Tensor& running_mean,
                                           Tensor& running_var) {
  const ChannelView v = channel_view(x);
  if (v.c == 0) return;
  REMAT_CUDA_FLOATING(x.dtype(), "batchnorm_update_running", {
    batchnorm_running_channels<T><<<item_grid(v.c), cuda::row_threads(v.per_channel()), 0, stream_>>>(
        x.data<T>(), momentum, running_mean.data<T>(), running_var.data<T>(), v);
    cuda::check_launch("batchnorm_update_running");
  });
}

}  // namespace remat
