// Contract: LowPrecisionCpuBackend, the CPU backend for models that store bf16 or
// f16 tensors. 16-bit tensors are storage only: 2 bytes per element in memory and in
// the meter (the logical bytes a device running them natively would hold). Each
// kernel runs on an inner CpuBackend in f32: every 16-bit argument is widened into
// an f32 staging copy, the f32 kernel runs (so sums accumulate in f32), and every
// output is narrowed back, rounding to nearest even. f32, f64 and i32 arguments pass
// through untouched, so an all-f32 model runs exactly as on CpuBackend.
// Staging copies live on the inner backend's own meter, never on this one: they are
// the emulation's cost, not the model's, and planned peaks (metering backend) still
// equal measured ones. Results are deterministic like CpuBackend's.
#pragma once

#include "autodiff/cpu/cpu_backend.hpp"

namespace remat {

class LowPrecisionCpuBackend final : public Backend {
 public:
  LowPrecisionCpuBackend();
  ~LowPrecisionCpuBackend() override;
  std::string name() const override { return "cpu"; }
  bool supports(DType) const override { return true; }
  // The staging meter: f32 copies of 16-bit arguments, live only during a kernel.
  const MemoryMeter& staging_meter() const { return inner_.meter(); }

  void convert(const Tensor& src, Tensor& dst) override;
  REMAT_BACKEND_KERNEL_OVERRIDES

 protected:
  void* raw_allocate(std::size_t bytes) override;
  void raw_free(void* data, std::size_t bytes) override;

 private:
  CpuBackend inner_;
};

}  // namespace remat
