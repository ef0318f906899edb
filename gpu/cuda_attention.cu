// Contract: fused attention on the CUDA backend is not implemented yet: both
// kernels throw "[cuda] attention ... not supported" instead of computing anything,
// so a model using attention() fails clearly on CUDA and runs on the CPU backends.
#include "gpu/cuda_internal.cuh"

namespace remat {

void CudaBackend::attention(const Tensor&, const Tensor&, const Tensor&, bool, double, Tensor&, Tensor&) {
  throw Error("[cuda] attention (fused) is not supported on the CUDA backend yet; use attention=naive or the CPU");
}

void CudaBackend::attention_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool,
                                     double, Tensor*, Tensor*, Tensor*, Tensor&) {
  throw Error("[cuda] attention (fused) is not supported on the CUDA backend yet; use attention=naive or the CPU");
}

}  // namespace remat
