// Contract: tests of the ONNX import (models/onnx) and of the ops it added: conv2d
// with groups and dilation and per-axis strides (against direct loops and finite
// differences), clamp (finite differences, no gradient on the bounds), max pooling
// with ceil_mode (PyTorch's output sizes, brute-force maxima). ONNX files are written
// here with the protobuf API of libonnx; a loaded graph is compared bitwise with the
// same network recorded by hand with remat's ops, every refusal names the node, op
// type and attribute, and the CLI's --onnx, --inputs and --save-grads round-trip
// through .npy files. The transformer mappings: MatMul's NumPy broadcasting against
// direct loops (values) and differences (gradients), an attention block against the
// same block recorded by hand, shape ops against index arithmetic, and their refusals.
// The PyTorch oracle of real architectures is
// tests/python/test_onnx_import.py.
#include "gradcheck.hpp"
#include "cli_harness.hpp"

#include "autodiff/remat.hpp"
#include "models/onnx/onnx_import.hpp"

#include <doctest/doctest.h>
#include <onnx/onnx_pb.h>
#include <xtensor/xadapt.hpp>
#include <xtensor/xnpy.hpp>

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace remat {
namespace {

using testing::gradcheck;
using testing::message_of;
using testing::random_array;
using testing::ScratchDir;
using Params = std::vector<Value>;

// ---- conv2d with groups, dilation and per-axis strides ----

// y[n, k, oh, ow] = b[k] + sum over the group's channels c and r, s of
// w[k, c, r, s] x[n, g*C/G + c, oh*sh - ph + r*dh, ow*sw - pw + s*dw].
HostArray direct_conv(const HostArray& x, const HostArray& w, const HostArray& b, const Conv2dParams& p) {
  const Shape& xs = x.meta.shape;
  const Shape& ws = w.meta.shape;
  const std::int64_t n = xs[0], c = xs[1], h = xs[2], wd = xs[3], k = ws[0], cg = ws[1], r = ws[2], s = ws[3];
  const std::int64_t kg = k / p.groups;
  const std::int64_t ho = (h + 2 * p.pad_h - p.dilation_h * (r - 1) - 1) / p.stride_h + 1;
  const std::int64_t wo = (wd + 2 * p.pad_w - p.dilation_w * (s - 1) - 1) / p.stride_w + 1;
  HostArray y(TensorMeta{{n, k, ho, wo}, x.meta.dtype});
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t o = 0; o < k; ++o)
      for (std::int64_t oh = 0; oh < ho; ++oh)
        for (std::int64_t ow = 0; ow < wo; ++ow) {
          double acc = b.at(o);
          const std::int64_t group = o / kg;
          for (std::int64_t ci = 0; ci < cg; ++ci)
            for (std::int64_t ri = 0; ri < r; ++ri)
              for (std::int64_t si = 0; si < s; ++si) {
                const std::int64_t ih = oh * p.stride_h - p.pad_h + ri * p.dilation_h;
                const std::int64_t iw = ow * p.stride_w - p.pad_w + si * p.dilation_w;
                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                acc += w.at(((o * cg + ci) * r + ri) * s + si) * x.at(((i * c + group * cg + ci) * h + ih) * wd + iw);
              }
          y.set(((i * k + o) * ho + oh) * wo + ow, acc);
        }
  return y;
}

struct ConvCase {
  Shape x, w;
  Conv2dParams p;
};

std::vector<ConvCase> conv_cases() {
  auto params = [](int sh, int sw, int ph, int pw, int dh, int dw, int g) {
    Conv2dParams p;
    p.stride_h = sh; p.stride_w = sw; p.pad_h = ph; p.pad_w = pw; p.dilation_h = dh; p.dilation_w = dw; p.groups = g;
    return p;
  };
  return {
      {{2, 4, 6, 5}, {6, 2, 3, 3}, params(1, 1, 1, 1, 1, 1, 2)},  // two groups
      {{1, 3, 7, 7}, {3, 1, 3, 3}, params(2, 1, 2, 1, 2, 1, 3)},  // depthwise, dilated, per-axis strides and pads
      {{2, 2, 6, 6}, {4, 2, 2, 3}, params(1, 2, 0, 1, 2, 2, 1)},  // dilation without groups
  };
}

TEST_CASE("conv2d with groups, dilation and per-axis strides matches direct loops") {
  for (const auto& c : conv_cases()) {
    CAPTURE(shape_string(c.x));
    CAPTURE(c.p.groups);
    Tape tape;
    HostArray xs = random_array(c.x, 301), ws = random_array(c.w, 302), bs = random_array({c.w[0]}, 303);
    HostArray y = eval(conv2d(tape.input("x", xs), tape.input("w", ws), tape.input("b", bs), c.p));
    HostArray expected = direct_conv(xs, ws, bs, c.p);
    REQUIRE(y.meta.shape == expected.meta.shape);
    double worst = 0;
    for (std::int64_t i = 0; i < y.numel(); ++i) worst = std::max(worst, std::abs(y.at(i) - expected.at(i)));
    CHECK(worst < 1e-12);
  }
}

TEST_CASE("conv2d with groups, dilation and per-axis strides matches finite differences") {
  for (const auto& c : conv_cases()) {
    CAPTURE(shape_string(c.x));
    CAPTURE(c.p.groups);
    auto r = gradcheck({random_array(c.x, 311), random_array(c.w, 312), random_array({c.w[0]}, 313)},
                       [&](Tape&, const Params& p, const Params&) { return conv2d(p[0], p[1], p[2], c.p); });
    CHECK(r.max_relative_error < 1e-6);
  }
}

TEST_CASE("conv2d refuses groups that do not divide the channels, with both shapes in the message") {
  Tape tape;
  Value x = tape.placeholder("x", {{1, 4, 5, 5}, DType::f32});
  Value w = tape.placeholder("w", {{6, 2, 3, 3}, DType::f32});
  Conv2dParams p;
  p.groups = 4;
  CHECK(message_of([&] { conv2d(x, w, std::nullopt, p); }) ==
        "[conv2d] groups=4 must divide the input channels and the output channels: x (1,4,5,5), weight (6,2,3,3)");
  p.groups = 1;
  CHECK(message_of([&] { conv2d(x, w, std::nullopt, p); }) == "[conv2d] input channels differ: x (1,4,5,5), weight (6,2,3,3)");
}

// ---- clamp ----

TEST_CASE("clamp matches finite differences inside its bounds and passes no gradient outside or on them") {
  HostArray x = random_array({3, 7}, 321, -2, 2);
  for (std::int64_t i = 0; i < x.numel(); ++i)  // keep every value 0.05 away from the bounds -0.5 and 1
    for (double bound : {-0.5, 1.0})
      if (std::abs(x.at(i) - bound) < 0.05) x.set(i, bound + 0.1);
  auto r = gradcheck({x}, [](Tape&, const Params& p, const Params&) { return clamp(p[0], -0.5, 1.0); });
  CHECK(r.max_relative_error < 1e-6);

  Tape tape;
  Value v = tape.parameter("v", HostArray::from({5}, std::vector<double>{-1, -0.5, 0.25, 1, 3}));
  Value loss = sum(clamp(v, -0.5, 1.0));
  CpuBackend cpu;
  Executor ex(tape, cpu);
  StepResult step = grad(ex, loss);
  HostArray g = cpu.download(step.gradients.at(v.id));
  CHECK(g.to_doubles() == std::vector<double>{0, 0, 1, 0, 0});  // PyTorch's hardtanh: bounds pass nothing
  CHECK(step.loss->at(0) == doctest::Approx(-0.5 - 0.5 + 0.25 + 1 + 1));
}

// ---- max pooling with ceil_mode ----

TEST_CASE("max_pool2d with ceil_mode has PyTorch's output sizes and brute-force maxima") {
  struct Case { std::int64_t h, w; int kernel, stride, pad; std::int64_t out_h, out_w; };
  // Sizes from torch.nn.MaxPool2d(kernel, stride, pad, ceil_mode=True) on (1, 1, h, w).
  for (const Case c : {Case{6, 7, 3, 2, 0, 3, 3}, Case{5, 5, 2, 2, 1, 3, 3}, Case{8, 9, 3, 2, 1, 5, 5}}) {
    CAPTURE(c.h);
    CAPTURE(c.w);
    Pool2dParams p;
    p.kernel_h = p.kernel_w = c.kernel;
    p.stride_h = p.stride_w = c.stride;
    p.pad_h = p.pad_w = c.pad;
    p.ceil_mode = true;
    Tape tape;
    HostArray xs = random_array({1, 2, c.h, c.w}, 331);
    HostArray y = eval(max_pool2d(tape.input("x", xs), p));
    REQUIRE(y.meta.shape == Shape{1, 2, c.out_h, c.out_w});
    for (std::int64_t ch = 0; ch < 2; ++ch)
      for (std::int64_t oh = 0; oh < c.out_h; ++oh)
        for (std::int64_t ow = 0; ow < c.out_w; ++ow) {
          double best = -1e300;
          for (std::int64_t ih = oh * c.stride - c.pad; ih < oh * c.stride - c.pad + c.kernel; ++ih)
            for (std::int64_t iw = ow * c.stride - c.pad; iw < ow * c.stride - c.pad + c.kernel; ++iw)
              if (ih >= 0 && ih < c.h && iw >= 0 && iw < c.w) best = std::max(best, xs.at((ch * c.h + ih) * c.w + iw));
          CHECK(y.at((ch * c.out_h + oh) * c.out_w + ow) == best);
        }
    auto r = gradcheck({xs}, [&](Tape&, const Params& q, const Params&) { return max_pool2d(q[0], p); });
    CHECK(r.max_relative_error < 1e-6);
  }
}

// ---- ONNX files written with libonnx's protobuf classes ----

class OnnxFile {
 public:
  explicit OnnxFile(std::int64_t opset = 13) {
    model_.set_ir_version(opset >= 15 ? 8 : 7);
    model_.set_producer_name("remat tests");
    model_.add_opset_import()->set_version(opset);
    graph_ = model_.mutable_graph();
    graph_->set_name("test");
  }
  void input(const std::string& name, const Shape& shape, bool symbolic_batch = false,
             int elem_type = onnx::TensorProto::FLOAT) {
    auto* in = graph_->add_input();
    in->set_name(name);
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem_type);
    for (std::size_t i = 0; i < shape.size(); ++i) {
      auto* d = tt->mutable_shape()->add_dim();
      if (i == 0 && symbolic_batch) d->set_dim_param("batch");
      else d->set_dim_value(shape[i]);
    }
  }
  void output(const std::string& name, const Shape& shape) {
    auto* out = graph_->add_output();
    out->set_name(name);
    auto* tt = out->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (auto d : shape) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  void initializer(const std::string& name, const HostArray& values) {
    auto* t = graph_->add_initializer();
    fill(t, name, values);
  }
  void int_initializer(const std::string& name, const std::vector<std::int64_t>& values) {
    auto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<std::int64_t>(values.size()));
    for (auto v : values) t->add_int64_data(v);
  }
  // An integer (INT64) or BOOL initializer of any shape.
  void int_tensor(const std::string& name, const Shape& shape, const std::vector<std::int64_t>& values,
                  int type = onnx::TensorProto::INT64) {
    auto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (auto d : shape) t->add_dims(d);
    for (auto v : values) {
      if (type == onnx::TensorProto::INT64) t->add_int64_data(v);
      else t->add_int32_data(static_cast<std::int32_t>(v));
    }
  }
  onnx::NodeProto* node(const std::string& op, std::vector<std::string> inputs, std::vector<std::string> outputs,
                        const std::string& name) {
    auto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (auto& i : inputs) n->add_input(i);
    for (auto& o : outputs) n->add_output(o);
    return n;
  }
  static void ints(onnx::NodeProto* n, const std::string& name, std::vector<std::int64_t> values) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto v : values) a->add_ints(v);
  }
  static void integer(onnx::NodeProto* n, const std::string& name, std::int64_t value) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }
  static void floating(onnx::NodeProto* n, const std::string& name, float value) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(value);
  }
  static void text(onnx::NodeProto* n, const std::string& name, const std::string& value) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(value);
  }
  static void tensor(onnx::NodeProto* n, const std::string& name, const HostArray& values) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::TENSOR);
    fill(a->mutable_t(), "", values);
  }
  std::string save(const std::filesystem::path& path) const {
    std::ofstream f(path, std::ios::binary);
    REQUIRE(model_.SerializeToOstream(&f));
    return path.string();
  }

 private:
  static void fill(onnx::TensorProto* t, const std::string& name, const HostArray& values) {
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : values.meta.shape) t->add_dims(d);
    for (std::int64_t i = 0; i < values.numel(); ++i) t->add_float_data(static_cast<float>(values.at(i)));
  }
  onnx::ModelProto model_;
  onnx::GraphProto* graph_;
};

HostArray f32(const HostArray& a) {
  HostArray out(TensorMeta{a.meta.shape, DType::f32});
  for (std::int64_t i = 0; i < a.numel(); ++i) out.set(i, a.at(i));
  return out;
}

// The network every loader test shares: x (2, 3, 6, 6) -> Pad 1 -> Conv 4x3x3x3 (+bias) ->
// BatchNormalization (training, momentum 0.9) -> Clip [0, 6] -> MaxPool 2 -> GlobalAveragePool
// -> Reshape to (N, -1) by a folded Shape/Gather/Unsqueeze/Concat subgraph -> Gemm (transB).
struct SmallCnn {
  HostArray conv_w = f32(random_array({4, 3, 3, 3}, 401)), conv_b = f32(random_array({4}, 402));
  HostArray gamma = f32(random_array({4}, 403, 0.5, 1.5)), beta = f32(random_array({4}, 404));
  HostArray mean = f32(random_array({4}, 405)), var = f32(random_array({4}, 406, 0.5, 2));
  HostArray fc_w = f32(random_array({5, 4}, 407)), fc_b = f32(random_array({5}, 408));

  OnnxFile file() const {
    OnnxFile f;
    f.input("image", {2, 3, 6, 6});
    f.output("logits", {2, 5});
    f.initializer("conv.weight", conv_w);
    f.initializer("conv.bias", conv_b);
    f.initializer("bn.weight", gamma);
    f.initializer("bn.bias", beta);
    f.initializer("bn.running_mean", mean);
    f.initializer("bn.running_var", var);
    f.initializer("fc.weight", fc_w);
    f.initializer("fc.bias", fc_b);
    f.int_initializer("pads", {0, 0, 1, 1, 0, 0, 1, 1});
    f.int_initializer("minus_one", {-1});
    f.int_initializer("zero_index", {0});
    f.node("Pad", {"image", "pads"}, {"padded"}, "pad0");
    f.node("Conv", {"padded", "conv.weight", "conv.bias"}, {"c"}, "conv1");
    auto* bn = f.node("BatchNormalization", {"c", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"},
                      {"b", "bn_mean_out", "bn_var_out", "bn_saved_mean", "bn_saved_var"}, "bn1");
    OnnxFile::floating(bn, "momentum", 0.9f);
    OnnxFile::floating(bn, "epsilon", 1e-5f);
    auto* lo = f.node("Constant", {}, {"lo"}, "c_lo");
    OnnxFile::tensor(lo, "value", HostArray::from({}, std::vector<float>{0}));
    auto* hi = f.node("Constant", {}, {"hi"}, "c_hi");
    OnnxFile::tensor(hi, "value", HostArray::from({}, std::vector<float>{6}));
    f.node("Clip", {"b", "lo", "hi"}, {"r"}, "relu6");
    auto* pool = f.node("MaxPool", {"r"}, {"p"}, "pool1");
    OnnxFile::ints(pool, "kernel_shape", {2, 2});
    OnnxFile::ints(pool, "strides", {2, 2});
    f.node("GlobalAveragePool", {"p"}, {"g"}, "gap");
    f.node("Shape", {"g"}, {"shape"}, "shape");
    auto* gather = f.node("Gather", {"shape", "zero_index"}, {"batch"}, "gather");
    OnnxFile::integer(gather, "axis", 0);
    auto* cat = f.node("Concat", {"batch", "minus_one"}, {"flat_shape"}, "cat");
    OnnxFile::integer(cat, "axis", 0);
    f.node("Reshape", {"g", "flat_shape"}, {"flat"}, "flatten");
    auto* gemm = f.node("Gemm", {"flat", "fc.weight", "fc.bias"}, {"logits"}, "fc");
    OnnxFile::integer(gemm, "transB", 1);
    return f;
  }
};

TEST_CASE("an imported ONNX CNN equals the same network recorded with remat's ops, bit for bit") {
  ScratchDir dir;
  SmallCnn net;
  const std::string path = net.file().save(dir.path / "small.onnx");
  OnnxModel imported = load_onnx(path);
  Model& m = imported.model;

  std::vector<std::string> names;
  for (const auto& [id, name] : imported.parameter_names) names.push_back(name);
  CHECK(names == std::vector<std::string>{"conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"});
  REQUIRE(imported.input_names.size() == 2);
  CHECK(imported.input_names[0].second == "image");
  CHECK(imported.input_names[1].second == "labels");
  CHECK(imported.output.shape() == Shape{2, 5});

  Tape hand;
  Value x = hand.placeholder("image", {{2, 3, 6, 6}, DType::f32});
  Value labels = hand.placeholder("labels", {{2}, DType::i32});
  // In the order of the initializers' first use, as parameter_names lists them.
  const std::vector<Value> hand_params{hand.parameter("w", net.conv_w),  hand.parameter("b", net.conv_b),
                                       hand.parameter("g", net.gamma),   hand.parameter("be", net.beta),
                                       hand.parameter("fw", net.fc_w),   hand.parameter("fb", net.fc_b)};
  Value h = conv2d(x, hand_params[0], hand_params[1], 1, 1);
  h = batchnorm(h, hand_params[2], hand_params[3], 1.0 - 0.9f, 1e-5f, BatchNormRunning{net.mean, net.var});
  h = mean(max_pool2d(clamp(h, 0, 6), 2), {2, 3}, true);
  Value logits = linear(reshape(h, {2, 4}), hand_params[4], hand_params[5]);
  Value loss = cross_entropy(logits, labels);

  Bindings data = m.batch(0);
  Bindings hand_data{{x.id, data.at(imported.input_names[0].first)}, {labels.id, data.at(imported.input_names[1].first)}};
  CpuBackend cpu;
  Executor ex_onnx(*m.tape, cpu), ex_hand(hand, cpu);
  StepResult a = grad(ex_onnx, m.loss, data);
  StepResult b = grad(ex_hand, loss, hand_data);
  CHECK(a.loss->bytes == b.loss->bytes);
  REQUIRE(hand_params.size() == imported.parameter_names.size());
  for (std::size_t i = 0; i < hand_params.size(); ++i) {
    CAPTURE(imported.parameter_names[i].second);
    HostArray ga = cpu.download(a.gradients.at(imported.parameter_names[i].first));
    HostArray gb = cpu.download(b.gradients.at(hand_params[i].id));
    CHECK(ga.bytes == gb.bytes);
  }
  // Running statistics: initialised from the initializers, updated with ONNX's momentum 0.9.
  int onnx_bn = -1, hand_bn = -1;
  for (const auto& n : m.tape->nodes())
    if (n.op && n.op->name() == "batchnorm") onnx_bn = n.id;
  for (const auto& n : hand.nodes())
    if (n.op && n.op->name() == "batchnorm") hand_bn = n.id;
  REQUIRE(onnx_bn >= 0);
  CHECK(cpu.download(ex_onnx.state(onnx_bn)[0]).bytes == cpu.download(ex_hand.state(hand_bn)[0]).bytes);
  CHECK(cpu.download(ex_onnx.state(onnx_bn)[1]).bytes == cpu.download(ex_hand.state(hand_bn)[1]).bytes);
  CHECK(cpu.download(ex_onnx.state(onnx_bn)[0]).bytes != net.mean.bytes);  // it did move
}

TEST_CASE("ONNX import refuses what it does not support, naming the node, op type and attribute") {
  ScratchDir dir;
  auto load_error = [&](const OnnxFile& f) {
    const std::string path = f.save(dir.path / "bad.onnx");
    return message_of([&] { load_onnx(path); });
  };
  auto conv_file = [](auto&& decorate) {
    OnnxFile f;
    f.input("x", {1, 2, 5, 5});
    f.output("y", {1, 2, 3, 3});
    f.initializer("w", f32(random_array({2, 2, 3, 3}, 411)));
    decorate(f, f.node("Conv", {"x", "w"}, {"y"}, "conv1"));
    return f;
  };
  CHECK(load_error(conv_file([](OnnxFile&, onnx::NodeProto* n) { OnnxFile::text(n, "auto_pad", "SAME_UPPER"); })) ==
        "[onnx] node 'conv1' (Conv): attribute 'auto_pad'=SAME_UPPER is not supported (export with explicit pads)");
  CHECK(load_error(conv_file([](OnnxFile&, onnx::NodeProto* n) { OnnxFile::ints(n, "pads", {0, 0, 1, 1}); })) ==
        "[onnx] node 'conv1' (Conv): attribute 'pads'=[0, 0, 1, 1] is asymmetric, which is not supported (begin and "
        "end padding must agree per axis)");
  CHECK(load_error(conv_file([](OnnxFile&, onnx::NodeProto* n) { OnnxFile::integer(n, "group", 2); })).find(
            "[onnx] node 'conv1' (Conv): [conv2d] input channels differ") == 0);

  OnnxFile hardmax;
  hardmax.input("x", {2, 3});
  hardmax.output("y", {2, 3});
  hardmax.node("Hardmax", {"x"}, {"y"}, "h");
  CHECK(load_error(hardmax) == "[onnx] node 'h' (Hardmax): operator Hardmax is not supported");

  OnnxFile symbolic;
  symbolic.input("x", {2, 3}, true);
  symbolic.output("y", {2, 3});
  symbolic.node("Relu", {"x"}, {"y"}, "r");
  CHECK(load_error(symbolic) == "[onnx] graph input 'x' has a symbolic dimension 'batch': export with static shapes");

  OnnxFile inference;  // one output: inference-mode batch norm
  inference.input("x", {2, 3});
  inference.output("y", {2, 3});
  for (const char* name : {"s", "b", "m", "v"}) inference.initializer(name, f32(random_array({3}, 412, 0.5, 1)));
  inference.node("BatchNormalization", {"x", "s", "b", "m", "v"}, {"y"}, "bn");
  CHECK(load_error(inference).find("[onnx] node 'bn' (BatchNormalization): inference-mode batch normalisation is "
                                   "not supported") == 0);

  OnnxFile pad_relu;  // a Pad that no Conv or pool absorbs
  pad_relu.input("x", {1, 1, 3, 3});
  pad_relu.output("y", {1, 1, 5, 5});
  pad_relu.int_initializer("pads", {0, 0, 1, 1, 0, 0, 1, 1});
  pad_relu.node("Pad", {"x", "pads"}, {"p"}, "pad");
  pad_relu.node("Relu", {"p"}, {"y"}, "relu");
  CHECK(load_error(pad_relu) == "[onnx] node 'relu' (Relu): reads the output of node 'pad' (Pad), which is supported "
                                "only in front of Conv, MaxPool or AveragePool (it is folded into their padding)");

  OnnxFile pool_dilated;
  pool_dilated.input("x", {1, 1, 6, 6});
  pool_dilated.output("y", {1, 1, 4, 4});
  auto* pool = pool_dilated.node("MaxPool", {"x"}, {"y"}, "mp");
  OnnxFile::ints(pool, "kernel_shape", {2, 2});
  OnnxFile::ints(pool, "dilations", {2, 2});
  CHECK(load_error(pool_dilated) == "[onnx] node 'mp' (MaxPool): attribute 'dilations' other than 1 is not supported");

  OnnxFile unknown_attr;
  unknown_attr.input("x", {1, 1, 6, 6});
  unknown_attr.output("y", {1, 36});
  auto* gap = unknown_attr.node("Flatten", {"x"}, {"y"}, "fl");
  OnnxFile::integer(gap, "axis", 1);
  OnnxFile::integer(gap, "extra", 1);  // not in Flatten's schema: the checker refuses it first
  CHECK(load_error(unknown_attr).find("[onnx] ") == 0);

  {  // two float initializers added: both stay parameters (never folded into a constant)
    OnnxFile sum_of_weights;
    sum_of_weights.input("x", {2, 3});
    sum_of_weights.output("y", {2, 3});
    sum_of_weights.initializer("a", f32(random_array({3}, 413)));
    sum_of_weights.initializer("b", f32(random_array({3}, 414)));
    sum_of_weights.node("Add", {"a", "b"}, {"ab"}, "add_weights");
    sum_of_weights.node("Mul", {"x", "ab"}, {"y"}, "scale");
    OnnxModel m = load_onnx(sum_of_weights.save(dir.path / "weights.onnx"), {"sum"});
    CHECK(m.parameter_names.size() == 2);
  }
  CHECK(message_of([&] { load_onnx((dir.path / "missing.onnx").string()); }) ==
        "[onnx] cannot open '" + (dir.path / "missing.onnx").string() + "'");
  std::ofstream(dir.path / "garbage.onnx") << "not a protobuf \xff\xff\xff";
  CHECK(message_of([&] { load_onnx((dir.path / "garbage.onnx").string()); }).find("[onnx] ") == 0);
  OnnxFile fine = SmallCnn{}.file();
  const std::string path = fine.save(dir.path / "fine.onnx");
  CHECK(message_of([&] { load_onnx(path, {"hinge"}); }) == "[onnx] unknown loss 'hinge' (known: auto, cross-entropy, mse, sum)");
}

// ---- transformer ops ----

// NumPy's matmul in doubles, by direct loops: 1-d operands gain a unit axis that the
// result drops, batch axes broadcast.
HostArray numpy_matmul(const HostArray& a, const HostArray& b) {
  Shape sa = a.meta.shape, sb = b.meta.shape;
  const bool av = sa.size() == 1, bv = sb.size() == 1;
  if (av) sa.insert(sa.begin(), 1);
  if (bv) sb.push_back(1);
  const std::int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
  const Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  const std::size_t rank = std::max(ba.size(), bb.size());
  auto extent = [&](const Shape& s, std::size_t i) { return i < rank - s.size() ? 1 : s[i - (rank - s.size())]; };
  Shape batch(rank);
  for (std::size_t i = 0; i < rank; ++i) batch[i] = std::max(extent(ba, i), extent(bb, i));
  Shape out = batch;
  if (!av) out.push_back(m);
  if (!bv) out.push_back(n);
  HostArray y(TensorMeta{out, DType::f64});
  const std::int64_t count = element_count(batch);
  for (std::int64_t t = 0; t < count; ++t) {
    std::int64_t rest = t, oa = 0, ob = 0, stride_a = 1, stride_b = 1;
    for (std::size_t i = rank; i-- > 0;) {
      const std::int64_t idx = rest % batch[i];
      rest /= batch[i];
      if (extent(ba, i) != 1) oa += idx * stride_a;
      if (extent(bb, i) != 1) ob += idx * stride_b;
      stride_a *= extent(ba, i);
      stride_b *= extent(bb, i);
    }
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (std::int64_t l = 0; l < k; ++l) acc += a.at((oa * m + i) * k + l) * b.at((ob * k + l) * n + j);
        y.set((t * m + i) * n + j, acc);
      }
  }
  return y;
}

double sum_of(const HostArray& a) {
  double s = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += a.at(i);
  return s;
}

// The imported model's output against `expected` (relative 1e-5), then its store-all
// step on `cpu`, for the gradient checks that follow.
StepResult check_output_then_step(const OnnxModel& m, const HostArray& expected, CpuBackend& cpu) {
  HostArray y = eval(m.output);
  REQUIRE(y.meta.shape == expected.meta.shape);
  for (std::int64_t i = 0; i < y.numel(); ++i) CHECK(y.at(i) == doctest::Approx(expected.at(i)).epsilon(1e-5));
  Executor ex(*m.model.tape, cpu);
  return grad(ex, m.model.loss);
}

TEST_CASE("ONNX MatMul broadcasts like NumPy: values against direct loops, gradients against differences") {
  const std::vector<std::pair<Shape, Shape>> cases{
      {{3}, {3, 4}},       {{2, 3}, {3}},       {{5, 2, 3}, {3, 4}},  {{2, 3}, {5, 3, 4}},
      {{2, 1, 2, 3}, {3, 3, 4}}, {{3}, {2, 3, 4}}, {{2, 2, 3}, {2, 3, 4}}, {{4, 3}, {3}}};
  ScratchDir dir;
  int seed = 600;
  for (const auto& [sa, sb] : cases) {
    CAPTURE(shape_string(sa));
    CAPTURE(shape_string(sb));
    const HostArray a = f32(random_array(sa, ++seed)), b = f32(random_array(sb, ++seed));
    const HostArray expected = numpy_matmul(a, b);
    OnnxFile f;
    f.output("y", expected.meta.shape);
    f.initializer("a", a);
    f.initializer("b", b);
    f.node("MatMul", {"a", "b"}, {"y"}, "mm");
    OnnxModel m = load_onnx(f.save(dir.path / "mm.onnx"), {"sum"});
    // loss = sum(a @ b) is linear in each operand: d loss / d a[i] = loss(a + e_i) - loss(a).
    CpuBackend cpu;
    StepResult step = check_output_then_step(m, expected, cpu);
    REQUIRE(m.parameter_names.size() == 2);
    for (int which = 0; which < 2; ++which) {
      HostArray g = cpu.download(step.gradients.at(m.parameter_names[which].first));
      const HostArray& base = which == 0 ? a : b;
      REQUIRE(g.meta.shape == base.meta.shape);
      for (std::int64_t i = 0; i < base.numel(); ++i) {
        HostArray bumped(TensorMeta{base.meta.shape, DType::f64});
        for (std::int64_t j = 0; j < base.numel(); ++j) bumped.set(j, base.at(j) + (i == j ? 1.0 : 0.0));
        const double d = sum_of(which == 0 ? numpy_matmul(bumped, b) : numpy_matmul(a, bumped)) - sum_of(expected);
        CHECK(g.at(i) == doctest::Approx(d).epsilon(1e-5));
      }
    }
  }
}

// The export of nn.Linear on a 3-d input: MatMul(x, Transpose(W)). The importer records
// linear(x, W) (no transposed copy of the weight on the tape); a transposed weight read
// by anything else is still the plain transpose.
TEST_CASE("ONNX MatMul of a transposed weight is recorded as linear, with the same values and gradients") {
  ScratchDir dir;
  const HostArray x = f32(random_array({2, 3, 4}, 811)), w = f32(random_array({5, 4}, 812));
  HostArray wt(TensorMeta{{4, 5}, DType::f32});
  for (std::int64_t o = 0; o < 5; ++o)
    for (std::int64_t i = 0; i < 4; ++i) wt.set(i * 5 + o, w.at(o * 4 + i));
  const HostArray expected = numpy_matmul(x, wt);
  for (bool also_read_elsewhere : {false, true}) {
    CAPTURE(also_read_elsewhere);
    OnnxFile f;
    f.output(also_read_elsewhere ? "z" : "y", also_read_elsewhere ? Shape{4, 5} : Shape{2, 3, 5});
    f.initializer("x", x);
    f.initializer("w", w);
    auto* t = f.node("Transpose", {"w"}, {"wt"}, "t");
    OnnxFile::ints(t, "perm", {1, 0});
    f.node("MatMul", {"x", "wt"}, {"y"}, "mm");
    if (also_read_elsewhere) {  // z = wt * sum(y): the transposed weight read by Mul too
      auto* r = f.node("ReduceSum", {"y"}, {"s"}, "s");
      OnnxFile::integer(r, "keepdims", 0);
      f.node("Mul", {"wt", "s"}, {"z"}, "z");
    }
    OnnxModel m = load_onnx(f.save(dir.path / "lin.onnx"), {"sum"});
    int permutes = 0, linears = 0;
    for (const Node& n : m.model.tape->nodes())
      if (n.kind == NodeKind::op) {
        permutes += n.op->name().rfind("permute", 0) == 0;
        linears += n.op->name().rfind("linear", 0) == 0;
      }
    CHECK(linears == 1);
    CHECK(permutes == (also_read_elsewhere ? 1 : 0));
    if (also_read_elsewhere) continue;
    // loss = sum(x W^T): d loss / d W[o][i] = sum over rows of x[., i].
    CpuBackend cpu;
    StepResult step = check_output_then_step(m, expected, cpu);
    int w_id = -1;
    for (const auto& [id, name] : m.parameter_names)
      if (name == "w") w_id = id;
    REQUIRE(w_id >= 0);
    HostArray g = cpu.download(step.gradients.at(w_id));
    REQUIRE(g.meta.shape == w.meta.shape);
    for (std::int64_t o = 0; o < 5; ++o)
      for (std::int64_t i = 0; i < 4; ++i) {
        double d = 0;
        for (std::int64_t r = 0; r < 6; ++r) d += x.at(r * 4 + i);
        CHECK(g.at(o * 4 + i) == doctest::Approx(d).epsilon(1e-5));
      }
  }
}

// A GPT-style block in ONNX (opset 17): token and position embeddings (Gather of a
// graph input and of a Range), LayerNormalization, a fused qkv MatMul cut by Split,
// heads by Reshape (0 and -1) and Transpose, a causal mask from a float buffer
// (Equal -> Where with -inf), Softmax, Erf, a residual Add, Slice and ReduceMean.
struct TinyAttention {
  HostArray wte = f32(random_array({10, 8}, 701)), wpe = f32(random_array({4, 8}, 702));
  HostArray ln_s = f32(random_array({8}, 703, 0.5, 1.5)), ln_b = f32(random_array({8}, 704));
  HostArray wqkv = f32(random_array({8, 24}, 705)), head = f32(random_array({8, 5}, 706));

  OnnxFile file() const {
    OnnxFile f(17);
    f.input("tokens", {2, 4}, false, onnx::TensorProto::INT64);
    f.output("logits", {2, 5});
    f.initializer("wte", wte);
    f.initializer("wpe", wpe);
    f.initializer("ln.weight", ln_s);
    f.initializer("ln.bias", ln_b);
    f.initializer("wqkv", wqkv);
    f.initializer("head", head);
    HostArray tril(TensorMeta{{4, 4}, DType::f32});
    for (std::int64_t i = 0; i < 16; ++i) tril.set(i, i % 4 <= i / 4 ? 1.0 : 0.0);
    f.initializer("mask", tril);  // a buffer: only Equal reads it, so it is no parameter
    f.int_tensor("start", {}, {0});
    f.int_tensor("limit", {}, {4});
    f.int_tensor("delta", {}, {1});
    f.int_tensor("split", {3}, {8, 8, 8});
    f.int_tensor("heads_shape", {4}, {0, 0, 2, -1});
    f.int_tensor("merged_shape", {3}, {2, 4, 8});
    f.int_tensor("s_starts", {1}, {0});
    f.int_tensor("s_ends", {1}, {3});
    f.int_tensor("s_axes", {1}, {1});
    auto* zero = f.node("Constant", {}, {"zero"}, "c_zero");
    OnnxFile::tensor(zero, "value", HostArray::from({}, std::vector<float>{0}));
    auto* ninf = f.node("Constant", {}, {"ninf"}, "c_ninf");
    OnnxFile::tensor(ninf, "value", HostArray::from({}, std::vector<float>{-std::numeric_limits<float>::infinity()}));
    f.node("Range", {"start", "limit", "delta"}, {"pos"}, "range");
    f.node("Gather", {"wte", "tokens"}, {"te"}, "wte_lookup");
    f.node("Gather", {"wpe", "pos"}, {"pe"}, "wpe_lookup");
    f.node("Add", {"te", "pe"}, {"h"}, "embed");
    auto* ln = f.node("LayerNormalization", {"h", "ln.weight", "ln.bias"}, {"hn"}, "ln");
    OnnxFile::floating(ln, "epsilon", 1e-5f);
    f.node("MatMul", {"hn", "wqkv"}, {"qkv"}, "qkv");
    auto* split = f.node("Split", {"qkv", "split"}, {"q", "k", "v"}, "split");
    OnnxFile::integer(split, "axis", 2);
    for (const char* z : {"q", "k", "v"}) {
      f.node("Reshape", {z, "heads_shape"}, {std::string(z) + "4"}, std::string("heads_") + z);
      auto* t = f.node("Transpose", {std::string(z) + "4"}, {std::string(z) + "t"}, std::string("t_") + z);
      OnnxFile::ints(t, "perm", std::string(z) == "k" ? std::vector<std::int64_t>{0, 2, 3, 1}
                                                       : std::vector<std::int64_t>{0, 2, 1, 3});
    }
    f.node("MatMul", {"qt", "kt"}, {"att"}, "scores");
    f.node("Equal", {"mask", "zero"}, {"masked"}, "is_masked");
    f.node("Where", {"masked", "ninf", "att"}, {"att_m"}, "causal");
    auto* sm = f.node("Softmax", {"att_m"}, {"p"}, "softmax");
    OnnxFile::integer(sm, "axis", -1);
    f.node("MatMul", {"p", "vt"}, {"o"}, "mix");
    auto* back = f.node("Transpose", {"o"}, {"ot"}, "t_o");
    OnnxFile::ints(back, "perm", {0, 2, 1, 3});
    f.node("Reshape", {"ot", "merged_shape"}, {"y"}, "merge");
    f.node("Erf", {"y"}, {"e"}, "erf");
    f.node("Add", {"h", "e"}, {"r"}, "residual");
    f.node("Slice", {"r", "s_starts", "s_ends", "s_axes"}, {"rs"}, "first3");
    auto* rm = f.node("ReduceMean", {"rs"}, {"pooled"}, "pool");
    OnnxFile::ints(rm, "axes", {1});
    OnnxFile::integer(rm, "keepdims", 0);
    f.node("MatMul", {"pooled", "head"}, {"logits"}, "head");
    return f;
  }
};

TEST_CASE("an imported ONNX attention block matches the same block recorded with remat's ops") {
  ScratchDir dir;
  TinyAttention net;
  OnnxModel imported = load_onnx(net.file().save(dir.path / "attention.onnx"));
  std::vector<std::string> names;
  for (const auto& [id, name] : imported.parameter_names) names.push_back(name);
  CHECK(names == std::vector<std::string>{"wte", "wpe", "ln.weight", "ln.bias", "wqkv", "head"});  // no "mask"
  Model& m = imported.model;

  HostArray tokens(TensorMeta{{2, 4}, DType::i32}), labels(TensorMeta{{2}, DType::i32});
  const int ids[] = {3, 1, 4, 1, 5, 9, 2, 6};
  for (int i = 0; i < 8; ++i) tokens.set(i, ids[i]);
  labels.set(0, 4);
  labels.set(1, 0);
  Bindings data = m.batch(0);
  data[imported.input_names.at(0).first] = tokens;
  data[imported.input_names.at(1).first] = labels;

  // By hand: the mask as an additive 0 / -inf bias, heads by slices and permutes.
  Tape hand;
  Value tok = hand.placeholder("tokens", {{2, 4}, DType::i32});
  Value lab = hand.placeholder("labels", {{2}, DType::i32});
  std::vector<Value> p{hand.parameter("wte", net.wte),    hand.parameter("wpe", net.wpe),
                       hand.parameter("ln_s", net.ln_s),  hand.parameter("ln_b", net.ln_b),
                       hand.parameter("wqkv", net.wqkv),  hand.parameter("head", net.head)};
  HostArray pos(TensorMeta{{4}, DType::i32}), bias(TensorMeta{{4, 4}, DType::f32});
  for (int i = 0; i < 4; ++i) pos.set(i, i);
  for (int i = 0; i < 16; ++i) bias.set(i, i % 4 <= i / 4 ? 0.0 : -std::numeric_limits<double>::infinity());
  Value h = embedding(p[0], tok) + embedding(p[1], hand.input("pos", pos));
  Value qkv = matmul(layernorm(h, p[2], p[3], 1e-5f), p[4]);
  auto heads = [&](int i, std::vector<int> order) { return permute(reshape(slice(qkv, 2, 8 * i, 8 * i + 8), {2, 4, 2, 4}), order); };
  Value att = matmul(heads(0, {0, 2, 1, 3}), heads(1, {0, 2, 3, 1})) + hand.input("bias", bias);
  Value o = matmul(softmax(att), heads(2, {0, 2, 1, 3}));
  Value r = h + erf(reshape(permute(o, {0, 2, 1, 3}), {2, 4, 8}));
  Value loss = cross_entropy(matmul(mean(slice(r, 1, 0, 3), {1}), p[5]), lab);

  CpuBackend cpu;
  Executor ex_onnx(*m.tape, cpu), ex_hand(hand, cpu);
  StepResult a = grad(ex_onnx, m.loss, data);
  StepResult b = grad(ex_hand, loss, Bindings{{tok.id, tokens}, {lab.id, labels}});
  CHECK(a.loss->at(0) == doctest::Approx(b.loss->at(0)).epsilon(1e-6));
  for (std::size_t i = 0; i < p.size(); ++i) {
    CAPTURE(names[i]);
    HostArray ga = cpu.download(a.gradients.at(imported.parameter_names[i].first));
    HostArray gb = cpu.download(b.gradients.at(p[i].id));
    REQUIRE(ga.meta.shape == gb.meta.shape);
    double worst = 0, scale = 0;
    for (std::int64_t j = 0; j < ga.numel(); ++j) {
      worst = std::max(worst, std::abs(ga.at(j) - gb.at(j)));
      scale = std::max(scale, std::abs(gb.at(j)));
    }
    CHECK(scale > 0);  // every parameter has a gradient to compare
    CHECK(worst <= 1e-5 * scale);
  }
}

TEST_CASE("ONNX import refuses transformer ops it does not support, naming the node, op type and attribute") {
  ScratchDir dir;
  auto load_error = [&](const OnnxFile& f) {
    const std::string path = f.save(dir.path / "bad.onnx");
    return message_of([&] { load_onnx(path, {"sum"}); });
  };
  {
    OnnxFile f;  // a condition computed by the graph: its comparison is refused first
    f.input("x", {2, 3});
    f.output("y", {2, 3});
    f.node("Relu", {"x"}, {"r"}, "relu");
    f.node("Equal", {"r", "x"}, {"c"}, "eq");
    f.node("Where", {"c", "x", "r"}, {"y"}, "w");
    CHECK(load_error(f) == "[onnx] node 'eq' (Equal): operator Equal is not supported");
  }
  {
    OnnxFile f;  // Slice with a step
    f.input("x", {2, 6});
    f.output("y", {2, 3});
    f.int_tensor("st", {1}, {0});
    f.int_tensor("en", {1}, {6});
    f.int_tensor("ax", {1}, {1});
    f.int_tensor("sp", {1}, {2});
    f.node("Slice", {"x", "st", "en", "ax", "sp"}, {"y"}, "s");
    CHECK(load_error(f) == "[onnx] node 's' (Slice): input 'steps' other than 1 is not supported on a computed tensor (got 2)");
  }
  {
    OnnxFile f(11);  // Softmax over a middle axis before opset 13 flattens: refused
    f.input("x", {2, 3, 4});
    f.output("y", {2, 3, 4});
    auto* n = f.node("Softmax", {"x"}, {"y"}, "sm");
    OnnxFile::integer(n, "axis", 1);
    CHECK(load_error(f) == "[onnx] node 'sm' (Softmax): attribute 'axis'=1 before opset 13 (softmax of the flattened "
                           "trailing axes) is supported only for the last axis");
  }
  {
    OnnxFile f(17);
    f.input("x", {2, 3, 4});
    f.output("y", {2, 3, 4});
    f.initializer("s", f32(random_array({3, 4}, 720)));
    auto* n = f.node("LayerNormalization", {"x", "s"}, {"y"}, "ln");
    OnnxFile::integer(n, "axis", 1);
    CHECK(load_error(f) == "[onnx] node 'ln' (LayerNormalization): attribute 'axis'=1 is not supported (only the last "
                           "axis is normalised)");
  }
  {
    OnnxFile f;  // Gather by computed indices along axis 1
    f.input("x", {2, 3});
    f.input("i", {2}, false, onnx::TensorProto::INT64);
    f.output("y", {2, 2});
    auto* n = f.node("Gather", {"x", "i"}, {"y"}, "g");
    OnnxFile::integer(n, "axis", 1);
    CHECK(load_error(f) == "[onnx] node 'g' (Gather): indices computed by the graph are supported on axis 0 only (an "
                           "embedding lookup), got attribute 'axis'=1");
  }
  {
    OnnxFile f;  // an exponent computed by the graph
    f.input("x", {3});
    f.output("y", {3});
    f.node("Pow", {"x", "x"}, {"y"}, "pw");
    CHECK(load_error(f).find("[onnx] node 'pw' (Pow): input 'x' (exponent) must be a constant known at load time") == 0);
  }
  {
    OnnxFile f;  // an attribute no handler reads
    f.input("x", {2, 3});
    f.output("y", {2, 3});
    auto* n = f.node("Transpose", {"x"}, {"t"}, "tr");
    OnnxFile::ints(n, "perm", {1, 0});
    f.node("Transpose", {"t"}, {"y"}, "tr2");
    auto* e = f.node("Erf", {"y"}, {"z"}, "erf");
    OnnxFile::integer(e, "approximate", 1);  // not Erf's: the checker or the importer refuses it
    CHECK(load_error(f).find("[onnx] ") == 0);
  }
}

TEST_CASE("ONNX Expand, Unsqueeze, Squeeze and a constant-index Gather map onto remat's ops exactly") {
  ScratchDir dir;
  const HostArray x = f32(random_array({3, 1, 4}, 730));
  OnnxFile f;
  f.output("y", {2, 3, 2, 1});
  f.initializer("x", x);
  f.int_tensor("target", {3}, {3, 2, 4});
  f.int_tensor("ax0", {1}, {0});
  f.int_tensor("ax_last", {1}, {-1});
  f.int_tensor("idx", {2}, {3, -4});  // -4 is 0
  f.node("Expand", {"x", "target"}, {"e"}, "expand");           // (3, 2, 4)
  f.node("Unsqueeze", {"e", "ax0"}, {"u"}, "unsqueeze");       // (1, 3, 2, 4)
  f.node("Squeeze", {"u", "ax0"}, {"s"}, "squeeze");           // (3, 2, 4)
  auto* g = f.node("Gather", {"s", "idx"}, {"gg"}, "pick");     // (3, 2, 2) along axis 2
  OnnxFile::integer(g, "axis", 2);
  auto* t = f.node("Transpose", {"gg"}, {"tt"}, "t");          // (2, 3, 2)
  OnnxFile::ints(t, "perm", {2, 0, 1});
  f.node("Unsqueeze", {"tt", "ax_last"}, {"y"}, "unsqueeze_last");  // (2, 3, 2, 1)
  OnnxModel m = load_onnx(f.save(dir.path / "shapes.onnx"), {"sum"});
  HostArray y = eval(m.output);
  REQUIRE(y.meta.shape == Shape{2, 3, 2, 1});
  // y[c, a, b, 0] = x[a, 0, idx[c]] with idx = {3, 0}.
  for (int c = 0; c < 2; ++c)
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 2; ++b) CHECK(y.at((c * 3 + a) * 2 + b) == x.at(a * 4 + (c == 0 ? 3 : 0)));
  // d sum(y) / dx: each picked element is read twice (the expanded axis of 2), the rest never.
  CpuBackend cpu;
  Executor ex(*m.model.tape, cpu);
  HostArray gx = cpu.download(grad(ex, m.model.loss).gradients.at(m.parameter_names.at(0).first));
  for (int a = 0; a < 3; ++a)
    for (int j = 0; j < 4; ++j) CHECK(gx.at(a * 4 + j) == (j == 0 || j == 3 ? 2.0 : 0.0));
}

#ifdef REMAT_HAVE_CLI
void write_npy(const std::filesystem::path& path, const HostArray& a) {
  std::vector<std::size_t> shape(a.meta.shape.begin(), a.meta.shape.end());
  if (a.meta.dtype == DType::i32)
    xt::dump_npy(path.string(), xt::adapt(a.data<std::int32_t>(), static_cast<std::size_t>(a.numel()), xt::no_ownership(), shape));
  else
    xt::dump_npy(path.string(), xt::adapt(a.data<float>(), static_cast<std::size_t>(a.numel()), xt::no_ownership(), shape));
}

TEST_CASE("remat run --onnx binds .npy inputs and writes each gradient as <initializer>.npy") {
  using testing::cli;
  ScratchDir dir;
  const std::string model = SmallCnn{}.file().save(dir.path / "small.onnx");
  HostArray x = f32(random_array({2, 3, 6, 6}, 421));
  HostArray labels = HostArray::from({2}, std::vector<std::int32_t>{4, 1});
  write_npy(dir.path / "x.npy", x);
  write_npy(dir.path / "y.npy", labels);
  std::filesystem::create_directories(dir.path / "grads");
  const std::string inputs = "image=" + (dir.path / "x.npy").string() + ",labels=" + (dir.path / "y.npy").string();
  auto r = cli({"run", "--onnx", model, "--strategy", "sqrt", "--repeat", "1", "--inputs", inputs, "--save-grads",
                (dir.path / "grads").string(), "--json"});
  REQUIRE_MESSAGE(r.code == 0, r.err);

  // The oracle: store-all gradients of the same file and batch, through the library.
  OnnxModel imported = load_onnx(model);
  Bindings data = bind_npy_inputs(imported, inputs, imported.model.batch(0));
  CHECK(data.at(imported.input_names[0].first).bytes == x.bytes);
  CpuBackend cpu;
  Executor ex(*imported.model.tape, cpu);
  StepResult step = grad(ex, imported.model.loss, data);
  CHECK(nlohmann::json::parse(r.out)["loss"].get<double>() == step.loss->at(0));
  for (const auto& [id, name] : imported.parameter_names) {
    CAPTURE(name);
    const auto file = dir.path / "grads" / (name + ".npy");
    REQUIRE(std::filesystem::exists(file));
    auto saved = xt::load_npy<float>(file.string());
    HostArray expected = cpu.download(step.gradients.at(id));
    REQUIRE(saved.size() == static_cast<std::size_t>(expected.numel()));
    CHECK(std::memcmp(saved.data(), expected.bytes.data(), expected.bytes.size()) == 0);  // sqrt == store-all, bitwise
  }

  auto wrong_shape = cli({"run", "--onnx", model, "--strategy", "store-all", "--inputs", "image=" + (dir.path / "y.npy").string()});
  CHECK(wrong_shape.code == 2);
  CHECK(wrong_shape.err.find("[onnx] --inputs image=") == 0);
  auto unknown = cli({"run", "--onnx", model, "--strategy", "store-all", "--inputs", "pixels=" + (dir.path / "x.npy").string()});
  CHECK(unknown.err == "[onnx] --inputs: 'pixels' is not an input of the model (its inputs: image, labels)\n");
  auto no_onnx = cli({"run", "--model", "mlp:layers=2,width=4,batch=2", "--strategy", "store-all", "--save-grads", dir.path.string()});
  CHECK(no_onnx.err == "[run] --save-grads needs --onnx (files are named after the ONNX initializers)\n");
  auto both = cli({"plan", "--onnx", model, "--model", "mlp", "--strategy", "sqrt"});
  CHECK(both.err == "[plan] give exactly one of --chain, --model, --onnx or --graph\n");
  auto mse = cli({"plan", "--onnx", model, "--loss", "mse", "--strategy", "revolve", "--json"});
  CHECK(mse.code == 0);
  auto explain = cli({"explain", "--onnx", model, "--strategy", "sqrt", "--format", "json"});
  CHECK(explain.code == 0);
}

TEST_CASE("remat compare --onnx: every strategy's gradients bitwise equal store-all's, peaks as planned") {
  using testing::cli;
  ScratchDir dir;
  const std::string model = SmallCnn{}.file().save(dir.path / "small.onnx");
  auto r = cli({"compare", "--onnx", model, "--repeat", "1", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  auto rows = nlohmann::json::parse(r.out)["rows"];
  CHECK(rows.size() >= 5);
  for (const auto& row : rows) {
    CAPTURE(row.dump());
    CHECK(row["grads_bitwise_equal"] == true);
    CHECK(row["peak_bytes_measured"] == row["peak_bytes_predicted"]);
  }
}
#endif

}  // namespace
}  // namespace remat
