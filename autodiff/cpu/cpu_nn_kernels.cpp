// Contract: CPU kernels for neural-network ops (placeholder until implemented).
#include "autodiff/cpu/cpu_backend.hpp"

namespace remat {
namespace { [[noreturn]] void todo(const char* k) { throw Error(std::string("[cpu] kernel not implemented: ") + k); } }
void CpuBackend::softmax(const Tensor&, bool, Tensor&) { todo("softmax"); }
void CpuBackend::softmax_backward(const Tensor&, const Tensor&, bool, Tensor&) { todo("softmax_backward"); }
void CpuBackend::cross_entropy(const Tensor&, const Tensor&, Tensor&) { todo("cross_entropy"); }
void CpuBackend::cross_entropy_backward(const Tensor&, const Tensor&, const Tensor&, Tensor&) { todo("ce_backward"); }
void CpuBackend::mse(const Tensor&, const Tensor&, Tensor&) { todo("mse"); }
void CpuBackend::mse_backward(const Tensor&, const Tensor&, const Tensor&, double, Tensor&) { todo("mse_backward"); }
void CpuBackend::layernorm(const Tensor&, const Tensor&, const Tensor&, double, Tensor&) { todo("layernorm"); }
void CpuBackend::layernorm_backward(const Tensor&, const Tensor&, const Tensor&, double, Tensor*, Tensor*, Tensor*) { todo("ln"); }
void CpuBackend::dropout(const Tensor&, double, std::uint64_t, std::uint64_t, Tensor&) { todo("dropout"); }
void CpuBackend::dropout_backward(const Tensor&, double, std::uint64_t, std::uint64_t, Tensor&) { todo("dropout"); }
void CpuBackend::embedding(const Tensor&, const Tensor&, Tensor&) { todo("embedding"); }
void CpuBackend::embedding_backward(const Tensor&, const Tensor&, Tensor&) { todo("embedding"); }
void CpuBackend::im2col(const Tensor&, std::int64_t, const Conv2dGeometry&, Tensor&) { todo("im2col"); }
void CpuBackend::col2im(const Tensor&, std::int64_t, const Conv2dGeometry&, Tensor&) { todo("col2im"); }
void CpuBackend::pool2d(PoolKind, const Pool2dGeometry&, const Tensor&, Tensor&) { todo("pool2d"); }
void CpuBackend::pool2d_backward(PoolKind, const Pool2dGeometry&, const Tensor&, const Tensor&, const Tensor&, Tensor&) { todo("pool2d"); }
void CpuBackend::upsample_nearest(const Tensor&, std::int64_t, Tensor&) { todo("upsample"); }
void CpuBackend::upsample_nearest_backward(const Tensor&, std::int64_t, Tensor&) { todo("upsample"); }
void CpuBackend::batchnorm(const Tensor&, const Tensor&, const Tensor&, double, Tensor&) { todo("batchnorm"); }
void CpuBackend::batchnorm_backward(const Tensor&, const Tensor&, const Tensor&, double, Tensor*, Tensor*, Tensor*) { todo("bn"); }
void CpuBackend::batchnorm_update_running(const Tensor&, double, Tensor&, Tensor&) { todo("bn"); }
}  // namespace remat
