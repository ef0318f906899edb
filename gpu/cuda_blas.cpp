// Contract: see cuda_blas.cuh. The entry points are looked up by their exported
// names, which cublas_v2.h's macros give (cublasSgemm is cublasSgemm_v2).
#include "gpu/cuda_blas.cuh"

#include "autodiff/tensor.hpp"

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <string>
#include <vector>

#define REMAT_CUBLAS_NAME_(symbol) #symbol
#define REMAT_CUBLAS_NAME(symbol) REMAT_CUBLAS_NAME_(symbol)  // expands cublas_v2.h's macro first

namespace remat::cuda {
namespace {

// The folder of the shared object that defines `symbol` ("" when unknown).
std::string folder_of(const void* symbol) {
  Dl_info info{};
  if (!dladdr(symbol, &info) || !info.dli_fname) return "";
  const std::string path = info.dli_fname;
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}

void* open_cublas() {
  const std::string name = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  std::vector<std::string> candidates{name};
  if (std::string cudart = folder_of(reinterpret_cast<const void*>(&cudaGetDeviceCount)); !cudart.empty())
    candidates.push_back(cudart + name);
  candidates.push_back("libcublas.so");
  std::string why;
  for (const std::string& candidate : candidates) {
    if (void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL)) return handle;
    const char* e = dlerror();
    why = e ? e : "unknown error";
  }
  throw Error("[cuda] cannot load cuBLAS (" + name + "): " + why +
              "; put the CUDA toolkit's library folder on LD_LIBRARY_PATH");
}

template <class F>
void bind(void* library, F& entry, const char* name) {
  entry = reinterpret_cast<F>(dlsym(library, name));
  if (!entry) throw Error(std::string("[cuda] cuBLAS has no entry point ") + name + " (a different CUDA version?)");
}

BlasApi load() {
  void* library = open_cublas();
  BlasApi api{};
  bind(library, api.create, REMAT_CUBLAS_NAME(cublasCreate));
  bind(library, api.destroy, REMAT_CUBLAS_NAME(cublasDestroy));
  bind(library, api.set_stream, REMAT_CUBLAS_NAME(cublasSetStream));
  bind(library, api.set_workspace, REMAT_CUBLAS_NAME(cublasSetWorkspace));
  bind(library, api.set_math_mode, REMAT_CUBLAS_NAME(cublasSetMathMode));
  bind(library, api.set_atomics_mode, REMAT_CUBLAS_NAME(cublasSetAtomicsMode));
  bind(library, api.set_pointer_mode, REMAT_CUBLAS_NAME(cublasSetPointerMode));
  bind(library, api.status_string, REMAT_CUBLAS_NAME(cublasGetStatusString));
  bind(library, api.sgemm, REMAT_CUBLAS_NAME(cublasSgemm));
  bind(library, api.dgemm, REMAT_CUBLAS_NAME(cublasDgemm));
  bind(library, api.sgemm_strided_batched, REMAT_CUBLAS_NAME(cublasSgemmStridedBatched));
  bind(library, api.dgemm_strided_batched, REMAT_CUBLAS_NAME(cublasDgemmStridedBatched));
  return api;  // the library stays open for the process's lifetime
}

}  // namespace

const BlasApi& blas_api() {
  static const BlasApi api = load();  // a throw leaves it unset: the next call tries again
  return api;
}

}  // namespace remat::cuda
