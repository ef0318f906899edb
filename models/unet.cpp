// Contract: `unet`, a small U-Net (Ronneberger et al. 2015): an encoder of
// conv + relu + max-pool levels, a decoder of nearest upsampling, concat with
// the encoder's skip tensor, conv + relu, and an mse loss against a target
// image. The skip connections make it a graph, not a chain: it is the model
// for the budget-greedy strategy (chain strategies see it as one long stage).
// Dimension legend: N = batch, C = channels, H = W = image.
#include "models/options.hpp"

namespace remat::zoo {

Model build_unet(const ModelSpec& spec) {
  Options o(spec);
  auto levels = o.integer("levels", 2, 1, 8);
  auto width = o.integer("width", 8);
  auto batch = o.integer("batch", 2);
  auto image = o.integer("image", 32, 4, 1024);
  DType dtype = parse_dtype(o);
  if (image % (std::int64_t{1} << levels) != 0)
    throw Error(fmt::format("[model unet] image={} must be divisible by 2^levels = {}", image, std::int64_t{1} << levels));
  Model m;
  m.spec = o.finish();
  m.tape = std::make_unique<Tape>();
  Tape& t = *m.tape;
  std::uint32_t seed = 6000;
  auto conv = [&](Value x, std::int64_t in, std::int64_t out) {
    Value w = t.parameter(fmt::format("conv{}", seed), normal_weights({out, in, 3, 3}, dtype, std::sqrt(2.0 / static_cast<double>(in * 9)), seed));
    Value b = t.parameter(fmt::format("bias{}", seed++), HostArray(TensorMeta{{out}, dtype}));
    return relu(conv2d(x, w, b, 1, 1));
  };
  Value x = t.placeholder("images", {{batch, 3, image, image}, dtype});
  Value target = t.placeholder("target", {{batch, 3, image, image}, dtype});
  std::vector<Value> skips;
  std::vector<std::int64_t> channels;
  Value h = conv(x, 3, width);
  std::int64_t c = width;
  for (std::int64_t l = 0; l < levels; ++l) {
    skips.push_back(h);
    channels.push_back(c);
    h = conv(max_pool2d(h, 2), c, 2 * c);
    c *= 2;
  }
  for (std::int64_t l = levels; l-- > 0;) {
    Value up = upsample_nearest(h, 2);
    h = conv(concat({up, skips[static_cast<std::size_t>(l)]}, 1), c + channels[static_cast<std::size_t>(l)], channels[static_cast<std::size_t>(l)]);
    c = channels[static_cast<std::size_t>(l)];
  }
  Value w = t.parameter("head", normal_weights({3, c, 3, 3}, dtype, std::sqrt(1.0 / static_cast<double>(c * 9)), seed++));
  m.loss = mse(conv2d(h, w, std::nullopt, 1, 1), target);
  TensorMeta xm{{batch, 3, image, image}, dtype};
  m.batch = [xm, xi = x.id, ti = target.id](std::uint64_t step) {
    Bindings bd;
    bd[xi] = uniform_data(xm.shape, xm.dtype, 11 * step + 1);
    bd[ti] = uniform_data(xm.shape, xm.dtype, 11 * step + 2);
    return bd;
  };
  return m;
}

}  // namespace remat::zoo
