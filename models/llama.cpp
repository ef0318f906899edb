// Contract: the llama zoo family, a LLaMA-style decoder (Touvron et al. 2023,
// "LLaMA: Open and Efficient Foundation Language Models"):
//  - token embedding (V, C); `layers` pre-norm blocks; a final RMSNorm; a language
//    model head (V, C), or the embedding table itself with tie=1; cross-entropy of
//    next-token prediction (the last position's target wraps to the first token);
//  - RMSNorm (Zhang and Sennrich 2019) before attention and before the MLP;
//  - rotary position embedding on q and k (Su et al. 2021, RoFormer), base 10000;
//  - grouped-query attention (Ainslie et al. 2023): kv_heads key/value heads, each
//    shared by heads / kv_heads query heads (kv_heads = heads is multi-head attention),
//    causal, without biases; attention=naive (default) keeps the (B, heads, T, T)
//    scores (zoo::grouped_attention), attention=fused runs the fused attention op
//    (flash-attention memory: no T x T value) on kv heads repeated to all heads;
//  - a SwiGLU MLP (Shazeer 2020, "GLU Variants Improve Transformer"):
//    down(silu(gate(x)) * up(x)), C -> ffn -> C;
//  - lora=R (Hu et al. 2021, LoRA): every attention projection W (q, k, v, o) gets
//    y = x W^T + (alpha / R) (x A^T) B^T with A (R, in) ~ N(0, 1/in) and B (out, R) = 0,
//    so the adapted model starts equal to the base one; all base weights (embeddings,
//    norms, projections, MLP, head) are frozen: no gradient, no optimizer state.
// preset=1b|7b|13b fills in published shapes (TinyLlama 1.1B; LLaMA 7B and 13B);
// explicit keys override preset values. Weights are N(0, 1/fan_in) (the o and down
// projections scaled by 1/sqrt(2 layers)), norm gains 1, seeded by the weight's name,
// and made lazily: a tape recorded only to plan (metering backend) allocates no
// weights, so planning the 7B shape takes no 13 GB. The causal mask, the RoPE tables
// and RMSNorm's eps are frozen parameters named "buffer.*" (PyTorch's buffers): one
// copy shared by every block, counted as weights, never as activations.
// Dimension legend: B = batch, T = seq, C = width, h = heads, kv = kv_heads,
// hd = C / h, F = ffn, V = vocab, R = lora rank.
#include "models/llama.hpp"
#include "models/options.hpp"

#include <cmath>

namespace remat::zoo {

Value rms_norm(Value x, Value gain, Value eps) {
  Value inv = pow(add(mean(square(x), {-1}, true), eps), -0.5);
  return mul(mul(x, inv), gain);
}

std::pair<HostArray, HostArray> rope_tables(std::int64_t seq, std::int64_t head_dim, double base, DType dtype) {
  if (head_dim % 2 != 0) throw Error("[rope] the head dimension must be even, got " + std::to_string(head_dim));
  HostArray c(TensorMeta{{seq, head_dim}, dtype}), s(TensorMeta{{seq, head_dim}, dtype});
  const std::int64_t half = head_dim / 2;
  for (std::int64_t t = 0; t < seq; ++t)
    for (std::int64_t i = 0; i < head_dim; ++i) {
      const double theta = std::pow(base, -2.0 * static_cast<double>(i % half) / static_cast<double>(head_dim));
      c.set(t * head_dim + i, std::cos(static_cast<double>(t) * theta));
      s.set(t * head_dim + i, std::sin(static_cast<double>(t) * theta));
    }
  return {std::move(c), std::move(s)};
}

Value rope(Value x, Value cos, Value sin) {
  const std::int64_t hd = x.shape().back(), half = hd / 2;
  const int last = static_cast<int>(x.shape().size()) - 1;
  Value rotated = concat({neg(slice(x, last, half, hd)), slice(x, last, 0, half)}, last);
  return add(mul(x, cos), mul(rotated, sin));
}

Value repeat_kv_heads(Value x, std::int64_t heads) {
  const Shape& s = x.shape();
  const std::int64_t B = s[0], kv = s[1], T = s[2], hd = s[3];
  if (heads % kv != 0)
    throw Error("[repeat_kv_heads] " + std::to_string(heads) + " query heads are not a multiple of " +
                std::to_string(kv) + " key/value heads");
  if (heads == kv) return x;
  Value one = reshape(x, {B, kv, 1, T, hd});
  return reshape(concat(std::vector<Value>(static_cast<std::size_t>(heads / kv), one), 2), {B, heads, T, hd});
}

Value grouped_attention(Value q, Value k, Value v, Value mask) {
  const Shape& qs = q.shape();
  const std::int64_t B = qs[0], heads = qs[1], T = qs[2], hd = qs[3], kv = k.shape()[1];
  if (heads % kv != 0)
    throw Error("[grouped_attention] " + std::to_string(heads) + " query heads are not a multiple of " +
                std::to_string(kv) + " key/value heads");
  const std::int64_t group = heads / kv;
  // Query heads j*group .. j*group+group-1 read kv head j: stacking them along time lets
  // one batched matmul per kv head serve the whole group (K and V are not copied).
  Value qg = group == 1 ? q : reshape(q, {B, kv, group * T, hd});
  Value scores = matmul(qg, transpose(k));  // (B, kv, group*T, T)
  if (group != 1) scores = reshape(scores, {B, heads, T, T});
  scores = add(scale(scores, 1.0 / std::sqrt(static_cast<double>(hd))), mask);
  Value probs = softmax(scores);
  if (group != 1) probs = reshape(probs, {B, kv, group * T, T});
  Value out = matmul(probs, v);  // (B, kv, group*T, hd)
  return group == 1 ? out : reshape(out, {B, heads, T, hd});
}

namespace {

struct Preset {
  std::int64_t layers, width, heads, kv_heads, ffn, vocab, seq;
};

// Published shapes: TinyLlama 1.1B (Zhang et al. 2024), LLaMA 7B and 13B (Touvron
// et al. 2023, Table 2); vocab 32000, context 2048.
Preset preset_of(const std::string& name) {
  if (name == "1b") return {22, 2048, 32, 4, 5632, 32000, 2048};
  if (name == "7b") return {32, 4096, 32, 32, 11008, 32000, 2048};
  if (name == "13b") return {40, 5120, 40, 40, 13824, 32000, 2048};
  return {2, 32, 4, 2, 64, 64, 16};  // none: a small model for tests
}

// FNV-1a of the weight's name: a weight's values do not depend on which other
// weights (LoRA adapters, say) were recorded before it.
std::uint32_t seed_of(const std::string& name) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : name) h = (h ^ c) * 16777619u;
  return h;
}

}  // namespace

Model build_llama(const ModelSpec& spec) {
  Options o(spec);
  const std::string preset = o.choice("preset", "none", {"none", "1b", "7b", "13b"});
  const Preset p = preset_of(preset);
  const auto layers = o.integer("layers", p.layers);
  o.limit_nodes("layers", layers, 90);
  const auto width = o.integer("width", p.width);
  const auto heads = o.integer("heads", p.heads);
  const auto kv_heads = o.integer("kv_heads", std::min(p.kv_heads, heads));
  const auto ffn = o.integer("ffn", p.ffn);
  const auto vocab = o.integer("vocab", p.vocab, 2, 1 << 24);
  const auto seq = o.integer("seq", p.seq, 1, 1 << 20);
  const auto batch = o.integer("batch", preset == "none" ? 2 : 1);
  const auto tie = o.integer("tie", 0, 0, 1);
  const auto lora = o.integer("lora", 0, 0, 1 << 16);
  const auto alpha = o.integer("alpha", lora, 0, 1 << 20);
  const bool fused = o.choice("attention", "naive", {"naive", "fused"}) == "fused";
  DType dtype = parse_dtype(o);
  if (width % heads != 0)
    throw Error(fmt::format("[model llama] width={} must be a multiple of heads={}", width, heads));
  if (heads % kv_heads != 0)
    throw Error(fmt::format("[model llama] heads={} must be a multiple of kv_heads={} (grouped-query attention shares "
                            "each key/value head among heads/kv_heads query heads)",
                            heads, kv_heads));
  if ((width / heads) % 2 != 0)
    throw Error(fmt::format("[model llama] the head dimension width/heads={} must be even (rotary embedding rotates "
                            "pairs)",
                            width / heads));
  if (lora == 0 && spec.options.count("alpha"))
    throw Error("[model llama] alpha scales LoRA adapters: it needs lora=R (R >= 1)");
  if (lora > width)
    throw Error(fmt::format("[model llama] lora={} must not exceed width={}", lora, width));
  Model m;
  m.spec = o.finish();
  m.tape = std::make_unique<Tape>();
  Tape& t = *m.tape;
  const std::int64_t C = width, hd = width / heads, kvC = kv_heads * hd, B = batch, T = seq, F = ffn;
  const bool base_trainable = lora == 0;

  auto lazy = [&](const std::string& name, Shape shape, std::function<HostArray()> init, bool trainable) {
    return t.parameter(name, TensorMeta{std::move(shape), dtype}, std::move(init), trainable);
  };
  auto normal = [&](const std::string& name, Shape shape, double stddev, bool trainable) {
    const std::uint32_t seed = seed_of(name);
    return lazy(name, shape, [shape, dtype, stddev, seed] { return normal_weights(shape, dtype, stddev, seed); }, trainable);
  };
  auto filled = [&](const std::string& name, Shape shape, double value, bool trainable) {
    return lazy(name, shape, [shape, dtype, value] {
      HostArray a(TensorMeta{shape, dtype});
      if (value != 0.0)
        for (std::int64_t i = 0; i < a.numel(); ++i) a.set(i, value);
      return a;
    }, trainable);
  };
  const double residual_scale = 1.0 / std::sqrt(2.0 * static_cast<double>(layers));
  // An attention projection (out, in), with its LoRA adapter when lora > 0.
  auto projection = [&](Value x, const std::string& name, std::int64_t out, std::int64_t in, double gain) {
    Value w = normal(name, {out, in}, gain / std::sqrt(static_cast<double>(in)), base_trainable);
    Value y = linear(x, w);
    if (lora == 0) return y;
    Value a = normal(name + ".lora_a", {lora, in}, 1.0 / std::sqrt(static_cast<double>(in)), true);
    Value b = filled(name + ".lora_b", {out, lora}, 0.0, true);
    return add(y, scale(linear(linear(x, a), b), static_cast<double>(alpha) / static_cast<double>(lora)));
  };

  // Buffers, shared by all blocks.
  Value eps = filled("buffer.rms_eps", {}, 1e-5, false);
  const double masked = dtype == DType::f16 ? -60000.0 : -1e9;  // f16's largest finite is 65504
  Value mask = fused ? Value{} : lazy("buffer.causal_mask", {T, T}, [T, dtype, masked] {
    HostArray a(TensorMeta{{T, T}, dtype});
    for (std::int64_t r = 0; r < T; ++r)
      for (std::int64_t c = r + 1; c < T; ++c) a.set(r * T + c, masked);
    return a;
  }, false);
  Value cos = lazy("buffer.rope_cos", {T, hd}, [T, hd, dtype] { return rope_tables(T, hd, 10000.0, dtype).first; }, false);
  Value sin = lazy("buffer.rope_sin", {T, hd}, [T, hd, dtype] { return rope_tables(T, hd, 10000.0, dtype).second; }, false);

  Value ids = t.placeholder("ids", {{B, T}, DType::i32});
  Value labels = t.placeholder("labels", {{B * T}, DType::i32});
  Value tokens = normal("token_embedding", {vocab, C}, 0.1, base_trainable);
  Value x = embedding(tokens, ids);  // (B, T, C)
  t.mark_stage(x);
  auto split_heads = [&](Value y, std::int64_t n) { return permute(reshape(y, {B, T, n, hd}), {0, 2, 1, 3}); };
  for (std::int64_t l = 0; l < layers; ++l) {
    const std::string at = fmt::format("layer{}.", l);
    Value a = rms_norm(x, filled(at + "attention_norm", {C}, 1.0, base_trainable), eps);
    Value q = rope(split_heads(projection(a, at + "wq", C, C, 1.0), heads), cos, sin);       // (B, h, T, hd)
    Value k = rope(split_heads(projection(a, at + "wk", kvC, C, 1.0), kv_heads), cos, sin);  // (B, kv, T, hd)
    Value v = split_heads(projection(a, at + "wv", kvC, C, 1.0), kv_heads);
    Value attn = fused ? attention(q, repeat_kv_heads(k, heads), repeat_kv_heads(v, heads), true,
                                   1.0 / std::sqrt(static_cast<double>(hd)))
                       : grouped_attention(q, k, v, mask);  // (B, h, T, hd)
    Value merged = reshape(permute(attn, {0, 2, 1, 3}), {B, T, C});
    x = add(x, projection(merged, at + "wo", C, C, residual_scale));
    Value b = rms_norm(x, filled(at + "ffn_norm", {C}, 1.0, base_trainable), eps);
    Value gate = linear(b, normal(at + "w_gate", {F, C}, 1.0 / std::sqrt(static_cast<double>(C)), base_trainable));
    Value up = linear(b, normal(at + "w_up", {F, C}, 1.0 / std::sqrt(static_cast<double>(C)), base_trainable));
    Value hidden = mul(mul(gate, sigmoid(gate)), up);  // SwiGLU: silu(gate) * up
    x = add(x, linear(hidden, normal(at + "w_down", {C, F}, residual_scale / std::sqrt(static_cast<double>(F)), base_trainable)));
    t.mark_stage(x);
    m.stage_outputs.push_back(x);
  }
  Value final_norm = rms_norm(x, filled("final_norm", {C}, 1.0, base_trainable), eps);
  Value head = tie ? tokens : normal("lm_head", {vocab, C}, 1.0 / std::sqrt(static_cast<double>(C)), base_trainable);
  Value logits = linear(final_norm, head);  // (B, T, V)
  m.loss = cross_entropy(reshape(logits, {B * T, vocab}), labels);
  m.batch = [idi = ids.id, li = labels.id, B, T, vocab](std::uint64_t step) {
    Bindings bd;
    HostArray toks = random_labels({B, T}, vocab, 37 * step + 3);
    HostArray next(TensorMeta{{B * T}, DType::i32});
    for (std::int64_t i = 0; i < B * T; ++i) next.set(i, toks.at((i % T == T - 1) ? i - (T - 1) : i + 1));
    bd[idi] = std::move(toks);
    bd[li] = std::move(next);
    return bd;
  };
  return m;
}

}  // namespace remat::zoo
