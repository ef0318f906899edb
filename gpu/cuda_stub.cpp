// Contract: the gpu/ entry point when remat is built without CUDA. It compiles
// everywhere and fails with a clear message when a CUDA device is asked for.
#include "gpu/cuda_backend.hpp"

namespace remat {

namespace {
[[noreturn]] void not_built() {
  throw Error("[cuda] remat was built without the CUDA backend: reconfigure with -DREMAT_CUDA=ON on a machine "
              "with nvcc, or use --device cpu");
}
}  // namespace

bool cuda_built() { return false; }
int cuda_device_count() { return 0; }

std::unique_ptr<Backend> make_cuda_backend(int /*device*/) { not_built(); }

CudaMemoryStats cuda_memory_stats(Backend& /*backend*/) { not_built(); }
void cuda_reset_peak_memory(Backend& /*backend*/) { not_built(); }
void cuda_synchronize(Backend& /*backend*/) { not_built(); }
std::string cuda_device_description(int /*device*/) { return "none (remat was built without the CUDA backend)"; }

}  // namespace remat
