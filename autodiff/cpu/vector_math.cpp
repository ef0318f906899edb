// Contract: vector_math.hpp's functions: the SSE2 table (x86-64's baseline, so always
// available), and the choice between it and the AVX2 table, made once per process from
// the CPU's reported features (AVX2 and FMA both required).
#include "autodiff/cpu/vector_math.hpp"
#include "autodiff/cpu/vector_math_isa.hpp"

#include <emmintrin.h>
#include <sleef.h>

#define REMAT_WF 4
#define REMAT_WD 2
#define REMAT_LF _mm_loadu_ps
#define REMAT_SF _mm_storeu_ps
#define REMAT_LD _mm_loadu_pd
#define REMAT_SD _mm_storeu_pd
#include "autodiff/cpu/vector_math_map.hpp"

namespace remat::cpu {
namespace {

struct Chosen {
  isa::VectorMathTable table;
  const char* name;
};

const Chosen& chosen() {
  static const Chosen c = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Chosen{isa::avx2_table(), "avx2"};
    return Chosen{{REMAT_VECTOR_MAPS(Sleef_expf4_u10sse2, Sleef_expd2_u10sse2),
                   REMAT_VECTOR_MAPS(Sleef_logf4_u10sse2, Sleef_logd2_u10sse2),
                   REMAT_VECTOR_MAPS(Sleef_tanhf4_u10sse2, Sleef_tanhd2_u10sse2)},
                  "sse2"};
  }();
  return c;
}

}  // namespace

void vector_exp(const float* x, float* y, std::int64_t n) { chosen().table.exp_f(x, y, n); }
void vector_exp(const double* x, double* y, std::int64_t n) { chosen().table.exp_d(x, y, n); }
void vector_log(const float* x, float* y, std::int64_t n) { chosen().table.log_f(x, y, n); }
void vector_log(const double* x, double* y, std::int64_t n) { chosen().table.log_d(x, y, n); }
void vector_tanh(const float* x, float* y, std::int64_t n) { chosen().table.tanh_f(x, y, n); }
void vector_tanh(const double* x, double* y, std::int64_t n) { chosen().table.tanh_d(x, y, n); }
const char* vector_math_isa() { return chosen().name; }

}  // namespace remat::cpu
