// Contract: a Chain is the stage-level model most checkpointing theory works on,
// in the notation of Beaumont et al. 2019 (arXiv:1911.13214, "rotor"; docs/papers.md):
// stages 0..L-1 map x(i) to x(i+1), and stage L is the loss (backward only).
// All costs are integers (time units; memory in bytes or slots):
//   fw[i]   (i < L)  forward time of stage i
//   bw[i]   (i <= L) backward time of stage i (bw[L] = 0: the loss)
//   cw[i]   (i <= L) size of x(i), the input of stage i (x(0) is the chain input)
//   cbw[i]  (i <= L) size of xbar(i): all that stage i-1's backward needs when
//                    stage i-1 ran taped (it includes x(i))
//   ftmp[i] (i < L)  temporary memory during the forward of stage i
//   btmp[i] (i <= L) temporary memory during the backward of stage i
//   fdrop[i] (i < L, optional) the most memory F_n i holds while it runs when it drops
//                    a plain x(i): x(i) until its last read, x(i+1) and temporaries.
//                    The rotor model has x(i) live throughout, cw[i] + cw[i+1] + ftmp[i],
//                    which is the default and the upper limit (a larger value is capped).
//                    A recorded tape frees x(i) as soon as the stage no longer reads it,
//                    so chain_view() fills this in.
// Budgets count x(0). Chain files are JSON objects with these integer arrays and
// an optional "name"; "uniform:n=N" is fw=1, bw=2, cw=1, cbw=2, no temporaries, bw[L]=0.
#pragma once

#include "autodiff/tensor.hpp"

#include <algorithm>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace remat {

// Bounds of what a chain may hold, so that every sum the planners form fits in 64 bits
// (values up to 2^50, at most 10^7 stages) and a hostile file cannot exhaust memory.
inline constexpr std::int64_t chain_value_limit = std::int64_t{1} << 50;
inline constexpr std::size_t chain_file_limit = std::size_t{64} << 20;  // bytes of a chain file
inline constexpr std::size_t chain_nesting_limit = 16;                 // arrays/objects nested

struct Chain {
  std::string name;
  std::vector<std::int64_t> fw, bw, cw, cbw, ftmp, btmp;
  std::vector<std::int64_t> fdrop;  // empty: the rotor model

  int length() const { return static_cast<int>(fw.size()); }  // L
  // The transient of F_n i dropping a plain x(i) (see fdrop above), for i < L.
  std::int64_t forward_drop_peak(int i) const {
    const auto u = static_cast<std::size_t>(i);
    const std::int64_t rotor = cw[u] + cw[u + 1] + ftmp[u];
    return fdrop.empty() ? rotor : std::min(rotor, fdrop[u]);
  }
  // Throws Error "[chain <name>] ..." when array lengths or values are inconsistent.
  void validate() const;
  nlohmann::json to_json() const;
  static Chain from_json(const nlohmann::json& json, const std::string& source);
  // A chain file's text: size, nesting and duplicate keys checked before from_json.
  static Chain parse_text(const std::string& text, const std::string& source);
  static Chain uniform(int stages);
  // "uniform:n=N" (N <= 10^7) or "file:PATH" (a regular file of at most 64 MiB; the
  // CLI's --chain); errors name the spec.
  static Chain parse_spec(const std::string& spec);
  // Memory rounded up to slots of `slot_bytes` (conservatively: never smaller).
  Chain in_slots(std::int64_t slot_bytes) const;
};

}  // namespace remat
