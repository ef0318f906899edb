// Contract: SPEC parsing and the model registry (see models.hpp). Each model
// family lives in its own function below; weights are N(0, gain/fan_in) from a
// fixed seed, inputs are uniform in [-1, 1) from (seed, step).
#include "models/models.hpp"
#include "models/options.hpp"

#include <fmt/format.h>

#include <cmath>
#include <random>
#include <set>
#include <sstream>

namespace remat {

ModelSpec ModelSpec::parse(const std::string& spec) {
  ModelSpec s;
  auto colon = spec.find(':');
  s.name = spec.substr(0, colon);
  if (s.name.empty()) throw Error("[model] empty model name in spec '" + spec + "'");
  if (colon == std::string::npos) return s;
  std::stringstream rest(spec.substr(colon + 1));
  std::string item;
  while (std::getline(rest, item, ',')) {
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw Error("[model] expected key=value in spec '" + spec + "', got '" + item + "'");
    auto key = item.substr(0, eq);
    if (s.options.count(key)) throw Error("[model] key '" + key + "' given twice in spec '" + spec + "'");
    s.options[key] = item.substr(eq + 1);
  }
  return s;
}

std::string ModelSpec::to_string() const {
  std::string s = name;
  char sep = ':';
  for (const auto& [k, v] : options) {
    s += sep + k + "=" + v;
    sep = ',';
  }
  return s;
}

namespace zoo {
namespace {

Value activation(const std::string& act, Value x) {
  if (act == "relu") return relu(x);
  if (act == "tanh") return tanh(x);
  if (act == "gelu") return gelu(x);
  return sigmoid(x);
}

// x (batch, width) -> [linear, act] * layers -> mse against a target (batch, width).
// resmlp adds the block input back: h = h + act(linear(h)).
}  // namespace

Model build_mlp(const ModelSpec& spec, bool residual) {
  Options o(spec);
  auto layers = o.integer("layers", residual ? 16 : 8);
  o.limit_nodes("layers", layers, 8);
  auto width = o.integer("width", 256);
  auto batch = o.integer("batch", 64);
  auto act = o.choice("act", "relu", {"relu", "tanh", "gelu", "sigmoid"});
  DType dtype = parse_dtype(o);
  Model m;
  m.spec = o.finish();
  m.tape = std::make_unique<Tape>();
  Tape& t = *m.tape;
  Value x = t.placeholder("x", {{batch, width}, dtype});
  Value target = t.placeholder("target", {{batch, width}, dtype});
  Value h = x;
  double gain = act == "relu" ? 2.0 : 1.0;
  for (std::int64_t l = 0; l < layers; ++l) {
    // Residual blocks are scaled down so depth does not blow up the activations.
    double stddev = std::sqrt(gain / static_cast<double>(width)) * (residual ? 0.5 / std::sqrt(static_cast<double>(layers)) : 1.0);
    Value w = t.parameter(fmt::format("w{}", l), normal_weights({width, width}, dtype, stddev, static_cast<std::uint32_t>(1000 + l)));
    Value b = t.parameter(fmt::format("b{}", l), HostArray(TensorMeta{{width}, dtype}));
    Value y = activation(act, linear(h, w, b));
    h = residual ? add(h, y) : y;
    t.mark_stage(h);
    m.stage_outputs.push_back(h);
  }
  m.loss = mse(h, target);
  TensorMeta xm{{batch, width}, dtype};
  m.batch = [xm, xi = x.id, ti = target.id](std::uint64_t step) {
    Bindings b;
    b[xi] = uniform_data(xm.shape, xm.dtype, 2 * step + 1);
    b[ti] = uniform_data(xm.shape, xm.dtype, 2 * step + 2);
    return b;
  };
  return m;
}

}  // namespace zoo

Model build_model(const std::string& text) {
  ModelSpec spec = ModelSpec::parse(text);
  if (spec.name == "mlp") return zoo::build_mlp(spec, false);
  if (spec.name == "resmlp") return zoo::build_mlp(spec, true);
  if (spec.name == "resnet") return zoo::build_resnet(spec);
  if (spec.name == "lstm") return zoo::build_lstm(spec);
  if (spec.name == "transformer") return zoo::build_transformer(spec);
  if (spec.name == "llama") return zoo::build_llama(spec);
  if (spec.name == "unet") return zoo::build_unet(spec);
  if (spec.name == "heat") return zoo::build_heat(spec);
  throw Error("[model] unknown model '" + spec.name + "'; known models:\n" + model_catalogue());
}

std::string model_catalogue() {
  return "  mlp:layers=8,width=256,batch=64,act=relu|tanh|gelu|sigmoid,dtype=f32|f64\n"
         "  resmlp:layers=16,width=256,batch=64,act=...,dtype=...        (residual MLP blocks)\n"
         "  resnet:blocks=3,width=8,batch=8,image=32,classes=10,bn=1     (depth = 2*blocks+2 conv layers)\n"
         "  lstm:steps=32,hidden=32,input=16,batch=8                      (unrolled, BPTT)\n"
         "  transformer:layers=2,width=32,heads=4,seq=16,batch=4,vocab=64,dropout=10,attention=naive|fused (GPT-style)\n"
         "  llama:preset=none|1b|7b|13b,layers=2,width=32,heads=4,kv_heads=2,ffn=64,vocab=64,seq=16,batch=2,tie=0,\n"
         "        lora=0,alpha=R,attention=naive|fused  (LLaMA-style: RMSNorm, RoPE, grouped-query attention, SwiGLU; lora=R adapts q,k,v,o\n"
         "        and freezes the base; preset values are overridden by explicit keys)\n"
         "  unet:levels=2,width=8,batch=2,image=32                        (skip connections)\n"
         "  heat:steps=100,grid=64,r=25,equation=heat|burgers,c=10       (1-D heat or viscous Burgers, r and c in 1/100)\n"
         "  every model also takes dtype=f32|f64\n";
}

}  // namespace remat
