// Contract: the value types every layer shares.
//  - DType, Shape, TensorMeta: what a value is, without storage (the tape records these).
//  - MemoryCategory and MemoryMeter: every tensor byte is counted in one category;
//    "budgeted" bytes are all categories but parameters and their gradients (docs/architecture.md).
//  - Storage: bytes obtained from a Backend; its destructor returns them to the same
//    backend, which tells the meter. A metering-only backend hands out Storage with
//    no data, so the same code path predicts the peak.
//  - Tensor: shape + dtype + shared Storage. Always contiguous, row-major.
//  - HostArray: a plain host buffer used to bind inputs and read results.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace remat {

// Thrown for every user-facing error; the message starts with "[source] ".
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// bf16 (bfloat16: 8 exponent, 7 mantissa bits) and f16 (IEEE binary16) are storage
// formats: 2 bytes per element in memory and in every byte count; backends that run
// them compute in f32 (see is_16bit and the converters below).
enum class DType : std::uint8_t { f32, f64, i32, bf16, f16 };
std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
// The dtype named "f32", "f64", "i32", "bf16" or "f16"; an Error "[dtype] ..." otherwise.
DType dtype_from_name(const std::string& name);
inline bool is_floating(DType dtype) { return dtype != DType::i32; }
inline bool is_16bit(DType dtype) { return dtype == DType::bf16 || dtype == DType::f16; }

// Bit-exact conversions between f32 and the 16-bit formats. Narrowing rounds to
// nearest, ties to even; NaN stays NaN (quiet), infinities and signed zeros are kept,
// f16 overflows to infinity and keeps its subnormals.
float bf16_to_f32(std::uint16_t bits);
std::uint16_t f32_to_bf16(float value);
float f16_to_f32(std::uint16_t bits);
std::uint16_t f32_to_f16(float value);

using Shape = std::vector<std::int64_t>;
// The product of the extents; an Error "[shape] ..." when it overflows int64.
std::int64_t element_count(const Shape& shape);
std::string shape_string(const Shape& shape);  // "(64,128)"

struct TensorMeta {
  Shape shape;
  DType dtype = DType::f32;
  std::int64_t numel() const { return element_count(shape); }
  // Throws Error "[shape] ..." for a negative extent or a size that does not fit in size_t.
  std::size_t bytes() const;
  bool operator==(const TensorMeta&) const = default;
};

enum class MemoryCategory : std::uint8_t {
  input,            // bound placeholders copied to the device
  activation,       // forward values no backward reads
  saved,            // forward values some backward reads
  gradient,         // gradients of intermediate values
  workspace,        // kernel scratch, declared by ops, and gradient-accumulation temporaries
  parameter,        // parameters and persistent op state (not budgeted)
  parameter_gradient,  // gradients of parameters (not budgeted)
};
inline constexpr std::size_t memory_category_count = 7;
const char* memory_category_name(MemoryCategory category);
inline bool is_budgeted(MemoryCategory category) {
  return category != MemoryCategory::parameter && category != MemoryCategory::parameter_gradient;
}

// Current and peak bytes, by category and for the budgeted total.
class MemoryMeter {
 public:
  void on_allocate(std::size_t bytes, MemoryCategory category);
  void on_free(std::size_t bytes, MemoryCategory category);
  // Starts a new step: peaks restart from the bytes live now.
  void reset_peaks();
  // A window (one instruction, say): window_peak() is the most budgeted bytes live
  // since the last start_window().
  void start_window() { window_peak_ = budgeted_current_; }
  std::size_t window_peak() const { return window_peak_; }

  std::size_t budgeted_current() const { return budgeted_current_; }
  std::size_t budgeted_peak() const { return budgeted_peak_; }
  std::size_t current(MemoryCategory c) const { return current_[index(c)]; }
  std::size_t peak(MemoryCategory c) const { return peak_[index(c)]; }
  std::size_t allocation_count() const { return allocation_count_; }

 private:
  static std::size_t index(MemoryCategory c) { return static_cast<std::size_t>(c); }
  std::array<std::size_t, memory_category_count> current_{};
  std::array<std::size_t, memory_category_count> peak_{};
  std::size_t budgeted_current_ = 0;
  std::size_t budgeted_peak_ = 0;
  std::size_t window_peak_ = 0;
  std::size_t allocation_count_ = 0;
};

class Backend;

// Whether a backend still exists: shared by the backend and every Storage it handed out,
// so a tensor that outlives its backend (a StepResult kept past the backend's scope)
// never calls into a destroyed object. Its bytes are then returned by `free_orphan`, a
// function that needs no backend (the CPU backend's blocks come from aligned_alloc);
// a backend that cannot free without itself leaves it null, and the bytes stay allocated.
struct BackendLife {
  bool alive = true;
  void (*free_orphan)(void* data, std::size_t bytes) = nullptr;
};

// Bytes owned through a backend. data() is null on the metering-only backend.
class Storage {
 public:
  Storage(Backend& backend, std::shared_ptr<BackendLife> life, void* data, std::size_t bytes, MemoryCategory category)
      : backend_(&backend), life_(std::move(life)), data_(data), bytes_(bytes), category_(category) {}
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  MemoryCategory category() const { return category_; }
  Backend& backend() const { return *backend_; }

 private:
  Backend* backend_;
  std::shared_ptr<BackendLife> life_;
  void* data_;
  std::size_t bytes_;
  MemoryCategory category_;
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(TensorMeta meta, std::shared_ptr<Storage> storage)
      : meta_(std::move(meta)), storage_(std::move(storage)) {}

  const TensorMeta& meta() const { return meta_; }
  const Shape& shape() const { return meta_.shape; }
  DType dtype() const { return meta_.dtype; }
  std::int64_t numel() const { return meta_.numel(); }
  std::int64_t dim(int axis) const;  // negative axes count from the end
  int rank() const { return static_cast<int>(meta_.shape.size()); }
  std::size_t bytes() const { return meta_.bytes(); }
  bool defined() const { return storage_ != nullptr; }
  void* raw() const { return storage_ ? storage_->data() : nullptr; }
  template <class T> T* data() const { return static_cast<T*>(raw()); }
  Backend& backend() const { return storage_->backend(); }
  MemoryCategory category() const { return storage_->category(); }
  // The same bytes seen with another shape of equal element count (no allocation).
  Tensor reshaped(const Shape& shape) const;
  // Lets go of the storage (defined() becomes false) and keeps the meta, whose shape
  // buffer a later assignment reuses: the executor's argument lists.
  void drop_storage() { storage_.reset(); }

 private:
  TensorMeta meta_;
  std::shared_ptr<Storage> storage_;
};

// A host-side array: how users bind inputs and read values and gradients.
struct HostArray {
  TensorMeta meta;
  std::vector<std::byte> bytes;

  HostArray() = default;
  // Zero-filled; an Error "[HostArray] out of memory ..." when the host cannot hold it.
  explicit HostArray(TensorMeta m);
  static HostArray from(const Shape& shape, const std::vector<float>& values);
  static HostArray from(const Shape& shape, const std::vector<double>& values);
  static HostArray from(const Shape& shape, const std::vector<std::int32_t>& values);

  template <class T> T* data() { return reinterpret_cast<T*>(bytes.data()); }
  template <class T> const T* data() const { return reinterpret_cast<const T*>(bytes.data()); }
  std::int64_t numel() const { return meta.numel(); }
  // Element i converted to double, whatever the dtype.
  double at(std::int64_t i) const;
  void set(std::int64_t i, double value);
  std::vector<double> to_doubles() const;
};

}  // namespace remat
