// Contract: `resnet`, a convolutional residual network on CIFAR-sized inputs
// (He et al. 2016's pre-activation blocks, small width). Depth counts conv
// layers: a stem conv, `blocks` residual blocks of two 3x3 convs each, and a
// linear classifier after global average pooling: depth = 2 * blocks + 2, so
// blocks=9 is ResNet-20 and blocks=500 passes 1000 layers. Each block output is
// a marked stage boundary. Batchnorm (bn=1) keeps running statistics as op state.
// Dimension legend: N = batch, C = width (channels), H = W = image.
#include "models/options.hpp"

namespace remat::zoo {

Model build_resnet(const ModelSpec& spec) {
  Options o(spec);
  auto blocks = o.integer("blocks", 3);
  o.limit_nodes("blocks", blocks, 40);
  auto width = o.integer("width", 8);
  auto batch = o.integer("batch", 8);
  auto image = o.integer("image", 32, 4, 512);
  auto classes = o.integer("classes", 10, 2, 100000);
  bool bn = o.integer("bn", 1, 0, 1) == 1;
  DType dtype = parse_dtype(o);
  Model m;
  m.spec = o.finish();
  m.tape = std::make_unique<Tape>();
  Tape& t = *m.tape;
  Value x = t.placeholder("images", {{batch, 3, image, image}, dtype});
  Value labels = t.placeholder("labels", {{batch}, DType::i32});
  std::uint32_t seed = 3000;
  auto conv_weight = [&](std::int64_t out, std::int64_t in, double gain) {
    double stddev = std::sqrt(gain / static_cast<double>(in * 9));
    return t.parameter(fmt::format("conv{}", seed), normal_weights({out, in, 3, 3}, dtype, stddev, seed++));
  };
  auto norm = [&](Value v) {
    if (!bn) return v;
    HostArray ones(TensorMeta{{width}, dtype});
    for (std::int64_t i = 0; i < width; ++i) ones.set(i, 1.0);
    Value g = t.parameter(fmt::format("bn_gamma{}", seed), ones);
    Value b = t.parameter(fmt::format("bn_beta{}", seed++), HostArray(TensorMeta{{width}, dtype}));
    return batchnorm(v, g, b);
  };
  Value h = conv2d(x, conv_weight(width, 3, 2.0), std::nullopt, 1, 1);
  t.mark_stage(h);
  for (std::int64_t b = 0; b < blocks; ++b) {
    // Residual branch scaled so depth does not blow up activations.
    Value y = conv2d(relu(norm(h)), conv_weight(width, width, 2.0), std::nullopt, 1, 1);
    y = conv2d(relu(norm(y)), conv_weight(width, width, 1.0 / static_cast<double>(blocks)), std::nullopt, 1, 1);
    h = add(h, y);
    t.mark_stage(h);
    m.stage_outputs.push_back(h);
  }
  Value pooled = reshape(avg_pool2d(relu(h), static_cast<int>(image)), {batch, width});
  Value w = t.parameter("fc", normal_weights({classes, width}, dtype, std::sqrt(1.0 / static_cast<double>(width)), seed++));
  Value logits = linear(pooled, w, t.parameter("fc_bias", HostArray(TensorMeta{{classes}, dtype})));
  m.loss = cross_entropy(logits, labels);
  TensorMeta xm{{batch, 3, image, image}, dtype};
  m.batch = [xm, xi = x.id, li = labels.id, batch, classes](std::uint64_t step) {
    Bindings bd;
    bd[xi] = uniform_data(xm.shape, xm.dtype, 7 * step + 1);
    bd[li] = random_labels({batch}, classes, 7 * step + 2);
    return bd;
  };
  return m;
}

}  // namespace remat::zoo
