// Contract: vectorised transcendentals for the CPU kernels, on SLEEF's 1.0-ULP (u10)
// vector functions (the library PyTorch's CPU kernels use):
//  - vector_exp, vector_log, vector_tanh (float and double): y[i] = f(x[i]) for i < n;
//    x and y may be the same array (in place), otherwise they must not overlap.
//  - Every element goes through the same vector function whatever n and the array's
//    offset: the tail is evaluated in a padded vector, never by a scalar fallback, and
//    SLEEF's lanes are independent. So a kernel that splits an array among threads
//    computes the same bits for any thread count.
//  - The instruction set (AVX2 + FMA where the CPU has them, else SSE2, x86-64's
//    baseline) is chosen once per process; vector_math_isa() names it. Results may differ
//    in the last ulp between the two sets, never within one process.
//  - The formulas built on these calls (sigmoid, gelu, softmax) stay in
//    kernel_math/elementwise.hpp's form; only the call in the middle is vectorised.
#pragma once

#include <cstdint>

namespace remat::cpu {

void vector_exp(const float* x, float* y, std::int64_t n);
void vector_exp(const double* x, double* y, std::int64_t n);
void vector_log(const float* x, float* y, std::int64_t n);
void vector_log(const double* x, double* y, std::int64_t n);
void vector_tanh(const float* x, float* y, std::int64_t n);
void vector_tanh(const double* x, double* y, std::int64_t n);
// "avx2" or "sse2".
const char* vector_math_isa();

}  // namespace remat::cpu
