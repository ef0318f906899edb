// Contract: libFuzzer target for model SPEC strings (models/models.hpp).
// Every input is parsed with ModelSpec::parse, which must either throw an Error
// or give a spec that survives to_string -> parse unchanged. Specs that are cheap
// to build (fuzz::small_model_spec: each integer option <= 256 and their product,
// defaults included and widths squared, <= 2^14; checked here, before anything is
// built, so the fuzzer never asks for a 2^30-wide layer) are built with build_model;
// a built model's canonical spec must build the same tape again, and its store-all
// program must simulate and its chain view must exist. Errors are expected;
// crashes, sanitizer reports and other exception types are findings.
#include "fuzz_common.hpp"
#include "strategies/strategies.hpp"

#include <cstdint>
#include <string>

using namespace remat;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    ModelSpec spec = ModelSpec::parse(text);
    ModelSpec again = ModelSpec::parse(spec.to_string());
    if (again.name != spec.name || again.options != spec.options) __builtin_trap();
  } catch (const Error&) {
    return 0;
  }
  if (!fuzz::small_model_spec(text, 256, 1 << 14)) return 0;
  try {
    Model m = build_model(text);
    Model rebuilt = build_model(m.spec);
    if (rebuilt.spec != m.spec || rebuilt.tape->size() != m.tape->size()) __builtin_trap();
    StepReport r = simulate(*m.tape, store_all_program(*m.tape, m.loss.id));
    if (r.peak_bytes == 0) __builtin_trap();
    chain_view(*m.tape, m.loss.id);
  } catch (const Error&) {
  }
  return 0;
}
