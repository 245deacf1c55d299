// Batch reparameterization z = μ + exp(½ log σ²)·ε (Kingma & Welling 2014), float32, one pass
// over memory, with the finiteness check of the inputs fused in. No Python in here.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "noise.hpp"
#include "parallel.hpp"

namespace lf {

// Which inputs held a NaN or an infinity (bit flags).
enum NonFinite : unsigned { kMuBad = 1u, kLogvarBad = 2u, kEpsBad = 4u };

namespace detail {

inline uint32_t nonfinite_bit(float v) {  // 1 for NaN/±inf, else 0; branch-free
  return static_cast<uint32_t>((float_bits(v) & 0x7F800000u) == 0x7F800000u);
}

// z[i] = mu[i] + exp(0.5·logvar[i])·eps[i] for i < n; returns NonFinite flags.
LF_CLONES inline unsigned reparam_span(const float* mu, const float* logvar, const float* eps, float* z,
                             size_t n) {
  uint32_t bad_mu = 0, bad_lv = 0, bad_eps = 0;
  for (size_t i = 0; i < n; ++i) {
    const float m = mu[i], lv = logvar[i], e = eps[i];
    bad_mu |= nonfinite_bit(m);
    bad_lv |= nonfinite_bit(lv);
    bad_eps |= nonfinite_bit(e);
    z[i] = m + exp_f32(0.5f * lv) * e;
  }
  return (bad_mu ? kMuBad : 0u) | (bad_lv ? kLogvarBad : 0u) | (bad_eps ? kEpsBad : 0u);
}

}  // namespace detail

// z = μ + exp(½ log σ²)·ε over n elements with ε given. Returns NonFinite flags.
inline unsigned reparameterize(const float* mu, const float* logvar, const float* eps, float* z,
                               size_t n, int threads) {
  std::atomic<unsigned> flags{0};
  parallel_for(n, threads, kParallelGrain, detail::kTile, [&](size_t b, size_t e) {
    flags.fetch_or(detail::reparam_span(mu + b, logvar + b, eps + b, z + b, e - b));
  });
  return flags.load();
}

// Same with ε = randn(seed, step, offset + i) drawn on the fly; ε is also written to eps_out
// when that is not null. Returns NonFinite flags (kEpsBad never set).
inline unsigned reparameterize_seeded(const float* mu, const float* logvar, uint64_t seed,
                                      uint64_t step, uint64_t offset, float* eps_out, float* z,
                                      size_t n, int threads) {
  std::atomic<unsigned> flags{0};
  parallel_for(n, threads, kParallelGrain, detail::kTile, [&](size_t b, size_t e) {
    float tmp[detail::kTile];
    unsigned f = 0;
    size_t j = b;
    while (j < e) {  // sub-chunks on the global tile grid of the noise
      const size_t len = std::min<size_t>(e - j, detail::kTile - (offset + j) % detail::kTile);
      float* eps = eps_out ? eps_out + j : tmp;
      randn_fill(seed, step, offset + j, eps, len);
      f |= detail::reparam_span(mu + j, logvar + j, eps, z + j, len);
      j += len;
    }
    flags.fetch_or(f);
  });
  return flags.load();
}

}  // namespace lf
