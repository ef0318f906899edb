// Contract: the elementwise formulas of remat, written once for every backend
// (host and device code; see host_device.hpp).
//  - unary_value(kind, x, param): y = f(x) for every UnaryKind.
//  - unary_derivative(kind, x, y, param): df/dx given the input x and the output
//    y = f(x); it reads only what unary_derivative_reads(kind) names, and the op's
//    saves() (autodiff/ops/elementwise.cpp) is that table, so what the tape keeps
//    cannot drift from what the derivative reads (tests/kernel_math_tests.cpp
//    feeds NaN in every operand a kind claims not to read).
//  - binary_value / binary_partial / binary_partial_reads: the same for the four
//    broadcasting binary ops (partial of operand `which`, times the gradient g).
//  - dropout_keeps / dropout_scale: element i of a dropout with probability p is
//    kept iff its Philox word, as a float in [0, 1), is >= p (compared in double);
//    kept elements are scaled by 1/(1-p). The vjp is the same map on the
//    gradient, so the forward kernel with the same key serves both directions.
#pragma once

#include "autodiff/backend.hpp"
#include "autodiff/kernel_math/host_device.hpp"
#include "autodiff/philox.hpp"

namespace remat::kernel_math {

// What a unary derivative reads besides the incoming gradient.
struct DerivativeReads {
  bool input;   // x
  bool output;  // y = f(x)
};
// What a binary partial reads besides the incoming gradient.
struct OperandReads {
  bool a, b;
};

inline constexpr double gelu_k0 = 0.7978845608028654;  // sqrt(2/pi)
inline constexpr double gelu_k1 = 0.044715;
inline constexpr double erf_k = 1.1283791670955126;  // 2/sqrt(pi)

template <class T>
REMAT_HOST_DEVICE inline T unary_value(UnaryKind kind, T x, T param) {
  const T k0 = static_cast<T>(gelu_k0), k1 = static_cast<T>(gelu_k1);
  switch (kind) {
    case UnaryKind::neg: return -x;
    case UnaryKind::exp: return math_exp(x);
    case UnaryKind::log: return math_log(x);
    case UnaryKind::tanh: return math_tanh(x);
    case UnaryKind::sigmoid: return T(1) / (T(1) + math_exp(-x));
    case UnaryKind::relu: return x > T(0) ? x : T(0);
    case UnaryKind::gelu: return T(0.5) * x * (T(1) + math_tanh(k0 * (x + k1 * x * x * x)));
    case UnaryKind::square: return x * x;
    case UnaryKind::pow: return math_pow(x, param);
    case UnaryKind::scale: return x * param;
    case UnaryKind::erf: return math_erf(x);
  }
  return x;
}

// Which of x and y = f(x) unary_derivative reads, per kind.
REMAT_HOST_DEVICE constexpr DerivativeReads unary_derivative_reads(UnaryKind kind) {
  switch (kind) {
    case UnaryKind::neg: return {false, false};
    case UnaryKind::exp: return {false, true};
    case UnaryKind::log: return {true, false};
    case UnaryKind::tanh: return {false, true};
    case UnaryKind::sigmoid: return {false, true};
    case UnaryKind::relu: return {false, true};
    case UnaryKind::gelu: return {true, false};
    case UnaryKind::square: return {true, false};
    case UnaryKind::pow: return {true, false};
    case UnaryKind::scale: return {false, false};
    case UnaryKind::erf: return {true, false};
  }
  return {true, true};
}

// d f(x)/dx, given x and y = f(x) (only those unary_derivative_reads names are read).
template <class T>
REMAT_HOST_DEVICE inline T unary_derivative(UnaryKind kind, T x, T y, T param) {
  const T k0 = static_cast<T>(gelu_k0), k1 = static_cast<T>(gelu_k1);
  switch (kind) {
    case UnaryKind::neg: return T(-1);
    case UnaryKind::exp: return y;                        // d exp(x) = exp(x)
    case UnaryKind::log: return T(1) / x;                 // d log(x) = 1/x
    case UnaryKind::tanh: return T(1) - y * y;            // d tanh = 1 - tanh^2
    case UnaryKind::sigmoid: return y * (T(1) - y);       // d s = s (1 - s)
    case UnaryKind::relu: return y > T(0) ? T(1) : T(0);  // reads the output: y > 0 iff x > 0
    case UnaryKind::gelu: {
      const T u = k0 * (x + k1 * x * x * x), t = math_tanh(u);
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k0 * (T(1) + T(3) * k1 * x * x);
    }
    case UnaryKind::square: return T(2) * x;
    case UnaryKind::pow: return param * math_pow(x, param - T(1));
    case UnaryKind::scale: return param;
    case UnaryKind::erf: return static_cast<T>(erf_k) * math_exp(-x * x);  // d erf = 2/sqrt(pi) e^(-x^2)
  }
  return T(0);
}

template <class T>
REMAT_HOST_DEVICE inline T binary_value(BinaryKind kind, T a, T b) {
  switch (kind) {
    case BinaryKind::add: return a + b;
    case BinaryKind::sub: return a - b;
    case BinaryKind::mul: return a * b;
    case BinaryKind::div: return a / b;
  }
  return a;
}

// Which operands binary_partial(kind, which, ...) reads.
REMAT_HOST_DEVICE constexpr OperandReads binary_partial_reads(BinaryKind kind, int which) {
  switch (kind) {
    case BinaryKind::add: return {false, false};
    case BinaryKind::sub: return {false, false};
    case BinaryKind::mul: return {which == 1, which == 0};  // d(ab)/da = b, d(ab)/db = a
    case BinaryKind::div: return {which == 1, true};        // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
  }
  return {true, true};
}

// g * d(a op b)/d(which), reading only what binary_partial_reads names.
template <class T>
REMAT_HOST_DEVICE inline T binary_partial(BinaryKind kind, int which, T a, T b, T g) {
  switch (kind) {
    case BinaryKind::add: return g;
    case BinaryKind::sub: return which == 0 ? g : -g;
    case BinaryKind::mul: return which == 0 ? g * b : g * a;
    case BinaryKind::div: return which == 0 ? g / b : -g * a / (b * b);  // d(a/b)/db = -a/b^2
  }
  return g;
}

REMAT_HOST_DEVICE inline bool dropout_keeps(std::uint32_t philox_word, double p) {
  return static_cast<double>(philox_to_unit_float(philox_word)) >= p;
}
template <class T>
REMAT_HOST_DEVICE inline T dropout_scale(double p) {
  return static_cast<T>(1.0 / (1.0 - p));
}

}  // namespace remat::kernel_math
