// Contract: how the rest of remat reaches the CUDA backend without including
// CUDA headers. Built with CUDA, make_cuda_backend() returns a metered device
// backend; built without, it throws an Error saying so (gpu/cuda_stub.cpp).
// The extras below the first three functions serve benchmarks and tests: they
// take a Backend made by make_cuda_backend() and throw an Error for any other.
#pragma once

#include "autodiff/backend.hpp"

#include <memory>
#include <string>

namespace remat {

bool cuda_built();          // was the CUDA backend compiled in?
int cuda_device_count();    // 0 when not built or no GPU is present
std::unique_ptr<Backend> make_cuda_backend(int device = 0);

// Device memory of a CUDA backend. The meter (Backend::meter) counts budgeted
// tensor bytes by category; these count what the device holds.
struct CudaMemoryStats {
  std::size_t allocated_bytes = 0;       // tensor bytes live now, every category (torch.cuda.memory_allocated)
  std::size_t allocated_peak_bytes = 0;  // their high-water mark since the last reset (max_memory_allocated)
  std::size_t reserved_bytes = 0;        // bytes the tensor pool holds from the driver now
  std::size_t reserved_peak_bytes = 0;   // its high-water mark since the last reset
  std::size_t fixed_bytes = 0;           // cuBLAS workspace and the backend's scratch, held for its lifetime
};
CudaMemoryStats cuda_memory_stats(Backend& backend);
void cuda_reset_peak_memory(Backend& backend);
// Waits until every kernel and copy queued by the backend has finished (time steps with it).
void cuda_synchronize(Backend& backend);
// "NVIDIA H200 (sm_90, 132 SMs, 140 GiB)", or why there is none.
std::string cuda_device_description(int device = 0);

}  // namespace remat
