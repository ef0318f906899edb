// Contract: lazy recording. A Tape is a Wengert list: each node is a placeholder
// (bound per step), a parameter (owned by the executor) or an op applied to
// earlier nodes. Recording infers shapes and costs only; nothing is computed.
// One recorded tape and one Program serve a whole training loop.
// Value is the user's handle on a node; ops in ops/*.hpp take and return Values.
// For teaching, input() binds a value at record time and eval() (autodiff/eval.hpp,
// which runs the CPU backend) computes one value on demand.
#pragma once

#include "autodiff/op.hpp"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace remat {

class Tape;

struct Value {
  Tape* tape = nullptr;
  int id = -1;
  const TensorMeta& meta() const;
  const Shape& shape() const { return meta().shape; }
};

enum class NodeKind : std::uint8_t { placeholder, parameter, op };

struct Node {
  int id = -1;
  NodeKind kind = NodeKind::op;
  std::string name;                 // placeholders and parameters; ops use op->name()
  std::shared_ptr<const Op> op;     // null unless kind == op
  std::vector<int> inputs;
  TensorMeta meta;
  bool requires_grad = false;       // a gradient can flow into this value
  bool stage_mark = false;          // the user cut the chain after this node
  std::string label() const;        // "n12 matmul" or "n0 x"
};

using Bindings = std::map<int, HostArray>;

class Tape {
 public:
  Value placeholder(std::string name, TensorMeta meta);
  // A frozen parameter (trainable = false) gets no gradient: no gradient buffer, no
  // optimizer state; its bytes are still weights.
  Value parameter(std::string name, HostArray initial, bool trainable = true);
  // A parameter whose initial value is made by `init` on first use (parameter_initial(),
  // which an Executor on a computing backend calls), so a model recorded only to be
  // planned never allocates or fills its weights: a 7B model's tape costs kilobytes.
  // init must return an array of exactly `meta` (checked when it runs).
  Value parameter(std::string name, TensorMeta meta, std::function<HostArray()> init, bool trainable = true);
  // A placeholder with a default binding, for teaching and eval().
  Value input(std::string name, HostArray value);
  Value record(std::shared_ptr<const Op> op, std::vector<Value> inputs);
  // Marks v as a chain stage boundary (strategies that work on chains cut here).
  void mark_stage(Value v);

  const Node& node(int id) const;
  std::size_t size() const { return nodes_.size(); }
  const std::vector<Node>& nodes() const { return nodes_; }
  std::vector<int> parameters() const;
  std::vector<int> placeholders() const;
  // The initial value (made now if the parameter was recorded lazily).
  const HostArray& parameter_initial(int id) const;
  const Bindings& default_bindings() const { return defaults_; }
  // Nodes that value `target` depends on, itself included, in recording order.
  std::vector<int> ancestors(int target) const;

 private:
  Value add_node(Node node);
  std::vector<Node> nodes_;
  struct Initial {
    std::once_flag once;
    std::function<HostArray()> make;  // null once made (or for an eager parameter)
    HostArray value;
  };
  std::map<int, std::shared_ptr<Initial>> parameter_initial_;
  // Both parameter() overloads: checks the meta, records the node, keeps its initial value.
  Value add_parameter(std::string name, TensorMeta meta, bool trainable, std::shared_ptr<Initial> initial);
  Bindings defaults_;
};

}  // namespace remat
