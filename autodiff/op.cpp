// Contract: shared helpers of op definitions (shape checks, broadcasting, default cost).
#include "autodiff/op.hpp"

#include <algorithm>

namespace remat {

Cost Op::cost(std::span<const TensorMeta> inputs, const TensorMeta& output) const {
  return elementwise_cost(inputs, output, 1.0);
}

void throw_op_error(const std::string& op, const std::string& message) {
  throw Error("[" + op + "] " + message);
}

void expect_rank(const std::string& op, const TensorMeta& meta, int rank, const char* what) {
  if (static_cast<int>(meta.shape.size()) != rank)
    throw_op_error(op, std::string(what) + " must have rank " + std::to_string(rank) + ", got shape " +
                           shape_string(meta.shape));
}

void expect_floating(const std::string& op, const TensorMeta& meta, const char* what) {
  if (!is_floating(meta.dtype))
    throw_op_error(op, std::string(what) + " must be floating (f32, f64, bf16 or f16), got " + dtype_name(meta.dtype));
}

void expect_same_dtype(const std::string& op, std::span<const TensorMeta> inputs) {
  for (const auto& m : inputs)
    if (m.dtype != inputs[0].dtype)
      throw_op_error(op, std::string("inputs have different dtypes: ") + dtype_name(inputs[0].dtype) + " and " +
                             dtype_name(m.dtype));
}

Shape broadcast_shapes(const std::string& op, const Shape& a, const Shape& b) {
  std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      throw_op_error(op, "shapes do not broadcast: " + shape_string(a) + " and " + shape_string(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Cost elementwise_cost(std::span<const TensorMeta> inputs, const TensorMeta& output, double flops_per_element) {
  Cost c;
  c.flops = flops_per_element * static_cast<double>(output.numel());
  for (const auto& m : inputs) c.bytes_read += static_cast<double>(m.bytes());
  c.bytes_written = static_cast<double>(output.bytes());
  return c;
}

}  // namespace remat
