// Contract: how the rest of remat reaches the CUDA backend without including
// CUDA headers. Built with CUDA, make_cuda_backend() returns a metered device
// backend; built without, it throws an Error saying so (gpu/cuda_stub.cpp).
#pragma once

#include "autodiff/backend.hpp"

#include <memory>

namespace remat {

bool cuda_built();          // was the CUDA backend compiled in?
int cuda_device_count();    // 0 when not built or no GPU is present
std::unique_ptr<Backend> make_cuda_backend(int device = 0);

}  // namespace remat
