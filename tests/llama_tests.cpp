// Contract: tests of the llama zoo family (models/llama.cpp) and of lazily made
// parameters (Tape::parameter with an initialiser):
//  - its blocks against their formulas computed here with plain loops: RMSNorm,
//    the rotary tables and rotation, grouped-query attention, repeat_kv_heads;
//  - the 7B, 13B and 1B presets' parameter counts against the published shapes'
//    closed forms, recorded and planned without making a weight;
//  - LoRA: the adapted model's loss at initialisation equals the base model's
//    bitwise (B = 0), only adapters get gradients, and they match finite differences
//    of the loss;
//  - attention=fused computes the naive model's loss and gradients (to rounding);
//  - every strategy keeps the three promises on llama (naive, fused, LoRA) and on the
//    transformer with fused attention;
//  - a lazy initialiser returning the wrong shape is refused naming the parameter.
#include "gradcheck.hpp"
#include "models/llama.hpp"
#include "models/models.hpp"

#include "autodiff/promises.hpp"
#include "strategy_sweep.hpp"
#include "autodiff/eval.hpp"
#include "strategies/strategies.hpp"

#include <doctest/doctest.h>

#include <cmath>

using namespace remat;
using namespace remat::testing;

namespace {

HostArray eval_value(Tape&, Value v) { return eval(v); }

// Parameter count of a LLaMA-shaped decoder (untied head, no biases).
std::int64_t llama_parameters(std::int64_t layers, std::int64_t C, std::int64_t heads, std::int64_t kv,
                              std::int64_t F, std::int64_t V) {
  const std::int64_t hd = C / heads;
  const std::int64_t block = C * C /*q*/ + 2 * C * kv * hd /*k, v*/ + C * C /*o*/ + 3 * C * F /*gate, up, down*/ +
                             2 * C /*two norms*/;
  return V * C /*embedding*/ + layers * block + C /*final norm*/ + V * C /*head*/;
}

}  // namespace

TEST_CASE("llama blocks: rms_norm, rope and grouped attention equal their formulas") {
  Tape t;
  const std::int64_t B = 2, T = 5, hd = 6, heads = 4, kv = 2;
  HostArray xa = random_array({B, T, hd}, 1, -2, 2, DType::f64), ga = random_array({hd}, 2, 0.5, 1.5, DType::f64);
  HostArray eps_a(TensorMeta{{}, DType::f64});
  eps_a.set(0, 1e-5);
  Value x = t.input("x", xa), g = t.input("g", ga), eps = t.input("eps", eps_a);
  HostArray rn = eval_value(t, zoo::rms_norm(x, g, eps));
  for (std::int64_t r = 0; r < B * T; ++r) {
    double ms = 0;
    for (std::int64_t c = 0; c < hd; ++c) ms += xa.at(r * hd + c) * xa.at(r * hd + c);
    const double inv = 1.0 / std::sqrt(ms / static_cast<double>(hd) + 1e-5);
    for (std::int64_t c = 0; c < hd; ++c)
      CHECK(rn.at(r * hd + c) == doctest::Approx(xa.at(r * hd + c) * inv * ga.at(c)).epsilon(1e-12));
  }

  // RoPE: pair (i, i + hd/2) at position p rotates by p * 10000^(-2i/hd).
  auto [cos_a, sin_a] = zoo::rope_tables(T, hd, 10000.0, DType::f64);
  HostArray qa = random_array({B, heads, T, hd}, 3, -1, 1, DType::f64);
  Value q = t.input("q", qa);
  HostArray rq = eval_value(t, zoo::rope(q, t.input("cos", cos_a), t.input("sin", sin_a)));
  const std::int64_t half = hd / 2;
  for (std::int64_t bh = 0; bh < B * heads; ++bh)
    for (std::int64_t p = 0; p < T; ++p)
      for (std::int64_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(p) * std::pow(10000.0, -2.0 * static_cast<double>(i) / hd);
        const std::int64_t row = (bh * T + p) * hd;
        const double a = qa.at(row + i), b = qa.at(row + i + half);
        CHECK(rq.at(row + i) == doctest::Approx(a * std::cos(angle) - b * std::sin(angle)).epsilon(1e-12));
        CHECK(rq.at(row + i + half) == doctest::Approx(b * std::cos(angle) + a * std::sin(angle)).epsilon(1e-12));
      }

  // Grouped-query attention: query head j reads kv head j / (heads / kv), causally.
  HostArray ka = random_array({B, kv, T, hd}, 4, -1, 1, DType::f64), va = random_array({B, kv, T, hd}, 5, -1, 1, DType::f64);
  HostArray mask(TensorMeta{{T, T}, DType::f64});
  for (std::int64_t r = 0; r < T; ++r)
    for (std::int64_t c = r + 1; c < T; ++c) mask.set(r * T + c, -1e9);
  Value k = t.input("k", ka), v = t.input("v", va);
  HostArray out = eval_value(t, zoo::grouped_attention(q, k, v, t.input("mask", mask)));
  HostArray rep = eval_value(t, zoo::repeat_kv_heads(k, heads));
  const std::int64_t group = heads / kv;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < heads; ++h) {
      const std::int64_t kh = h / group;
      for (std::int64_t i = 0; i < T * hd; ++i)
        CHECK(rep.at((b * heads + h) * T * hd + i) == ka.at((b * kv + kh) * T * hd + i));
      for (std::int64_t r = 0; r < T; ++r) {
        std::vector<double> w(static_cast<std::size_t>(r + 1));
        double top = -1e300, z = 0;
        for (std::int64_t c = 0; c <= r; ++c) {
          double s = 0;
          for (std::int64_t d = 0; d < hd; ++d)
            s += qa.at(((b * heads + h) * T + r) * hd + d) * ka.at(((b * kv + kh) * T + c) * hd + d);
          w[static_cast<std::size_t>(c)] = s / std::sqrt(static_cast<double>(hd));
          top = std::max(top, w[static_cast<std::size_t>(c)]);
        }
        for (auto& e : w) z += (e = std::exp(e - top));
        for (std::int64_t d = 0; d < hd; ++d) {
          double o = 0;
          for (std::int64_t c = 0; c <= r; ++c) o += w[static_cast<std::size_t>(c)] / z * va.at(((b * kv + kh) * T + c) * hd + d);
          CHECK(out.at(((b * heads + h) * T + r) * hd + d) == doctest::Approx(o).epsilon(1e-10));
        }
      }
    }
  CHECK_THROWS_WITH_AS(zoo::repeat_kv_heads(k, 3), doctest::Contains("[repeat_kv_heads]"), Error);
}

TEST_CASE("llama presets: parameter counts equal the published shapes', recorded without making a weight") {
  struct Case {
    const char* spec;
    std::int64_t layers, C, heads, kv, F;
  };
  for (Case c : {Case{"llama:preset=7b,seq=2048,batch=1,dtype=bf16", 32, 4096, 32, 32, 11008},
                 Case{"llama:preset=13b,seq=64,batch=1,dtype=bf16", 40, 5120, 40, 40, 13824},
                 Case{"llama:preset=1b,seq=64,batch=1,dtype=bf16", 22, 2048, 32, 4, 5632}}) {
    CAPTURE(c.spec);
    Model m = build_model(c.spec);
    std::int64_t trainable = 0;
    for (int id : m.tape->parameters())
      if (m.tape->node(id).requires_grad) trainable += m.tape->node(id).meta.numel();
    CHECK(trainable == llama_parameters(c.layers, c.C, c.heads, c.kv, c.F, 32000));
    // Planning on the shape alone: the simulator needs no weight values.
    StepReport r = simulate(*m.tape, store_all_program(*m.tape, m.loss.id));
    CHECK(r.peak_bytes > 0);
  }
  // LLaMA 7B has 6,738,415,616 parameters (Touvron et al. 2023: "6.7B").
  CHECK(llama_parameters(32, 4096, 32, 32, 11008, 32000) == 6738415616);
}

TEST_CASE("llama LoRA: equals the base model at initialisation; only adapters learn, matching finite differences") {
  const std::string base = "llama:layers=2,width=16,heads=4,kv_heads=2,ffn=24,vocab=20,seq=6,batch=2,dtype=f64";
  Model plain = build_model(base), adapted = build_model(base + ",lora=2,alpha=4");
  CpuBackend cpu;
  Executor ep(*plain.tape, cpu);
  StepResult rp = grad(ep, plain.loss, plain.batch(0));
  Executor ea(*adapted.tape, cpu);
  StepResult ra = grad(ea, adapted.loss, adapted.batch(0));
  CHECK(rp.loss->at(0) == ra.loss->at(0));
  int adapters = 0;
  for (int id : adapted.tape->parameters()) {
    const Node& n = adapted.tape->node(id);
    const bool is_adapter = n.name.find(".lora_") != std::string::npos;
    CAPTURE(n.name);
    CHECK(n.requires_grad == is_adapter);
    CHECK(ra.gradients.count(id) == (is_adapter ? 1u : 0u));
    adapters += is_adapter;
  }
  CHECK(adapters == 2 * 4 * 2);  // 2 layers x (q, k, v, o) x (A, B)

  // Finite differences on one adapter B entry and one A entry (A gets no gradient while B = 0).
  for (const char* which : {"layer1.wv.lora_b", "layer0.wq.lora_b"}) {
    int id = -1;
    for (int p : adapted.tape->parameters())
      if (adapted.tape->node(p).name == which) id = p;
    REQUIRE(id >= 0);
    const HostArray analytic = cpu.download(ra.gradients.at(id));
    auto loss_with = [&](double delta) {
      Model m = build_model(base + ",lora=2,alpha=4");
      HostArray w = m.tape->parameter_initial(id);
      w.set(3, w.at(3) + delta);
      CpuBackend b;
      Executor ex(*m.tape, b);
      ex.write_parameter(id, w);
      return grad(ex, m.loss, m.batch(0)).loss->at(0);
    };
    const double h = 1e-6;
    CHECK(analytic.at(3) == doctest::Approx((loss_with(h) - loss_with(-h)) / (2 * h)).epsilon(1e-6));
  }
}

TEST_CASE("llama attention=fused equals the naive model's loss and gradients") {
  const std::string base = "llama:layers=2,width=16,heads=4,kv_heads=2,ffn=24,vocab=20,seq=7,batch=2,dtype=f64";
  Model naive = build_model(base), fused = build_model(base + ",attention=fused");
  CpuBackend cpu;
  Executor en(*naive.tape, cpu), ef(*fused.tape, cpu);
  StepResult rn = grad(en, naive.loss, naive.batch(0)), rf = grad(ef, fused.loss, fused.batch(0));
  CHECK(rf.loss->at(0) == doctest::Approx(rn.loss->at(0)).epsilon(1e-12));
  std::map<std::string, int> by_name;
  for (int id : naive.tape->parameters()) by_name[naive.tape->node(id).name] = id;
  int compared = 0;
  for (int id : fused.tape->parameters()) {
    const std::string& name = fused.tape->node(id).name;
    if (!fused.tape->node(id).requires_grad) continue;
    CAPTURE(name);
    REQUIRE(by_name.count(name));
    HostArray a = cpu.download(rf.gradients.at(id)), b = cpu.download(rn.gradients.at(by_name[name]));
    for (std::int64_t i = 0; i < a.numel(); ++i) CHECK(a.at(i) == doctest::Approx(b.at(i)).epsilon(1e-9).scale(1e-9));
    ++compared;
  }
  CHECK(compared == 2 * 9 + 3);  // per layer q, k, v, o, gate, up, down, two norms; embedding, final norm, head
}

TEST_CASE("llama and fused attention: every strategy keeps the three promises") {
  for (const char* spec : {"llama:layers=3,width=16,heads=4,kv_heads=2,ffn=24,vocab=20,seq=8,batch=2",
                           "llama:layers=3,width=16,heads=4,kv_heads=2,ffn=24,vocab=20,seq=8,batch=2,attention=fused",
                           "llama:layers=3,width=16,heads=4,kv_heads=4,ffn=24,vocab=20,seq=8,batch=1,lora=2",
                           "transformer:layers=3,width=16,heads=2,seq=8,batch=2,vocab=16,attention=fused"}) {
    Model m = build_model(spec);
    const Tape& tape = *m.tape;
    CpuBackend cpu;
    Bindings data = m.batch(0);
    ReferenceStep reference = reference_step(tape, m.loss.id, cpu, data);
    CAPTURE(spec);
    const int planned = for_each_strategy_plan(tape, m.loss.id, {0.0, 0.7, 0.45}, [&](const Program& program, auto budget) {
      Executor ex(tape, cpu);
      auto run = ex.run(program, data);
      PromiseCheck check = check_promises(tape, cpu, run, simulate(tape, program), reference, budget);
      for (const auto& broken : check.broken) MESSAGE(broken);
      CHECK(check.ok());
    });
    CHECK(planned > 6);
  }
}

TEST_CASE("lazy parameters: made on first use, refused when the initialiser returns the wrong shape") {
  Tape t;
  int made = 0;
  Value ok = t.parameter("w", TensorMeta{{2, 3}, DType::f32}, [&] {
    ++made;
    return random_array({2, 3}, 9, -1, 1, DType::f32);
  });
  Value bad = t.parameter("bad", TensorMeta{{2, 3}, DType::f32}, [] { return random_array({3, 2}, 9, -1, 1, DType::f32); });
  CHECK(made == 0);
  CHECK(t.parameter_initial(ok.id).numel() == 6);
  CHECK(t.parameter_initial(ok.id).numel() == 6);
  CHECK(made == 1);
  CHECK_THROWS_WITH_AS(t.parameter_initial(bad.id), doctest::Contains("[tape] the initialiser of parameter 'bad'"), Error);
  CHECK_THROWS_WITH_AS(t.parameter("none", TensorMeta{{2}, DType::f32}, std::function<HostArray()>{}),
                       doctest::Contains("has no initialiser"), Error);
}
