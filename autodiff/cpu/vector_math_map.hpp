// Contract: the one loop behind every vector_math table (included by vector_math.cpp and
// vector_math_avx2.cpp, each with its own instruction set's load, store and width):
// y = f(x) over n elements, W lanes at a time, the last n % W through a zero-padded
// vector, so every element takes the same vector function. It lives in an anonymous
// namespace on purpose: each including file gets its own copy, compiled with that
// file's instruction set, and the linker can never pick an AVX2 copy for SSE2 code.
// Include only intrinsics and <cstdint> before it.
#pragma once

#include <cstdint>

namespace remat::cpu::isa {
namespace {

template <int W, class T, class F, class Load, class Store>
void map_lanes(F f, Load load, Store store, const T* x, T* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, f(load(x + i)));
  if (i < n) {
    T pad[W] = {};
    for (std::int64_t k = 0; k < n - i; ++k) pad[k] = x[i + k];
    store(pad, f(load(pad)));
    for (std::int64_t k = 0; k < n - i; ++k) y[i + k] = pad[k];
  }
}

}  // namespace
}  // namespace remat::cpu::isa

// The (float, double) pair of table entries for SLEEF functions fname and dname, with
// this file's widths WF, WD and unaligned loads and stores LF, SF, LD, SD.
#define REMAT_VECTOR_MAPS(fname, dname)                                                                   \
  [](const float* x, float* y, std::int64_t n) {                                                          \
    ::remat::cpu::isa::map_lanes<REMAT_WF>(                                                               \
        fname, [](const float* p) { return REMAT_LF(p); }, [](float* p, auto v) { REMAT_SF(p, v); }, x, y, n); \
  },                                                                                                      \
  [](const double* x, double* y, std::int64_t n) {                                                        \
    ::remat::cpu::isa::map_lanes<REMAT_WD>(                                                               \
        dname, [](const double* p) { return REMAT_LD(p); }, [](double* p, auto v) { REMAT_SD(p, v); }, x, y, n); \
  }
