// Contract: LowPrecisionCpuBackend (see low_precision_backend.hpp): each kernel
// widens its 16-bit arguments to f32 staging copies, runs the CpuBackend kernel and
// narrows its outputs back (round to nearest even). Outputs are widened before the
// kernel as well, so kernels that accumulate into or partly overwrite them see the
// values they hold.
#include "autodiff/cpu/low_precision_backend.hpp"

#include <cstdlib>
#include <cstring>
#include <limits>

namespace remat {
namespace {

// An f32 staging copy of a 16-bit tensor on `inner`; any other tensor as it is.
Tensor widen(CpuBackend& inner, const Tensor& t) {
  if (!t.defined() || !is_16bit(t.dtype())) return t;
  Tensor wide = inner.empty(TensorMeta{t.shape(), DType::f32}, MemoryCategory::workspace);
  const std::uint16_t* from = t.data<std::uint16_t>();
  float* to = wide.data<float>();
  const std::int64_t n = t.numel();
  if (t.dtype() == DType::bf16)
    for (std::int64_t i = 0; i < n; ++i) to[i] = bf16_to_f32(from[i]);
  else
    for (std::int64_t i = 0; i < n; ++i) to[i] = f16_to_f32(from[i]);
  return wide;
}

// Writes a staging copy back into the 16-bit tensor it was widened from.
void narrow(const Tensor& wide, Tensor& t) {
  if (!t.defined() || !is_16bit(t.dtype())) return;
  const float* from = wide.data<float>();
  std::uint16_t* to = t.data<std::uint16_t>();
  const std::int64_t n = t.numel();
  if (t.dtype() == DType::bf16)
    for (std::int64_t i = 0; i < n; ++i) to[i] = f32_to_bf16(from[i]);
  else
    for (std::int64_t i = 0; i < n; ++i) to[i] = f32_to_f16(from[i]);
}

// An optional output (a null Tensor* means "not wanted").
struct OptionalOutput {
  Tensor* target;
  Tensor wide;
  OptionalOutput(CpuBackend& inner, Tensor* t) : target(t) {
    if (t) wide = widen(inner, *t);
  }
  Tensor* staged() { return target ? &wide : nullptr; }
  void finish() {
    if (target) narrow(wide, *target);
  }
};

std::size_t rounded_size(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

}  // namespace

LowPrecisionCpuBackend::LowPrecisionCpuBackend() {
  set_orphan_free([](void* data, std::size_t) { std::free(data); });
}
LowPrecisionCpuBackend::~LowPrecisionCpuBackend() = default;

void* LowPrecisionCpuBackend::raw_allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  if (bytes > std::numeric_limits<std::size_t>::max() - 63)
    throw Error("[cpu] out of memory: could not allocate " + std::to_string(bytes) + " bytes");
  void* p = std::aligned_alloc(64, rounded_size(bytes));
  if (!p) throw Error("[cpu] out of memory: could not allocate " + std::to_string(bytes) + " bytes");
  // Zeroed: kernels widen their outputs too (some accumulate into them), so a fresh
  // output is read before it is written; zeros keep that read defined.
  std::memset(p, 0, rounded_size(bytes));
  return p;
}

void LowPrecisionCpuBackend::raw_free(void* data, std::size_t) { std::free(data); }

void LowPrecisionCpuBackend::convert(const Tensor& src, Tensor& dst) {
  if (src.shape() != dst.shape())
    throw Error("[cpu convert] shapes differ: " + shape_string(src.shape()) + " and " + shape_string(dst.shape()));
  const std::int64_t n = src.numel();
  if (src.dtype() == dst.dtype()) {
    inner_.copy(src, dst);
    return;
  }
  // Through f32 when a 16-bit format is involved (exact for every 16-bit value), else through f64.
  auto load = [&](std::int64_t i) -> double {
    switch (src.dtype()) {
      case DType::f32: return src.data<float>()[i];
      case DType::f64: return src.data<double>()[i];
      case DType::i32: return src.data<std::int32_t>()[i];
      case DType::bf16: return bf16_to_f32(src.data<std::uint16_t>()[i]);
      case DType::f16: return f16_to_f32(src.data<std::uint16_t>()[i]);
    }
    return 0;
  };
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = load(i);
    switch (dst.dtype()) {
      case DType::f32: dst.data<float>()[i] = static_cast<float>(v); break;
      case DType::f64: dst.data<double>()[i] = v; break;
      case DType::i32: dst.data<std::int32_t>()[i] = static_cast<std::int32_t>(v); break;
      case DType::bf16: dst.data<std::uint16_t>()[i] = f32_to_bf16(static_cast<float>(v)); break;
      case DType::f16: dst.data<std::uint16_t>()[i] = f32_to_f16(static_cast<float>(v)); break;
    }
  }
}

void LowPrecisionCpuBackend::upload(const HostArray& src, Tensor& dst) { inner_.upload(src, dst); }
HostArray LowPrecisionCpuBackend::download(const Tensor& src) { return inner_.download(src); }

void LowPrecisionCpuBackend::fill(Tensor& dst, double value) {
  if (!is_16bit(dst.dtype())) return inner_.fill(dst, value);
  const float v = static_cast<float>(value);
  const std::uint16_t bits = dst.dtype() == DType::bf16 ? f32_to_bf16(v) : f32_to_f16(v);
  std::uint16_t* p = dst.data<std::uint16_t>();
  for (std::int64_t i = 0; i < dst.numel(); ++i) p[i] = bits;
}

void LowPrecisionCpuBackend::copy(const Tensor& src, Tensor& dst) { inner_.copy(src, dst); }  // same bytes

void LowPrecisionCpuBackend::copy_strided(const Tensor& src, const StridedView& from, Tensor& dst,
                                          const StridedView& to, bool accumulate) {
  Tensor wd = widen(inner_, dst);
  inner_.copy_strided(widen(inner_, src), from, wd, to, accumulate);
  narrow(wd, dst);
}

void LowPrecisionCpuBackend::unary(UnaryKind kind, double param, const Tensor& x, Tensor& y) {
  Tensor wy = widen(inner_, y);
  inner_.unary(kind, param, widen(inner_, x), wy);
  narrow(wy, y);
}

void LowPrecisionCpuBackend::unary_backward(UnaryKind kind, double param, const Tensor& x, const Tensor& y,
                                            const Tensor& gy, Tensor& gx) {
  Tensor wgx = widen(inner_, gx);
  inner_.unary_backward(kind, param, widen(inner_, x), widen(inner_, y), widen(inner_, gy), wgx);
  narrow(wgx, gx);
}

void LowPrecisionCpuBackend::binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& out) {
  Tensor wo = widen(inner_, out);
  inner_.binary(kind, widen(inner_, a), widen(inner_, b), wo);
  narrow(wo, out);
}

void LowPrecisionCpuBackend::binary_backward(BinaryKind kind, int which, const Tensor& a, const Tensor& b,
                                             const Tensor& gy, Tensor& g) {
  Tensor wg = widen(inner_, g);
  inner_.binary_backward(kind, which, widen(inner_, a), widen(inner_, b), widen(inner_, gy), wg);
  narrow(wg, g);
}

void LowPrecisionCpuBackend::sum_to_shape(const Tensor& x, Tensor& out) {
  Tensor wo = widen(inner_, out);
  inner_.sum_to_shape(widen(inner_, x), wo);
  narrow(wo, out);
}

void LowPrecisionCpuBackend::broadcast_to(const Tensor& x, double scale, Tensor& out) {
  Tensor wo = widen(inner_, out);
  inner_.broadcast_to(widen(inner_, x), scale, wo);
  narrow(wo, out);
}

void LowPrecisionCpuBackend::accumulate(const Tensor& src, Tensor& dst) {
  Tensor wd = widen(inner_, dst);
  inner_.accumulate(widen(inner_, src), wd);
  narrow(wd, dst);
}

void LowPrecisionCpuBackend::axpy(double alpha, const Tensor& x, Tensor& y) {
  Tensor wy = widen(inner_, y);
  inner_.axpy(alpha, widen(inner_, x), wy);
  narrow(wy, y);
}

void LowPrecisionCpuBackend::reduce(ReduceKind kind, const Tensor& x, const std::vector<bool>& axes, Tensor& out) {
  Tensor wo = widen(inner_, out);
  inner_.reduce(kind, widen(inner_, x), axes, wo);
  narrow(wo, out);
}

void LowPrecisionCpuBackend::reduce_max_backward(const Tensor& x, const Tensor& out, const Tensor& gy,
                                                 const std::vector<bool>& axes, Tensor& gx) {
  Tensor wgx = widen(inner_, gx);
  inner_.reduce_max_backward(widen(inner_, x), widen(inner_, out), widen(inner_, gy), axes, wgx);
  narrow(wgx, gx);
}

void LowPrecisionCpuBackend::gemm(const GemmArgs& args) {
  GemmArgs staged = args;
  const Tensor wa = widen(inner_, *args.a), wb = widen(inner_, *args.b);
  Tensor wc = widen(inner_, *args.c);
  staged.a = &wa;
  staged.b = &wb;
  staged.c = &wc;
  inner_.gemm(staged);
  narrow(wc, *args.c);
}

void LowPrecisionCpuBackend::softmax(const Tensor& x, bool log, Tensor& y) {
  Tensor wy = widen(inner_, y);
  inner_.softmax(widen(inner_, x), log, wy);
  narrow(wy, y);
}

void LowPrecisionCpuBackend::softmax_backward(const Tensor& y, const Tensor& gy, bool log, Tensor& gx) {
  Tensor wgx = widen(inner_, gx);
  inner_.softmax_backward(widen(inner_, y), widen(inner_, gy), log, wgx);
  narrow(wgx, gx);
}

void LowPrecisionCpuBackend::cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& out) {
  Tensor wo = widen(inner_, out);
  inner_.cross_entropy(widen(inner_, logits), labels, wo);
  narrow(wo, out);
}

void LowPrecisionCpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& gy,
                                                    Tensor& glogits) {
  Tensor wg = widen(inner_, glogits);
  inner_.cross_entropy_backward(widen(inner_, logits), labels, widen(inner_, gy), wg);
  narrow(wg, glogits);
}

void LowPrecisionCpuBackend::mse(const Tensor& a, const Tensor& b, Tensor& out) {
  Tensor wo = widen(inner_, out);
  inner_.mse(widen(inner_, a), widen(inner_, b), wo);
  narrow(wo, out);
}

void LowPrecisionCpuBackend::mse_backward(const Tensor& a, const Tensor& b, const Tensor& gy, double sign, Tensor& g) {
  Tensor wg = widen(inner_, g);
  inner_.mse_backward(widen(inner_, a), widen(inner_, b), widen(inner_, gy), sign, wg);
  narrow(wg, g);
}

void LowPrecisionCpuBackend::layernorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps,
                                       Tensor& y) {
  Tensor wy = widen(inner_, y);
  inner_.layernorm(widen(inner_, x), widen(inner_, gamma), widen(inner_, beta), eps, wy);
  narrow(wy, y);
}

void LowPrecisionCpuBackend::layernorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps,
                                                Tensor* gx, Tensor* ggamma, Tensor* gbeta) {
  OptionalOutput ox(inner_, gx), og(inner_, ggamma), ob(inner_, gbeta);
  inner_.layernorm_backward(widen(inner_, x), widen(inner_, gamma), widen(inner_, gy), eps, ox.staged(),
                            og.staged(), ob.staged());
  ox.finish();
  og.finish();
  ob.finish();
}

void LowPrecisionCpuBackend::dropout(const Tensor& x, double p, std::uint64_t seed, std::uint64_t key, Tensor& y) {
  Tensor wy = widen(inner_, y);
  inner_.dropout(widen(inner_, x), p, seed, key, wy);
  narrow(wy, y);
}

void LowPrecisionCpuBackend::clamp(const Tensor& x, double lo, double hi, Tensor& y) {
  Tensor wy = widen(inner_, y);
  inner_.clamp(widen(inner_, x), lo, hi, wy);
  narrow(wy, y);
}

void LowPrecisionCpuBackend::clamp_backward(const Tensor& x, double lo, double hi, const Tensor& gy, Tensor& gx) {
  Tensor wgx = widen(inner_, gx);
  inner_.clamp_backward(widen(inner_, x), lo, hi, widen(inner_, gy), wgx);
  narrow(wgx, gx);
}

void LowPrecisionCpuBackend::embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  Tensor wo = widen(inner_, out);
  inner_.embedding(widen(inner_, table), ids, wo);
  narrow(wo, out);
}

void LowPrecisionCpuBackend::embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) {
  Tensor wg = widen(inner_, gtable);
  inner_.embedding_backward(ids, widen(inner_, gy), wg);
  narrow(wg, gtable);
}

void LowPrecisionCpuBackend::im2col(const Tensor& x, std::int64_t image, const Conv2dGeometry& g, Tensor& col) {
  Tensor wc = widen(inner_, col);
  inner_.im2col(widen(inner_, x), image, g, wc);
  narrow(wc, col);
}

void LowPrecisionCpuBackend::col2im(const Tensor& col, std::int64_t image, const Conv2dGeometry& g, Tensor& gx) {
  Tensor wgx = widen(inner_, gx);
  inner_.col2im(widen(inner_, col), image, g, wgx);
  narrow(wgx, gx);
}

void LowPrecisionCpuBackend::pool2d(PoolKind kind, const Pool2dGeometry& g, const Tensor& x, Tensor& y) {
  Tensor wy = widen(inner_, y);
  inner_.pool2d(kind, g, widen(inner_, x), wy);
  narrow(wy, y);
}

void LowPrecisionCpuBackend::pool2d_backward(PoolKind kind, const Pool2dGeometry& g, const Tensor& x,
                                             const Tensor& y, const Tensor& gy, Tensor& gx) {
  Tensor wgx = widen(inner_, gx);
  inner_.pool2d_backward(kind, g, widen(inner_, x), widen(inner_, y), widen(inner_, gy), wgx);
  narrow(wgx, gx);
}

void LowPrecisionCpuBackend::upsample_nearest(const Tensor& x, std::int64_t scale, Tensor& y) {
  Tensor wy = widen(inner_, y);
  inner_.upsample_nearest(widen(inner_, x), scale, wy);
  narrow(wy, y);
}

void LowPrecisionCpuBackend::upsample_nearest_backward(const Tensor& gy, std::int64_t scale, Tensor& gx) {
  Tensor wgx = widen(inner_, gx);
  inner_.upsample_nearest_backward(widen(inner_, gy), scale, wgx);
  narrow(wgx, gx);
}

void LowPrecisionCpuBackend::batchnorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps,
                                       Tensor& y) {
  Tensor wy = widen(inner_, y);
  inner_.batchnorm(widen(inner_, x), widen(inner_, gamma), widen(inner_, beta), eps, wy);
  narrow(wy, y);
}

void LowPrecisionCpuBackend::batchnorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& gy, double eps,
                                                Tensor* gx, Tensor* ggamma, Tensor* gbeta) {
  OptionalOutput ox(inner_, gx), og(inner_, ggamma), ob(inner_, gbeta);
  inner_.batchnorm_backward(widen(inner_, x), widen(inner_, gamma), widen(inner_, gy), eps, ox.staged(),
                            og.staged(), ob.staged());
  ox.finish();
  og.finish();
  ob.finish();
}

void LowPrecisionCpuBackend::batchnorm_update_running(const Tensor& x, double momentum, Tensor& running_mean,
                                                      Tensor& running_var) {
  Tensor wm = widen(inner_, running_mean), wv = widen(inner_, running_var);
  inner_.batchnorm_update_running(widen(inner_, x), momentum, wm, wv);
  narrow(wm, running_mean);
  narrow(wv, running_var);
}

// Fused attention: the packed output's statistics column d holds the row's
// log-sum-exp; narrowed, it keeps its rounding residue in column d + 1 (hi + lo),
// and widening adds the two back, so the 16-bit statistic keeps ~16 bits.
void LowPrecisionCpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale,
                                       Tensor& out, Tensor& workspace) {
  Tensor wo = widen(inner_, out);
  inner_.attention(widen(inner_, q), widen(inner_, k), widen(inner_, v), causal, scale, wo, workspace);
  if (!is_16bit(out.dtype())) return;
  const std::int64_t stride = out.dim(3), d = stride - 2, rows = out.numel() / stride;
  float* w = wo.data<float>();
  for (std::int64_t r = 0; r < rows; ++r) {  // lo = lse - hi, rounded again when narrowed
    float* row = w + r * stride;
    const float lse = row[d];
    const float hi = out.dtype() == DType::bf16 ? bf16_to_f32(f32_to_bf16(lse)) : f16_to_f32(f32_to_f16(lse));
    row[d] = hi;
    row[d + 1] = lse - hi;
  }
  narrow(wo, out);
}

void LowPrecisionCpuBackend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                                const Tensor& gout, bool causal, double scale, Tensor* gq, Tensor* gk,
                                                Tensor* gv, Tensor& workspace) {
  OptionalOutput oq(inner_, gq), ok(inner_, gk), ov(inner_, gv);
  inner_.attention_backward(widen(inner_, q), widen(inner_, k), widen(inner_, v), widen(inner_, out),
                            widen(inner_, gout), causal, scale, oq.staged(), ok.staged(), ov.staged(), workspace);
  oq.finish();
  ok.finish();
  ov.finish();
}

}  // namespace remat
