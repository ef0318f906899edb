// Contract: the CPU backend. Memory from the C++ heap (64-byte aligned), metered
// through Backend::empty in logical bytes. Freed blocks are kept in a per-size
// cache and reused (a training loop allocates the same sizes every step; going
// back to the OS each time costs page faults); reserved_bytes() reports what
// the cache holds from the heap, release_cached() returns it. Elementwise kernels use xtensor expressions over
// OpenMP-partitioned chunks; matrix products use CBLAS (OpenBLAS). Parallel loops
// use static partitioning and every reduction sums in a fixed order, so results
// are bitwise identical run to run for a given thread count.
// Kernels live in cpu_kernels.cpp (memory, elementwise, reductions, gemm) and
// cpu_nn_kernels.cpp (softmax, losses, normalisation, conv helpers, pooling...).
#pragma once

#include "autodiff/backend.hpp"

#include <unordered_map>
#include <vector>

namespace remat {

// Sets the threads of the OpenMP loops and of OpenBLAS (benchmarks pin both).
void set_cpu_threads(int threads);
int cpu_threads();

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  std::string name() const override { return "cpu"; }
  ~CpuBackend() override;
  std::size_t reserved_bytes() const { return reserved_bytes_; }  // live + cached heap bytes
  void release_cached();

  REMAT_BACKEND_KERNEL_OVERRIDES

 protected:
  void* raw_allocate(std::size_t bytes) override;
  void raw_free(void* data, std::size_t bytes) override;

 private:
  std::unordered_map<std::size_t, std::vector<void*>> cached_;  // rounded size -> free blocks
  std::size_t reserved_bytes_ = 0;
};

}  // namespace remat
