// Contract: the one index decoder of remat's strided and broadcasting kernels,
// for host and device code (see host_device.hpp).
//  - strided_offsets(flat, rank, extent, stride0, stride1, o0, o1): decodes the
//    row-major flat index `flat` over extent[0..rank) and returns its offsets in
//    two strided operands (stride 0 on a broadcast axis). strided_offset: one operand.
//    rank 0 decodes to offset 0.
//  - broadcast_strides(shape, target) (host only): the strides of `shape` seen at
//    the right-aligned rank of `target`, 0 on broadcast axes (NumPy rules).
// The CPU kernels decode a row index over the leading axes and walk the last axis
// in a loop; the CUDA kernels decode every element's flat index. Both call these.
#pragma once

#include "autodiff/kernel_math/host_device.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace remat::kernel_math {

REMAT_HOST_DEVICE inline void strided_offsets(std::int64_t flat, int rank, const std::int64_t* extent,
                                              const std::int64_t* stride0, const std::int64_t* stride1,
                                              std::int64_t& o0, std::int64_t& o1) {
  o0 = 0;
  o1 = 0;
  for (int d = rank - 1; d >= 0; --d) {
    const std::int64_t k = flat % extent[d];
    flat /= extent[d];
    o0 += k * stride0[d];
    o1 += k * stride1[d];
  }
}

REMAT_HOST_DEVICE inline std::int64_t strided_offset(std::int64_t flat, int rank, const std::int64_t* extent,
                                                     const std::int64_t* stride) {
  std::int64_t offset = 0;
  for (int d = rank - 1; d >= 0; --d) {
    offset += (flat % extent[d]) * stride[d];
    flat /= extent[d];
  }
  return offset;
}

inline std::vector<std::int64_t> broadcast_strides(const std::vector<std::int64_t>& shape,
                                                   const std::vector<std::int64_t>& target) {
  std::vector<std::int64_t> out(target.size(), 0);
  const std::size_t shift = target.size() - shape.size();
  std::int64_t stride = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    out[i + shift] = shape[i] == 1 ? 0 : stride;
    stride *= shape[i];
  }
  return out;
}

}  // namespace remat::kernel_math
