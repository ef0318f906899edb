// Contract: the gpu/ entry point when remat is built without CUDA. It compiles
// everywhere and fails with a clear message when a CUDA device is asked for.
#include "gpu/cuda_backend.hpp"

namespace remat {

bool cuda_built() { return false; }
int cuda_device_count() { return 0; }

std::unique_ptr<Backend> make_cuda_backend(int /*device*/) {
  throw Error("[cuda] remat was built without the CUDA backend: reconfigure with -DREMAT_CUDA=ON on a machine "
              "with nvcc, or use --device cpu");
}

}  // namespace remat
