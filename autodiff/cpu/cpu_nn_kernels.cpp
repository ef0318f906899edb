// Contract: CPU kernels for neural-network ops (see backend.hpp for each one's
// contract). Every loop is cpu::parallel_blocks (static partitioning) over items
// whose outputs are disjoint, and every sum visits its terms in index order:
//  - row-wise kernels (softmax, layernorm, cross-entropy rows) own one row each;
//  - per-channel kernels (batchnorm, col2im, pooling planes) own one channel or plane;
//  - cross-row sums (layernorm's gamma/beta, embedding's table) are parallel over
//    columns, each column summing rows in index order;
//  - scalar losses sum fixed chunks (boundaries depend on the element count only)
//    and then the chunk partials in order.
// So results are bitwise identical run to run, and most are independent of the
// thread count too. Statistics (means, variances, loss totals) accumulate in double.
// Data-dependent errors (labels, ids out of range) are found by a serial scan
// before any parallel region, so the first bad element in index order is named.
// Dropout's keep rule and the pooling windows are autodiff/kernel_math/'s, shared
// with the CUDA backend.
#include "autodiff/cpu/cpu_backend.hpp"
#include "autodiff/cpu/parallel.hpp"
#include "autodiff/cpu/vector_math.hpp"
#include "autodiff/kernel_math/elementwise.hpp"
#include "autodiff/kernel_math/pooling.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

namespace remat {

using cpu::parallel_blocks;

namespace {

// Rows (all leading axes) and features (last axis) of a tensor of rank >= 1.
struct RowView {
  std::int64_t rows, features;
};
RowView row_view(const Tensor& x) {
  const std::int64_t d = x.rank() == 0 ? 1 : x.shape().back();
  return {d == 0 ? 0 : x.numel() / d, d};
}

// Sums term(i) for i in [0, n) in a fixed order: `chunk_count` chunks whose
// boundaries depend on n only, summed in parallel, then added in chunk order.
inline constexpr std::int64_t max_chunks = 256;
template <class Term>
double ordered_sum(std::int64_t n, std::int64_t work_per_item, Term&& term) {
  if (n <= 0) return 0.0;
  const std::int64_t chunks = std::min(n, max_chunks);
  std::array<double, max_chunks> partial{};
  parallel_blocks(chunks, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t c = b; c < e; ++c) {
      double s = 0;
      for (std::int64_t i = n * c / chunks, end = n * (c + 1) / chunks; i < end; ++i) s += term(i);
      partial[static_cast<std::size_t>(c)] = s;
    }
  }, std::max<std::int64_t>(n / chunks * work_per_item, 1));
  double total = 0;
  for (std::int64_t c = 0; c < chunks; ++c) total += partial[static_cast<std::size_t>(c)];
  return total;
}

// y[i] = exp(x[i] - shift) on the vector exp (y may be x); every element through the
// same vector function, so the bits do not depend on where a thread's rows start.
template <class T>
void exp_shifted(const T* x, T shift, T* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] - shift;
  cpu::vector_exp(y, y, n);
}

// sum(exp(x[i] - shift)) in index order, through a stack buffer (no tensor memory).
template <class T>
T sum_exp_shifted(const T* x, T shift, std::int64_t n) {
  constexpr std::int64_t chunk = 256;
  T buffer[chunk];
  T s = T(0);
  for (std::int64_t b = 0; b < n; b += chunk) {
    const std::int64_t len = std::min(chunk, n - b);
    exp_shifted(x + b, shift, buffer, len);
    for (std::int64_t i = 0; i < len; ++i) s += buffer[i];
  }
  return s;
}

// log(sum(exp(x))) of one row, stabilised by the row maximum.
template <class T>
T row_logsumexp(const T* x, std::int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (std::int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m + std::log(sum_exp_shifted(x, m, n));
}

// Mean and 1/sqrt(var + eps) (biased variance) of n values at x[0], x[stride], ...
struct Moments {
  double mean, rstd;
};
template <class T>
Moments row_moments(const T* x, std::int64_t n, double eps) {
  double s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]);
  const double mean = s / static_cast<double>(n);
  double v = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    v += d * d;
  }
  return {mean, 1.0 / std::sqrt(v / static_cast<double>(n) + eps)};
}

void check_labels(const Tensor& labels, std::int64_t rows, std::int64_t classes) {
  if (labels.dtype() != DType::i32)
    throw Error(std::string("[cross_entropy] labels must be i32, got ") + dtype_name(labels.dtype()));
  const std::int32_t* l = labels.data<std::int32_t>();
  for (std::int64_t r = 0; r < rows; ++r)
    if (l[r] < 0 || l[r] >= classes)
      throw Error(fmt::format("[cross_entropy] label {} out of range [0, {}) at row {}", l[r], classes, r));
}

void check_ids(const Tensor& ids, std::int64_t vocabulary) {
  if (ids.dtype() != DType::i32)
    throw Error(std::string("[embedding] ids must be i32, got ") + dtype_name(ids.dtype()));
  const std::int32_t* p = ids.data<std::int32_t>();
  for (std::int64_t j = 0; j < ids.numel(); ++j)
    if (p[j] < 0 || p[j] >= vocabulary)
      throw Error(fmt::format("[embedding] id {} out of range [0, {}) at position {}", p[j], vocabulary, j));
}

// Batchnorm layout: x (N, C, inner) with inner = H*W (1 for 2-D input).
struct ChannelView {
  std::int64_t n, c, inner;
  std::int64_t per_channel() const { return n * inner; }
};
ChannelView channel_view(const Tensor& x) {
  const std::int64_t n = x.shape()[0], c = x.shape()[1];
  return {n, c, n * c == 0 ? 0 : x.numel() / (n * c)};
}

// Mean and sum of squared deviations of channel c, visiting (n, inner) in index order.
template <class T>
void channel_moments(const T* x, const ChannelView& v, std::int64_t c, double& mean, double& squares) {
  double s = 0;
  for (std::int64_t n = 0; n < v.n; ++n) {
    const T* p = x + (n * v.c + c) * v.inner;
    for (std::int64_t k = 0; k < v.inner; ++k) s += static_cast<double>(p[k]);
  }
  mean = s / static_cast<double>(v.per_channel());
  double q = 0;
  for (std::int64_t n = 0; n < v.n; ++n) {
    const T* p = x + (n * v.c + c) * v.inner;
    for (std::int64_t k = 0; k < v.inner; ++k) {
      const double d = static_cast<double>(p[k]) - mean;
      q += d * d;
    }
  }
  squares = q;
}

}  // namespace

// ---- softmax family ----

void CpuBackend::softmax(const Tensor& x, bool log, Tensor& y) {
  dispatch_floating(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    const RowView view = row_view(x);
    const std::int64_t rows = view.rows, d = view.features;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_blocks(rows, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t r = b; r < e; ++r) {
        const T* xr = px + r * d;
        T* yr = py + r * d;
        T m = -std::numeric_limits<T>::infinity();
        for (std::int64_t i = 0; i < d; ++i) m = std::max(m, xr[i]);
        if (log) {
          const T shift = m + std::log(sum_exp_shifted(xr, m, d));
          for (std::int64_t i = 0; i < d; ++i) yr[i] = xr[i] - shift;
        } else {  // the exponentials land in y, then scale
          exp_shifted(xr, m, yr, d);
          T s = T(0);
          for (std::int64_t i = 0; i < d; ++i) s += yr[i];
          const T inv = T(1) / s;
          for (std::int64_t i = 0; i < d; ++i) yr[i] *= inv;
        }
      }
    }, std::max<std::int64_t>(d, 1));
  });
}

void CpuBackend::softmax_backward(const Tensor& y, const Tensor& gy, bool log, Tensor& gx) {
  dispatch_floating(y.dtype(), "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    const RowView view = row_view(y);
    const std::int64_t rows = view.rows, d = view.features;
    const T* py = y.data<T>();
    const T* pg = gy.data<T>();
    T* po = gx.data<T>();
    parallel_blocks(rows, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t r = b; r < e; ++r) {
        const T* yr = py + r * d;
        const T* gr = pg + r * d;
        T* out = po + r * d;
        T s = T(0);
        if (log) {  // gx = gy - softmax * sum(gy), softmax = exp(y)
          for (std::int64_t i = 0; i < d; ++i) s += gr[i];
          exp_shifted(yr, T(0), out, d);  // out is not gy (a vjp writes a fresh gradient)
          for (std::int64_t i = 0; i < d; ++i) out[i] = gr[i] - out[i] * s;
        } else {    // gx = y * (gy - sum(gy * y))
          for (std::int64_t i = 0; i < d; ++i) s += gr[i] * yr[i];
          for (std::int64_t i = 0; i < d; ++i) out[i] = yr[i] * (gr[i] - s);
        }
      }
    }, std::max<std::int64_t>(d, 1));
  });
}

// ---- losses ----

void CpuBackend::cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& out) {
  dispatch_floating(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const RowView view = row_view(logits);
    const std::int64_t rows = view.rows, classes = view.features;
    check_labels(labels, rows, classes);
    const T* px = logits.data<T>();
    const std::int32_t* pl = labels.data<std::int32_t>();
    const double total = ordered_sum(rows, classes, [&](std::int64_t r) {
      const T* xr = px + r * classes;
      return static_cast<double>(row_logsumexp(xr, classes) - xr[pl[r]]);  // -log_softmax[label]
    });
    out.data<T>()[0] = static_cast<T>(total / static_cast<double>(rows));
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& gy,
                                        Tensor& glogits) {
  dispatch_floating(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    const RowView view = row_view(logits);
    const std::int64_t rows = view.rows, classes = view.features;
    check_labels(labels, rows, classes);
    const T* px = logits.data<T>();
    const std::int32_t* pl = labels.data<std::int32_t>();
    const T scale = static_cast<T>(static_cast<double>(gy.data<T>()[0]) / static_cast<double>(rows));
    T* pg = glogits.data<T>();
    parallel_blocks(rows, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t r = b; r < e; ++r) {
        const T* xr = px + r * classes;
        T* gr = pg + r * classes;
        const T lse = row_logsumexp(xr, classes);
        // d/dx_c = (softmax_c - [c == label]) * gy / N
        exp_shifted(xr, lse, gr, classes);
        for (std::int64_t c = 0; c < classes; ++c) gr[c] *= scale;
        gr[pl[r]] -= scale;
      }
    }, std::max<std::int64_t>(classes, 1));
  });
}

void CpuBackend::mse(const Tensor& a, const Tensor& b, Tensor& out) {
  dispatch_floating(a.dtype(), "mse", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    const std::int64_t n = a.numel();
    const double total = ordered_sum(n, 1, [&](std::int64_t i) {
      const double d = static_cast<double>(pa[i]) - static_cast<double>(pb[i]);
      return d * d;
    });
    out.data<T>()[0] = static_cast<T>(total / static_cast<double>(n));
  });
}

void CpuBackend::mse_backward(const Tensor& a, const Tensor& b, const Tensor& gy, double sign, Tensor& g) {
  dispatch_floating(a.dtype(), "mse_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = g.data<T>();
    const std::int64_t n = a.numel();
    const T factor = static_cast<T>(sign * 2.0 * static_cast<double>(gy.data<T>()[0]) / static_cast<double>(n));
    parallel_blocks(n, [&](std::int64_t s, std::int64_t e) {
      for (std::int64_t i = s; i < e; ++i) po[i] = factor * (pa[i] - pb[i]);  // sign * 2 (a - b) gy / n
    });
  });
}

// ---- layer normalisation ----

void CpuBackend::layernorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y) {
  dispatch_floating(x.dtype(), "layernorm", [&](auto tag) {
    using T = decltype(tag);
    const RowView view = row_view(x);
    const std::int64_t rows = view.rows, d = view.features;
    const T* px = x.data<T>();
    const T* pgamma = gamma.data<T>();
    const T* pbeta = beta.data<T>();
    T* py = y.data<T>();
    parallel_blocks(rows, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t r = b; r < e; ++r) {
        const T* xr = px + r * d;
        T* yr = py + r * d;
        const Moments m = row_moments(xr, d, eps);
        const T mean = static_cast<T>(m.mean), rstd = static_cast<T>(m.rstd);
        for (std::int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - mean) * rstd * pgamma[i] + pbeta[i];
      }
    }, std::max<std::int64_t>(d, 1));
  });
}

void CpuBackend::layernorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps, Tensor* gx,
                                    Tensor* ggamma, Tensor* gbeta) {
  dispatch_floating(x.dtype(), "layernorm_backward", [&](auto tag) {
    using T = decltype(tag);
    const RowView view = row_view(x);
    const std::int64_t rows = view.rows, d = view.features;
    const T* px = x.data<T>();
    const T* pgamma = gamma.data<T>();
    const T* pgy = gy.data<T>();
    T* pgx = gx ? gx->data<T>() : nullptr;
    T* pgg = ggamma ? ggamma->data<T>() : nullptr;
    T* pgb = gbeta ? gbeta->data<T>() : nullptr;
    if (pgg) std::fill_n(pgg, d, T(0));
    if (pgb) std::fill_n(pgb, d, T(0));
    // Rows go in tiles: the tile's statistics live on the stack (no tensor memory),
    // gx is per row, and gamma/beta sums add the tile's rows in index order per column.
    constexpr std::int64_t tile = 256;
    std::array<T, tile> means{}, rstds{};
    for (std::int64_t t0 = 0; t0 < rows; t0 += tile) {
      const std::int64_t count = std::min(tile, rows - t0);
      parallel_blocks(count, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) {
          const std::int64_t r = t0 + i;
          const T* xr = px + r * d;
          const Moments m = row_moments(xr, d, eps);
          const T mean = static_cast<T>(m.mean), rstd = static_cast<T>(m.rstd);
          means[static_cast<std::size_t>(i)] = mean;
          rstds[static_cast<std::size_t>(i)] = rstd;
          if (!pgx) continue;
          // xhat = (x - mean) rstd, g = gy gamma:
          // gx = rstd (g - mean(g) - xhat mean(g xhat))
          const T* gr = pgy + r * d;
          double sum_g = 0, sum_gx = 0;
          for (std::int64_t c = 0; c < d; ++c) {
            const double g = static_cast<double>(gr[c]) * static_cast<double>(pgamma[c]);
            sum_g += g;
            sum_gx += g * (static_cast<double>(xr[c] - mean) * static_cast<double>(rstd));
          }
          const T mean_g = static_cast<T>(sum_g / static_cast<double>(d));
          const T mean_gx = static_cast<T>(sum_gx / static_cast<double>(d));
          T* out = pgx + r * d;
          for (std::int64_t c = 0; c < d; ++c) {
            const T xhat = (xr[c] - mean) * rstd;
            out[c] = rstd * (gr[c] * pgamma[c] - mean_g - xhat * mean_gx);
          }
        }
      }, std::max<std::int64_t>(d, 1));
      if (!pgg && !pgb) continue;
      parallel_blocks(d, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = 0; i < count; ++i) {
          const std::int64_t r = t0 + i;
          const T* xr = px + r * d;
          const T* gr = pgy + r * d;
          const T mean = means[static_cast<std::size_t>(i)], rstd = rstds[static_cast<std::size_t>(i)];
          if (pgg)
            for (std::int64_t c = b; c < e; ++c) pgg[c] += gr[c] * ((xr[c] - mean) * rstd);  // dgamma = sum gy xhat
          if (pgb)
            for (std::int64_t c = b; c < e; ++c) pgb[c] += gr[c];  // dbeta = sum gy
        }
      }, count);
    }
  });
}

// ---- dropout ----
// Element i is kept iff kernel_math::dropout_keeps(its Philox word, p); kept elements
// are scaled by 1/(1-p). Four consecutive elements share one Philox block, so a
// block is generated once per four elements. The vjp calls this same kernel on the
// output gradient with the same key: d y / d x = mask / (1 - p).

void CpuBackend::dropout(const Tensor& x, double p, std::uint64_t seed, std::uint64_t key, Tensor& y) {
  dispatch_floating(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const T scale = kernel_math::dropout_scale<T>(p);
    parallel_blocks(x.numel(), [&](std::int64_t b, std::int64_t e) {
      PhiloxBlock block = philox_block(seed, key, static_cast<std::uint64_t>(b) >> 2);
      for (std::int64_t i = b; i < e; ++i) {
        const auto u = static_cast<std::uint64_t>(i);
        if ((u & 3u) == 0 && i != b) block = philox_block(seed, key, u >> 2);
        py[i] = kernel_math::dropout_keeps(block.v[u & 3u], p) ? px[i] * scale : T(0);
      }
    }, 8);
  });
}

// ---- clamp: y = min(max(x, lo), hi), the bounds cast to T ----

void CpuBackend::clamp(const Tensor& x, double lo, double hi, Tensor& y) {
  dispatch_floating(x.dtype(), "clamp", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const T l = static_cast<T>(lo), h = static_cast<T>(hi);
    parallel_blocks(x.numel(), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) py[i] = px[i] < l ? l : (px[i] > h ? h : px[i]);  // NaN passes through
    }, 1);
  });
}

void CpuBackend::clamp_backward(const Tensor& x, double lo, double hi, const Tensor& gy, Tensor& gx) {
  dispatch_floating(x.dtype(), "clamp_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const T* pg = gy.data<T>();
    T* po = gx.data<T>();
    const T l = static_cast<T>(lo), h = static_cast<T>(hi);
    parallel_blocks(x.numel(), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) po[i] = (px[i] > l && px[i] < h) ? pg[i] : T(0);  // dy/dx = 1 strictly inside
    }, 1);
  });
}

// ---- embedding ----

void CpuBackend::embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  dispatch_floating(table.dtype(), "embedding", [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t v = table.shape()[0], d = table.shape()[1];
    check_ids(ids, v);
    const T* pt = table.data<T>();
    const std::int32_t* pi = ids.data<std::int32_t>();
    T* po = out.data<T>();
    parallel_blocks(ids.numel(), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t j = b; j < e; ++j) std::copy_n(pt + static_cast<std::int64_t>(pi[j]) * d, d, po + j * d);
    }, std::max<std::int64_t>(d, 1));
  });
}

void CpuBackend::embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) {
  dispatch_floating(gtable.dtype(), "embedding_backward", [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t v = gtable.shape()[0], d = gtable.shape()[1], count = ids.numel();
    check_ids(ids, v);
    const std::int32_t* pi = ids.data<std::int32_t>();
    const T* pg = gy.data<T>();
    T* pt = gtable.data<T>();
    // Each thread owns a block of columns: zero them, then add the rows of gy in id order.
    parallel_blocks(d, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t row = 0; row < v; ++row) std::fill(pt + row * d + b, pt + row * d + e, T(0));
      for (std::int64_t j = 0; j < count; ++j) {
        T* dst = pt + static_cast<std::int64_t>(pi[j]) * d;
        const T* src = pg + j * d;
        for (std::int64_t c = b; c < e; ++c) dst[c] += src[c];  // dtable[id] = sum of gy rows with that id
      }
    }, std::max<std::int64_t>(count + v, 1));
  });
}

// ---- convolution helpers ----

void CpuBackend::im2col(const Tensor& x, std::int64_t image, const Conv2dGeometry& g, Tensor& col) {
  dispatch_floating(x.dtype(), "im2col", [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t rows = g.c * g.r * g.s, cols = g.out_h * g.out_w;
    const T* px = x.data<T>() + g.image_offset(image);
    T* pc = col.data<T>();
    parallel_blocks(rows, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t row = b; row < e; ++row) {
        const std::int64_t c = row / (g.r * g.s), r = (row / g.s) % g.r, s = row % g.s;
        const T* plane = px + c * g.h * g.w;
        T* out = pc + row * cols;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
          const std::int64_t ih = oh * g.stride_h - g.pad_h + r * g.dilation_h;
          T* line = out + oh * g.out_w;
          if (ih < 0 || ih >= g.h) {
            std::fill_n(line, g.out_w, T(0));
            continue;
          }
          for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
            const std::int64_t iw = ow * g.stride_w - g.pad_w + s * g.dilation_w;
            line[ow] = (iw >= 0 && iw < g.w) ? plane[ih * g.w + iw] : T(0);
          }
        }
      }
    }, std::max<std::int64_t>(cols, 1));
  });
}

void CpuBackend::col2im(const Tensor& col, std::int64_t image, const Conv2dGeometry& g, Tensor& gx) {
  dispatch_floating(gx.dtype(), "col2im", [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t cols = g.out_h * g.out_w;
    const T* pc = col.data<T>();
    T* px = gx.data<T>() + g.image_offset(image);
    // One channel per item: a channel's rows (r, s) only touch that channel of gx.
    parallel_blocks(g.c, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c = b; c < e; ++c) {
        T* plane = px + c * g.h * g.w;
        for (std::int64_t r = 0; r < g.r; ++r)
          for (std::int64_t s = 0; s < g.s; ++s) {
            const T* in = pc + ((c * g.r + r) * g.s + s) * cols;
            for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
              const std::int64_t ih = oh * g.stride_h - g.pad_h + r * g.dilation_h;
              if (ih < 0 || ih >= g.h) continue;
              for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
                const std::int64_t iw = ow * g.stride_w - g.pad_w + s * g.dilation_w;
                if (iw >= 0 && iw < g.w) plane[ih * g.w + iw] += in[oh * g.out_w + ow];
              }
            }
          }
      }
    }, std::max<std::int64_t>(g.r * g.s * cols, 1));
  });
}

// ---- pooling ----

void CpuBackend::pool2d(PoolKind kind, const Pool2dGeometry& g, const Tensor& x, Tensor& y) {
  dispatch_floating(x.dtype(), "pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_blocks(g.n * g.c, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t p = b; p < e; ++p) {
        const T* plane = px + p * g.h * g.w;
        T* out = py + p * g.out_h * g.out_w;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh)
          for (std::int64_t ow = 0; ow < g.out_w; ++ow)
            out[oh * g.out_w + ow] = kernel_math::pool_window_value(kind, g, plane, oh, ow);
      }
    }, std::max<std::int64_t>(g.out_h * g.out_w * g.kernel_h * g.kernel_w, 1));
  });
}

void CpuBackend::pool2d_backward(PoolKind kind, const Pool2dGeometry& g, const Tensor& x, const Tensor& y,
                                 const Tensor& gy, Tensor& gx) {
  dispatch_floating(gx.dtype(), "pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const bool is_max = kind == PoolKind::max;
    const T* px = is_max ? x.data<T>() : nullptr;  // avg reads neither x nor y
    const T* py = is_max ? y.data<T>() : nullptr;
    const T* pg = gy.data<T>();
    T* po = gx.data<T>();
    const T area = static_cast<T>(g.kernel_h * g.kernel_w);
    // One plane per item; overlapping windows add into the plane in output order.
    parallel_blocks(g.n * g.c, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t p = b; p < e; ++p) {
        T* gplane = po + p * g.h * g.w;
        std::fill_n(gplane, g.h * g.w, T(0));
        const T* plane = is_max ? px + p * g.h * g.w : nullptr;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh)
          for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
            const std::int64_t o = p * g.out_h * g.out_w + oh * g.out_w + ow;
            if (is_max) {  // d max = 1 at the first maximal element of the window
              std::int64_t ih = 0, iw = 0;
              if (kernel_math::pool_first_max(g, plane, oh, ow, py[o], ih, iw)) gplane[ih * g.w + iw] += pg[o];
            } else {  // d avg = 1 / (kernel area) for every element of the window
              const T share = pg[o] / area;
              const auto rows = kernel_math::pool_window_span(oh, g.stride_h, g.pad_h, g.kernel_h, g.h);
              const auto cols = kernel_math::pool_window_span(ow, g.stride_w, g.pad_w, g.kernel_w, g.w);
              for (std::int64_t ih = rows.begin; ih < rows.end; ++ih)
                for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) gplane[ih * g.w + iw] += share;
            }
          }
      }
    }, std::max<std::int64_t>(g.out_h * g.out_w * g.kernel_h * g.kernel_w, 1));
  });
}

// ---- nearest-neighbour upsampling ----

void CpuBackend::upsample_nearest(const Tensor& x, std::int64_t scale, Tensor& y) {
  dispatch_floating(x.dtype(), "upsample_nearest", [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t h = x.shape()[2], w = x.shape()[3], ho = h * scale, wo = w * scale;
    const std::int64_t planes = x.shape()[0] * x.shape()[1];
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_blocks(planes * ho, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t row = b; row < e; ++row) {  // row = plane * ho + oh
        const std::int64_t plane = row / ho, oh = row % ho;
        const T* src = px + (plane * h + oh / scale) * w;
        T* dst = py + row * wo;
        for (std::int64_t ow = 0; ow < wo; ++ow) dst[ow] = src[ow / scale];
      }
    }, std::max<std::int64_t>(wo, 1));
  });
}

void CpuBackend::upsample_nearest_backward(const Tensor& gy, std::int64_t scale, Tensor& gx) {
  dispatch_floating(gx.dtype(), "upsample_nearest_backward", [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t h = gx.shape()[2], w = gx.shape()[3], wo = w * scale;
    const std::int64_t planes = gx.shape()[0] * gx.shape()[1];
    const T* pg = gy.data<T>();
    T* po = gx.data<T>();
    parallel_blocks(planes * h, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t row = b; row < e; ++row) {  // row = plane * h + ih
        const T* block = pg + row * scale * wo;     // the scale output rows of input row ih
        T* dst = po + row * w;
        for (std::int64_t iw = 0; iw < w; ++iw) {
          T s = T(0);  // dx = sum of gy over the scale x scale block
          for (std::int64_t a = 0; a < scale; ++a)
            for (std::int64_t c = 0; c < scale; ++c) s += block[a * wo + iw * scale + c];
          dst[iw] = s;
        }
      }
    }, std::max<std::int64_t>(w * scale * scale, 1));
  });
}

// ---- batch normalisation (training mode, per channel over N and H*W) ----

void CpuBackend::batchnorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, Tensor& y) {
  dispatch_floating(x.dtype(), "batchnorm", [&](auto tag) {
    using T = decltype(tag);
    const ChannelView v = channel_view(x);
    const T* px = x.data<T>();
    const T* pgamma = gamma.data<T>();
    const T* pbeta = beta.data<T>();
    T* py = y.data<T>();
    parallel_blocks(v.c, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c = b; c < e; ++c) {
        double mean = 0, squares = 0;
        channel_moments(px, v, c, mean, squares);
        const T m = static_cast<T>(mean);
        const T rstd = static_cast<T>(1.0 / std::sqrt(squares / static_cast<double>(v.per_channel()) + eps));
        const T ga = pgamma[c], be = pbeta[c];
        for (std::int64_t n = 0; n < v.n; ++n) {
          const std::int64_t base = (n * v.c + c) * v.inner;
          for (std::int64_t k = 0; k < v.inner; ++k) py[base + k] = (px[base + k] - m) * rstd * ga + be;
        }
      }
    }, std::max<std::int64_t>(v.per_channel(), 1));
  });
}

void CpuBackend::batchnorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps, Tensor* gx,
                                    Tensor* ggamma, Tensor* gbeta) {
  dispatch_floating(x.dtype(), "batchnorm_backward", [&](auto tag) {
    using T = decltype(tag);
    const ChannelView v = channel_view(x);
    const double count = static_cast<double>(v.per_channel());
    const T* px = x.data<T>();
    const T* pgamma = gamma.data<T>();
    const T* pgy = gy.data<T>();
    T* pgx = gx ? gx->data<T>() : nullptr;
    T* pgg = ggamma ? ggamma->data<T>() : nullptr;
    T* pgb = gbeta ? gbeta->data<T>() : nullptr;
    parallel_blocks(v.c, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c = b; c < e; ++c) {
        double mean = 0, squares = 0;
        channel_moments(px, v, c, mean, squares);
        const double rstd = 1.0 / std::sqrt(squares / count + eps);
        double sum_gy = 0, sum_gy_xhat = 0;
        for (std::int64_t n = 0; n < v.n; ++n) {
          const std::int64_t base = (n * v.c + c) * v.inner;
          for (std::int64_t k = 0; k < v.inner; ++k) {
            const double g = static_cast<double>(pgy[base + k]);
            sum_gy += g;
            sum_gy_xhat += g * (static_cast<double>(px[base + k]) - mean) * rstd;
          }
        }
        if (pgg) pgg[c] = static_cast<T>(sum_gy_xhat);  // dgamma = sum gy xhat
        if (pgb) pgb[c] = static_cast<T>(sum_gy);       // dbeta = sum gy
        if (!pgx) continue;
        // gx = gamma rstd (gy - mean(gy) - xhat mean(gy xhat))
        const T scale = static_cast<T>(static_cast<double>(pgamma[c]) * rstd);
        const T mean_gy = static_cast<T>(sum_gy / count), mean_gy_xhat = static_cast<T>(sum_gy_xhat / count);
        const T m = static_cast<T>(mean), r = static_cast<T>(rstd);
        for (std::int64_t n = 0; n < v.n; ++n) {
          const std::int64_t base = (n * v.c + c) * v.inner;
          for (std::int64_t k = 0; k < v.inner; ++k) {
            const T xhat = (px[base + k] - m) * r;
            pgx[base + k] = scale * (pgy[base + k] - mean_gy - xhat * mean_gy_xhat);
          }
        }
      }
    }, std::max<std::int64_t>(v.per_channel(), 1));
  });
}

void CpuBackend::batchnorm_update_running(const Tensor& x, double momentum, Tensor& running_mean,
                                          Tensor& running_var) {
  dispatch_floating(x.dtype(), "batchnorm_update_running", [&](auto tag) {
    using T = decltype(tag);
    const ChannelView v = channel_view(x);
    const double unbiased = static_cast<double>(std::max<std::int64_t>(v.per_channel() - 1, 1));
    const T* px = x.data<T>();
    T* pm = running_mean.data<T>();
    T* pv = running_var.data<T>();
    parallel_blocks(v.c, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c = b; c < e; ++c) {
        double mean = 0, squares = 0;
        channel_moments(px, v, c, mean, squares);
        pm[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(pm[c]) + momentum * mean);
        pv[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(pv[c]) + momentum * (squares / unbiased));
      }
    }, std::max<std::int64_t>(v.per_channel(), 1));
  });
}

}  // namespace remat
