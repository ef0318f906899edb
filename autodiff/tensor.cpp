// Contract: implementations of the shared value types (see tensor.hpp).
#include "autodiff/tensor.hpp"

#include "autodiff/backend.hpp"

#include <algorithm>
#include <cstring>

namespace remat {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i32: return 4;
    case DType::bf16: return 2;
    case DType::f16: return 2;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (DType d : {DType::f32, DType::f64, DType::i32, DType::bf16, DType::f16})
    if (name == dtype_name(d)) return d;
  throw Error("[dtype] '" + name + "' is not one of: f32, f64, i32, bf16, f16");
}

namespace {
std::uint32_t f32_bits(float value) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}
float f32_from_bits(std::uint32_t bits) {
  float value = 0;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}
}  // namespace

float bf16_to_f32(std::uint16_t bits) { return f32_from_bits(static_cast<std::uint32_t>(bits) << 16); }

std::uint16_t f32_to_bf16(float value) {
  const std::uint32_t bits = f32_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN
  // Round to nearest even on the 16 dropped bits; a carry into the exponent is the
  // correct rounding (up to the next binade, or to infinity past the largest finite).
  const std::uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu;
  const std::uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1f) return f32_from_bits(sign | 0x7f800000u | (mantissa << 13));  // inf or NaN
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in f32
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  return f32_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

std::uint16_t f32_to_f16(float value) {
  const std::uint32_t bits = f32_bits(value);
  const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));  // NaN
  if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds past 65504: infinity
  const std::uint32_t exponent = magnitude >> 23;
  if (exponent < 113) {  // below 2^-14: an f16 subnormal (or zero), in units of 2^-24
    if (exponent < 101) return sign;  // below 2^-25 (half the smallest subnormal, whose tie goes to even zero)
    const std::uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126 - exponent;  // value = significand * 2^(exponent-150) = units * 2^-24
    std::uint32_t units = significand >> shift;
    const std::uint32_t rest = significand & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (units & 1u))) ++units;  // may carry into the smallest normal: correct
    return static_cast<std::uint16_t>(sign | units);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to even.
  const std::uint32_t rebased = magnitude - (112u << 23);
  const std::uint32_t rounded = rebased + 0xfffu + ((rebased >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | (rounded >> 13));
}

std::int64_t element_count(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape)
    if (__builtin_mul_overflow(n, d, &n))  // signed overflow would be undefined behaviour
      throw Error("[shape] " + shape_string(shape) + " has more elements than an int64 can count");
  return n;
}

std::size_t TensorMeta::bytes() const {
  const std::int64_t n = numel();
  if (n < 0) throw Error("[shape] " + shape_string(shape) + " has a negative extent");
  std::size_t b = 0;
  if (__builtin_mul_overflow(static_cast<std::size_t>(n), dtype_size(dtype), &b))
    throw Error("[shape] " + shape_string(shape) + " " + dtype_name(dtype) + " needs more bytes than a size_t can count");
  return b;
}

std::string shape_string(const Shape& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

const char* memory_category_name(MemoryCategory category) {
  switch (category) {
    case MemoryCategory::input: return "input";
    case MemoryCategory::activation: return "activation";
    case MemoryCategory::saved: return "saved";
    case MemoryCategory::gradient: return "gradient";
    case MemoryCategory::workspace: return "workspace";
    case MemoryCategory::parameter: return "parameter";
    case MemoryCategory::parameter_gradient: return "parameter_gradient";
  }
  return "?";
}

void MemoryMeter::on_allocate(std::size_t bytes, MemoryCategory category) {
  auto i = index(category);
  current_[i] += bytes;
  peak_[i] = std::max(peak_[i], current_[i]);
  if (is_budgeted(category)) {
    budgeted_current_ += bytes;
    budgeted_peak_ = std::max(budgeted_peak_, budgeted_current_);
    window_peak_ = std::max(window_peak_, budgeted_current_);
  }
  ++allocation_count_;
}

void MemoryMeter::on_free(std::size_t bytes, MemoryCategory category) {
  current_[index(category)] -= bytes;
  if (is_budgeted(category)) budgeted_current_ -= bytes;
}

void MemoryMeter::reset_peaks() {
  peak_ = current_;
  budgeted_peak_ = budgeted_current_;
  window_peak_ = budgeted_current_;
  allocation_count_ = 0;
}

Storage::~Storage() {
  if (life_->alive) backend_->release(data_, bytes_, category_);
  else if (life_->free_orphan && data_) life_->free_orphan(data_, bytes_);
}

std::int64_t Tensor::dim(int axis) const {
  int r = rank();
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) throw Error("[tensor] axis out of range for shape " + shape_string(shape()));
  return meta_.shape[static_cast<std::size_t>(axis)];
}

Tensor Tensor::reshaped(const Shape& shape) const {
  if (element_count(shape) != numel())
    throw Error("[tensor] cannot view " + shape_string(this->shape()) + " as " + shape_string(shape));
  return Tensor(TensorMeta{shape, meta_.dtype}, storage_);
}

namespace {
template <class T>
HostArray host_from(const Shape& shape, const std::vector<T>& values, DType dtype) {
  HostArray a(TensorMeta{shape, dtype});
  if (static_cast<std::int64_t>(values.size()) != a.numel())
    throw Error("[HostArray] " + std::to_string(values.size()) + " values for shape " + shape_string(shape));
  std::memcpy(a.bytes.data(), values.data(), a.bytes.size());
  return a;
}
}  // namespace

HostArray::HostArray(TensorMeta m) : meta(std::move(m)) {
  const std::size_t size = meta.bytes();
  try {
    bytes.resize(size);
  } catch (const std::exception&) {  // std::bad_alloc, or std::length_error past max_size()
    throw Error("[HostArray] out of memory: could not allocate " + std::to_string(size) + " bytes for " +
                shape_string(meta.shape) + " " + dtype_name(meta.dtype));
  }
}

HostArray HostArray::from(const Shape& shape, const std::vector<float>& v) { return host_from(shape, v, DType::f32); }
HostArray HostArray::from(const Shape& shape, const std::vector<double>& v) { return host_from(shape, v, DType::f64); }
HostArray HostArray::from(const Shape& shape, const std::vector<std::int32_t>& v) { return host_from(shape, v, DType::i32); }

double HostArray::at(std::int64_t i) const {
  switch (meta.dtype) {
    case DType::f32: return data<float>()[i];
    case DType::f64: return data<double>()[i];
    case DType::i32: return data<std::int32_t>()[i];
    case DType::bf16: return bf16_to_f32(data<std::uint16_t>()[i]);
    case DType::f16: return f16_to_f32(data<std::uint16_t>()[i]);
  }
  return 0;
}

void HostArray::set(std::int64_t i, double value) {
  switch (meta.dtype) {
    case DType::f32: data<float>()[i] = static_cast<float>(value); break;
    case DType::f64: data<double>()[i] = value; break;
    case DType::i32: data<std::int32_t>()[i] = static_cast<std::int32_t>(value); break;
    // Through f32: a double rounds to f32 first, so a value halfway between two 16-bit
    // neighbours after that first rounding may round once more (the usual double rounding).
    case DType::bf16: data<std::uint16_t>()[i] = f32_to_bf16(static_cast<float>(value)); break;
    case DType::f16: data<std::uint16_t>()[i] = f32_to_f16(static_cast<float>(value)); break;
  }
}

std::vector<double> HostArray::to_doubles() const {
  std::vector<double> out(static_cast<std::size_t>(numel()));
  for (std::int64_t i = 0; i < numel(); ++i) out[static_cast<std::size_t>(i)] = at(i);
  return out;
}

// ---- Backend's non-virtual part ----

Tensor Backend::empty(const TensorMeta& meta, MemoryCategory category) {
  if (!supports(meta.dtype))
    throw Error("[" + name() + "] does not run " + dtype_name(meta.dtype) + " tensors" +
                (is_16bit(meta.dtype) ? " (16-bit formats run on the metering backend and on LowPrecisionCpuBackend)" : ""));
  std::size_t bytes = meta.bytes();
  void* data = raw_allocate(bytes);
  meter_.on_allocate(bytes, category);
  return Tensor(meta, std::make_shared<Storage>(*this, life_, data, bytes, category));
}

Tensor Backend::zeros(const TensorMeta& meta, MemoryCategory category) {
  Tensor t = empty(meta, category);
  fill(t, 0.0);
  return t;
}

void Backend::convert(const Tensor& src, Tensor& dst) {
  if (src.shape() != dst.shape())
    throw Error("[" + name() + " convert] shapes differ: " + shape_string(src.shape()) + " and " + shape_string(dst.shape()));
  const HostArray from = download(src);
  HostArray to(dst.meta());
  for (std::int64_t i = 0; i < to.numel(); ++i) to.set(i, from.at(i));
  upload(to, dst);
}

void Backend::release(void* data, std::size_t bytes, MemoryCategory category) {
  meter_.on_free(bytes, category);
  raw_free(data, bytes);
}

std::vector<std::int64_t> contiguous_strides(const Shape& shape) {
  std::vector<std::int64_t> strides(shape.size());
  std::int64_t s = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

}  // namespace remat
