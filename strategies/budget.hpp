// Contract: the one budget syntax of remat (CLI, Python, experiment drivers):
//   bytes       "1048576", "512KiB", "64MiB", "1.5GiB" (K, M, G, KB, MB, GB and B are
//               accepted too; every prefix is a power of 1024), rounded up to a byte;
//   percentage  "60%" of store-all's simulated peak on the same graph, rounded down.
// A bare number with a fraction ("0.5") is refused, naming both forms: it could mean
// a byte count or a share, and remat does not guess. Zero, negative, non-finite and
// absurd values (above 2^62 bytes, above 10^6 %) are refused. Errors: "[budget] ...".
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace remat {

struct BudgetSpec {
  std::string text;
  std::optional<std::size_t> bytes;  // an absolute budget
  std::optional<double> percent;     // or a share of store-all's peak
  // Bytes, given store-all's peak on the graph being planned.
  std::size_t resolve(std::size_t store_all_peak) const;
};

BudgetSpec parse_budget(const std::string& text);

}  // namespace remat
