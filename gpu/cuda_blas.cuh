// Contract: cuBLAS, opened when the first CUDA backend is made, not linked.
// Linking would load libcublas and its 500 MB helper libcublasLt into every remat
// process, GPU or not; libcublasLt's load-time initialiser also dlopens, which
// trips valgrind's memcheck inside ld.so in the CPU-only test runs. So
// blas_api() dlopens libcublas.so.<major of the headers> (through the
// executable's run path, then beside libcudart, then the plain name) on first
// use and returns the few entry points the backend calls; a missing library is an
// Error "[cuda] cannot load cuBLAS ...". Host code only: g++ compiles it.
#pragma once

#include <cublas_v2.h>

namespace remat::cuda {

struct BlasApi {
  decltype(&cublasCreate) create;
  decltype(&cublasDestroy) destroy;
  decltype(&cublasSetStream) set_stream;
  decltype(&cublasSetWorkspace) set_workspace;
  decltype(&cublasSetMathMode) set_math_mode;
  decltype(&cublasSetAtomicsMode) set_atomics_mode;
  decltype(&cublasSetPointerMode) set_pointer_mode;
  decltype(&cublasGetStatusString) status_string;
  decltype(&cublasSgemm) sgemm;
  decltype(&cublasDgemm) dgemm;
  decltype(&cublasSgemmStridedBatched) sgemm_strided_batched;
  decltype(&cublasDgemmStridedBatched) dgemm_strided_batched;
};

// Loads cuBLAS on the first call (thread-safe); throws remat::Error when it cannot.
const BlasApi& blas_api();

}  // namespace remat::cuda
