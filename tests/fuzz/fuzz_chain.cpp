// Contract: libFuzzer target for chain files and chain specs (strategies/chain.hpp).
// The first byte picks what the rest of the input is:
//   'j'  JSON text for Chain::from_json (parsed without exceptions first);
//   's'  a --chain spec for Chain::parse_spec ("file:" specs are skipped: the
//        target reads no paths the input names);
//   'f'  the contents of a chain file, written to a scratch file and read back
//        through parse_spec("file:...");
//   anything else: the whole input as JSON, as with 'j'.
// A parsed chain must survive to_json -> from_json unchanged, and a small one is
// handed to every chain strategy (stage-level schedule and its replay) under a
// budget taken from the input. Errors (remat::Error, InfeasibleBudget) are the
// expected outcome of bad input; anything else (a crash, a sanitizer report, an
// exception of another type) is a finding.
#include "strategies/stage_schedules.hpp"
#include "strategies/strategies.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace remat;

namespace {

void exercise(const Chain& chain, std::uint64_t budget_seed) {
  // Round trip: what to_json writes, from_json reads back identically.
  Chain again = Chain::from_json(chain.to_json(), "roundtrip");
  if (again.name != chain.name || again.fw != chain.fw || again.bw != chain.bw || again.cw != chain.cw ||
      again.cbw != chain.cbw || again.ftmp != chain.ftmp || again.btmp != chain.btmp)
    __builtin_trap();

  // Strategies on small chains with moderate costs (large ones are the planners'
  // own business: the DP table is refused above its memory limit, not fuzzed here).
  if (chain.length() > 24) return;
  for (const auto* f : {&chain.fw, &chain.bw, &chain.cw, &chain.cbw, &chain.ftmp, &chain.btmp})
    for (auto v : *f)
      if (v > (std::int64_t{1} << 24)) return;
  const std::int64_t store_all_peak = simulate_schedule(chain, store_all_schedule(chain)).peak_memory;
  const auto budget = static_cast<std::size_t>(budget_seed % static_cast<std::uint64_t>(2 * store_all_peak + 2));
  for (const auto& row : strategy_registry()) {
    if (row.level != StrategyLevel::chain) continue;
    StrategyOptions options;
    if (row.name == "optimal") options.dp_slots = 50;
    auto strategy = row.make(options);
    try {
      StagePlan p = strategy->plan_chain(chain, Budget{budget});
      // The schedule must replay (it throws on a missing input) and fit the budget.
      if (simulate_schedule(chain, p.schedule).peak_memory > static_cast<std::int64_t>(budget)) __builtin_trap();
    } catch (const InfeasibleBudget& e) {
      if (e.min_feasible_bytes <= budget) __builtin_trap();  // "infeasible" must name a larger budget
    } catch (const Error&) {
    }
  }
}

void parse_json(const std::string& text, std::uint64_t budget_seed) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return;
  try {
    exercise(Chain::from_json(json, "fuzz"), budget_seed);
  } catch (const Error&) {
  }
}

std::string scratch_file() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/tmp") + "/remat_fuzz_chain_" + std::to_string(::getpid()) + ".json";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::uint64_t budget_seed = 0;
  for (std::size_t i = 0; i < size && i < 8; ++i) budget_seed = budget_seed * 131 + data[size - 1 - i];
  const std::string rest = input.substr(1);
  switch (input[0]) {
    case 's': {
      if (rest.rfind("file:", 0) == 0) return 0;
      // uniform:n=N accepts N up to 10^8: six arrays of that many int64 are gigabytes.
      if (rest.rfind("uniform:n=", 0) == 0 && rest.size() > 10 + 4) return 0;
      try {
        exercise(Chain::parse_spec(rest), budget_seed);
      } catch (const Error&) {
      }
      return 0;
    }
    case 'f': {
      const std::string path = scratch_file();
      {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << rest;
      }
      try {
        exercise(Chain::parse_spec("file:" + path), budget_seed);
      } catch (const Error&) {
      }
      std::remove(path.c_str());
      return 0;
    }
    case 'j': parse_json(rest, budget_seed); return 0;
    default: parse_json(input, budget_seed); return 0;
  }
}
