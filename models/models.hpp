// Contract: the model zoo. A model is built from a SPEC string such as
// "mlp:layers=100,width=512,batch=256,act=relu" and records a tape with
// deterministic, scaled initial weights (so no denormals distort timings),
// a scalar loss, and a generator of deterministic synthetic batches.
// Unknown models or keys, and malformed values, are Errors prefixed "[model]".
#pragma once

#include "autodiff/remat.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace remat {

struct ModelSpec {
  std::string name;
  std::map<std::string, std::string> options;
  static ModelSpec parse(const std::string& spec);
  std::string to_string() const;
};

struct Model {
  std::string spec;                 // canonical spec, defaults filled in
  std::unique_ptr<Tape> tape;
  Value loss;
  std::vector<Value> stage_outputs;  // boundaries the model marked for chain strategies
  // Deterministic inputs for training step `step`.
  std::function<Bindings(std::uint64_t step)> batch;
};

Model build_model(const std::string& spec);
// The models build_model knows, with their keys and defaults, for --help and errors.
std::string model_catalogue();

}  // namespace remat
