// Counter-based Gaussian noise: Philox-4x32-10 (Salmon et al., SC'11, "Parallel random numbers:
// as easy as 1, 2, 3") followed by Box-Muller in float32. No Python in here.
//
// Key layout (the project's noise-key contract, see README "Noise keys"):
//   Philox key     = seed (64 bits: low word, high word)
//   Philox counter = (block low, block high, step low, step high), block = g / 4
// where g = offset + j is the global element index. One Philox call gives four 32-bit words
// (r0, r1, r2, r3) for elements 4·block … 4·block + 3:
//   (r0, r1) -> elements 0, 1 = R(r0)·(cos θ(r1), sin θ(r1))
//   (r2, r3) -> elements 2, 3 = R(r2)·(cos θ(r3), sin θ(r3))
// with R(r) = sqrt(−2 ln u), u = float(r >> 1)·2^-31 + 2^-32 ∈ (0, 1] (float32 arithmetic), and
// θ(r) = q·π/2 + (f·2^-30 − ½)·π/2, q = r >> 30, f = float(r & (2^30 − 1)): uniform on the circle.
// tests/test_core_noise.py holds an independent numpy model of exactly this definition.
// The value of element g is a pure function of (seed, step, g): it does not depend on how a
// range is split into calls or threads. The float math below is branch-free, IEEE only (no
// FMA contraction: build with -ffp-contract=off), so results are bitwise reproducible.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "parallel.hpp"
#include "platform.hpp"

namespace lf {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

// One Philox-4x32-10 block (Random123's philox4x32_R with R = 10).
inline void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = static_cast<uint32_t>(p1);
    c2 = n2;
    c3 = static_cast<uint32_t>(p0);
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

namespace detail {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// ln(x) for normal x in (0, 1] (Cephes logf polynomial, ~1 ulp). Branch-free.
inline float log_unit(float x) {
  const uint32_t bits = float_bits(x);
  int32_t e = static_cast<int32_t>(bits >> 23) - 126;  // x = m·2^e, m ∈ [0.5, 1)
  const float m = bits_float((bits & 0x007FFFFFu) | 0x3F000000u);
  const bool small = m < 0.707106781186547524f;
  const float f = small ? (m + m) - 1.0f : m - 1.0f;
  e = small ? e - 1 : e;
  const float fe = static_cast<float>(e);
  const float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  float y = f * z * p;
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  return f + y + 0.693359375f * fe;
}

// e^x in float32 (Cephes expf polynomial, ~1 ulp): +inf above 88.7228, 0 below −87.3365
// (no subnormal results). NaN is the caller's business (inputs are checked before use).
inline float exp_f32(float x) {
  float xc = x > 88.7228391f ? 88.7228391f : x;
  xc = xc < -87.3365447f ? -87.3365447f : xc;
  constexpr float kRound = 12582912.0f;  // 1.5·2^23: (v + kRound) − kRound rounds v to an int
  const float fn = (xc * 1.44269504088896341f + kRound) - kRound;  // n = rint(x / ln 2)
  const int32_t n = static_cast<int32_t>(fn);
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * z + r + 1.0f;
  const int32_t h = n >> 1;  // 2^n as 2^h · 2^(n−h): both factors are normal floats
  const float s1 = bits_float(static_cast<uint32_t>(h + 127) << 23);
  const float s2 = bits_float(static_cast<uint32_t>(n - h + 127) << 23);
  float out = (y * s1) * s2;
  out = x > 88.7228391f ? HUGE_VALF : out;
  out = x < -87.3365447f ? 0.0f : out;
  return out;
}

constexpr size_t kTile = 256;  // elements per tile; tiles sit on a fixed global grid
constexpr size_t kTileBlocks = kTile / 4;

// Normals for global elements [tile·256, tile·256 + 256).
LF_CLONES inline void randn_tile(uint64_t seed, uint64_t step, uint64_t tile, float* out) {
  uint32_t c0[kTileBlocks], c1[kTileBlocks], c2[kTileBlocks], c3[kTileBlocks];
  const uint64_t block0 = tile * kTileBlocks;
  const uint32_t s_lo = static_cast<uint32_t>(step), s_hi = static_cast<uint32_t>(step >> 32);
  for (size_t b = 0; b < kTileBlocks; ++b) {
    const uint64_t block = block0 + b;
    c0[b] = static_cast<uint32_t>(block);
    c1[b] = static_cast<uint32_t>(block >> 32);
    c2[b] = s_lo;
    c3[b] = s_hi;
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    for (size_t b = 0; b < kTileBlocks; ++b) {  // same round as philox4x32_10, vectorizable
      const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0[b];
      const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2[b];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[b] ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[b] ^ k1;
      c0[b] = n0;
      c1[b] = static_cast<uint32_t>(p1);
      c2[b] = n2;
      c3[b] = static_cast<uint32_t>(p0);
    }
  }
  // Box-Muller on 128 pairs: pair b uses (c0, c1), pair 64 + b uses (c2, c3) of block b.
  uint32_t radius_word[2 * kTileBlocks], angle_word[2 * kTileBlocks];
  std::memcpy(radius_word, c0, sizeof c0);
  std::memcpy(radius_word + kTileBlocks, c2, sizeof c2);
  std::memcpy(angle_word, c1, sizeof c1);
  std::memcpy(angle_word + kTileBlocks, c3, sizeof c3);
  float zc[2 * kTileBlocks], zs[2 * kTileBlocks];
  for (size_t k = 0; k < 2 * kTileBlocks; ++k) {
    const uint32_t rr = radius_word[k], ra = angle_word[k];
    const float u = static_cast<float>(static_cast<int32_t>(rr >> 1)) * 4.656612873077392578e-10f +
                    2.328306436538696289e-10f;  // 2^-31, 2^-32
    const float radius = std::sqrt(-2.0f * log_unit(u));
    const uint32_t q = ra >> 30;
    const float frac = static_cast<float>(static_cast<int32_t>(ra & 0x3FFFFFFFu)) *
                       9.313225746154785156e-10f;  // 2^-30
    const float phi = (frac - 0.5f) * 1.57079632679489662f;  // [−π/4, π/4]
    const float p2 = phi * phi;
    const float sn = phi + phi * p2 * ((-1.9515295891e-4f * p2 + 8.3321608736e-3f) * p2 -
                                       1.6666654611e-1f);
    const float cs = 1.0f - 0.5f * p2 +
                     p2 * p2 * ((2.443315711809948e-5f * p2 - 1.388731625493765e-3f) * p2 +
                                4.166664568298827e-2f);
    // rotate (cos φ, sin φ) by q quarter turns
    const float a = (q & 1u) ? sn : cs;
    const float b = (q & 1u) ? cs : sn;
    const uint32_t cos_sign = ((q ^ (q >> 1)) & 1u) << 31;
    const uint32_t sin_sign = (q >> 1) << 31;
    zc[k] = radius * bits_float(float_bits(a) ^ cos_sign);
    zs[k] = radius * bits_float(float_bits(b) ^ sin_sign);
  }
  for (size_t b = 0; b < kTileBlocks; ++b) {
    out[4 * b + 0] = zc[b];
    out[4 * b + 1] = zs[b];
    out[4 * b + 2] = zc[kTileBlocks + b];
    out[4 * b + 3] = zs[kTileBlocks + b];
  }
}

}  // namespace detail

// out[j] = normal for (seed, step, offset + j), j < n. Requires offset + n <= 2^64.
inline void randn_fill(uint64_t seed, uint64_t step, uint64_t offset, float* out, size_t n) {
  float tmp[detail::kTile];
  size_t j = 0;
  while (j < n) {
    const uint64_t g = offset + j;
    const uint64_t tile = g / detail::kTile;
    const size_t start = static_cast<size_t>(g % detail::kTile);
    const size_t len = std::min(detail::kTile - start, n - j);
    if (start == 0 && len == detail::kTile) {
      detail::randn_tile(seed, step, tile, out + j);
    } else {
      detail::randn_tile(seed, step, tile, tmp);
      std::memcpy(out + j, tmp + start, len * sizeof(float));
    }
    j += len;
  }
}

// randn_fill split over threads (identical output for any thread count).
inline void randn_parallel(uint64_t seed, uint64_t step, uint64_t offset, float* out, size_t n,
                           int threads) {
  parallel_for(n, threads, kParallelGrain, detail::kTile,
               [&](size_t b, size_t e) { randn_fill(seed, step, offset + b, out + b, e - b); });
}

}  // namespace lf
