// Contract: see onnx_import.hpp. One Importer walks the graph's nodes in order (ONNX
// requires a topological order) and keeps, for every ONNX value name, either a tape
// Value (computed per step), a host Constant (known at load time: folded), or a
// pending Pad (folded into the Conv/pool that reads it). Every attribute a handler
// does not read is refused by Attributes::finish(), so an attribute remat does not
// honour can never be silently dropped.
#include "models/onnx/onnx_import.hpp"

#include "models/options.hpp"

#include <fmt/format.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>

namespace remat {
namespace {

// A value known at load time (shape arithmetic, Clip bounds, pads): row-major, held as
// doubles (exact for the int64 extents of any real model); `integer` for int/bool types.
struct Constant {
  Shape shape;
  std::vector<double> values;
  bool integer = false;
  std::int64_t numel() const { return element_count(shape); }
};

struct PendingPad {  // a Pad whose output only a Conv or pool may read
  Value input;
  std::int64_t pad_h = 0, pad_w = 0;
  double value = 0;
  std::string label;
};

std::string node_label(const onnx::NodeProto& node, int index) {
  return fmt::format("[onnx] node '{}' ({})", node.name().empty() ? fmt::format("#{}", index) : node.name(),
                     node.op_type());
}

// The attributes of one node; finish() refuses the ones no handler read.
class Attributes {
 public:
  Attributes(const onnx::NodeProto& node, std::string label) : label_(std::move(label)) {
    for (const auto& a : node.attribute()) by_name_[a.name()] = &a;
  }
  bool has(const std::string& name) const { return by_name_.count(name) > 0; }
  std::int64_t integer(const std::string& name, std::int64_t fallback) {
    const auto* a = get(name);
    return a ? a->i() : fallback;
  }
  double floating(const std::string& name, double fallback) {
    const auto* a = get(name);
    return a ? a->f() : fallback;
  }
  std::string text(const std::string& name, const std::string& fallback) {
    const auto* a = get(name);
    return a ? a->s() : fallback;
  }
  std::vector<std::int64_t> integers(const std::string& name, std::vector<std::int64_t> fallback) {
    const auto* a = get(name);
    return a ? std::vector<std::int64_t>(a->ints().begin(), a->ints().end()) : fallback;
  }
  const onnx::TensorProto* tensor(const std::string& name) {
    const auto* a = get(name);
    return a && a->has_t() ? &a->t() : nullptr;
  }
  // Marks an attribute as read that the handler checks itself (e.g. equal to a default).
  void accept(const std::string& name) { used_.insert(name); }
  void finish() const {
    for (const auto& [name, a] : by_name_)
      if (!used_.count(name))
        throw Error(fmt::format("{}: attribute '{}' is not supported", label_, name));
  }

 private:
  const onnx::AttributeProto* get(const std::string& name) {
    used_.insert(name);
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  std::string label_;
  std::map<std::string, const onnx::AttributeProto*> by_name_;
  std::set<std::string> used_;
};

const char* onnx_type_name(int type) {
  switch (type) {
    case onnx::TensorProto::FLOAT: return "float";
    case onnx::TensorProto::DOUBLE: return "double";
    case onnx::TensorProto::FLOAT16: return "float16";
    case onnx::TensorProto::BFLOAT16: return "bfloat16";
    case onnx::TensorProto::INT64: return "int64";
    case onnx::TensorProto::INT32: return "int32";
    case onnx::TensorProto::INT8: return "int8";
    case onnx::TensorProto::UINT8: return "uint8";
    case onnx::TensorProto::BOOL: return "bool";
    case onnx::TensorProto::STRING: return "string";
    default: return "another type";
  }
}

Shape dims_of(const onnx::TensorProto& t) { return Shape(t.dims().begin(), t.dims().end()); }

// A tensor's elements as doubles, from raw_data (little-endian) or the typed fields.
Constant decode(const onnx::TensorProto& t, const std::string& where) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    throw Error(fmt::format("{}: tensor '{}' keeps its data in an external file, which is not supported", where, t.name()));
  Constant c;
  c.shape = dims_of(t);
  const std::int64_t n = c.numel();
  c.values.resize(static_cast<std::size_t>(n));
  const std::string& raw = t.raw_data();
  auto from_raw = [&](auto tag) {
    using T = decltype(tag);
    if (raw.size() != static_cast<std::size_t>(n) * sizeof(T))
      throw Error(fmt::format("{}: tensor '{}' has {} bytes of data for shape {}", where, t.name(), raw.size(),
                              shape_string(c.shape)));
    for (std::int64_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
      c.values[i] = static_cast<double>(v);
    }
  };
  auto from_field = [&](const auto& field) {
    if (field.size() != n)
      throw Error(fmt::format("{}: tensor '{}' has {} values for shape {}", where, t.name(), field.size(),
                              shape_string(c.shape)));
    for (std::int64_t i = 0; i < n; ++i) c.values[i] = static_cast<double>(field.Get(static_cast<int>(i)));
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (t.has_raw_data()) from_raw(float{}); else from_field(t.float_data());
      break;
    case onnx::TensorProto::DOUBLE:
      if (t.has_raw_data()) from_raw(double{}); else from_field(t.double_data());
      break;
    case onnx::TensorProto::INT64:
      c.integer = true;
      if (t.has_raw_data()) from_raw(std::int64_t{}); else from_field(t.int64_data());
      break;
    case onnx::TensorProto::INT32:
      c.integer = true;
      if (t.has_raw_data()) from_raw(std::int32_t{}); else from_field(t.int32_data());
      break;
    case onnx::TensorProto::BOOL:
      c.integer = true;
      if (t.has_raw_data()) from_raw(std::uint8_t{}); else from_field(t.int32_data());
      break;
    default:
      throw Error(fmt::format("{}: tensor '{}' has element type {}, which is not supported", where, t.name(),
                              onnx_type_name(t.data_type())));
  }
  return c;
}

// A float initializer as f32 parameter values (one copy, no detour through doubles).
HostArray float_array(const onnx::TensorProto& t, const std::string& where) {
  const Shape shape = dims_of(t);
  HostArray a(TensorMeta{shape, DType::f32});
  if (t.data_type() == onnx::TensorProto::FLOAT && t.data_location() != onnx::TensorProto::EXTERNAL) {
    const std::size_t bytes = a.bytes.size();
    if (t.has_raw_data()) {
      if (t.raw_data().size() != bytes)
        throw Error(fmt::format("{}: initializer '{}' has {} bytes of data for shape {}", where, t.name(),
                                t.raw_data().size(), shape_string(shape)));
      std::memcpy(a.bytes.data(), t.raw_data().data(), bytes);
      return a;
    }
    if (static_cast<std::size_t>(t.float_data_size()) * sizeof(float) == bytes) {
      std::memcpy(a.bytes.data(), t.float_data().data(), bytes);
      return a;
    }
  }
  const Constant c = decode(t, where);
  if (c.integer)
    throw Error(fmt::format("{}: initializer '{}' has element type {} where a float tensor is needed", where, t.name(),
                            onnx_type_name(t.data_type())));
  for (std::int64_t i = 0; i < c.numel(); ++i) a.set(i, c.values[i]);
  return a;
}

HostArray to_array(const Constant& c) {
  HostArray a(TensorMeta{c.shape, c.integer ? DType::i32 : DType::f32});
  for (std::int64_t i = 0; i < c.numel(); ++i) a.set(i, c.values[i]);
  return a;
}

// NumPy broadcasting of two shapes; nullopt when they do not broadcast.
std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t x = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t y = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (x != y && x != 1 && y != 1) return std::nullopt;
    out[i] = x == 1 ? y : x;
  }
  return out;
}

// The element of `c` that output index `flat` of shape `out` reads under broadcasting.
double broadcast_at(const Constant& c, const Shape& out, std::int64_t flat) {
  std::int64_t offset = 0, stride = 1;
  for (std::size_t k = out.size(); k-- > 0;) {
    const std::int64_t idx = flat % out[k];
    flat /= out[k];
    const std::size_t ck = k + c.shape.size();
    if (ck < out.size()) continue;  // c has no such axis
    const std::size_t axis = ck - out.size();
    if (c.shape[axis] != 1) offset += idx * stride;
    stride *= c.shape[axis];
  }
  return c.values[static_cast<std::size_t>(offset)];
}

std::int64_t normalize_axis(std::int64_t axis, std::int64_t rank, const std::string& label) {
  if (axis < -rank || axis >= std::max<std::int64_t>(rank, 1))
    throw Error(fmt::format("{}: axis {} is out of range for rank {}", label, axis, rank));
  return axis < 0 ? axis + rank : axis;
}

class Importer {
 public:
  Importer(const onnx::GraphProto& graph, Tape& tape) : graph_(graph), tape_(tape) {
    for (const auto& t : graph.initializer()) initializers_[t.name()] = &t;
  }

  OnnxModel run(const std::string& path, const OnnxImportOptions& options);

 private:
  // ---- the three kinds of values ----
  bool is_constant(const std::string& name) const {
    if (constants_.count(name)) return true;
    auto it = initializers_.find(name);
    return it != initializers_.end() && !parameters_.count(name) && !is_parameter_initializer(name);
  }
  // A float initializer is a parameter when the graph's output depends on it through
  // differentiable inputs (find_differentiable()); one that only feeds masks, shapes or
  // indices (a causal-mask buffer, say) is a constant and may be folded.
  bool is_parameter_initializer(const std::string& name) const {
    auto it = initializers_.find(name);
    if (it == initializers_.end()) return false;
    const int type = it->second->data_type();
    return (type == onnx::TensorProto::FLOAT || type == onnx::TensorProto::DOUBLE) && differentiable_.count(name);
  }
  void find_differentiable();
  bool is_tensor(const std::string& name) const { return values_.count(name) || parameters_.count(name); }

  const Constant& constant(const std::string& name, const std::string& label, const char* what) {
    auto it = constants_.find(name);
    if (it != constants_.end()) return it->second;
    auto init = initializers_.find(name);
    if (init != initializers_.end()) return constants_[name] = decode(*init->second, label);
    if (values_.count(name) || pads_.count(name))
      throw Error(fmt::format("{}: input '{}' ({}) must be a constant known at load time, but it is computed by the graph",
                              label, name, what));
    throw Error(fmt::format("{}: input '{}' ({}) is not produced by any earlier node, initializer or graph input", label,
                            name, what));
  }

  Value tensor(const std::string& name, const std::string& label) {
    if (auto it = values_.find(name); it != values_.end()) return it->second;
    if (auto it = transposed_parameters_.find(name); it != transposed_parameters_.end()) {
      // A transposed weight read by something other than MatMul: the copy after all.
      Value t = permute(it->second, {1, 0});
      values_[name] = t;
      return t;
    }
    if (pads_.count(name))
      throw Error(fmt::format("{}: reads the output of {}, which is supported only in front of Conv, MaxPool or "
                              "AveragePool (it is folded into their padding)",
                              label, pads_.at(name).label));
    if (auto it = parameters_.find(name); it != parameters_.end()) return it->second;
    if (auto init = initializers_.find(name); init != initializers_.end()) {
      if (init->second->data_type() == onnx::TensorProto::FLOAT && differentiable_.count(name)) {
        Value p = tape_.parameter(name, float_array(*init->second, label));
        parameters_[name] = p;
        parameter_order_.emplace_back(p.id, name);
        return p;
      }
    }
    if (constants_.count(name) || initializers_.count(name)) {
      // A constant read as a tensor (e.g. a scalar added to a value): a placeholder with a
      // default binding, so it is data of every step and never a parameter.
      Value v = tape_.input(name, to_array(constant(name, label, "a tensor")));
      values_[name] = v;
      return v;
    }
    throw Error(fmt::format("{}: input '{}' is not produced by any earlier node, initializer or graph input", label, name));
  }

  void set_tensor(const onnx::NodeProto& node, Value v) { values_[node.output(0)] = v; }
  void set_constant(const onnx::NodeProto& node, Constant c) { constants_[node.output(0)] = std::move(c); }

  // Refuses a node whose extra outputs (e.g. MaxPool's indices) the graph reads.
  void only_first_output(const onnx::NodeProto& node, const std::string& label) {
    for (int i = 1; i < node.output_size(); ++i)
      if (!node.output(i).empty() && read_names_.count(node.output(i)))
        throw Error(fmt::format("{}: output {} ('{}') is read by the graph, which is not supported", label, i,
                                node.output(i)));
  }
  static std::string input(const onnx::NodeProto& node, int i) { return i < node.input_size() ? node.input(i) : ""; }

  void import_node(const onnx::NodeProto& node, const std::string& label);
  // A load-time constant as a tape tensor: data of every step, never a parameter.
  Value constant_tensor(const std::string& name, const Constant& c) { return tape_.input(name, to_array(c)); }
  std::vector<std::int64_t> int_list(const onnx::NodeProto& node, Attributes& at, int index, const std::string& attr,
                                     const std::string& label, const char* what);
  void matmul_node(const onnx::NodeProto& node, const std::string& label);
  void gather(const onnx::NodeProto& node, Attributes& at, const std::string& label);
  void slice_node(const onnx::NodeProto& node, Attributes& at, const std::string& label);
  void where(const onnx::NodeProto& node, const std::string& label);
  void reduce(const onnx::NodeProto& node, Attributes& at, const std::string& label);
  void softmax_node(const onnx::NodeProto& node, Attributes& at, const std::string& label, bool log);
  void layernorm_node(const onnx::NodeProto& node, Attributes& at, const std::string& label);
  void split(const onnx::NodeProto& node, Attributes& at, const std::string& label);
  std::int64_t opset_ = 13;

 public:
  void set_opset(std::int64_t v) { opset_ = v; }

 private:
  void conv(const onnx::NodeProto& node, Attributes& at, const std::string& label);
  void pool(const onnx::NodeProto& node, Attributes& at, const std::string& label, bool is_max);
  void batchnorm(const onnx::NodeProto& node, Attributes& at, const std::string& label);
  void gemm(const onnx::NodeProto& node, Attributes& at, const std::string& label);
  void binary(const onnx::NodeProto& node, const std::string& label);
  bool fold(const onnx::NodeProto& node, Attributes& at, const std::string& label);  // shape subgraphs
  // Takes a pending Pad off a Conv's or pool's input: (input value, pad_h, pad_w, value).
  std::optional<PendingPad> take_pad(const std::string& name) {
    auto it = pads_.find(name);
    if (it == pads_.end()) return std::nullopt;
    return it->second;
  }

  const onnx::GraphProto& graph_;
  Tape& tape_;
  std::map<std::string, const onnx::TensorProto*> initializers_;
  std::map<std::string, Constant> constants_;
  std::map<std::string, Value> values_;
  std::map<std::string, Value> parameters_;
  std::map<std::string, PendingPad> pads_;
  // Transpose outputs of 2-d parameters, recorded only when read: MatMul(x, W^T) becomes
  // linear(x, W), which saves the weight itself instead of a transposed copy of it (the
  // ONNX export of every nn.Linear on a 3-d input).
  std::map<std::string, Value> transposed_parameters_;
  std::set<std::string> read_names_;  // every name some node reads, or a graph output
  std::set<std::string> differentiable_;  // names the first output depends on differentiably
  std::vector<std::pair<int, std::string>> parameter_order_;
};

// Symmetric pads (begin == end per axis) of a 2-d Conv/pool: {pad_h, pad_w}.
std::pair<int, int> symmetric_pads(const std::vector<std::int64_t>& pads, const std::string& label) {
  if (pads.size() != 4) throw Error(fmt::format("{}: attribute 'pads' must have 4 values for a 2-d input, got {}", label, pads.size()));
  if (pads[0] != pads[2] || pads[1] != pads[3])
    throw Error(fmt::format("{}: attribute 'pads'=[{}, {}, {}, {}] is asymmetric, which is not supported (begin and end "
                            "padding must agree per axis)",
                            label, pads[0], pads[1], pads[2], pads[3]));
  if (pads[0] < 0 || pads[1] < 0) throw Error(fmt::format("{}: attribute 'pads' must be >= 0", label));
  return {static_cast<int>(pads[0]), static_cast<int>(pads[1])};
}

void check_auto_pad(Attributes& at, const std::string& label) {
  const std::string auto_pad = at.text("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID")
    throw Error(fmt::format("{}: attribute 'auto_pad'={} is not supported (export with explicit pads)", label, auto_pad));
}

std::vector<std::int64_t> two_values(Attributes& at, const std::string& name, std::int64_t fallback,
                                     const std::string& label) {
  auto v = at.integers(name, {fallback, fallback});
  if (v.size() != 2)
    throw Error(fmt::format("{}: attribute '{}' must have 2 values for a 2-d input, got {}", label, name, v.size()));
  return v;
}

void Importer::conv(const onnx::NodeProto& node, Attributes& at, const std::string& label) {
  check_auto_pad(at, label);
  Conv2dParams p;
  const auto strides = two_values(at, "strides", 1, label);
  const auto dilations = two_values(at, "dilations", 1, label);
  std::tie(p.pad_h, p.pad_w) = symmetric_pads(at.integers("pads", {0, 0, 0, 0}), label);
  p.stride_h = static_cast<int>(strides[0]);
  p.stride_w = static_cast<int>(strides[1]);
  p.dilation_h = static_cast<int>(dilations[0]);
  p.dilation_w = static_cast<int>(dilations[1]);
  p.groups = static_cast<int>(at.integer("group", 1));
  std::optional<PendingPad> pad = take_pad(input(node, 0));
  if (pad) {
    if (pad->value != 0)
      throw Error(fmt::format("{}: reads {} with constant_value {}, but a convolution pads with zeros", label, pad->label,
                              pad->value));
    p.pad_h += static_cast<int>(pad->pad_h);
    p.pad_w += static_cast<int>(pad->pad_w);
  }
  Value x = pad ? pad->input : tensor(input(node, 0), label);
  Value w = tensor(input(node, 1), label);
  if (x.shape().size() != 4)
    throw Error(fmt::format("{}: only 2-d convolutions (input rank 4) are supported, got input {}", label,
                            shape_string(x.shape())));
  if (at.has("kernel_shape")) {
    const auto kernel = at.integers("kernel_shape", {});
    if (w.shape().size() != 4 || kernel != std::vector<std::int64_t>{w.shape()[2], w.shape()[3]})
      throw Error(fmt::format("{}: attribute 'kernel_shape' does not match the weight {}", label, shape_string(w.shape())));
  }
  std::optional<Value> bias;
  if (!input(node, 2).empty()) bias = tensor(input(node, 2), label);
  set_tensor(node, conv2d(x, w, bias, p));
}

void Importer::pool(const onnx::NodeProto& node, Attributes& at, const std::string& label, bool is_max) {
  check_auto_pad(at, label);
  Pool2dParams p;
  const auto kernel = at.integers("kernel_shape", {});
  if (kernel.size() != 2)
    throw Error(fmt::format("{}: attribute 'kernel_shape' must have 2 values (2-d pooling), got {}", label, kernel.size()));
  const auto strides = two_values(at, "strides", 1, label);
  p.kernel_h = static_cast<int>(kernel[0]);
  p.kernel_w = static_cast<int>(kernel[1]);
  p.stride_h = static_cast<int>(strides[0]);
  p.stride_w = static_cast<int>(strides[1]);
  std::tie(p.pad_h, p.pad_w) = symmetric_pads(at.integers("pads", {0, 0, 0, 0}), label);
  p.ceil_mode = at.integer("ceil_mode", 0) != 0;
  if (is_max) {
    if (two_values(at, "dilations", 1, label) != std::vector<std::int64_t>{1, 1})
      throw Error(fmt::format("{}: attribute 'dilations' other than 1 is not supported", label));
    if (at.integer("storage_order", 0) != 0)
      throw Error(fmt::format("{}: attribute 'storage_order'=1 is not supported", label));
  } else if (at.integer("count_include_pad", 0) == 0 && (p.pad_h || p.pad_w)) {
    throw Error(fmt::format("{}: attribute 'count_include_pad'=0 with nonzero pads is not supported (remat divides by "
                            "the full window, padding included)",
                            label));
  }
  std::optional<PendingPad> pad = take_pad(input(node, 0));
  if (pad) {
    // Max pooling ignores padding (-inf); average pooling over an explicit zero pad
    // divides by the full window, which is remat's padded average.
    const bool same = is_max ? pad->value == -std::numeric_limits<double>::infinity() || pad->value <= -3.4e38
                             : pad->value == 0;
    if (!same)
      throw Error(fmt::format("{}: reads {} with constant_value {}, which this pooling cannot absorb", label, pad->label,
                              pad->value));
    p.pad_h += static_cast<int>(pad->pad_h);
    p.pad_w += static_cast<int>(pad->pad_w);
  }
  only_first_output(node, label);
  Value x = pad ? pad->input : tensor(input(node, 0), label);
  set_tensor(node, is_max ? max_pool2d(x, p) : avg_pool2d(x, p));
}

void Importer::batchnorm(const onnx::NodeProto& node, Attributes& at, const std::string& label) {
  const double eps = at.floating("epsilon", 1e-5);
  const double momentum = at.floating("momentum", 0.9);
  // Opset 14+ says training mode in an attribute; opset 9-13 by asking for the running outputs.
  const bool training = at.has("training_mode") ? at.integer("training_mode", 0) != 0 : node.output_size() > 1;
  if (!training)
    throw Error(fmt::format("{}: inference-mode batch normalisation is not supported (remat trains): export with "
                            "training=torch.onnx.TrainingMode.TRAINING",
                            label));
  if (at.has("spatial") && at.integer("spatial", 1) != 1)
    throw Error(fmt::format("{}: attribute 'spatial'=0 is not supported", label));
  for (int i = 3; i < node.output_size(); ++i)  // saved mean and variance: remat recomputes them
    if (!node.output(i).empty() && read_names_.count(node.output(i)))
      throw Error(fmt::format("{}: output {} ('{}') is read by the graph, which is not supported", label, i, node.output(i)));
  for (int i = 1; i < std::min(3, node.output_size()); ++i)
    if (!node.output(i).empty() && read_names_.count(node.output(i)))
      throw Error(fmt::format("{}: the running statistic output '{}' is read by the graph; remat keeps it as op state",
                              label, node.output(i)));
  Value x = tensor(input(node, 0), label);
  Value gamma = tensor(input(node, 1), label);
  Value beta = tensor(input(node, 2), label);
  BatchNormRunning running{to_array(constant(input(node, 3), label, "running mean")),
                           to_array(constant(input(node, 4), label, "running variance"))};
  // ONNX: running = momentum running + (1 - momentum) batch; remat's momentum weighs the batch.
  set_tensor(node, remat::batchnorm(x, gamma, beta, 1.0 - momentum, eps, std::move(running)));
}

void Importer::gemm(const onnx::NodeProto& node, Attributes& at, const std::string& label) {
  const double alpha = at.floating("alpha", 1.0), beta = at.floating("beta", 1.0);
  const bool trans_a = at.integer("transA", 0) != 0, trans_b = at.integer("transB", 0) != 0;
  Value a = tensor(input(node, 0), label);
  Value b = tensor(input(node, 1), label);
  if (trans_a) a = transpose(a);
  std::optional<Value> c;
  if (!input(node, 2).empty()) c = tensor(input(node, 2), label);
  Value y;
  if (trans_b && alpha == 1.0 && (!c || (beta == 1.0 && c->shape().size() == 1))) {
    y = linear(a, b, c);  // A B^T + C, the common Linear layer
  } else {
    y = matmul(a, trans_b ? transpose(b) : b);
    if (alpha != 1.0) y = scale(y, alpha);
    if (c) y = add(y, beta == 1.0 ? *c : scale(*c, beta));
  }
  set_tensor(node, y);
}

void Importer::binary(const onnx::NodeProto& node, const std::string& label) {
  const std::string& op = node.op_type();
  Value a = tensor(input(node, 0), label);
  Value b = tensor(input(node, 1), label);
  if (op == "Add") set_tensor(node, add(a, b));
  else if (op == "Sub") set_tensor(node, sub(a, b));
  else if (op == "Mul") set_tensor(node, mul(a, b));
  else set_tensor(node, div(a, b));
}

// Folds a node whose inputs are all constants (or the static shape of a tape value).
// Returns false when the node is not a foldable one or reads a computed tensor.
bool Importer::fold(const onnx::NodeProto& node, Attributes& at, const std::string& label) {
  const std::string& op = node.op_type();
  // A parameter (a float initializer the output depends on differentiably) is never
  // folded away; the constants are integer initializers, Constant nodes and buffers.
  auto all_constant = [&] {
    for (const auto& name : node.input())
      if (!name.empty() && !is_constant(name)) return false;
    return true;
  };
  if (op == "Shape") {
    const std::string& name = input(node, 0);
    Shape s = is_constant(name) ? constant(name, label, "data").shape : tensor(name, label).shape();
    const auto rank = static_cast<std::int64_t>(s.size());
    std::int64_t start = at.integer("start", 0), end = at.integer("end", rank);
    start = std::clamp<std::int64_t>(start < 0 ? start + rank : start, 0, rank);
    end = std::clamp<std::int64_t>(end < 0 ? end + rank : end, 0, rank);
    Constant c{{std::max<std::int64_t>(end - start, 0)}, {}, true};
    for (std::int64_t i = start; i < end; ++i) c.values.push_back(static_cast<double>(s[i]));
    set_constant(node, c);
    return true;
  }
  if (op == "Constant") {
    if (const auto* t = at.tensor("value")) set_constant(node, decode(*t, label));
    else if (at.has("value_float")) set_constant(node, Constant{{}, {at.floating("value_float", 0)}, false});
    else if (at.has("value_int")) set_constant(node, Constant{{}, {static_cast<double>(at.integer("value_int", 0))}, true});
    else if (at.has("value_ints")) {
      auto v = at.integers("value_ints", {});
      set_constant(node, Constant{{static_cast<std::int64_t>(v.size())}, std::vector<double>(v.begin(), v.end()), true});
    } else {
      throw Error(fmt::format("{}: only the attributes 'value', 'value_float', 'value_int' and 'value_ints' are supported",
                              label));
    }
    return true;
  }
  if (op == "ConstantOfShape") {
    const Constant& shape = constant(input(node, 0), label, "shape");
    Constant c{Shape(shape.values.begin(), shape.values.end()), {}, false};
    double fill = 0;
    if (const auto* t = at.tensor("value")) {
      const Constant v = decode(*t, label);
      fill = v.values.at(0);
      c.integer = v.integer;
    }
    c.values.assign(static_cast<std::size_t>(c.numel()), fill);
    set_constant(node, c);
    return true;
  }
  if (!all_constant()) return false;
  if (op == "Identity") {
    set_constant(node, constant(input(node, 0), label, "input"));
    return true;
  }
  if (op == "Cast") {
    Constant c = constant(input(node, 0), label, "input");
    const auto to = at.integer("to", onnx::TensorProto::FLOAT);
    c.integer = to != onnx::TensorProto::FLOAT && to != onnx::TensorProto::DOUBLE;
    if (c.integer)
      for (double& v : c.values) v = to == onnx::TensorProto::BOOL ? (v != 0) : std::trunc(v);
    set_constant(node, c);
    return true;
  }
  if (op == "Unsqueeze" || op == "Squeeze") {
    Constant c = constant(input(node, 0), label, "data");
    std::vector<std::int64_t> axes;
    if (!input(node, 1).empty()) {
      const Constant& a = constant(input(node, 1), label, "axes");
      axes.assign(a.values.begin(), a.values.end());
    } else {
      axes = at.integers("axes", {});
    }
    if (op == "Unsqueeze") {
      const auto rank = static_cast<std::int64_t>(c.shape.size() + axes.size());
      for (auto& a : axes) a = normalize_axis(a, rank, label);
      std::sort(axes.begin(), axes.end());
      for (auto a : axes) c.shape.insert(c.shape.begin() + a, 1);
    } else {
      const auto rank = static_cast<std::int64_t>(c.shape.size());
      std::set<std::int64_t> drop;
      for (auto a : axes) drop.insert(normalize_axis(a, rank, label));
      Shape s;
      for (std::int64_t i = 0; i < rank; ++i)
        if (!(drop.count(i) || (axes.empty() && c.shape[i] == 1))) s.push_back(c.shape[i]);
      c.shape = s;
    }
    set_constant(node, c);
    return true;
  }
  if (op == "Concat") {
    Constant out;
    const std::int64_t rank = static_cast<std::int64_t>(constant(input(node, 0), label, "input").shape.size());
    const std::int64_t axis = normalize_axis(at.integer("axis", 0), rank, label);
    std::vector<const Constant*> parts;
    for (const auto& name : node.input()) parts.push_back(&constant(name, label, "input"));
    out.shape = parts[0]->shape;
    out.integer = parts[0]->integer;
    out.shape[axis] = 0;
    for (const Constant* p : parts) out.shape[axis] += p->shape.at(axis);
    const std::int64_t outer = element_count(Shape(out.shape.begin(), out.shape.begin() + axis));
    for (std::int64_t o = 0; o < outer; ++o)
      for (const Constant* p : parts) {
        const std::int64_t inner = element_count(Shape(p->shape.begin() + axis, p->shape.end()));
        out.values.insert(out.values.end(), p->values.begin() + o * inner, p->values.begin() + (o + 1) * inner);
      }
    set_constant(node, out);
    return true;
  }
  if (op == "Gather") {
    const Constant& data = constant(input(node, 0), label, "data");
    const Constant& idx = constant(input(node, 1), label, "indices");
    const auto rank = static_cast<std::int64_t>(data.shape.size());
    const std::int64_t axis = normalize_axis(at.integer("axis", 0), rank, label);
    Constant out{Shape(data.shape.begin(), data.shape.begin() + axis), {}, data.integer};
    out.shape.insert(out.shape.end(), idx.shape.begin(), idx.shape.end());
    out.shape.insert(out.shape.end(), data.shape.begin() + axis + 1, data.shape.end());
    const std::int64_t outer = element_count(Shape(data.shape.begin(), data.shape.begin() + axis));
    const std::int64_t inner = element_count(Shape(data.shape.begin() + axis + 1, data.shape.end()));
    for (std::int64_t o = 0; o < outer; ++o)
      for (double iv : idx.values) {
        auto i = static_cast<std::int64_t>(iv);
        if (i < 0) i += data.shape[axis];
        if (i < 0 || i >= data.shape[axis]) throw Error(fmt::format("{}: index {} is out of range", label, iv));
        const auto at_ = data.values.begin() + (o * data.shape[axis] + i) * inner;
        out.values.insert(out.values.end(), at_, at_ + inner);
      }
    set_constant(node, out);
    return true;
  }
  if (op == "Reshape") {
    Constant c = constant(input(node, 0), label, "data");
    const Constant& s = constant(input(node, 1), label, "shape");
    Shape shape;
    std::int64_t known = 1, infer_at = -1;
    for (std::size_t i = 0; i < s.values.size(); ++i) {
      auto d = static_cast<std::int64_t>(s.values[i]);
      if (d == 0) d = c.shape.at(i);
      if (d == -1) infer_at = static_cast<std::int64_t>(i);
      else known *= d;
      shape.push_back(d);
    }
    if (infer_at >= 0) shape[infer_at] = known ? c.numel() / known : 0;
    if (element_count(shape) != c.numel()) throw Error(fmt::format("{}: cannot reshape {} to the requested shape", label, shape_string(c.shape)));
    c.shape = shape;
    set_constant(node, c);
    return true;
  }
  if (op == "Slice") {
    Constant c = constant(input(node, 0), label, "data");
    const auto rank = static_cast<std::int64_t>(c.shape.size());
    const auto starts = int_list(node, at, 1, "starts", label, "starts");
    const auto ends = int_list(node, at, 2, "ends", label, "ends");
    auto axes = int_list(node, at, 3, "axes", label, "axes");
    const auto steps = input(node, 4).empty() ? std::vector<std::int64_t>(starts.size(), 1)
                                              : int_list(node, at, 4, "", label, "steps");
    if (axes.empty())
      for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
      throw Error(fmt::format("{}: starts, ends, axes and steps must have the same length", label));
    // One axis at a time, any step: out[i] = in[start + i * step].
    for (std::size_t k = 0; k < starts.size(); ++k) {
      const std::int64_t axis = normalize_axis(axes[k], rank, label), dim = c.shape[axis], step = steps[k];
      if (step == 0) throw Error(fmt::format("{}: a step of 0 is not allowed", label));
      auto clampi = [&](std::int64_t v, std::int64_t lo, std::int64_t hi) {
        if (v < 0) v += dim;
        return std::clamp(v, lo, hi);
      };
      const std::int64_t b = step > 0 ? clampi(starts[k], 0, dim) : clampi(starts[k], -1, dim - 1);
      const std::int64_t e = step > 0 ? clampi(ends[k], 0, dim) : clampi(ends[k], -1, dim - 1);
      std::vector<std::int64_t> picks;
      for (std::int64_t i = b; step > 0 ? i < e : i > e; i += step) picks.push_back(i);
      const std::int64_t outer = element_count(Shape(c.shape.begin(), c.shape.begin() + axis));
      const std::int64_t inner = element_count(Shape(c.shape.begin() + axis + 1, c.shape.end()));
      std::vector<double> v;
      for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t i : picks) {
          const auto from = c.values.begin() + (o * dim + i) * inner;
          v.insert(v.end(), from, from + inner);
        }
      c.shape[axis] = static_cast<std::int64_t>(picks.size());
      c.values = std::move(v);
    }
    set_constant(node, c);
    return true;
  }
  if (op == "Range") {
    const double start = constant(input(node, 0), label, "start").values.at(0);
    const double limit = constant(input(node, 1), label, "limit").values.at(0);
    const double delta = constant(input(node, 2), label, "delta").values.at(0);
    if (delta == 0) throw Error(fmt::format("{}: delta 0 is not allowed", label));
    Constant c{{}, {}, constant(input(node, 0), label, "start").integer};
    const auto n = std::max<std::int64_t>(static_cast<std::int64_t>(std::ceil((limit - start) / delta)), 0);
    for (std::int64_t i = 0; i < n; ++i) c.values.push_back(start + static_cast<double>(i) * delta);
    c.shape = {n};
    set_constant(node, c);
    return true;
  }
  if (op == "Transpose") {
    const Constant& x = constant(input(node, 0), label, "data");
    const auto rank = static_cast<std::int64_t>(x.shape.size());
    std::vector<std::int64_t> perm = at.integers("perm", {});
    if (perm.empty())
      for (std::int64_t i = rank; i-- > 0;) perm.push_back(i);
    if (static_cast<std::int64_t>(perm.size()) != rank)
      throw Error(fmt::format("{}: attribute 'perm' has {} values for rank {}", label, perm.size(), rank));
    Constant c{Shape(rank), {}, x.integer};
    for (std::int64_t k = 0; k < rank; ++k) c.shape[k] = x.shape.at(normalize_axis(perm[k], rank, label));
    std::vector<std::int64_t> in_strides(rank, 1);
    for (std::int64_t k = rank - 1; k > 0; --k) in_strides[k - 1] = in_strides[k] * x.shape[k];
    for (std::int64_t i = 0; i < c.numel(); ++i) {
      std::int64_t rest = i, offset = 0;
      for (std::int64_t k = rank; k-- > 0;) {
        offset += (rest % c.shape[k]) * in_strides[normalize_axis(perm[k], rank, label)];
        rest /= c.shape[k];
      }
      c.values.push_back(x.values[static_cast<std::size_t>(offset)]);
    }
    set_constant(node, c);
    return true;
  }
  if (op == "Neg" || op == "Sqrt" || op == "Not" || op == "Pow") {
    Constant c = constant(input(node, 0), label, "input");
    const double e = op == "Pow" ? constant(input(node, 1), label, "exponent").values.at(0) : 0;
    if (op == "Pow" && constant(input(node, 1), label, "exponent").numel() != 1)
      throw Error(fmt::format("{}: only a scalar exponent is supported", label));
    for (double& v : c.values)
      v = op == "Neg" ? -v : op == "Sqrt" ? std::sqrt(v) : op == "Not" ? (v == 0) : std::pow(v, e);
    set_constant(node, c);
    return true;
  }
  if (op == "Expand" || op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Equal" || op == "Where" ||
      op == "Less" || op == "Greater") {
    std::vector<Constant> in;
    if (op == "Expand") {
      in.push_back(constant(input(node, 0), label, "input"));
      const Constant& s = constant(input(node, 1), label, "shape");
      in.push_back(Constant{Shape(s.values.begin(), s.values.end()), {}, in[0].integer});
      in[1].values.assign(static_cast<std::size_t>(in[1].numel()), 0.0);
    } else {
      for (const auto& name : node.input()) in.push_back(constant(name, label, "input"));
    }
    Shape out = in[0].shape;
    for (std::size_t k = 1; k < in.size(); ++k) {
      auto s = broadcast_shapes(out, in[k].shape);
      if (!s) throw Error(fmt::format("{}: shapes {} and {} do not broadcast", label, shape_string(out), shape_string(in[k].shape)));
      out = *s;
    }
    Constant c{out, {}, in.back().integer};
    if (op == "Expand") c.integer = in[0].integer;
    if (op == "Equal" || op == "Less" || op == "Greater") c.integer = true;
    if (op == "Where") c.integer = in[1].integer && in[2].integer;
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") c.integer = in[0].integer && in[1].integer;
    for (std::int64_t i = 0; i < element_count(out); ++i) {
      const double x = broadcast_at(in[0], out, i);
      const double y = in.size() > 1 ? broadcast_at(in[1], out, i) : 0;
      double v = x;
      if (op == "Add") v = x + y;
      else if (op == "Sub") v = x - y;
      else if (op == "Mul") v = x * y;
      else if (op == "Div") v = c.integer ? std::floor(x / y) : x / y;  // ONNX integer division truncates; shapes are >= 0
      else if (op == "Equal") v = x == y;
      else if (op == "Less") v = x < y;
      else if (op == "Greater") v = x > y;
      else if (op == "Where") v = x != 0 ? y : broadcast_at(in[2], out, i);
      c.values.push_back(v);
    }
    set_constant(node, c);
    return true;
  }
  return false;
}

// A list of integers from input `index` (opset 13 style, a constant) or, when that input
// is absent, from the attribute `attr` (older opsets); empty when neither is given.
std::vector<std::int64_t> Importer::int_list(const onnx::NodeProto& node, Attributes& at, int index,
                                             const std::string& attr, const std::string& label, const char* what) {
  if (!input(node, index).empty()) {
    const Constant& c = constant(input(node, index), label, what);
    std::vector<std::int64_t> v;
    for (double x : c.values) v.push_back(static_cast<std::int64_t>(x));
    return v;
  }
  return attr.empty() ? std::vector<std::int64_t>{} : at.integers(attr, {});
}

// Walks the nodes backwards from the first graph output, through the inputs that carry
// a gradient (not shapes, indices, masks, axes or the running statistics).
void Importer::find_differentiable() {
  if (graph_.output_size() > 0) differentiable_.insert(graph_.output(0).name());
  for (int n = graph_.node_size(); n-- > 0;) {
    const auto& node = graph_.node(n);
    bool needed = false;
    for (const auto& out : node.output()) needed = needed || differentiable_.count(out);
    if (!needed) continue;
    const std::string& op = node.op_type();
    static const std::set<std::string> no_gradient{"Shape",   "Size", "Equal", "Less",  "Greater", "LessOrEqual",
                                                   "GreaterOrEqual",   "Not",  "And",   "Or",      "ConstantOfShape",
                                                   "Range",   "NonZero", "ArgMax", "ArgMin"};
    if (no_gradient.count(op)) continue;
    int first = 0, last = node.input_size();  // the inputs [first, last) carry a gradient
    if (op == "Where") first = 1;
    else if (op == "Gather" || op == "Reshape" || op == "Expand" || op == "Unsqueeze" || op == "Squeeze" ||
             op == "Tile" || op == "Pow" || op == "Split" || op == "ReduceSum")
      last = 1;
    else if (op == "Slice" || op == "Pad" || op == "Clip" || op == "Dropout") last = 1;
    else if (op == "BatchNormalization") last = std::min(last, 3);
    for (int i = first; i < std::min(last, node.input_size()); ++i)
      if (!node.input(i).empty()) differentiable_.insert(node.input(i));
  }
}

// ONNX MatMul: NumPy matmul semantics. A 1-d operand gains a unit axis (removed from
// the result); batch axes broadcast. remat's matmul takes equal batch shapes or a
// rank-2 right operand; a rank-2 left operand against a batched right one is
// computed as (B^T A^T)^T; other batch shapes are broadcast first (by adding zeros).
void Importer::matmul_node(const onnx::NodeProto& node, const std::string& label) {
  if (auto w = transposed_parameters_.find(input(node, 1));
      w != transposed_parameters_.end() && !values_.count(input(node, 1))) {
    Value x = tensor(input(node, 0), label);
    if (x.shape().empty() || x.shape().back() != w->second.shape()[1])
      throw Error(fmt::format("{}: inner extents differ: {} @ {} transposed", label, shape_string(x.shape()),
                              shape_string(w->second.shape())));
    set_tensor(node, linear(x, w->second));
    return;
  }
  Value a = tensor(input(node, 0), label);
  Value b = tensor(input(node, 1), label);
  const bool a_vector = a.shape().size() == 1, b_vector = b.shape().size() == 1;
  if (a.shape().empty() || b.shape().empty())
    throw Error(fmt::format("{}: operands must have rank >= 1, got {} and {}", label, shape_string(a.shape()),
                            shape_string(b.shape())));
  if (a_vector) a = reshape(a, {1, a.shape()[0]});
  if (b_vector) b = reshape(b, {b.shape()[0], 1});
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  if (sa.back() != sb[sb.size() - 2])
    throw Error(fmt::format("{}: inner extents differ: {} @ {}", label, shape_string(sa), shape_string(sb)));
  const Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  const auto batch = broadcast_shapes(ba, bb);
  if (!batch)
    throw Error(fmt::format("{}: batch axes of {} and {} do not broadcast", label, shape_string(sa), shape_string(sb)));
  Value y;
  if (bb.empty() || ba == bb) {
    y = matmul(a, b);
  } else if (ba.empty()) {
    y = transpose(matmul(transpose(b), transpose(a)));
  } else {
    auto expand = [&](Value v, const Shape& vb, const std::string& which) {
      if (vb == *batch) return v;
      Shape full = *batch;
      full.push_back(v.shape()[v.shape().size() - 2]);
      full.push_back(v.shape().back());
      return add(v, constant_tensor(node.output(0) + "/zeros_" + which,
                                    Constant{full, std::vector<double>(element_count(full), 0.0), false}));
    };
    y = matmul(expand(a, ba, "a"), expand(b, bb, "b"));
  }
  if (a_vector || b_vector) {
    Shape s = y.shape();
    if (b_vector) s.pop_back();
    if (a_vector) s.erase(s.end() - (b_vector ? 1 : 2));
    y = reshape(y, s);
  }
  set_tensor(node, y);
}

// Gather of a tensor: an embedding lookup (axis 0 of a rank-2 table, by i32 indices, a
// graph input or a constant), or a constant index picked by slices along any axis.
void Importer::gather(const onnx::NodeProto& node, Attributes& at, const std::string& label) {
  Value data = tensor(input(node, 0), label);
  const auto rank = static_cast<std::int64_t>(data.shape().size());
  const std::int64_t axis = normalize_axis(at.integer("axis", 0), rank, label);
  const std::string& idx_name = input(node, 1);
  const std::int64_t dim = data.shape()[axis];
  if (!is_constant(idx_name)) {
    Value ids = tensor(idx_name, label);
    if (ids.meta().dtype != DType::i32)
      throw Error(fmt::format("{}: indices must be integers, got {}", label, dtype_name(ids.meta().dtype)));
    if (axis != 0)
      throw Error(fmt::format("{}: indices computed by the graph are supported on axis 0 only (an embedding "
                              "lookup), got attribute 'axis'={}",
                              label, axis));
    // remat's embedding reads table rows; ONNX allows negative indices, which an
    // embedding lookup refuses at run time (an out-of-range id is an error, not a wrap).
    const Shape tail(data.shape().begin() + 1, data.shape().end());
    Value table = rank == 2 ? data : reshape(data, {dim, element_count(tail)});
    Value y = embedding(table, ids);
    if (rank != 2) {
      Shape s = ids.shape();
      s.insert(s.end(), tail.begin(), tail.end());
      y = reshape(y, s);
    }
    set_tensor(node, y);
    return;
  }
  Constant idx = constant(idx_name, label, "indices");
  for (double& v : idx.values) {
    if (v < 0) v += static_cast<double>(dim);
    if (v < 0 || v >= static_cast<double>(dim))
      throw Error(fmt::format("{}: index {} is out of range for axis {} of extent {}", label, v, axis, dim));
  }
  Shape out(data.shape().begin(), data.shape().begin() + axis);
  out.insert(out.end(), idx.shape.begin(), idx.shape.end());
  out.insert(out.end(), data.shape().begin() + axis + 1, data.shape().end());
  if (axis == 0 && rank == 2 && idx.numel() > 1) {
    idx.integer = true;
    set_tensor(node, embedding(data, constant_tensor(node.output(0) + "/indices", idx)));
    return;
  }
  std::vector<Value> parts;
  for (double v : idx.values) {
    const auto i = static_cast<std::int64_t>(v);
    parts.push_back(slice(data, static_cast<int>(axis), i, i + 1));
  }
  Value y = parts.size() == 1 ? parts[0] : concat(parts, static_cast<int>(axis));
  set_tensor(node, y.shape() == out ? y : reshape(y, out));
}

// Slice with step 1 along each named axis (ONNX clamps starts and ends to the extent).
void Importer::slice_node(const onnx::NodeProto& node, Attributes& at, const std::string& label) {
  Value x = tensor(input(node, 0), label);
  const auto rank = static_cast<std::int64_t>(x.shape().size());
  const auto starts = int_list(node, at, 1, "starts", label, "starts");
  const auto ends = int_list(node, at, 2, "ends", label, "ends");
  auto axes = int_list(node, at, 3, "axes", label, "axes");
  if (axes.empty())
    for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
  std::vector<std::int64_t> steps(starts.size(), 1);
  if (!input(node, 4).empty()) steps = int_list(node, at, 4, "", label, "steps");
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    throw Error(fmt::format("{}: starts, ends, axes and steps must have the same length", label));
  for (std::size_t k = 0; k < starts.size(); ++k) {
    if (steps[k] != 1)
      throw Error(fmt::format("{}: input 'steps' other than 1 is not supported on a computed tensor (got {})", label,
                              steps[k]));
    const std::int64_t axis = normalize_axis(axes[k], rank, label), dim = x.shape()[axis];
    auto clamp_index = [dim](std::int64_t v) { return std::clamp<std::int64_t>(v < 0 ? v + dim : v, 0, dim); };
    const std::int64_t b = clamp_index(starts[k]), e = clamp_index(ends[k]);
    if (e <= b)
      throw Error(fmt::format("{}: the slice [{}, {}) of axis {} (extent {}) is empty, which is not supported", label,
                              starts[k], ends[k], axis, dim));
    if (b != 0 || e != dim) x = slice(x, static_cast<int>(axis), b, e);
  }
  set_tensor(node, x);
}

// Where with a condition known at load time (a causal mask): y = x * keep + c, with keep
// = 1 where the condition holds and c the other branch where it does not (0 elsewhere):
// exactly x or the other branch's value, as long as the masked-off x are finite.
void Importer::where(const onnx::NodeProto& node, const std::string& label) {
  if (!is_constant(input(node, 0)))
    throw Error(fmt::format("{}: the condition '{}' must be known at load time (a constant mask); a condition "
                            "computed by the graph is not supported",
                            label, input(node, 0)));
  const Constant& cond = constant(input(node, 0), label, "condition");
  auto mask = [&](bool when, const std::string& suffix) {
    Constant m{cond.shape, {}, false};
    for (double v : cond.values) m.values.push_back((v != 0) == when ? 1.0 : 0.0);
    return constant_tensor(node.output(0) + suffix, m);
  };
  // The constant branch where it is taken, zero where it is not.
  auto masked_constant = [&](const std::string& name, bool when, const std::string& suffix) {
    const Constant& c = constant(name, label, "branch");
    const auto shape = broadcast_shapes(cond.shape, c.shape);
    if (!shape) throw Error(fmt::format("{}: shapes {} and {} do not broadcast", label, shape_string(cond.shape), shape_string(c.shape)));
    Constant m{*shape, {}, false};
    for (std::int64_t i = 0; i < element_count(*shape); ++i)
      m.values.push_back((broadcast_at(cond, *shape, i) != 0) == when ? broadcast_at(c, *shape, i) : 0.0);
    return constant_tensor(node.output(0) + suffix, m);
  };
  const std::string &xn = input(node, 1), &yn = input(node, 2);
  const bool x_const = is_constant(xn), y_const = is_constant(yn);
  Value out;
  if (!x_const && y_const) out = add(mul(tensor(xn, label), mask(true, "/keep")), masked_constant(yn, false, "/else"));
  else if (x_const && !y_const) out = add(mul(tensor(yn, label), mask(false, "/keep")), masked_constant(xn, true, "/then"));
  else out = add(mul(tensor(xn, label), mask(true, "/then")), mul(tensor(yn, label), mask(false, "/else")));
  set_tensor(node, out);
}

void Importer::reduce(const onnx::NodeProto& node, Attributes& at, const std::string& label) {
  Value x = tensor(input(node, 0), label);
  const auto rank = static_cast<std::int64_t>(x.shape().size());
  const bool keepdims = at.integer("keepdims", 1) != 0;
  // ReduceSum takes its axes as an input from opset 13 on, ReduceMean from opset 18.
  const auto axes = int_list(node, at, 1, "axes", label, "axes");
  if (axes.empty() && at.integer("noop_with_empty_axes", 0) != 0) {
    set_tensor(node, x);
    return;
  }
  std::vector<int> ax;
  for (auto a : axes) ax.push_back(static_cast<int>(normalize_axis(a, rank, label)));
  set_tensor(node, node.op_type() == "ReduceMean" ? mean(x, ax, keepdims) : sum(x, ax, keepdims));
}

// Softmax over one axis (opset 13) by moving it last; before opset 13 ONNX flattens the
// axes from `axis` on, which is the same only when axis is the last one.
void Importer::softmax_node(const onnx::NodeProto& node, Attributes& at, const std::string& label, bool log) {
  Value x = tensor(input(node, 0), label);
  const auto rank = static_cast<std::int64_t>(x.shape().size());
  const std::int64_t raw = at.integer("axis", opset_ >= 13 ? -1 : 1);
  const std::int64_t axis = normalize_axis(raw, rank, label);
  if (opset_ < 13 && axis != rank - 1)
    throw Error(fmt::format("{}: attribute 'axis'={} before opset 13 (softmax of the flattened trailing axes) is "
                            "supported only for the last axis",
                            label, raw));
  auto f = [log](Value v) { return log ? log_softmax(v) : softmax(v); };
  if (axis == rank - 1) {
    set_tensor(node, f(x));
    return;
  }
  std::vector<int> order;
  for (std::int64_t i = 0; i < rank; ++i)
    if (i != axis) order.push_back(static_cast<int>(i));
  order.push_back(static_cast<int>(axis));
  std::vector<int> back(static_cast<std::size_t>(rank));
  for (std::size_t i = 0; i < order.size(); ++i) back[order[i]] = static_cast<int>(i);
  set_tensor(node, permute(f(permute(x, order)), back));
}

// LayerNormalization (opset 17) over the last axis: remat's layernorm.
void Importer::layernorm_node(const onnx::NodeProto& node, Attributes& at, const std::string& label) {
  Value x = tensor(input(node, 0), label);
  const auto rank = static_cast<std::int64_t>(x.shape().size());
  const std::int64_t raw = at.integer("axis", -1);
  if (normalize_axis(raw, rank, label) != rank - 1)
    throw Error(fmt::format("{}: attribute 'axis'={} is not supported (only the last axis is normalised)", label, raw));
  const double eps = at.floating("epsilon", 1e-5);
  const std::int64_t stash = at.integer("stash_type", 1);
  if (stash != 1) throw Error(fmt::format("{}: attribute 'stash_type'={} is not supported (only 1, float)", label, stash));
  only_first_output(node, label);
  const std::int64_t d = x.shape().back();
  Value gamma = tensor(input(node, 1), label);
  Value beta = input(node, 2).empty()
                   ? constant_tensor(node.output(0) + "/bias", Constant{{d}, std::vector<double>(d, 0.0), false})
                   : tensor(input(node, 2), label);
  if (gamma.shape() != Shape{d} || beta.shape() != Shape{d})
    throw Error(fmt::format("{}: scale and bias must have shape ({}), got {} and {}", label, d,
                            shape_string(gamma.shape()), shape_string(beta.shape())));
  set_tensor(node, layernorm(x, gamma, beta, eps));
}

void Importer::split(const onnx::NodeProto& node, Attributes& at, const std::string& label) {
  Value x = tensor(input(node, 0), label);
  const auto rank = static_cast<std::int64_t>(x.shape().size());
  const std::int64_t axis = normalize_axis(at.integer("axis", 0), rank, label);
  std::vector<std::int64_t> sizes = int_list(node, at, 1, "split", label, "split");
  const std::int64_t dim = x.shape()[axis], parts = node.output_size();
  if (sizes.empty()) {
    if (dim % parts != 0)
      throw Error(fmt::format("{}: axis {} of extent {} does not split evenly into {} outputs", label, axis, dim, parts));
    sizes.assign(static_cast<std::size_t>(parts), dim / parts);
  }
  if (static_cast<std::int64_t>(sizes.size()) != parts || std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0}) != dim)
    throw Error(fmt::format("{}: 'split' sizes do not add up to the extent {} over {} outputs", label, dim, parts));
  std::int64_t start = 0;
  for (std::int64_t i = 0; i < parts; ++i) {
    values_[node.output(static_cast<int>(i))] = slice(x, static_cast<int>(axis), start, start + sizes[i]);
    start += sizes[i];
  }
}

void Importer::import_node(const onnx::NodeProto& node, const std::string& label) {
  Attributes at(node, label);
  const std::string& op = node.op_type();
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    throw Error(fmt::format("{}: operator domain '{}' is not supported (only the default ONNX domain)", label, node.domain()));
  if (fold(node, at, label)) {
    at.finish();
    return;
  }
  if (op == "Conv") conv(node, at, label);
  else if (op == "MaxPool") pool(node, at, label, true);
  else if (op == "AveragePool") pool(node, at, label, false);
  else if (op == "BatchNormalization") batchnorm(node, at, label);
  else if (op == "Gemm") gemm(node, at, label);
  else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") binary(node, label);
  else if (op == "MatMul") matmul_node(node, label);
  else if (op == "Gather") gather(node, at, label);
  else if (op == "Slice") slice_node(node, at, label);
  else if (op == "Where") where(node, label);
  else if (op == "ReduceMean" || op == "ReduceSum") reduce(node, at, label);
  else if (op == "Softmax") softmax_node(node, at, label, false);
  else if (op == "LogSoftmax") softmax_node(node, at, label, true);
  else if (op == "LayerNormalization") layernorm_node(node, at, label);
  else if (op == "Split") split(node, at, label);
  else if (op == "Erf") set_tensor(node, remat::erf(tensor(input(node, 0), label)));
  else if (op == "Exp") set_tensor(node, remat::exp(tensor(input(node, 0), label)));
  else if (op == "Log") set_tensor(node, remat::log(tensor(input(node, 0), label)));
  else if (op == "Neg") set_tensor(node, neg(tensor(input(node, 0), label)));
  else if (op == "Sqrt") set_tensor(node, remat::pow(tensor(input(node, 0), label), 0.5));
  else if (op == "Pow") {
    const Constant& e = constant(input(node, 1), label, "exponent");
    if (e.numel() != 1)
      throw Error(fmt::format("{}: only a scalar exponent known at load time is supported, got shape {}", label,
                              shape_string(e.shape)));
    Value x = tensor(input(node, 0), label);
    set_tensor(node, e.values[0] == 2.0 ? square(x) : remat::pow(x, e.values[0]));
  } else if (op == "Transpose") {
    Value x = tensor(input(node, 0), label);
    const auto rank = static_cast<std::int64_t>(x.shape().size());
    std::vector<std::int64_t> perm = at.integers("perm", {});
    if (perm.empty())
      for (std::int64_t i = rank; i-- > 0;) perm.push_back(i);
    if (static_cast<std::int64_t>(perm.size()) != rank)
      throw Error(fmt::format("{}: attribute 'perm' has {} values for an input of rank {}", label, perm.size(), rank));
    std::vector<int> order;
    for (auto a : perm) order.push_back(static_cast<int>(normalize_axis(a, rank, label)));
    bool identity = true;
    for (std::size_t i = 0; i < order.size(); ++i) identity = identity && order[i] == static_cast<int>(i);
    if (rank == 2 && !identity && tape_.node(x.id).kind == NodeKind::parameter && node.output_size() == 1) {
      transposed_parameters_[node.output(0)] = x;  // recorded when read (matmul_node: as linear)
    } else {
      set_tensor(node, identity ? x : permute(x, order));
    }
  } else if (op == "Unsqueeze" || op == "Squeeze") {
    Value x = tensor(input(node, 0), label);
    const auto axes = int_list(node, at, 1, "axes", label, "axes");
    Shape shape = x.shape();
    if (op == "Unsqueeze") {
      const auto rank = static_cast<std::int64_t>(shape.size() + axes.size());
      std::vector<std::int64_t> sorted;
      for (auto a : axes) sorted.push_back(normalize_axis(a, rank, label));
      std::sort(sorted.begin(), sorted.end());
      for (auto a : sorted) shape.insert(shape.begin() + a, 1);
    } else {
      const auto rank = static_cast<std::int64_t>(shape.size());
      std::set<std::int64_t> drop;
      for (auto a : axes) {
        const std::int64_t k = normalize_axis(a, rank, label);
        if (shape[k] != 1)
          throw Error(fmt::format("{}: cannot squeeze axis {} of extent {} (input {})", label, a, shape[k],
                                  shape_string(shape)));
        drop.insert(k);
      }
      Shape kept;
      for (std::int64_t i = 0; i < rank; ++i)
        if (!(drop.count(i) || (axes.empty() && shape[i] == 1))) kept.push_back(shape[i]);
      shape = kept;
    }
    set_tensor(node, shape == x.shape() ? x : reshape(x, shape));
  } else if (op == "Expand") {
    Value x = tensor(input(node, 0), label);
    const Constant& s = constant(input(node, 1), label, "shape");
    const auto out = broadcast_shapes(x.shape(), Shape(s.values.begin(), s.values.end()));
    if (!out)
      throw Error(fmt::format("{}: input {} does not broadcast to the shape {}", label, shape_string(x.shape()),
                              shape_string(Shape(s.values.begin(), s.values.end()))));
    // Broadcasting by adding zeros of the target shape: x + 0 is x, and add's vjp sums
    // the gradient back over the broadcast axes, which is Expand's vjp.
    set_tensor(node, *out == x.shape() ? x
                                       : add(x, constant_tensor(node.output(0) + "/zeros",
                                                                Constant{*out, std::vector<double>(element_count(*out), 0.0), false})));
  } else if (op == "Relu") set_tensor(node, relu(tensor(input(node, 0), label)));
  else if (op == "Sigmoid") set_tensor(node, sigmoid(tensor(input(node, 0), label)));
  else if (op == "Tanh") set_tensor(node, remat::tanh(tensor(input(node, 0), label)));
  else if (op == "Identity") set_tensor(node, tensor(input(node, 0), label));
  else if (op == "Clip") {
    double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
    if (at.has("min")) lo = at.floating("min", lo);  // opset < 11
    if (at.has("max")) hi = at.floating("max", hi);
    if (!input(node, 1).empty()) lo = constant(input(node, 1), label, "min").values.at(0);
    if (!input(node, 2).empty()) hi = constant(input(node, 2), label, "max").values.at(0);
    set_tensor(node, clamp(tensor(input(node, 0), label), lo, hi));
  } else if (op == "GlobalAveragePool") {
    Value x = tensor(input(node, 0), label);
    if (x.shape().size() != 4)
      throw Error(fmt::format("{}: only input rank 4 (N, C, H, W) is supported, got {}", label, shape_string(x.shape())));
    set_tensor(node, mean(x, {2, 3}, true));
  } else if (op == "Flatten") {
    Value x = tensor(input(node, 0), label);
    const auto rank = static_cast<std::int64_t>(x.shape().size());
    const std::int64_t axis = at.integer("axis", 1);
    const std::int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a > rank) throw Error(fmt::format("{}: attribute 'axis'={} is out of range for rank {}", label, axis, rank));
    const Shape& s = x.shape();
    set_tensor(node, reshape(x, {element_count(Shape(s.begin(), s.begin() + a)), element_count(Shape(s.begin() + a, s.end()))}));
  } else if (op == "Reshape") {
    if (at.integer("allowzero", 0) != 0) throw Error(fmt::format("{}: attribute 'allowzero'=1 is not supported", label));
    Value x = tensor(input(node, 0), label);
    const Constant& s = constant(input(node, 1), label, "shape");
    Shape shape;
    for (std::size_t i = 0; i < s.values.size(); ++i) {
      auto d = static_cast<std::int64_t>(s.values[i]);
      shape.push_back(d == 0 ? x.shape().at(i) : d);
    }
    set_tensor(node, reshape(x, shape));
  } else if (op == "Concat") {
    std::vector<Value> parts;
    for (const auto& name : node.input()) parts.push_back(tensor(name, label));
    const auto rank = static_cast<std::int64_t>(parts.at(0).shape().size());
    set_tensor(node, concat(parts, static_cast<int>(normalize_axis(at.integer("axis", 0), rank, label))));
  } else if (op == "Dropout") {
    at.integer("seed", 0);  // the mask comes from remat's (seed, node) Philox stream, not ONNX's seed
    double ratio = at.floating("ratio", 0.5);  // opset < 12: an attribute, and no training mode (identity)
    if (!input(node, 1).empty()) ratio = constant(input(node, 1), label, "ratio").values.at(0);
    bool training = false;  // opset 12+: the training_mode input, default false (identity)
    if (!input(node, 2).empty()) training = constant(input(node, 2), label, "training_mode").values.at(0) != 0;
    only_first_output(node, label);
    Value x = tensor(input(node, 0), label);
    set_tensor(node, training && ratio > 0 ? dropout(x, ratio) : x);
  } else if (op == "Pad") {
    const std::string mode = at.text("mode", "constant");
    if (mode != "constant") throw Error(fmt::format("{}: attribute 'mode'={} is not supported", label, mode));
    std::vector<std::int64_t> pads;
    if (!input(node, 1).empty()) {
      const Constant& c = constant(input(node, 1), label, "pads");
      pads.assign(c.values.begin(), c.values.end());
    } else {
      pads = at.integers("pads", {});
    }
    double value = at.floating("value", 0.0);
    if (!input(node, 2).empty()) value = constant(input(node, 2), label, "constant_value").values.at(0);
    if (!input(node, 3).empty()) throw Error(fmt::format("{}: input 'axes' is not supported", label));
    Value x = tensor(input(node, 0), label);
    if (x.shape().size() != 4 || pads.size() != 8 || pads[0] || pads[1] || pads[4] || pads[5] || pads[2] != pads[6] ||
        pads[3] != pads[7] || pads[2] < 0 || pads[3] < 0)
      throw Error(fmt::format("{}: only symmetric padding of the two spatial axes of an (N, C, H, W) input is supported, "
                              "got pads of {} values for input {}",
                              label, pads.size(), shape_string(x.shape())));
    pads_[node.output(0)] = PendingPad{x, pads[2], pads[3], value, label.substr(7)};  // "node 'p' (Pad)"
  } else {
    throw Error(fmt::format("{}: operator {} is not supported", label, op));
  }
  at.finish();
}

DType placeholder_dtype(int type, const std::string& name) {
  if (type == onnx::TensorProto::FLOAT) return DType::f32;
  if (type == onnx::TensorProto::DOUBLE) return DType::f64;
  if (type == onnx::TensorProto::INT32 || type == onnx::TensorProto::INT64) return DType::i32;
  throw Error(fmt::format("[onnx] graph input '{}' has element type {}, which is not supported", name, onnx_type_name(type)));
}

OnnxModel Importer::run(const std::string& path, const OnnxImportOptions& options) {
  for (const auto& node : graph_.node())
    for (const auto& name : node.input()) read_names_.insert(name);
  for (const auto& out : graph_.output()) read_names_.insert(out.name());

  find_differentiable();
  OnnxModel result;
  std::vector<std::pair<Value, std::string>> data_inputs;
  for (const auto& in : graph_.input()) {
    if (initializers_.count(in.name())) continue;  // older exporters list initializers as inputs too
    if (!in.type().has_tensor_type())
      throw Error(fmt::format("[onnx] graph input '{}' is not a tensor, which is not supported", in.name()));
    const auto& tt = in.type().tensor_type();
    Shape shape;
    for (const auto& d : tt.shape().dim()) {
      if (!d.has_dim_value())
        throw Error(fmt::format("[onnx] graph input '{}' has a symbolic dimension '{}': export with static shapes", in.name(),
                                d.dim_param()));
      shape.push_back(d.dim_value());
    }
    Value v = tape_.placeholder(in.name(), TensorMeta{shape, placeholder_dtype(tt.elem_type(), in.name())});
    values_[in.name()] = v;
    data_inputs.emplace_back(v, in.name());
    result.input_names.emplace_back(v.id, in.name());
  }
  int index = 0;
  for (const auto& node : graph_.node()) {
    const std::string label = node_label(node, index++);
    try {
      import_node(node, label);
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.rfind("[onnx]", 0) == 0) throw;
      throw Error(fmt::format("{}: {}", label, what));  // a shape error of a remat op, with the node's name
    }
  }
  if (graph_.output_size() < 1) throw Error("[onnx] " + path + ": the graph has no output");
  const std::string& out_name = graph_.output(0).name();
  if (!values_.count(out_name))
    throw Error(fmt::format("[onnx] graph output '{}' is not computed from the inputs and parameters (a constant "
                            "or a Pad), so it has no gradient",
                            out_name));
  Value output = values_.at(out_name);
  if (output.meta().dtype == DType::i32)
    throw Error(fmt::format("[onnx] graph output '{}' is an integer tensor; a loss needs a float one", out_name));

  std::string loss = options.loss;
  if (loss == "auto") loss = output.shape().size() == 2 ? "cross-entropy" : "sum";
  Model& m = result.model;
  std::optional<Value> labels, target;
  if (loss == "cross-entropy") {
    if (output.shape().size() != 2)
      throw Error(fmt::format("[onnx] --loss cross-entropy needs a (N, classes) output, got '{}' of shape {} (use "
                              "--loss mse or sum)",
                              out_name, shape_string(output.shape())));
    labels = tape_.placeholder("labels", TensorMeta{{output.shape()[0]}, DType::i32});
    result.input_names.emplace_back(labels->id, "labels");
    m.loss = cross_entropy(output, *labels);
  } else if (loss == "mse") {
    target = tape_.placeholder("target", output.meta());
    result.input_names.emplace_back(target->id, "target");
    m.loss = mse(output, *target);
  } else if (loss == "sum") {
    m.loss = sum(output);
  } else {
    throw Error(fmt::format("[onnx] unknown loss '{}' (known: auto, cross-entropy, mse, sum)", loss));
  }
  m.spec = fmt::format("onnx:{} loss={}", path, loss);
  const std::int64_t classes = output.shape().size() == 2 ? output.shape()[1] : 1;
  Bindings defaults = tape_.default_bindings();
  m.batch = [data_inputs, labels, target, classes, defaults](std::uint64_t step) {
    Bindings bd = defaults;
    std::uint64_t k = 0;
    for (const auto& [v, name] : data_inputs) {
      const TensorMeta& meta = v.meta();
      bd[v.id] = meta.dtype == DType::i32 ? zoo::random_labels(meta.shape, 2, 11 * step + ++k)
                                          : zoo::uniform_data(meta.shape, meta.dtype, 11 * step + ++k);
    }
    if (labels) bd[labels->id] = zoo::random_labels(labels->shape(), classes, 11 * step + 9);
    if (target) bd[target->id] = zoo::uniform_data(target->shape(), target->meta().dtype, 11 * step + 10);
    return bd;
  };
  result.output = output;
  result.parameter_names = parameter_order_;
  return result;
}

}  // namespace

OnnxModel load_onnx(const std::string& path, const OnnxImportOptions& options) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error(fmt::format("[onnx] cannot open '{}'", path));
  onnx::ModelProto proto;
  if (!proto.ParseFromIstream(&file))
    throw Error(fmt::format("[onnx] '{}' is not a valid ONNX protobuf file", path));
  try {
    onnx::checker::check_model(proto);
  } catch (const std::exception& e) {
    throw Error(fmt::format("[onnx] '{}': the ONNX checker refused the model: {}", path, e.what()));
  }
  for (const auto& opset : proto.opset_import())
    if ((opset.domain().empty() || opset.domain() == "ai.onnx") && (opset.version() < 9 || opset.version() > 17))
      throw Error(fmt::format("[onnx] '{}': opset {} is not supported (9 to 17 are)", path, opset.version()));
  OnnxModel result;
  result.model.tape = std::make_unique<Tape>();
  Importer importer(proto.graph(), *result.model.tape);
  for (const auto& opset : proto.opset_import())
    if (opset.domain().empty() || opset.domain() == "ai.onnx") importer.set_opset(opset.version());
  OnnxModel imported = importer.run(path, options);
  imported.model.tape = std::move(result.model.tape);
  return imported;
}

}  // namespace remat

// ---- .npy inputs and gradients (xtensor's npy reader and writer) ----

#include <xtensor/xadapt.hpp>
#include <xtensor/xnpy.hpp>

#include <filesystem>

namespace remat {

Bindings bind_npy_inputs(const OnnxModel& model, const std::string& list, Bindings base) {
  std::string item;
  std::stringstream items(list);
  std::set<std::string> seen;
  while (std::getline(items, item, ',')) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw Error(fmt::format("[onnx] --inputs expects name=file.npy items, got '{}'", item));
    const std::string name = item.substr(0, eq), path = item.substr(eq + 1);
    if (!seen.insert(name).second) throw Error(fmt::format("[onnx] --inputs names '{}' twice", name));
    int id = -1;
    std::string known;
    for (const auto& [node, input] : model.input_names) {
      known += (known.empty() ? "" : ", ") + input;
      if (input == name) id = node;
    }
    if (id < 0) throw Error(fmt::format("[onnx] --inputs: '{}' is not an input of the model (its inputs: {})", name, known));
    const TensorMeta& meta = model.model.tape->node(id).meta;
    HostArray a(meta);
    Shape shape;
    try {
      auto copy = [&](auto tag) {
        using T = decltype(tag);
        auto x = xt::load_npy<T, xt::layout_type::row_major>(path);
        shape.assign(x.shape().begin(), x.shape().end());
        if (shape == meta.shape) std::copy(x.begin(), x.end(), a.data<T>());
      };
      if (meta.dtype == DType::f32) copy(float{});
      else if (meta.dtype == DType::f64) copy(double{});
      else copy(std::int32_t{});
    } catch (const std::exception& e) {
      throw Error(fmt::format("[onnx] --inputs {}={}: cannot read it as a C-order {} .npy file ({})", name, path,
                              meta.dtype == DType::f32 ? "float32" : meta.dtype == DType::f64 ? "float64" : "int32",
                              e.what()));
    }
    if (shape != meta.shape)
      throw Error(fmt::format("[onnx] --inputs {}={}: shape {} does not match the input's {}", name, path,
                              shape_string(shape), shape_string(meta.shape)));
    base[id] = std::move(a);
  }
  return base;
}

int save_gradients_npy(const OnnxModel& model, const std::map<int, HostArray>& gradients, const std::string& dir) {
  if (!std::filesystem::is_directory(dir))
    throw Error(fmt::format("[onnx] --save-grads: '{}' is not an existing folder", dir));
  std::set<std::string> files;
  int written = 0;
  for (const auto& [id, name] : model.parameter_names) {
    auto it = gradients.find(id);
    if (it == gradients.end()) continue;  // a parameter the loss does not depend on
    std::string file = name;
    for (char& ch : file)
      if (ch == '/' || ch == '\\') ch = '_';
    if (!files.insert(file).second)
      throw Error(fmt::format("[onnx] --save-grads: two initializers map to the file name '{}.npy'", file));
    const HostArray& g = it->second;
    std::vector<std::size_t> shape(g.meta.shape.begin(), g.meta.shape.end());
    const std::string path = (std::filesystem::path(dir) / (file + ".npy")).string();
    const std::string bytes =
        g.meta.dtype == DType::f32
            ? xt::dump_npy(xt::adapt(g.data<float>(), static_cast<std::size_t>(g.numel()), xt::no_ownership(), shape))
            : xt::dump_npy(xt::adapt(g.data<double>(), static_cast<std::size_t>(g.numel()), xt::no_ownership(), shape));
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) throw Error(fmt::format("[onnx] --save-grads: writing '{}' failed (is the disk full?)", path));
    ++written;
  }
  return written;
}

}  // namespace remat
