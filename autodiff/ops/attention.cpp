// Contract: fused scaled-dot-product attention, flash-attention's memory behaviour
// (Dao et al. 2022, "FlashAttention: Fast and Memory-Efficient Exact Attention with
// IO-Awareness", Alg. 1 forward, Alg. 4 backward) as one op that rematerialises
// inside itself.
//  - attention(q, k, v, causal, scale), q, k, v (B, H, T, D), returns
//    softmax(scale q k^T [+ causal mask]) v, shape (B, H, T, D). It records two
//    nodes: the op `attention`, whose output is packed (B, H, T, D + 2): each row's
//    D outputs, then its softmax statistic (log-sum-exp as hi + lo,
//    kernel_math/attention.hpp); and a `slice` of the first D columns.
//  - Forward: key blocks stream through an online softmax; no T x T tensor exists,
//    only one block of scores per head in declared workspace.
//  - vjp: recomputes each block of scores from q, k and the saved statistic, and
//    writes dq, dk, dv. It reads exactly its inputs and its packed output: the tape
//    keeps q, k, v, o and B*H*T*2 statistics, never the scores or probabilities.
//    The gradient arriving at the statistics columns is not read (attention()
//    never exposes them, so it is always zero).
//  - Scratch: forward and vjp each hold B*H blocks (kernel_math/attention.hpp),
//    allocated as workspace and declared, so the meter sees what the plan predicts.
//  - Cost: forward 4D + 5 flops per visible (query, key) pair (scores, P V, the
//    exponentials); vjp 10D + 5 per pair (the recomputed scores, dv, dp, dq, dk)
//    plus 2D per row: the recomputation is in the cost model.
// Dimension legend: B = batch, H = heads, T = sequence, D = head size.
#include "autodiff/kernel_math/attention.hpp"
#include "autodiff/ops.hpp"

#include <fmt/format.h>

#include <cmath>

namespace remat {
namespace {

namespace km = kernel_math;

DType compute_dtype(DType dtype) { return dtype == DType::f64 ? DType::f64 : DType::f32; }

class AttentionOp final : public Op {
 public:
  AttentionOp(bool causal, double scale) : causal_(causal), scale_(scale) {}
  std::string name() const override { return "attention"; }
  std::string attributes() const override { return fmt::format("causal={} scale={:g}", causal_ ? 1 : 0, scale_); }
  TensorMeta infer(std::span<const TensorMeta> in) const override {
    if (in.size() != 3) throw_op_error(name(), fmt::format("expects 3 inputs (q, k, v), got {}", in.size()));
    const char* what[] = {"q", "k", "v"};
    for (std::size_t i = 0; i < 3; ++i) {
      expect_rank(name(), in[i], 4, what[i]);
      expect_floating(name(), in[i], what[i]);
    }
    expect_same_dtype(name(), in);
    if (in[1].shape != in[0].shape || in[2].shape != in[0].shape)
      throw_op_error(name(), fmt::format("q, k and v must have the same shape (B, H, T, D), got {}, {} and {}",
                                         shape_string(in[0].shape), shape_string(in[1].shape),
                                         shape_string(in[2].shape)));
    for (auto e : in[0].shape)
      if (e < 1) throw_op_error(name(), "q has an empty axis: shape " + shape_string(in[0].shape));
    Shape out = in[0].shape;
    out[3] += km::attention_stat_columns;
    return {out, in[0].dtype};
  }
  void forward(const ForwardArgs& a) const override {
    Tensor ws = a.backend.empty(workspace_meta(a.inputs[0].meta(), km::attention_forward_scratch(a.inputs[0].dim(3))),
                                MemoryCategory::workspace);
    a.backend.attention(a.inputs[0], a.inputs[1], a.inputs[2], causal_, scale_, a.output, ws);
  }
  void vjp(const VjpArgs& a) const override {
    const Tensor& q = *a.inputs[0];
    Tensor ws = a.backend.empty(workspace_meta(q.meta(), km::attention_backward_scratch(q.dim(3))),
                                MemoryCategory::workspace);
    a.backend.attention_backward(q, *a.inputs[1], *a.inputs[2], *a.output, a.grad_output, causal_, scale_,
                                 a.grad_inputs[0], a.grad_inputs[1], a.grad_inputs[2], ws);
  }
  SavedValues saves(std::size_t) const override { return {{true, true, true}, true}; }
  Cost cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    const double d = static_cast<double>(in[0].shape[3]);
    Cost c;
    c.flops = pairs(in[0]) * (4 * d + 5);
    for (const auto& m : in) c.bytes_read += static_cast<double>(m.bytes());
    c.bytes_written = static_cast<double>(out.bytes());
    return c;
  }
  std::optional<Cost> vjp_cost(std::span<const TensorMeta> in, const TensorMeta& out) const override {
    const double d = static_cast<double>(in[0].shape[3]);
    const double rows = static_cast<double>(in[0].numel()) / d;
    Cost c;
    c.flops = pairs(in[0]) * (10 * d + 5) + rows * 2 * d;
    for (const auto& m : in) c.bytes_read += static_cast<double>(m.bytes());
    c.bytes_read += 2 * static_cast<double>(out.bytes());  // o and its gradient
    for (const auto& m : in) c.bytes_written += static_cast<double>(m.bytes());
    return c;
  }
  std::size_t forward_workspace_bytes(std::span<const TensorMeta> in, const TensorMeta&) const override {
    return workspace_meta(in[0], km::attention_forward_scratch(in[0].shape[3])).bytes();
  }
  std::size_t vjp_workspace_bytes(std::span<const TensorMeta> in, const TensorMeta&) const override {
    return workspace_meta(in[0], km::attention_backward_scratch(in[0].shape[3])).bytes();
  }

 private:
  // One slot of `per_head` compute-type elements per (b, h).
  static TensorMeta workspace_meta(const TensorMeta& q, std::int64_t per_head) {
    return {{q.shape[0] * q.shape[1], per_head}, compute_dtype(q.dtype)};
  }
  // The (query, key) pairs the softmax sees: T^2, or T (T + 1) / 2 under the causal mask; times B*H.
  double pairs(const TensorMeta& q) const {
    const double t = static_cast<double>(q.shape[2]), heads = static_cast<double>(q.shape[0] * q.shape[1]);
    return heads * (causal_ ? t * (t + 1) / 2 : t * t);
  }
  bool causal_;
  double scale_;
};

}  // namespace

Value attention(const Value& q, const Value& k, const Value& v, bool causal, double scale) {
  if (!q.tape || q.tape != k.tape || q.tape != v.tape)
    throw Error("[attention] q, k and v must be recorded on one tape");
  if (!std::isfinite(scale)) throw Error(fmt::format("[attention] scale must be finite, got {}", scale));
  Value packed = q.tape->record(std::make_shared<AttentionOp>(causal, scale), {q, k, v});
  const std::int64_t d = packed.shape()[3] - km::attention_stat_columns;
  return slice(packed, 3, 0, d);
}

}  // namespace remat
