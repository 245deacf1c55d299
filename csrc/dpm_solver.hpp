// Multistep DPM-Solver++(2M), deterministic and stochastic: the per-step coefficients (in
// double, from ᾱ at the listed timesteps) and the elementwise float32 update. No Python in
// here; sampler.hpp plans and applies these steps inside its reverse loop.
//
// Notation (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
// Probabilistic Models", arXiv:2211.01095): at timestep t_i, α_i = √ᾱ_{t_i},
// σ_i = √(1 − ᾱ_{t_i}), λ_i = log α_i − log σ_i (half the log-SNR, increasing as t falls), and
// the data prediction x̂0_i = (x − σ_i ε̂)/α_i. Step i goes from t_i to t_{i+1}; after the last
// listed timestep the target is x_0 itself: σ = 0, α = 1, λ = +∞. h = λ_{i+1} − λ_i.
//
// DPM-Solver++(2M) (the paper's Algorithm 2, "multistep DPM-Solver++"):
//   x' = (σ_{i+1}/σ_i)·x − α_{i+1}(e^{−h} − 1)·D,   D = (1 + 1/(2r))·x̂0_i − 1/(2r)·x̂0_{i−1},
//   r = h_{i−1}/h with h_{i−1} = λ_i − λ_{i−1}; i.e. D0 = x̂0_i, D1 = (x̂0_i − x̂0_{i−1})/r and
//   D = D0 + ½·D1 (diffusers' solver_type="midpoint").
// SDE-DPM-Solver++(2M) (the reverse-diffusion-SDE variant by the same first author, added to
// diffusers' DPMSolverMultistepScheduler as algorithm_type="sde-dpmsolver++", PR #3344):
//   x' = (σ_{i+1}/σ_i)e^{−h}·x + α_{i+1}(1 − e^{−2h})·D + σ_{i+1}√(1 − e^{−2h})·z.
// First order (D = x̂0_i; the ODE form is DDIM) at i = 0, where no x̂0_{i−1} exists, and at the
// last step i = N−1 (diffusers' final_sigmas_type="zero" with lower_order_final): there
// σ_{i+1} = 0 and e^{−h} = 0, so both reduce to x' = x̂0_i exactly and no noise is drawn.
// These are diffusers' dpm_solver_first_order_update / multistep_dpm_solver_second_order_update
// for solver_order=2, folded into x' = cx·x + c0·x̂0_i + c1·x̂0_{i−1} [+ k·z].
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "platform.hpp"

namespace lf {

struct DpmCoeffs {
  float a = 0, s = 1;  // x̂0 = (x − a·ε)/s: a = σ_i, s = α_i
  float cx = 0, c0 = 1, c1 = 0, k = 0;
  bool second_order = false;  // reads x̂0_{i−1} (c1 ≠ 0)
  bool noise = false;         // adds k·z
};

// Coefficients of every step at the given timesteps (validated by the caller: strictly
// descending, within [0, T)) of the float32 ᾱ array. Throws std::invalid_argument for fewer
// than 2 timesteps (`name`: the method, for the message) or if λ does not increase strictly.
inline std::vector<DpmCoeffs> dpm_solver_2m_coefficients(const std::vector<float>& alphas_cumprod,
                                                         const std::vector<int64_t>& timesteps,
                                                         bool sde, const char* name) {
  const size_t n = timesteps.size();
  if (n < 2)
    throw std::invalid_argument(std::string("steps must be >= 2 for ") + name + " (got " +
                                std::to_string(n) + " timestep): its first step starts the "
                                "multistep history and its last one goes to x_0");
  std::vector<double> alpha(n), sigma(n), lambda(n);
  for (size_t i = 0; i < n; ++i) {
    const double ac = alphas_cumprod[static_cast<size_t>(timesteps[i])];
    alpha[i] = std::sqrt(ac);
    sigma[i] = std::sqrt(1.0 - ac);
    lambda[i] = std::log(alpha[i]) - std::log(sigma[i]);
    if (i > 0 && !(lambda[i] > lambda[i - 1]))
      throw std::invalid_argument(
          "schedule: alphas_cumprod must increase strictly as t falls for " + std::string(name) +
          " (t = " + std::to_string(timesteps[i]) + " after t = " +
          std::to_string(timesteps[i - 1]) + ")");
  }
  std::vector<DpmCoeffs> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i].a = static_cast<float>(sigma[i]);
    out[i].s = static_cast<float>(alpha[i]);
  }
  for (size_t i = 0; i + 1 < n; ++i) {  // the last step keeps the defaults: x' = x̂0_i
    DpmCoeffs& c = out[i];
    const double h = lambda[i + 1] - lambda[i];
    const double ratio = sigma[i + 1] / sigma[i];
    // ODE: −α(e^{−h} − 1) = α(1 − e^{−h}); SDE: α(1 − e^{−2h}). expm1 keeps small h exact.
    const double w = sde ? -std::expm1(-2.0 * h) : -std::expm1(-h);
    const double g = alpha[i + 1] * w;
    c.cx = static_cast<float>(sde ? ratio * std::exp(-h) : ratio);
    if (i == 0) {
      c.c0 = static_cast<float>(g);
    } else {
      const double r = (lambda[i] - lambda[i - 1]) / h;
      c.second_order = true;
      c.c0 = static_cast<float>(g * (1.0 + 0.5 / r));
      c.c1 = static_cast<float>(-g * (0.5 / r));
    }
    if (sde) {
      c.noise = true;
      c.k = static_cast<float>(sigma[i + 1] * std::sqrt(w));
    }
  }
  return out;
}

namespace detail {

// One DPM-Solver++ update on n elements: x0 = (x − a·ε)/s with a = σ_i, s = α_i (the existing
// forms' x̂0); x' = cx·x + c0·x0 [+ c1·prev] [+ k·z]; prev[j] = x0 (read before written).
template <bool SecondOrder, bool Noise>
LF_CLONES void dpm_span(float a, float s, float cx, float c0, float c1, float k, float* x,
                        const float* eps, const float* z, float* prev, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float xi = x[i];
    const float x0 = (xi - a * eps[i]) / s;
    float out = cx * xi + c0 * x0;
    if (SecondOrder) out = out + c1 * prev[i];
    if (Noise) out = out + k * z[i];
    prev[i] = x0;
    x[i] = out;
  }
}

inline void dpm_span_dispatch(bool second_order, bool noise, float a, float s, float cx,
                              float c0, float c1, float k, float* x, const float* eps,
                              const float* z, float* prev, size_t n) {
  if (second_order) {
    noise ? dpm_span<true, true>(a, s, cx, c0, c1, k, x, eps, z, prev, n)
          : dpm_span<true, false>(a, s, cx, c0, c1, k, x, eps, z, prev, n);
  } else {
    noise ? dpm_span<false, true>(a, s, cx, c0, c1, k, x, eps, z, prev, n)
          : dpm_span<false, false>(a, s, cx, c0, c1, k, x, eps, z, prev, n);
  }
}

}  // namespace detail
}  // namespace lf
