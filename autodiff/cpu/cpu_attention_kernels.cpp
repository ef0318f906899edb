// Contract: the CPU kernels of fused attention (see backend.hpp and
// kernel_math/attention.hpp, which holds the arithmetic both backends share).
//  - Parallel over the B*H heads with static partitioning (cpu::parallel_blocks);
//    each head is computed start to end by one thread, in a fixed order (query row
//    blocks ascending, key blocks ascending inside each, d and keys ascending inside
//    every dot product), so results are bitwise identical for any thread count.
//  - No allocation: head bh uses slot bh of the workspace the op allocated.
//  - Causal: key blocks wholly after a row block are skipped; inside the diagonal
//    block masked scores are -inf (probability exactly 0).
// Dimension legend: B = batch, H = heads, T = sequence, D = head size.
#include "autodiff/cpu/cpu_backend.hpp"
#include "autodiff/cpu/parallel.hpp"
#include "autodiff/kernel_math/attention.hpp"

#include <algorithm>

namespace remat {
namespace {

namespace km = kernel_math;
constexpr std::int64_t Br = km::attention_row_block, Bc = km::attention_key_block;

struct Heads {
  std::int64_t heads, t, d;  // heads = B*H
};
Heads heads_of(const Tensor& q) { return {q.dim(0) * q.dim(1), q.dim(2), q.dim(3)}; }

// kt[e * Bc + c] = k[(j0 + c) * d + e] for c < cols.
template <class T>
void transpose_block(const T* k, std::int64_t j0, std::int64_t cols, std::int64_t d, T* kt) {
  for (std::int64_t c = 0; c < cols; ++c)
    for (std::int64_t e = 0; e < d; ++e) kt[e * Bc + c] = k[(j0 + c) * d + e];
}

// s[c] = sum_e x[e] * yt[e * Bc + c], c < cols (e ascending).
template <class T>
void row_times_block(const T* x, const T* yt, std::int64_t cols, std::int64_t d, T* s) {
  for (std::int64_t c = 0; c < cols; ++c) s[c] = T(0);
  for (std::int64_t e = 0; e < d; ++e) {
    const T xe = x[e];
    const T* y = yt + e * Bc;
    for (std::int64_t c = 0; c < cols; ++c) s[c] += xe * y[c];
  }
}

template <class T>
void forward_head(const T* q, const T* k, const T* v, bool causal, T scale, std::int64_t t, std::int64_t d, T* out,
                  T* scratch) {
  const std::int64_t stride = d + km::attention_stat_columns;
  T* s = scratch;
  T* kt = s + Br * Bc;
  T* acc = kt + d * Bc;
  T* m = acc + Br * d;
  T* l = m + Br;
  for (std::int64_t i0 = 0; i0 < t; i0 += Br) {
    const std::int64_t rows = std::min(Br, t - i0);
    std::fill(m, m + rows, km::negative_infinity<T>());
    std::fill(l, l + rows, T(0));
    std::fill(acc, acc + rows * d, T(0));
    const std::int64_t kend = km::attention_key_end(causal, i0 + rows, t);
    for (std::int64_t j0 = 0; j0 < kend; j0 += Bc) {
      const std::int64_t cols = std::min(Bc, kend - j0);
      transpose_block(k, j0, cols, d, kt);
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t i = i0 + r;
        T* sr = s + r * Bc;
        row_times_block(q + i * d, kt, cols, d, sr);
        T block_max = km::negative_infinity<T>();
        for (std::int64_t c = 0; c < cols; ++c) {
          sr[c] = km::attention_masked(causal, i, j0 + c) ? km::negative_infinity<T>() : sr[c] * scale;
          block_max = std::max(block_max, sr[c]);
        }
        const T m_new = std::max(m[r], block_max);
        if (m_new == km::negative_infinity<T>()) continue;  // every key so far is masked
        const T alpha = km::online_softmax_rescale(m[r], m_new);
        T row_sum = T(0);
        for (std::int64_t c = 0; c < cols; ++c) {
          sr[c] = km::attention_probability(sr[c], m_new);  // exp(-inf) = 0 for masked keys
          row_sum += sr[c];
        }
        l[r] = l[r] * alpha + row_sum;
        T* ar = acc + r * d;
        for (std::int64_t e = 0; e < d; ++e) ar[e] *= alpha;
        for (std::int64_t c = 0; c < cols; ++c) {
          const T p = sr[c];
          const T* vc = v + (j0 + c) * d;
          for (std::int64_t e = 0; e < d; ++e) ar[e] += p * vc[e];
        }
        m[r] = m_new;
      }
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      T* o = out + (i0 + r) * stride;
      const T inv = T(1) / l[r];
      for (std::int64_t e = 0; e < d; ++e) o[e] = acc[r * d + e] * inv;
      o[d] = km::online_softmax_lse(m[r], l[r]);
      o[d + 1] = T(0);
    }
  }
}

template <class T>
void backward_head(const T* q, const T* k, const T* v, const T* out, const T* gout, bool causal, T scale,
                   std::int64_t t, std::int64_t d, T* gq, T* gk, T* gv, T* scratch) {
  const std::int64_t stride = d + km::attention_stat_columns;
  T* p = scratch;
  T* ds = p + Br * Bc;
  T* kt = ds + Br * Bc;
  T* vt = kt + d * Bc;
  T* delta = vt + d * Bc;
  if (gq) std::fill(gq, gq + t * d, T(0));
  if (gk) std::fill(gk, gk + t * d, T(0));
  if (gv) std::fill(gv, gv + t * d, T(0));
  for (std::int64_t i0 = 0; i0 < t; i0 += Br) {
    const std::int64_t rows = std::min(Br, t - i0);
    for (std::int64_t r = 0; r < rows; ++r) {
      const T* o = out + (i0 + r) * stride;
      const T* go = gout + (i0 + r) * stride;
      T sum = T(0);
      for (std::int64_t e = 0; e < d; ++e) sum += go[e] * o[e];
      delta[r] = sum;
    }
    const std::int64_t kend = km::attention_key_end(causal, i0 + rows, t);
    for (std::int64_t j0 = 0; j0 < kend; j0 += Bc) {
      const std::int64_t cols = std::min(Bc, kend - j0);
      transpose_block(k, j0, cols, d, kt);
      transpose_block(v, j0, cols, d, vt);
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t i = i0 + r;
        const T* o = out + i * stride;
        const T lse = o[d] + o[d + 1];
        T* pr = p + r * Bc;
        T* dsr = ds + r * Bc;
        row_times_block(q + i * d, kt, cols, d, pr);
        for (std::int64_t c = 0; c < cols; ++c)
          pr[c] = km::attention_masked(causal, i, j0 + c) ? T(0) : km::attention_probability(pr[c] * scale, lse);
        row_times_block(gout + i * stride, vt, cols, d, dsr);  // dp = do . v
        for (std::int64_t c = 0; c < cols; ++c) dsr[c] = km::attention_score_gradient(pr[c], dsr[c], delta[r]) * scale;
        if (gq) {
          T* gqr = gq + i * d;
          for (std::int64_t c = 0; c < cols; ++c) {
            const T g = dsr[c];
            const T* kc = k + (j0 + c) * d;
            for (std::int64_t e = 0; e < d; ++e) gqr[e] += g * kc[e];
          }
        }
      }
      for (std::int64_t c = 0; c < cols; ++c) {
        T* gvc = gv ? gv + (j0 + c) * d : nullptr;
        T* gkc = gk ? gk + (j0 + c) * d : nullptr;
        for (std::int64_t r = 0; r < rows; ++r) {
          const std::int64_t i = i0 + r;
          if (gvc) {
            const T pv = p[r * Bc + c];
            const T* go = gout + i * stride;
            for (std::int64_t e = 0; e < d; ++e) gvc[e] += pv * go[e];
          }
          if (gkc) {
            const T g = ds[r * Bc + c];
            const T* qi = q + i * d;
            for (std::int64_t e = 0; e < d; ++e) gkc[e] += g * qi[e];
          }
        }
      }
    }
  }
}

}  // namespace

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale, Tensor& out,
                           Tensor& workspace) {
  const Heads h = heads_of(q);
  const std::int64_t stride = h.d + km::attention_stat_columns, slot = km::attention_forward_scratch(h.d);
  dispatch_floating(q.dtype(), "attention", [&](auto tag) {
    using T = decltype(tag);
    const T* qp = q.data<T>();
    const T* kp = k.data<T>();
    const T* vp = v.data<T>();
    T* op = out.data<T>();
    T* wp = workspace.data<T>();
    cpu::parallel_blocks(
        h.heads,
        [&](std::int64_t begin, std::int64_t end) {
          for (std::int64_t b = begin; b < end; ++b)
            forward_head(qp + b * h.t * h.d, kp + b * h.t * h.d, vp + b * h.t * h.d, causal, static_cast<T>(scale),
                         h.t, h.d, op + b * h.t * stride, wp + b * slot);
        },
        h.t * h.t * h.d);
  });
}

void CpuBackend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                    const Tensor& gout, bool causal, double scale, Tensor* gq, Tensor* gk, Tensor* gv,
                                    Tensor& workspace) {
  const Heads h = heads_of(q);
  const std::int64_t stride = h.d + km::attention_stat_columns, slot = km::attention_backward_scratch(h.d);
  dispatch_floating(q.dtype(), "attention_backward", [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t n = h.t * h.d;
    T* gqp = gq ? gq->data<T>() : nullptr;
    T* gkp = gk ? gk->data<T>() : nullptr;
    T* gvp = gv ? gv->data<T>() : nullptr;
    cpu::parallel_blocks(
        h.heads,
        [&](std::int64_t begin, std::int64_t end) {
          for (std::int64_t b = begin; b < end; ++b)
            backward_head(q.data<T>() + b * n, k.data<T>() + b * n, v.data<T>() + b * n,
                          out.data<T>() + b * h.t * stride, gout.data<T>() + b * h.t * stride, causal,
                          static_cast<T>(scale), h.t, h.d, gqp ? gqp + b * n : nullptr, gkp ? gkp + b * n : nullptr,
                          gvp ? gvp + b * n : nullptr, workspace.data<T>() + b * slot);
        },
        h.t * h.t * h.d);
  });
}

}  // namespace remat
