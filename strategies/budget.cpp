// Contract: parsing and resolving budgets (see budget.hpp).
#include "strategies/budget.hpp"

#include "autodiff/tensor.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace remat {

namespace {
constexpr double max_bytes = 4.611686018427387904e18;  // 2^62

[[noreturn]] void refuse(const std::string& text, const std::string& why) {
  throw Error(fmt::format("[budget] '{}' {}: give bytes (1048576, 512KiB, 64MiB, 2GiB) or a percentage of "
                          "store-all's peak (60%)",
                          text, why));
}

// Strictly a decimal number: digits with at most one '.', nothing else.
bool parse_decimal(const std::string& s, double& value) {
  if (s.empty()) return false;
  int dots = 0, digits = 0;
  for (char c : s) {
    if (c == '.') ++dots;
    else if (c >= '0' && c <= '9') ++digits;
    else return false;
  }
  if (dots > 1 || digits == 0) return false;
  value = std::strtod(s.c_str(), nullptr);
  return std::isfinite(value);
}
}  // namespace

BudgetSpec parse_budget(const std::string& raw) {
  BudgetSpec spec;
  spec.text = raw;
  std::string text = raw;
  while (!text.empty() && text.front() == ' ') text.erase(text.begin());
  while (!text.empty() && text.back() == ' ') text.pop_back();
  if (text.empty()) refuse(raw, "is empty");
  if (text.back() == '%') {
    double p = 0;
    if (!parse_decimal(text.substr(0, text.size() - 1), p)) refuse(raw, "is not a percentage");
    if (!(p > 0)) refuse(raw, "must be positive");
    if (p > 1e6) refuse(raw, "is too large");
    spec.percent = p;
    return spec;
  }
  std::size_t split = 0;
  while (split < text.size() && (std::isdigit(static_cast<unsigned char>(text[split])) || text[split] == '.')) ++split;
  const std::string number = text.substr(0, split), unit = text.substr(split);
  double value = 0;
  if (!parse_decimal(number, value)) {
    if (!text.empty() && text[0] == '-') refuse(raw, "must be positive");
    refuse(raw, "cannot be parsed");
  }
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KiB" || unit == "K" || unit == "KB") scale = 1024.0;
  else if (unit == "MiB" || unit == "M" || unit == "MB") scale = 1024.0 * 1024;
  else if (unit == "GiB" || unit == "G" || unit == "GB") scale = 1024.0 * 1024 * 1024;
  else if (unit == "TiB" || unit == "T" || unit == "TB") scale = 1024.0 * 1024 * 1024 * 1024;
  else refuse(raw, "has an unknown unit '" + unit + "'");
  if (unit.empty() && number.find('.') != std::string::npos) refuse(raw, "is a bare fraction, neither bytes nor a share");
  const double bytes = std::ceil(value * scale);
  if (!(bytes >= 1)) refuse(raw, "must be at least one byte");
  if (bytes > max_bytes) refuse(raw, "is too large (at most 2^62 bytes)");
  spec.bytes = static_cast<std::size_t>(bytes);
  return spec;
}

std::size_t BudgetSpec::resolve(std::size_t store_all_peak) const {
  if (bytes) return *bytes;
  // floor(peak * p / 100), exact for 100% (long double keeps 64 bits of mantissa).
  const long double b = std::floor(static_cast<long double>(store_all_peak) * static_cast<long double>(*percent) / 100.0L);
  if (b > static_cast<long double>(max_bytes)) throw Error("[budget] '" + text + "' of store-all's peak is too large");
  return static_cast<std::size_t>(b);
}

}  // namespace remat
