// Contract: internal helpers of the model zoo: typed SPEC options with defaults
// (unknown keys and bad values are "[model NAME] ..." errors), deterministic
// scaled weights and synthetic data. Only models/*.cpp include it.
#pragma once

#include "models/models.hpp"

#include <fmt/format.h>

#include <random>
#include <set>

namespace remat::zoo {

// Reads typed options with defaults and rejects unknown keys.
class Options {
 public:
  explicit Options(ModelSpec spec) : spec_(std::move(spec)) {}
  std::int64_t integer(const std::string& key, std::int64_t fallback, std::int64_t lo = 1, std::int64_t hi = 1 << 30) {
    used_.insert(key);
    auto it = spec_.options.find(key);
    if (it == spec_.options.end()) {
      resolved_.options[key] = std::to_string(fallback);
      return fallback;
    }
    std::size_t pos = 0;
    std::int64_t v = 0;
    try {
      v = std::stoll(it->second, &pos);
    } catch (...) {
      pos = 0;
    }
    if (pos != it->second.size() || v < lo || v > hi)
      throw Error(fmt::format("[model {}] {}={} must be an integer in [{}, {}]", spec_.name, key, it->second, lo, hi));
    resolved_.options[key] = it->second;
    return v;
  }
  // Refuses a size whose tape would not fit in a host's memory (a bare std::bad_alloc
  // otherwise): `count` units of `key`, each recording about `nodes_per_unit` nodes.
  void limit_nodes(const std::string& key, std::int64_t count, std::int64_t nodes_per_unit) {
    constexpr std::int64_t max_nodes = 10000000;
    if (count > max_nodes / std::max<std::int64_t>(1, nodes_per_unit))
      throw Error(fmt::format("[model {}] {}={} would record about {} tape nodes; a model may have at most {} (use a "
                              "smaller {})",
                              spec_.name, key, count, static_cast<double>(count) * static_cast<double>(nodes_per_unit),
                              max_nodes, key));
  }
  std::string choice(const std::string& key, const std::string& fallback, const std::set<std::string>& allowed) {
    used_.insert(key);
    auto it = spec_.options.find(key);
    std::string v = it == spec_.options.end() ? fallback : it->second;
    if (!allowed.count(v)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw Error(fmt::format("[model {}] {}={} is not one of: {}", spec_.name, key, v, list));
    }
    resolved_.options[key] = v;
    return v;
  }
  std::string finish() {
    for (const auto& [k, v] : spec_.options)
      if (!used_.count(k)) {
        std::string known;
        for (const auto& u : used_) known += (known.empty() ? "" : ", ") + u;
        throw Error(fmt::format("[model {}] unknown key '{}' (known: {})", spec_.name, k, known));
      }
    resolved_.name = spec_.name;
    return resolved_.to_string();
  }

 private:
  ModelSpec spec_;
  ModelSpec resolved_;
  std::set<std::string> used_;
};

// bf16 and f16 models run on the metering backend and on LowPrecisionCpuBackend.
inline DType parse_dtype(Options& o) { return dtype_from_name(o.choice("dtype", "f32", {"f32", "f64", "bf16", "f16"})); }

inline HostArray normal_weights(const Shape& shape, DType dtype, double stddev, std::uint32_t seed) {
  HostArray a(TensorMeta{shape, dtype});
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0.0, stddev);
  for (std::int64_t i = 0; i < a.numel(); ++i) a.set(i, n(rng));
  return a;
}

inline HostArray uniform_data(const Shape& shape, DType dtype, std::uint64_t seed) {
  HostArray a(TensorMeta{shape, dtype});
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (std::int64_t i = 0; i < a.numel(); ++i) a.set(i, u(rng));
  return a;
}

// Random class labels in [0, classes), i32.
inline HostArray random_labels(const Shape& shape, std::int64_t classes, std::uint64_t seed) {
  HostArray a(TensorMeta{shape, DType::i32});
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> u(0, classes - 1);
  for (std::int64_t i = 0; i < a.numel(); ++i) a.set(i, static_cast<double>(u(rng)));
  return a;
}

// Model families, one file each.
Model build_mlp(const ModelSpec& spec, bool residual);
Model build_resnet(const ModelSpec& spec);
Model build_lstm(const ModelSpec& spec);
Model build_transformer(const ModelSpec& spec);
Model build_llama(const ModelSpec& spec);
Model build_unet(const ModelSpec& spec);
Model build_heat(const ModelSpec& spec);

}  // namespace remat::zoo
