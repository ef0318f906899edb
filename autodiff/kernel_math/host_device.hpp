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

REMAT_HOST_DEVICE inline float math_exp(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return std::exp(x);
#endif
}
REMAT_HOST_DEVICE inline double math_exp(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  return std::exp(x);
#endif
}
REMAT_HOST_DEVICE inline float math_log(float x) {
#if defined(__CUDA_ARCH__)
  return logf(x);
#else
  return std::log(x);
#endif
}
REMAT_HOST_DEVICE inline double math_log(double x) {
#if defined(__CUDA_ARCH__)
  return ::log(x);
#else
  return std::log(x);
#endif
}
REMAT_HOST_DEVICE inline float math_tanh(float x) {
#if defined(__CUDA_ARCH__)
  return tanhf(x);
#else
  return std::tanh(x);
#endif
}
REMAT_HOST_DEVICE inline double math_tanh(double x) {
#if defined(__CUDA_ARCH__)
  return ::tanh(x);
#else
  return std::tanh(x);
#endif
}
REMAT_HOST_DEVICE inline float math_pow(float x, float p) {
#if defined(__CUDA_ARCH__)
  return powf(x, p);
#else
  return std::pow(x, p);
#endif
}
REMAT_HOST_DEVICE inline double math_pow(double x, double p) {
#if defined(__CUDA_ARCH__)
  return ::pow(x, p);
#else
  return std::pow(x, p);
#endif
}
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
