// Contract: the per-instruction-set entry points behind vector_math.hpp, one table per
// set. vector_math_avx2.cpp is compiled with -mavx2 -mfma and is called only when the
// CPU reports both; vector_math.cpp holds the SSE2 table and picks one at first use.
// Each entry maps n elements of x to y (in place allowed), the tail in a padded vector.
#pragma once

#include <cstdint>

namespace remat::cpu::isa {

struct VectorMathTable {
  void (*exp_f)(const float*, float*, std::int64_t);
  void (*exp_d)(const double*, double*, std::int64_t);
  void (*log_f)(const float*, float*, std::int64_t);
  void (*log_d)(const double*, double*, std::int64_t);
  void (*tanh_f)(const float*, float*, std::int64_t);
  void (*tanh_d)(const double*, double*, std::int64_t);
};

VectorMathTable avx2_table();

}  // namespace remat::cpu::isa
