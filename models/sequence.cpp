// Contract: sequence models.
//  lstm: an LSTM unrolled over T steps (backpropagation through time). The
//    state (h, c) travels as one tensor s = concat(h, c) so that every step's
//    output is a single cut value; each step reads its own input placeholder
//    x_t, so steps are the chain's stages (Gruslys et al. 2016's setting).
//    Loss: mse of a linear read-out of h_T against a target.
//  transformer: GPT-style blocks (Radford et al. 2019): token and position
//    embeddings, pre-layernorm causal self-attention with softmax, a GELU MLP,
//    dropout on both residual branches, and a cross-entropy next-token loss.
//    Each block reads its own copy of the causal mask (a placeholder), so block
//    outputs stay cuts. attention=fused uses the fused attention op instead
//    (ops/attention.cpp: no scores kept, no mask placeholders).
// Dimension legends: B = batch, T = time, D = input features, H = hidden,
// C = model width, h = heads, V = vocabulary.
#include "models/options.hpp"

#include <cmath>

namespace remat::zoo {

Model build_lstm(const ModelSpec& spec) {
  Options o(spec);
  auto steps = o.integer("steps", 32);
  o.limit_nodes("steps", steps, 40);
  auto hidden = o.integer("hidden", 32);
  auto input = o.integer("input", 16);
  auto batch = o.integer("batch", 8);
  DType dtype = parse_dtype(o);
  Model m;
  m.spec = o.finish();
  m.tape = std::make_unique<Tape>();
  Tape& t = *m.tape;
  const std::int64_t H = hidden;
  Value w = t.parameter("w_gates", normal_weights({4 * H, input + H}, dtype, std::sqrt(1.0 / static_cast<double>(input + H)), 4001));
  HostArray bias(TensorMeta{{4 * H}, dtype});
  for (std::int64_t i = H; i < 2 * H; ++i) bias.set(i, 1.0);  // forget-gate bias 1
  Value b = t.parameter("b_gates", bias);
  Value s0 = t.placeholder("state0", {{batch, 2 * H}, dtype});
  std::vector<int> inputs;
  Value s = s0;
  for (std::int64_t k = 0; k < steps; ++k) {
    Value x = t.placeholder(fmt::format("x{}", k), {{batch, input}, dtype});
    inputs.push_back(x.id);
    Value h = slice(s, 1, 0, H), c = slice(s, 1, H, 2 * H);
    Value gates = linear(concat({x, h}, 1), w, b);  // (B, 4H): input, forget, cell, output
    Value i = sigmoid(slice(gates, 1, 0, H));
    Value f = sigmoid(slice(gates, 1, H, 2 * H));
    Value g = tanh(slice(gates, 1, 2 * H, 3 * H));
    Value og = sigmoid(slice(gates, 1, 3 * H, 4 * H));
    Value c2 = add(mul(f, c), mul(i, g));
    Value h2 = mul(og, tanh(c2));
    s = concat({h2, c2}, 1);
    t.mark_stage(s);
    m.stage_outputs.push_back(s);
  }
  Value readout = t.parameter("w_out", normal_weights({input, H}, dtype, std::sqrt(1.0 / static_cast<double>(H)), 4002));
  Value target = t.placeholder("target", {{batch, input}, dtype});
  m.loss = mse(linear(slice(s, 1, 0, H), readout), target);
  m.batch = [inputs, s0i = s0.id, ti = target.id, batch, input, H, dtype](std::uint64_t step) {
    Bindings bd;
    bd[s0i] = HostArray(TensorMeta{{batch, 2 * H}, dtype});
    for (std::size_t k = 0; k < inputs.size(); ++k)
      bd[inputs[k]] = uniform_data({batch, input}, dtype, 1000003 * step + k + 1);
    bd[ti] = uniform_data({batch, input}, dtype, 1000003 * step + 999999);
    return bd;
  };
  return m;
}

Model build_transformer(const ModelSpec& spec) {
  Options o(spec);
  auto layers = o.integer("layers", 2);
  o.limit_nodes("layers", layers, 80);
  auto width = o.integer("width", 32);
  auto heads = o.integer("heads", 4);
  auto seq = o.integer("seq", 16);
  auto batch = o.integer("batch", 4);
  auto vocab = o.integer("vocab", 64, 2, 1 << 20);
  auto dropout_percent = o.integer("dropout", 10, 0, 90);
  DType dtype = parse_dtype(o);
  const bool fused = o.choice("attention", "naive", {"naive", "fused"}) == "fused";
  if (width % heads != 0)
    throw Error(fmt::format("[model transformer] width={} must be a multiple of heads={}", width, heads));
  Model m;
  m.spec = o.finish();
  m.tape = std::make_unique<Tape>();
  Tape& t = *m.tape;
  const std::int64_t C = width, hd = width / heads, B = batch, T = seq;
  const double p = static_cast<double>(dropout_percent) / 100.0;
  std::uint32_t seed = 5000;
  auto weight = [&](std::int64_t out, std::int64_t in, double gain = 1.0) {
    return t.parameter(fmt::format("w{}", seed), normal_weights({out, in}, dtype, std::sqrt(gain / static_cast<double>(in)), seed++));
  };
  auto zeros = [&](std::int64_t n) { return t.parameter(fmt::format("z{}", seed++), HostArray(TensorMeta{{n}, dtype})); };
  auto ones = [&](std::int64_t n) {
    HostArray a(TensorMeta{{n}, dtype});
    for (std::int64_t i = 0; i < n; ++i) a.set(i, 1.0);
    return t.parameter(fmt::format("g{}", seed++), a);
  };
  Value ids = t.placeholder("ids", {{B, T}, DType::i32});
  Value labels = t.placeholder("labels", {{B * T}, DType::i32});
  Value tokens = t.parameter("token_embedding", normal_weights({vocab, C}, dtype, 0.1, seed++));
  Value positions = t.parameter("position_embedding", normal_weights({T, C}, dtype, 0.1, seed++));
  Value x = add(embedding(tokens, ids), positions);  // (B, T, C)
  t.mark_stage(x);
  std::vector<int> masks;
  for (std::int64_t l = 0; l < layers; ++l) {
    // Attention: q, k, v (B, h, T, hd); scores (B, h, T, T).
    Value a = layernorm(x, ones(C), zeros(C));
    Value qkv = linear(a, weight(3 * C, C), zeros(3 * C));  // (B, T, 3C)
    auto heads_of = [&](std::int64_t k) { return permute(reshape(slice(qkv, 2, k * C, (k + 1) * C), {B, T, heads, hd}), {0, 2, 1, 3}); };
    Value q = heads_of(0), k = heads_of(1), v = heads_of(2);
    const double sc = 1.0 / std::sqrt(static_cast<double>(hd));
    Value attn = fused ? attention(q, k, v, true, sc) : Value{};  // (B, h, T, hd), no (B, h, T, T) kept
    if (!fused) {
      Value mask = t.placeholder(fmt::format("causal_mask{}", l), {{T, T}, dtype});
      masks.push_back(mask.id);
      attn = matmul(softmax(add(scale(matmul(q, transpose(k)), sc), mask)), v);
    }
    Value merged = reshape(permute(attn, {0, 2, 1, 3}), {B, T, C});
    x = add(x, dropout(linear(merged, weight(C, C, 1.0 / static_cast<double>(layers)), zeros(C)), p));
    // MLP: C -> 4C -> C with GELU.
    Value b2 = layernorm(x, ones(C), zeros(C));
    Value hidden = gelu(linear(b2, weight(4 * C, C), zeros(4 * C)));
    x = add(x, dropout(linear(hidden, weight(C, 4 * C, 1.0 / static_cast<double>(layers)), zeros(C)), p));
    t.mark_stage(x);
    m.stage_outputs.push_back(x);
  }
  Value logits = linear(layernorm(x, ones(C), zeros(C)), weight(vocab, C));
  m.loss = cross_entropy(reshape(logits, {B * T, vocab}), labels);
  m.batch = [masks, idi = ids.id, li = labels.id, B, T, vocab, dtype](std::uint64_t step) {
    Bindings bd;
    HostArray tokens = random_labels({B, T}, vocab, 31 * step + 1);
    HostArray next(TensorMeta{{B * T}, DType::i32});
    for (std::int64_t i = 0; i < B * T; ++i)  // next-token targets; the last wraps to the first
      next.set(i, tokens.at((i % T == T - 1) ? i - (T - 1) : i + 1));
    bd[idi] = tokens;
    bd[li] = next;
    HostArray mask(TensorMeta{{T, T}, dtype});
    for (std::int64_t r = 0; r < T; ++r)
      for (std::int64_t c = 0; c < T; ++c) mask.set(r * T + c, c > r ? -1e9 : 0.0);
    for (int id : masks) bd[id] = mask;
    return bd;
  };
  return m;
}

}  // namespace remat::zoo
