// Contract: the AVX2 table of vector_math_isa.hpp (compiled with -mavx2 -mfma; CMake sets
// the flags on this file alone). It includes only intrinsics, SLEEF and the loop of
// vector_math_map.hpp (in an anonymous namespace), so no AVX2-compiled copy of a shared
// inline function can be picked by the linker for code that runs on a CPU without AVX2.
#include "autodiff/cpu/vector_math_isa.hpp"

#include <immintrin.h>
#include <sleef.h>

#define REMAT_WF 8
#define REMAT_WD 4
#define REMAT_LF _mm256_loadu_ps
#define REMAT_SF _mm256_storeu_ps
#define REMAT_LD _mm256_loadu_pd
#define REMAT_SD _mm256_storeu_pd
#include "autodiff/cpu/vector_math_map.hpp"

namespace remat::cpu::isa {

VectorMathTable avx2_table() {
  return {REMAT_VECTOR_MAPS(Sleef_expf8_u10avx2, Sleef_expd4_u10avx2),
          REMAT_VECTOR_MAPS(Sleef_logf8_u10avx2, Sleef_logd4_u10avx2),
          REMAT_VECTOR_MAPS(Sleef_tanhf8_u10avx2, Sleef_tanhd4_u10avx2)};
}

}  // namespace remat::cpu::isa
