// Contract: CPU kernels for memory, copies, elementwise maps, broadcasting,
// reductions and gemm (see cpu_backend.hpp). Every loop is statically
// partitioned; every reduction visits its elements in index order. The
// elementwise formulas and the broadcast index decoder are autodiff/kernel_math/'s,
// shared with the CUDA backend.
#include "autodiff/cpu/cpu_backend.hpp"
#include "autodiff/kernel_math/broadcast.hpp"
#include "autodiff/kernel_math/elementwise.hpp"
#include "autodiff/cpu/parallel.hpp"
#include "autodiff/cpu/vector_math.hpp"

#include <cblas.h>
#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace remat {

using cpu::parallel_blocks;


void set_cpu_threads(int threads) {
  if (threads < 1) throw Error("[cpu] thread count must be at least 1, got " + std::to_string(threads));
#ifdef REMAT_HAVE_OPENMP
  omp_set_num_threads(threads);
#endif
  openblas_set_num_threads(threads);
}

int cpu_threads() {
#ifdef REMAT_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

namespace {
std::size_t rounded_size(std::size_t bytes) { return (bytes + 63) / 64 * 64; }
}  // namespace

void* CpuBackend::raw_allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  if (bytes > std::numeric_limits<std::size_t>::max() - 63)  // rounding up to 64 would wrap to a tiny block
    throw Error("[cpu] out of memory: could not allocate " + std::to_string(bytes) + " bytes");
  const std::size_t rounded = rounded_size(bytes);
  if (auto it = cached_.find(rounded); it != cached_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    return p;
  }
  void* p = std::aligned_alloc(64, rounded);
  if (!p && reserved_bytes_ > 0) {  // give the cache back and try once more
    release_cached();
    p = std::aligned_alloc(64, rounded);
  }
  if (!p)
    throw Error("[cpu] out of memory: could not allocate " + std::to_string(bytes) + " bytes (" +
                std::to_string(meter().budgeted_current()) + " budgeted bytes live)");
  reserved_bytes_ += rounded;
  return p;
}

void CpuBackend::raw_free(void* data, std::size_t bytes) {
  if (!data) return;
  cached_[rounded_size(bytes)].push_back(data);
}

void CpuBackend::release_cached() {
  for (auto& [size, blocks] : cached_) {
    for (void* p : blocks) std::free(p);
    reserved_bytes_ -= size * blocks.size();
    blocks.clear();
  }
  cached_.clear();
}

// Blocks come from aligned_alloc, so a tensor that outlives the backend frees its own.
CpuBackend::CpuBackend() { set_orphan_free([](void* data, std::size_t) { std::free(data); }); }

CpuBackend::~CpuBackend() { release_cached(); }

void CpuBackend::upload(const HostArray& src, Tensor& dst) {
  if (src.bytes.size() != dst.bytes()) throw Error("[cpu upload] size mismatch");
  if (dst.bytes()) std::memcpy(dst.raw(), src.bytes.data(), dst.bytes());
}

HostArray CpuBackend::download(const Tensor& src) {
  HostArray h(src.meta());
  if (src.bytes()) std::memcpy(h.bytes.data(), src.raw(), src.bytes());
  return h;
}

void CpuBackend::fill(Tensor& dst, double value) {
  switch (dst.dtype()) {
    case DType::f32: std::fill_n(dst.data<float>(), dst.numel(), static_cast<float>(value)); break;
    case DType::f64: std::fill_n(dst.data<double>(), dst.numel(), value); break;
    case DType::i32: std::fill_n(dst.data<std::int32_t>(), dst.numel(), static_cast<std::int32_t>(value)); break;
    case DType::bf16:  // refused at allocation (supports()); LowPrecisionCpuBackend runs these in f32
    case DType::f16: throw Error("[cpu fill] 16-bit tensors run through LowPrecisionCpuBackend");
  }
}

void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  if (src.bytes() != dst.bytes()) throw Error("[cpu copy] size mismatch");
  if (src.raw() != dst.raw() && src.bytes()) std::memcpy(dst.raw(), src.raw(), src.bytes());
}

namespace {

using kernel_math::binary_partial;
using kernel_math::binary_value;
using kernel_math::broadcast_strides;
using kernel_math::unary_derivative;
using kernel_math::unary_value;

// Visits every row (all but the last axis) of `shape` and calls
// row(r, offset_a, offset_b, length, step_a, step_b) with row r's offsets in two
// strided views (base offsets oa, ob) and their strides along the last axis.
// A rank-0 shape is one row of one element.
template <class Row>
void for_each_row(const Shape& shape, const std::vector<std::int64_t>& sa, std::int64_t oa,
                  const std::vector<std::int64_t>& sb, std::int64_t ob, Row&& row) {
  const std::size_t rank = shape.size();
  if (rank == 0) {
    row(std::int64_t{0}, oa, ob, std::int64_t{1}, std::int64_t{0}, std::int64_t{0});
    return;
  }
  const std::int64_t inner = shape[rank - 1];
  std::int64_t rows = 1;
  for (std::size_t d = 0; d + 1 < rank; ++d) rows *= shape[d];
  const int leading = static_cast<int>(rank - 1);
  parallel_blocks(rows, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      std::int64_t pa = 0, pb = 0;
      kernel_math::strided_offsets(r, leading, shape.data(), sa.data(), sb.data(), pa, pb);
      row(r, oa + pa, ob + pb, inner, sa[rank - 1], sb[rank - 1]);
    }
  }, std::max<std::int64_t>(inner, 1));
}

template <class T, class F>
void map_chunks(std::int64_t n, const T* x, T* y, F&& expression) {
  parallel_blocks(n, [&](std::int64_t b, std::int64_t e) {
    std::array<std::size_t, 1> shape{static_cast<std::size_t>(e - b)};
    auto in = xt::adapt(x + b, static_cast<std::size_t>(e - b), xt::no_ownership(), shape);
    auto out = xt::adapt(y + b, static_cast<std::size_t>(e - b), xt::no_ownership(), shape);
    expression(in, out);
  });
}

// out[i] = finish(i, call(arg(i))) over [0, n), the transcendental `call` vectorised
// (vector_math.hpp) through a stack buffer of 256 elements: in place is safe (each
// chunk reads x before writing y), and every element takes the same vector function
// whatever the blocks, so the bits do not depend on the thread count.
template <class T, class Arg, class Call, class Finish>
void map_through(std::int64_t n, Arg&& arg, Call&& call, Finish&& finish) {
  parallel_blocks(n, [&](std::int64_t b, std::int64_t e) {
    constexpr std::int64_t chunk = 256;
    alignas(32) T buffer[chunk];
    for (std::int64_t s = b; s < e; s += chunk) {
      const std::int64_t len = std::min(chunk, e - s);
      for (std::int64_t k = 0; k < len; ++k) buffer[k] = arg(s + k);
      call(buffer, buffer, len);
      for (std::int64_t k = 0; k < len; ++k) finish(s + k, buffer[k]);
    }
  });
}

template <class T>
void call_exp(const T* x, T* y, std::int64_t n) { cpu::vector_exp(x, y, n); }
template <class T>
void call_tanh(const T* x, T* y, std::int64_t n) { cpu::vector_tanh(x, y, n); }
template <class T>
void call_log(const T* x, T* y, std::int64_t n) { cpu::vector_log(x, y, n); }

}  // namespace

void CpuBackend::copy_strided(const Tensor& src, const StridedView& from, Tensor& dst, const StridedView& to,
                              bool accumulate) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* s = src.data<T>();
    T* d = dst.data<T>();
    for_each_row(from.shape, from.strides, from.offset, to.strides, to.offset,
                 [&](std::int64_t, std::int64_t ps, std::int64_t pd, std::int64_t len, std::int64_t ss,
                     std::int64_t sd) {
                   if (accumulate)
                     for (std::int64_t i = 0; i < len; ++i) d[pd + i * sd] += s[ps + i * ss];
                   else
                     for (std::int64_t i = 0; i < len; ++i) d[pd + i * sd] = s[ps + i * ss];
                 });
  };
  if (src.dtype() == DType::i32) {
    if (accumulate) throw Error("[cpu copy_strided] cannot accumulate integers");
    run(std::int32_t{});
  } else {
    dispatch_floating(src.dtype(), "copy_strided", run);
  }
}

void CpuBackend::unary(UnaryKind kind, double param, const Tensor& x, Tensor& y) {
  dispatch_floating(x.dtype(), "unary", [&](auto tag) {
    using T = decltype(tag);
    const T p = static_cast<T>(param);
    const T* xs = x.data<T>();
    T* ys = y.data<T>();
    const T k0 = static_cast<T>(kernel_math::gelu_k0), k1 = static_cast<T>(kernel_math::gelu_k1);
    auto identity = [xs](std::int64_t i) { return xs[i]; };
    auto store = [ys](std::int64_t i, T v) { ys[i] = v; };
    const std::int64_t n = x.numel();
    // Transcendentals: kernel_math's formulas (elementwise.hpp) around SLEEF's vector calls.
    switch (kind) {
      case UnaryKind::exp: map_through<T>(n, identity, call_exp<T>, store); return;
      case UnaryKind::log: map_through<T>(n, identity, call_log<T>, store); return;
      case UnaryKind::tanh: map_through<T>(n, identity, call_tanh<T>, store); return;
      case UnaryKind::sigmoid:  // 1 / (1 + exp(-x))
        map_through<T>(n, [xs](std::int64_t i) { return -xs[i]; }, call_exp<T>,
                       [ys](std::int64_t i, T e) { ys[i] = T(1) / (T(1) + e); });
        return;
      case UnaryKind::gelu:  // 0.5 x (1 + tanh(k0 (x + k1 x^3)))
        map_through<T>(n, [xs, k0, k1](std::int64_t i) { const T v = xs[i]; return k0 * (v + k1 * v * v * v); },
                       call_tanh<T>, [xs, ys](std::int64_t i, T t) { ys[i] = T(0.5) * xs[i] * (T(1) + t); });
        return;
      default: break;
    }
    switch (kind) {  // vectorised xtensor expressions for the common maps
      case UnaryKind::relu: map_chunks(x.numel(), xs, ys, [](auto& a, auto& b) { xt::noalias(b) = xt::maximum(a, T(0)); }); return;
      case UnaryKind::neg: map_chunks(x.numel(), xs, ys, [](auto& a, auto& b) { xt::noalias(b) = -a; }); return;
      case UnaryKind::square: map_chunks(x.numel(), xs, ys, [](auto& a, auto& b) { xt::noalias(b) = a * a; }); return;
      case UnaryKind::scale: map_chunks(x.numel(), xs, ys, [p](auto& a, auto& b) { xt::noalias(b) = a * p; }); return;
      default: break;
    }
    parallel_blocks(x.numel(), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) ys[i] = unary_value<T>(kind, xs[i], p);
    });
  });
}

void CpuBackend::unary_backward(UnaryKind kind, double param, const Tensor& x, const Tensor& y, const Tensor& gy,
                                Tensor& gx) {
  dispatch_floating(gy.dtype(), "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    const T p = static_cast<T>(param);
    const T* xs = x.defined() ? x.data<T>() : nullptr;
    const T* ys = y.defined() ? y.data<T>() : nullptr;
    const T* g = gy.data<T>();
    T* out = gx.data<T>();
    if (kind == UnaryKind::relu) {  // the hot case in MLPs: a branch-free, vectorisable loop
      parallel_blocks(gy.numel(), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) out[i] = ys[i] > T(0) ? g[i] : T(0);
      });
      return;
    }
    if (kind == UnaryKind::gelu) {  // unary_derivative's gelu formula around a vector tanh
      const T k0 = static_cast<T>(kernel_math::gelu_k0), k1 = static_cast<T>(kernel_math::gelu_k1);
      map_through<T>(gy.numel(), [xs, k0, k1](std::int64_t i) { const T v = xs[i]; return k0 * (v + k1 * v * v * v); },
                     call_tanh<T>, [xs, g, out, k0, k1](std::int64_t i, T t) {
                       const T v = xs[i];
                       out[i] = g[i] * (T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * k0 * (T(1) + T(3) * k1 * v * v));
                     });
      return;
    }
    if (kind == UnaryKind::erf) {  // 2/sqrt(pi) exp(-x^2), the exp vectorised
      map_through<T>(gy.numel(), [xs](std::int64_t i) { return -xs[i] * xs[i]; }, call_exp<T>,
                     [g, out](std::int64_t i, T e) { out[i] = g[i] * (static_cast<T>(kernel_math::erf_k) * e); });
      return;
    }
    parallel_blocks(gy.numel(), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i)
        out[i] = g[i] * unary_derivative<T>(kind, xs ? xs[i] : T(0), ys ? ys[i] : T(0), p);
    });
  });
}

void CpuBackend::binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& out) {
  dispatch_floating(out.dtype(), "binary", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    if (a.shape() == out.shape() && b.shape() == out.shape()) {
      parallel_blocks(out.numel(), [&](std::int64_t s, std::int64_t e) {
        switch (kind) {
          case BinaryKind::add: for (auto i = s; i < e; ++i) po[i] = pa[i] + pb[i]; break;
          case BinaryKind::sub: for (auto i = s; i < e; ++i) po[i] = pa[i] - pb[i]; break;
          case BinaryKind::mul: for (auto i = s; i < e; ++i) po[i] = pa[i] * pb[i]; break;
          case BinaryKind::div: for (auto i = s; i < e; ++i) po[i] = pa[i] / pb[i]; break;
        }
      });
      return;
    }
    const std::int64_t inner = out.shape().empty() ? 1 : out.shape().back();
    // a full-shape, b a row broadcast over all leading axes (a bias): rows of contiguous loops.
    if (a.shape() == out.shape() && b.numel() == inner && !b.shape().empty() && b.shape().back() == inner) {
      const std::int64_t rows = out.numel() / std::max<std::int64_t>(inner, 1);
      parallel_blocks(rows, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t r = begin; r < end; ++r) {
          const T* x = pa + r * inner;
          T* o = po + r * inner;
          switch (kind) {
            case BinaryKind::add: for (std::int64_t i = 0; i < inner; ++i) o[i] = x[i] + pb[i]; break;
            case BinaryKind::sub: for (std::int64_t i = 0; i < inner; ++i) o[i] = x[i] - pb[i]; break;
            case BinaryKind::mul: for (std::int64_t i = 0; i < inner; ++i) o[i] = x[i] * pb[i]; break;
            case BinaryKind::div: for (std::int64_t i = 0; i < inner; ++i) o[i] = x[i] / pb[i]; break;
          }
        }
      }, inner);
      return;
    }
    // General broadcasting: each output row decodes its index over the leading axes
    // into a's and b's offsets, then walks the last axis with their strides.
    for_each_row(out.shape(), broadcast_strides(a.shape(), out.shape()), 0, broadcast_strides(b.shape(), out.shape()),
                 0, [&](std::int64_t r, std::int64_t oa, std::int64_t ob, std::int64_t len, std::int64_t xa,
                        std::int64_t xb) {
                   T* o = po + r * len;
                   for (std::int64_t i = 0; i < len; ++i) o[i] = binary_value<T>(kind, pa[oa + i * xa], pb[ob + i * xb]);
                 });
  });
}

void CpuBackend::binary_backward(BinaryKind kind, int which, const Tensor& a, const Tensor& b, const Tensor& gy,
                                 Tensor& g) {
  dispatch_floating(gy.dtype(), "binary_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.defined() ? a.data<T>() : nullptr;
    const T* pb = b.defined() ? b.data<T>() : nullptr;
    const T* pg = gy.data<T>();
    T* po = g.data<T>();
    const Shape& shape = gy.shape();
    auto sa = a.defined() ? broadcast_strides(a.shape(), shape) : std::vector<std::int64_t>(shape.size(), 0);
    auto sb = b.defined() ? broadcast_strides(b.shape(), shape) : std::vector<std::int64_t>(shape.size(), 0);
    for_each_row(shape, sa, 0, sb, 0,
                 [&](std::int64_t r, std::int64_t oa, std::int64_t ob, std::int64_t len, std::int64_t xa,
                     std::int64_t xb) {
                   for (std::int64_t i = 0; i < len; ++i) {
                     T av = pa ? pa[oa + i * xa] : T(0), bv = pb ? pb[ob + i * xb] : T(0);
                     po[r * len + i] = binary_partial<T>(kind, which, av, bv, pg[r * len + i]);
                   }
                 });
  });
}

void CpuBackend::broadcast_to(const Tensor& x, double scale, Tensor& out) {
  dispatch_floating(out.dtype(), "broadcast_to", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const T s = static_cast<T>(scale);
    const Shape& shape = out.shape();
    for_each_row(shape, broadcast_strides(x.shape(), shape), 0, std::vector<std::int64_t>(shape.size(), 0), 0,
                 [&](std::int64_t r, std::int64_t ox, std::int64_t, std::int64_t len, std::int64_t step,
                     std::int64_t) {
                   for (std::int64_t i = 0; i < len; ++i) po[r * len + i] = px[ox + i * step] * s;
                 });
  });
}

void CpuBackend::accumulate(const Tensor& src, Tensor& dst) {
  dispatch_floating(dst.dtype(), "accumulate", [&](auto tag) {
    using T = decltype(tag);
    const T* s = src.data<T>();
    T* d = dst.data<T>();
    parallel_blocks(dst.numel(), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) d[i] += s[i];
    });
  });
}

void CpuBackend::axpy(double alpha, const Tensor& x, Tensor& y) {
  dispatch_floating(y.dtype(), "axpy", [&](auto tag) {
    using T = decltype(tag);
    const T a = static_cast<T>(alpha);
    const T* s = x.data<T>();
    T* d = y.data<T>();
    parallel_blocks(y.numel(), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) d[i] += a * s[i];
    });
  });
}

namespace {
// Splits x's axes into kept and reduced; out element o covers the reduced block.
struct ReducePlan {
  Shape kept_shape, reduced_shape;
  std::vector<std::int64_t> kept_strides, reduced_strides;
  std::int64_t kept_count = 1, reduced_count = 1;
};
ReducePlan make_reduce_plan(const Shape& shape, const std::vector<bool>& axes) {
  ReducePlan p;
  auto strides = contiguous_strides(shape);
  for (std::size_t d = 0; d < shape.size(); ++d) {
    bool reduced = d < axes.size() && axes[d];
    (reduced ? p.reduced_shape : p.kept_shape).push_back(shape[d]);
    (reduced ? p.reduced_strides : p.kept_strides).push_back(strides[d]);
    (reduced ? p.reduced_count : p.kept_count) *= shape[d];
  }
  return p;
}
std::int64_t offset_of(std::int64_t flat, const Shape& shape, const std::vector<std::int64_t>& strides) {
  return kernel_math::strided_offset(flat, static_cast<int>(shape.size()), shape.data(), strides.data());
}
// Calls visit(offset) for every element of the reduced block starting at base, in index order.
template <class Visit>
void walk_block(const ReducePlan& p, std::int64_t base, Visit&& visit) {
  const std::size_t r = p.reduced_shape.size();
  if (r == 0) { visit(base); return; }
  const std::int64_t inner = p.reduced_shape[r - 1], step = p.reduced_strides[r - 1];
  const std::int64_t outer = p.reduced_count / std::max<std::int64_t>(inner, 1);
  for (std::int64_t o = 0; o < outer; ++o) {
    const std::int64_t off =
        base + kernel_math::strided_offset(o, static_cast<int>(r - 1), p.reduced_shape.data(), p.reduced_strides.data());
    for (std::int64_t i = 0; i < inner; ++i) visit(off + i * step);
  }
}
}  // namespace

void CpuBackend::reduce(ReduceKind kind, const Tensor& x, const std::vector<bool>& axes, Tensor& out) {
  dispatch_floating(x.dtype(), "reduce", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    ReducePlan p = make_reduce_plan(x.shape(), axes);
    // Reducing leading axes of a contiguous tensor (bias gradients): sum rows in order.
    bool leading = true;
    for (std::size_t d = 0; d < p.reduced_shape.size(); ++d) leading &= d < axes.size() && axes[d];
    if (kind != ReduceKind::max && leading && !p.reduced_shape.empty() && p.kept_count > 1) {
      const std::int64_t rows = p.reduced_count, cols = p.kept_count;
      const T scale = kind == ReduceKind::mean ? T(1) / static_cast<T>(rows) : T(1);
      parallel_blocks(cols, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t j = b; j < e; ++j) po[j] = T(0);
        for (std::int64_t r = 0; r < rows; ++r)
          for (std::int64_t j = b; j < e; ++j) po[j] += px[r * cols + j];
        if (kind == ReduceKind::mean)
          for (std::int64_t j = b; j < e; ++j) po[j] *= scale;
      }, rows);
      return;
    }
    parallel_blocks(p.kept_count, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t o = b; o < e; ++o) {
        std::int64_t base = offset_of(o, p.kept_shape, p.kept_strides);
        if (kind == ReduceKind::max) {
          T m = -std::numeric_limits<T>::infinity();
          walk_block(p, base, [&](std::int64_t i) { if (px[i] > m || std::isnan(px[i])) m = px[i]; });
          po[o] = m;
        } else {
          T s = T(0);
          walk_block(p, base, [&](std::int64_t i) { s += px[i]; });
          po[o] = kind == ReduceKind::mean ? s / static_cast<T>(p.reduced_count) : s;
        }
      }
    }, p.reduced_count);
  });
}

void CpuBackend::reduce_max_backward(const Tensor& x, const Tensor& out, const Tensor& gy,
                                     const std::vector<bool>& axes, Tensor& gx) {
  dispatch_floating(x.dtype(), "reduce_max_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const T* pm = out.data<T>();
    const T* pg = gy.data<T>();
    T* pgx = gx.data<T>();
    std::fill_n(pgx, gx.numel(), T(0));
    ReducePlan p = make_reduce_plan(x.shape(), axes);
    parallel_blocks(p.kept_count, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t o = b; o < e; ++o) {
        std::int64_t base = offset_of(o, p.kept_shape, p.kept_strides), first = -1;
        walk_block(p, base, [&](std::int64_t i) { if (first < 0 && px[i] == pm[o]) first = i; });
        if (first >= 0) pgx[first] = pg[o];  // d max / dx = 1 at the first maximal element
      }
    }, p.reduced_count);
  });
}

void CpuBackend::sum_to_shape(const Tensor& x, Tensor& out) {
  const Shape& xs = x.shape();
  const Shape& os = out.shape();
  std::vector<bool> axes(xs.size(), false);
  std::size_t shift = xs.size() - os.size();
  for (std::size_t d = 0; d < xs.size(); ++d) axes[d] = d < shift || (os[d - shift] == 1 && xs[d] != 1);
  reduce(ReduceKind::sum, x, axes, out);
}

void CpuBackend::gemm(const GemmArgs& g) {
  dispatch_floating(g.c->dtype(), "gemm", [&](auto tag) {
    using T = decltype(tag);
    const auto ta = g.transpose_a ? CblasTrans : CblasNoTrans;
    const auto tb = g.transpose_b ? CblasTrans : CblasNoTrans;
    for (std::int64_t b = 0; b < g.batch; ++b) {
      const T* a = g.a->data<T>() + g.a_offset + b * g.a_batch_stride;
      const T* bm = g.b->data<T>() + g.b_offset + b * g.b_batch_stride;
      T* c = g.c->data<T>() + g.c_offset + b * g.c_batch_stride;
      if constexpr (std::is_same_v<T, float>)
        cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(g.m), static_cast<int>(g.n), static_cast<int>(g.k),
                    static_cast<float>(g.alpha), a, static_cast<int>(g.lda), bm, static_cast<int>(g.ldb),
                    static_cast<float>(g.beta), c, static_cast<int>(g.ldc));
      else
        cblas_dgemm(CblasRowMajor, ta, tb, static_cast<int>(g.m), static_cast<int>(g.n), static_cast<int>(g.k),
                    g.alpha, a, static_cast<int>(g.lda), bm, static_cast<int>(g.ldb), g.beta, c,
                    static_cast<int>(g.ldc));
    }
  });
}

}  // namespace remat
