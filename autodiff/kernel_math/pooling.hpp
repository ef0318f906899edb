// Contract: the window arithmetic of 2-D max and average pooling, written once
// for the CPU and CUDA backends (host and device code; see host_device.hpp).
// Geometry as Pool2dGeometry in autodiff/backend.hpp: output (oh, ow) covers input
// rows oh*stride_h - pad_h + [0, kernel_h) and columns likewise; padded positions
// are skipped (so -inf for max, 0 for avg; avg divides by the full kernel area).
//  - pool_window_span(o, stride, pad, kernel, size): the input positions of
//    output o's window along one axis, clipped to [0, size).
//  - pool_windows_containing(i, stride, pad, kernel, out_size): the outputs along
//    one axis whose window contains input position i.
//  - pool_window_value(kind, g, plane, oh, ow): the forward value of one output
//    (max: NaN-propagating, the first maximum kept; avg: the sum over the area).
//  - pool_first_max(g, plane, oh, ow, m, ih, iw): the first element of the window
//    (row-major) equal to m, the one that receives max pooling's gradient.
// The CPU scatters backward window by window; the CUDA kernel gathers per input
// element; both read the windows from here, in the same order.
#pragma once

#include "autodiff/backend.hpp"
#include "autodiff/kernel_math/host_device.hpp"

namespace remat::kernel_math {

struct IndexSpan {
  std::int64_t begin, end;  // [begin, end); empty when begin >= end
};

REMAT_HOST_DEVICE inline IndexSpan pool_window_span(std::int64_t o, std::int64_t stride, std::int64_t pad,
                                                    std::int64_t kernel, std::int64_t size) {
  const std::int64_t start = o * stride - pad, stop = start + kernel;
  return {start < 0 ? 0 : start, stop > size ? size : stop};
}

// Outputs o with o*stride - pad <= i < o*stride - pad + kernel, within [0, out_size).
REMAT_HOST_DEVICE inline IndexSpan pool_windows_containing(std::int64_t i, std::int64_t stride, std::int64_t pad,
                                                           std::int64_t kernel, std::int64_t out_size) {
  const std::int64_t lowest = i + pad - kernel + 1;
  const std::int64_t first = lowest <= 0 ? 0 : (lowest + stride - 1) / stride;
  const std::int64_t last = (i + pad) / stride;
  return {first, (last < out_size - 1 ? last : out_size - 1) + 1};
}

// plane: one (H, W) input plane.
template <class T>
REMAT_HOST_DEVICE inline T pool_window_value(PoolKind kind, const Pool2dGeometry& g, const T* plane, std::int64_t oh,
                                             std::int64_t ow) {
  const IndexSpan rows = pool_window_span(oh, g.stride_h, g.pad_h, g.kernel_h, g.h);
  const IndexSpan cols = pool_window_span(ow, g.stride_w, g.pad_w, g.kernel_w, g.w);
  T acc = kind == PoolKind::max ? negative_infinity<T>() : T(0);
  for (std::int64_t ih = rows.begin; ih < rows.end; ++ih)
    for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) {
      const T v = plane[ih * g.w + iw];
      if (kind == PoolKind::max) {
        if (v > acc || is_nan(v)) acc = v;
      } else {
        acc += v;
      }
    }
  return kind == PoolKind::max ? acc : acc / static_cast<T>(g.kernel_h * g.kernel_w);
}

// True (and ih, iw set) when window (oh, ow) of `plane` holds an element equal to m.
template <class T>
REMAT_HOST_DEVICE inline bool pool_first_max(const Pool2dGeometry& g, const T* plane, std::int64_t oh, std::int64_t ow,
                                             T m, std::int64_t& ih, std::int64_t& iw) {
  const IndexSpan rows = pool_window_span(oh, g.stride_h, g.pad_h, g.kernel_h, g.h);
  const IndexSpan cols = pool_window_span(ow, g.stride_w, g.pad_w, g.kernel_w, g.w);
  for (std::int64_t r = rows.begin; r < rows.end; ++r)
    for (std::int64_t c = cols.begin; c < cols.end; ++c)
      if (plane[r * g.w + c] == m) {
        ih = r;
        iw = c;
        return true;
      }
  return false;
}

}  // namespace remat::kernel_math
