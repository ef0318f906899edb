// Contract: Philox4x32-10, the counter-based random number generator of
//   J. K. Salmon, M. A. Moraes, R. O. Dror and D. E. Shaw, "Parallel random
//   numbers: as easy as 1, 2, 3", Proc. SC'11 (2011), doi:10.1145/2063384.2063405,
// written here from the published description. A draw is a pure function of a
// 128-bit counter and a 64-bit key: no state, so any element of a dropout mask
// can be regenerated anywhere (forward, recomputation, backward, CPU or GPU)
// from (seed, key, element index) alone.
//  - philox4x32_10(counter, key): the bijection itself (10 rounds), checked
//    against the Random123 known-answer vectors in tests/nn_ops_tests.cpp.
//  - philox_uniform(seed, key, index): a float uniform in [0, 1). The Philox
//    key is the seed; the counter is (index / 4, key); word index % 4 of the
//    block is used, so four consecutive elements share one block.
// Header-only and plain integer arithmetic so that a CUDA translation unit can
// use it as is: REMAT_PHILOX_QUALIFIER defaults to REMAT_HOST_DEVICE
// (autodiff/kernel_math/host_device.hpp). No device code lives here.
#pragma once

#include "autodiff/kernel_math/host_device.hpp"

#include <cstdint>

#ifndef REMAT_PHILOX_QUALIFIER
#define REMAT_PHILOX_QUALIFIER REMAT_HOST_DEVICE
#endif

namespace remat {

struct PhiloxBlock {
  std::uint32_t v[4];
};

// Multipliers and Weyl key increments of Philox4x32 (Salmon et al., Sec. 4.2).
inline constexpr std::uint32_t philox_m0 = 0xD2511F53u;
inline constexpr std::uint32_t philox_m1 = 0xCD9E8D57u;
inline constexpr std::uint32_t philox_w0 = 0x9E3779B9u;  // golden ratio
inline constexpr std::uint32_t philox_w1 = 0xBB67AE85u;  // sqrt(3) - 1

// One Philox S-box round: two 32x32->64 multiplies, then a permutation with the key mixed in.
REMAT_PHILOX_QUALIFIER inline PhiloxBlock philox_round(PhiloxBlock c, std::uint32_t k0, std::uint32_t k1) {
  const std::uint64_t p0 = static_cast<std::uint64_t>(philox_m0) * c.v[0];
  const std::uint64_t p1 = static_cast<std::uint64_t>(philox_m1) * c.v[2];
  const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
  const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
  PhiloxBlock out;
  out.v[0] = hi1 ^ c.v[1] ^ k0;
  out.v[1] = lo1;
  out.v[2] = hi0 ^ c.v[3] ^ k1;
  out.v[3] = lo0;
  return out;
}

// Philox4x32 with 10 rounds; the key is bumped by (W0, W1) between rounds.
REMAT_PHILOX_QUALIFIER inline PhiloxBlock philox4x32_10(PhiloxBlock counter, std::uint32_t key0, std::uint32_t key1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key0 += philox_w0;
      key1 += philox_w1;
    }
    counter = philox_round(counter, key0, key1);
  }
  return counter;
}

// The 24 high bits of a word as a float in [0, 1): exact in float, never 1.
REMAT_PHILOX_QUALIFIER inline float philox_to_unit_float(std::uint32_t word) {
  return static_cast<float>(word >> 8) * (1.0f / 16777216.0f);
}

// The block holding element `index` of the stream (seed, key).
REMAT_PHILOX_QUALIFIER inline PhiloxBlock philox_block(std::uint64_t seed, std::uint64_t key, std::uint64_t block) {
  PhiloxBlock counter;
  counter.v[0] = static_cast<std::uint32_t>(block);
  counter.v[1] = static_cast<std::uint32_t>(block >> 32);
  counter.v[2] = static_cast<std::uint32_t>(key);
  counter.v[3] = static_cast<std::uint32_t>(key >> 32);
  return philox4x32_10(counter, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// Uniform in [0, 1) for element `index` of the stream (seed, key).
REMAT_PHILOX_QUALIFIER inline float philox_uniform(std::uint64_t seed, std::uint64_t key, std::uint64_t index) {
  const PhiloxBlock b = philox_block(seed, key, index >> 2);
  return philox_to_unit_float(b.v[index & 3u]);
}

}  // namespace remat
