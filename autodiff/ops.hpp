// Contract: the user-facing op functions. Each records one node on the inputs'
// tape (nothing is computed) and returns its Value; shape errors are thrown here,
// prefixed with the op's name. The op classes are defined in ops/<family>.cpp.
// Dimension legends: N = batch, C = channels, H/W = height/width, D = features.
#pragma once

#include "autodiff/tape.hpp"

#include <optional>
#include <vector>

namespace remat {

// ---- elementwise (ops/elementwise.cpp); binary ops broadcast like NumPy ----
Value add(Value a, Value b);
Value sub(Value a, Value b);
Value mul(Value a, Value b);
Value div(Value a, Value b);
Value neg(Value x);
Value exp(Value x);
Value log(Value x);
Value tanh(Value x);
Value sigmoid(Value x);
Value relu(Value x);
Value gelu(Value x);  // tanh approximation
Value erf(Value x);   // the error function (exact GELU is 0.5 x (1 + erf(x / sqrt 2)))
Value square(Value x);
Value pow(Value x, double exponent);
Value scale(Value x, double factor);
inline Value operator+(Value a, Value b) { return add(a, b); }
inline Value operator-(Value a, Value b) { return sub(a, b); }
inline Value operator*(Value a, Value b) { return mul(a, b); }
inline Value operator/(Value a, Value b) { return div(a, b); }
inline Value operator-(Value x) { return neg(x); }

// ---- reductions (ops/reduce.cpp); empty axes = all axes; negative axes count from the end ----
Value sum(Value x, std::vector<int> axes = {}, bool keepdims = false);
Value mean(Value x, std::vector<int> axes = {}, bool keepdims = false);
Value max(Value x, std::vector<int> axes = {}, bool keepdims = false);

// ---- linear algebra (ops/linalg.cpp) ----
// (M, K) @ (K, N) -> (M, N); (B..., M, K) @ (B..., K, N) -> (B..., M, N);
// (B..., M, K) @ (K, N) -> (B..., M, N).
Value matmul(Value a, Value b);
// x (..., in) W (out, in) [b (out)] -> x W^T + b, shape (..., out).
Value linear(Value x, Value weight, std::optional<Value> bias = std::nullopt);

// ---- shape (ops/shape.cpp) ----
Value reshape(Value x, Shape shape);  // one extent may be -1
Value permute(Value x, std::vector<int> order);
Value transpose(Value x, int axis0 = -2, int axis1 = -1);
Value slice(Value x, int axis, std::int64_t start, std::int64_t end);  // [start, end) along axis
Value concat(std::vector<Value> xs, int axis);

// ---- neural networks (ops/nn.cpp); softmax family acts on the last axis ----
Value softmax(Value x);
Value log_softmax(Value x);
// logits (N, C), labels i32 (N) -> mean cross-entropy, shape ().
Value cross_entropy(Value logits, Value labels);
// mean((a - b)^2) over all elements, shape ().
Value mse(Value a, Value b);
// Normalises the last axis: x (..., D), gamma (D), beta (D).
Value layernorm(Value x, Value gamma, Value beta, double eps = 1e-5);
// Zeroes each element with probability p and scales the rest by 1/(1-p). The mask
// is keyed by (RunOptions::seed, node, element): a recomputation replays it exactly.
Value dropout(Value x, double p);
// table (V, D), ids i32 (...) -> (..., D).
Value embedding(Value table, Value ids);
// x (N, C, H, W), weight (K, C, R, S), bias (K) -> (N, K, Ho, Wo); im2col + GEMM.
Value conv2d(Value x, Value weight, std::optional<Value> bias = std::nullopt, int stride = 1, int padding = 0);
// The general form (ONNX Conv): per-axis strides and symmetric pads, dilations, and G
// groups, weight (K, C/G, R, S); each group of C/G input channels makes K/G outputs.
struct Conv2dParams {
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
};
Value conv2d(Value x, Value weight, std::optional<Value> bias, const Conv2dParams& params);
Value max_pool2d(Value x, int kernel, int stride = -1, int padding = 0);  // stride -1 = kernel
Value avg_pool2d(Value x, int kernel, int stride = -1, int padding = 0);
// The general form (ONNX MaxPool/AveragePool): per-axis kernel, strides and symmetric
// pads; ceil_mode (max only) keeps a last partial window, as PyTorch does.
struct Pool2dParams {
  int kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
};
Value max_pool2d(Value x, const Pool2dParams& params);
Value avg_pool2d(Value x, const Pool2dParams& params);
// y = min(max(x, lo), hi); dx = dy strictly inside (lo, hi) (ReLU6 = clamp(x, 0, 6)).
Value clamp(Value x, double lo, double hi);
Value upsample_nearest(Value x, int scale);  // (N, C, H, W) -> (N, C, H*scale, W*scale)
// Training-mode batch normalisation, x (N, C) or (N, C, H, W), gamma and beta (C).
// The running mean and variance are op state: the executor updates them exactly
// once per step, at the node's first forward, never on a recomputation; read
// them with Executor::state(node) as {running_mean, running_var}.
Value batchnorm(Value x, Value gamma, Value beta, double momentum = 0.1, double eps = 1e-5);
// The same, starting from given running statistics (shape (C), x's dtype) instead of 0 and 1.
struct BatchNormRunning {
  HostArray mean, var;
};
Value batchnorm(Value x, Value gamma, Value beta, double momentum, double eps, BatchNormRunning running);

// ---- fused attention (ops/attention.cpp) ----
// softmax(scale q k^T [+ causal mask: key j hidden from query i when j > i]) v for
// q, k, v (B, H, T, D) -> (B, H, T, D), flash-attention style: no T x T tensor is
// kept; the tape saves q, k, v, the output and two statistics per row, and the vjp
// recomputes the scores blockwise. scale is usually 1/sqrt(D).
Value attention(const Value& q, const Value& k, const Value& v, bool causal, double scale);

// ---- large-language-model ops (ops/llm.cpp) ----
// x converted to a floating dtype (bf16 activations from f32 weights, say); the
// gradient flows back converted to x's dtype.
Value cast(Value x, DType dtype);

}  // namespace remat
