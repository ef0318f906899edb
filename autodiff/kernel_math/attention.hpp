// Contract: the arithmetic of fused attention (autodiff/ops/attention.cpp), shared
// by the CPU kernels (cpu/cpu_attention_kernels.cpp) and the CUDA kernels
// (gpu/cuda_attention.cu), so the backends cannot disagree on it.
//  - The packed layout: the op's output row i of head (b, h) holds the d values of
//    o_i followed by two statistics columns, the row's log-sum-exp of the scaled,
//    masked scores as an unevaluated sum hi + lo (lo is 0 in f32 and f64; a 16-bit
//    store keeps the rounding residue there, so the statistic keeps ~16 bits).
//  - The online softmax (Milakov & Gimelshein 2018; Dao et al. 2022, Alg. 1): a row
//    keeps its running maximum m and running sum l of exp(s - m); a new block of
//    scores with maximum m_b updates m' = max(m, m_b), l' = l exp(m - m') + sum
//    exp(s - m'), and the running output is rescaled by exp(m - m'). The final
//    output is acc / l and the statistic lse = m + log(l).
//  - The vjp (Dao et al. 2022, Alg. 4 / FlashAttention-2's form): p = exp(s - lse),
//    dp = do . v_j, ds = p (dp - delta) with delta = do . o, and dq = scale ds k,
//    dk = scale ds^T q, dv = p^T do.
// Block sizes are constants of the op (they decide its workspace bytes).
#pragma once

#include "autodiff/kernel_math/host_device.hpp"

namespace remat::kernel_math {

inline constexpr std::int64_t attention_row_block = 16;  // query rows per block (Br)
inline constexpr std::int64_t attention_key_block = 64;  // keys per block (Bc)
inline constexpr std::int64_t attention_stat_columns = 2;  // lse hi, lse lo

// Whether key j is hidden from query i (causal: keys after the query).
REMAT_HOST_DEVICE inline bool attention_masked(bool causal, std::int64_t i, std::int64_t j) { return causal && j > i; }

// The last key a query row block [i0, i1) sees, plus one.
REMAT_HOST_DEVICE inline std::int64_t attention_key_end(bool causal, std::int64_t i1, std::int64_t keys) {
  return causal ? (i1 < keys ? i1 : keys) : keys;
}

// exp(m_old - m_new): the factor that rescales a row's running sum and output when
// its maximum grows; 0 for a row that had seen nothing yet (m_old = -inf).
template <class T>
REMAT_HOST_DEVICE inline T online_softmax_rescale(T m_old, T m_new) {
  return m_old == negative_infinity<T>() ? T(0) : math_exp(m_old - m_new);
}

// The row statistic from the running maximum and sum.
template <class T>
REMAT_HOST_DEVICE inline T online_softmax_lse(T m, T l) {
  return m + math_log(l);
}

// A probability recomputed from its score and its row's statistic.
template <class T>
REMAT_HOST_DEVICE inline T attention_probability(T s, T lse) {
  return math_exp(s - lse);
}

// The gradient of a score: p (dp - delta), delta = do . o of the row.
template <class T>
REMAT_HOST_DEVICE inline T attention_score_gradient(T p, T dp, T delta) {
  return p * (dp - delta);
}

}  // namespace remat::kernel_math

namespace remat::kernel_math {

// Scratch elements (of the compute type) one (b, h) head needs, at head size d:
// forward: a block of scores (Br x Bc), a transposed key block (d x Bc), the running
// outputs (Br x d) and the running maxima and sums (2 Br); vjp: probabilities and
// score gradients (2 Br x Bc), transposed key and value blocks (2 d x Bc) and the
// rows' delta (Br).
REMAT_HOST_DEVICE inline std::int64_t attention_forward_scratch(std::int64_t d) {
  return attention_row_block * attention_key_block + d * attention_key_block + attention_row_block * d +
         2 * attention_row_block;
}
REMAT_HOST_DEVICE inline std::int64_t attention_backward_scratch(std::int64_t d) {
  return 2 * attention_row_block * attention_key_block + 2 * d * attention_key_block + attention_row_block;
}

}  // namespace remat::kernel_math
