// Contract: helpers the libFuzzer targets share. The guards here keep a fuzz
// input from asking for work no test machine has (a 2^30-wide MLP, a chain of
// 10^8 stages, files outside the run); they live in the targets only, never in
// the library, which must itself refuse or handle whatever passes them.
#pragma once

#include "models/models.hpp"

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <map>
#include <sstream>
#include <streambuf>
#include <string>

namespace remat::fuzz {

// The integer options of each model with their defaults, read from
// model_catalogue() ("  mlp:layers=8,width=256,batch=64,act=...").
inline const std::map<std::string, std::map<std::string, std::int64_t>>& catalogue_defaults() {
  static const auto defaults = [] {
    std::map<std::string, std::map<std::string, std::int64_t>> d;
    std::istringstream lines(model_catalogue());
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream words(line);
      std::string first;
      words >> first;
      try {
        ModelSpec spec = ModelSpec::parse(first);
        for (const auto& [key, value] : spec.options) {
          std::size_t pos = 0;
          try {
            std::int64_t v = std::stoll(value, &pos);
            if (pos == value.size()) d[spec.name][key] = v;
          } catch (const std::exception&) {
          }
        }
      } catch (const std::exception&) {
      }
    }
    return d;
  }();
  return defaults;
}

// True when `text` is cheap to build: every integer option is at most `max_value`,
// and the product of all integer options, the given ones and the defaults of the
// others, with the squared extents (width, hidden, grid) counted twice, is at most
// `max_work`. Parameters and activations of every model in the zoo are bounded by
// a small multiple of that product. Values are read the way the model zoo reads
// them (std::stoll: leading blanks and a sign are accepted), so nothing large slips
// past as "not a number".
inline bool small_model_spec(const std::string& text, std::int64_t max_value, std::int64_t max_work) {
  ModelSpec spec;
  try {
    spec = ModelSpec::parse(text);
  } catch (const std::exception&) {
    return true;  // build_model will refuse it just the same, without building anything
  }
  std::map<std::string, std::int64_t> sizes;
  if (auto it = catalogue_defaults().find(spec.name); it != catalogue_defaults().end()) sizes = it->second;
  for (const auto& [key, value] : spec.options) {
    try {
      sizes[key] = std::stoll(value);  // any numeric prefix counts, whatever follows it
    } catch (const std::exception&) {
      if (value.find_first_of("0123456789") != std::string::npos) return false;  // out of range
    }
  }
  std::int64_t work = 1;
  for (auto [key, v] : sizes) {
    if (key == "dropout" || key == "r" || key == "bn") continue;  // rates and switches, not sizes
    if (v < 0) v = -v;
    if (v > max_value) return false;
    const int power = key == "width" || key == "hidden" || key == "grid" ? 2 : 1;
    for (int k = 0; k < power; ++k) {
      work *= std::max<std::int64_t>(v, 1);
      if (work > max_work) return false;
    }
  }
  return true;
}

// Swallows std::cout and std::cerr for its lifetime (sanitizer and libFuzzer
// reports go to the stderr file descriptor, which stays open).
class Silence {
 public:
  Silence() : out_(std::cout.rdbuf(&null_)), err_(std::cerr.rdbuf(&null_)) {}
  ~Silence() {
    std::cout.rdbuf(out_);
    std::cerr.rdbuf(err_);
  }

 private:
  struct NullBuffer : std::streambuf {
    int overflow(int c) override { return c == traits_type::eof() ? 0 : c; }
    std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
  } null_;
  std::streambuf* out_;
  std::streambuf* err_;
};

}  // namespace remat::fuzz
