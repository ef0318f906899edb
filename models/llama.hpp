// Contract: the building blocks of the llama zoo family (models/llama.cpp), exposed
// so tests can check each against its formula. All of them record plain ops.
//  - rms_norm: x (..., C) * (mean(x^2 over C) + eps)^-1/2 * gain (C); eps is a
//    shape-() value on the same tape (Zhang and Sennrich 2019).
//  - rope_tables: cos and sin (T, hd) for rotary position embedding with base
//    `base`: entry (t, i) is cos/sin(t * base^(-2 (i mod hd/2) / hd)); hd even.
//  - rope: x (B, h, T, hd) rotated pairwise, pair (i, i + hd/2) by angle
//    t * theta_i (Su et al. 2021, in the rotate-half layout): x*cos + rot(x)*sin,
//    rot(x) = concat(-x[hd/2:], x[:hd/2]).
//  - grouped_attention: causal softmax attention with grouped-query heads
//    (Ainslie et al. 2023): q (B, heads, T, hd), k and v (B, kv, T, hd) with
//    heads % kv == 0; query head j reads key/value head j / (heads / kv). mask is
//    (T, T), added to the scaled scores. Returns (B, heads, T, hd). It keeps the
//    (B, heads, T, T) scores and probabilities (naive attention); a fused attention
//    op replaces this one call.
//  - repeat_kv_heads: k or v (B, kv, T, hd) -> (B, heads, T, hd), kv head j copied to
//    heads j*g .. j*g+g-1 (g = heads / kv), so the fused attention op, which takes q, k
//    and v of one shape, serves grouped-query attention (the copies are activations).
#pragma once

#include "autodiff/remat.hpp"

#include <utility>

namespace remat::zoo {

Value rms_norm(Value x, Value gain, Value eps);
std::pair<HostArray, HostArray> rope_tables(std::int64_t seq, std::int64_t head_dim, double base, DType dtype);
Value rope(Value x, Value cos, Value sin);
Value grouped_attention(Value q, Value k, Value v, Value mask);
Value repeat_kv_heads(Value x, std::int64_t heads);

}  // namespace remat::zoo
