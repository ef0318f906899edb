// Contract: the one qualifier of kernel math that both backends compile.
// REMAT_HOST_DEVICE expands to `__host__ __device__` in a CUDA translation unit
// (nvcc defines __CUDACC__) and to nothing elsewhere, so a formula written once
// in autodiff/kernel_math/ is called by the CPU kernels (autodiff/cpu/) and by
// the CUDA kernels (gpu/*.cu) alike. The math wrappers below pick the device
// function under __CUDA_ARCH__ (the device pass) and std:: otherwise, each
// spelled per type so that float stays float on both sides.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#define REMAT_HOST_DEVICE __host__ __device__
#else
#define REMAT_HOST_DEVICE
#endif

namespace remat::kernel_math {

// math_exp, math_log, math_tanh, math_erf (float and double) and math_pow: the device's
// expf/exp, ... in the device pass, std:: on the host.
#if defined(__CUDA_ARCH__)
#define REMAT_KERNEL_MATH_UNARY(name)                                                  \
  REMAT_HOST_DEVICE inline float math_##name(float x) { return ::name##f(x); }         \
  REMAT_HOST_DEVICE inline double math_##name(double x) { return ::name(x); }
REMAT_HOST_DEVICE inline float math_pow(float x, float p) { return ::powf(x, p); }
REMAT_HOST_DEVICE inline double math_pow(double x, double p) { return ::pow(x, p); }
#else
#define REMAT_KERNEL_MATH_UNARY(name)                                                  \
  REMAT_HOST_DEVICE inline float math_##name(float x) { return std::name(x); }         \
  REMAT_HOST_DEVICE inline double math_##name(double x) { return std::name(x); }
REMAT_HOST_DEVICE inline float math_pow(float x, float p) { return std::pow(x, p); }
REMAT_HOST_DEVICE inline double math_pow(double x, double p) { return std::pow(x, p); }
#endif
REMAT_KERNEL_MATH_UNARY(exp)
REMAT_KERNEL_MATH_UNARY(log)
REMAT_KERNEL_MATH_UNARY(tanh)
REMAT_KERNEL_MATH_UNARY(erf)
#undef REMAT_KERNEL_MATH_UNARY

// NaN test that needs no library call (and so reads the same on both sides).
template <class T>
REMAT_HOST_DEVICE inline bool is_nan(T x) {
  return x != x;
}
template <class T>
REMAT_HOST_DEVICE inline T negative_infinity() {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == sizeof(float))
    return -__int_as_float(0x7f800000);
  else
    return -__longlong_as_double(0x7ff0000000000000LL);
#else
  return -std::numeric_limits<T>::infinity();
#endif
}

}  // namespace remat::kernel_math
