// The DDPM/DDIM/DPM-Solver++ reverse loop. Per-step coefficients are computed in double from
// the float32 schedule (exactly as train/samplers.py does), rounded to float32 once, and
// applied elementwise in float32 (in the reference's operation order for ancestral/ddpm/ddim;
// DPM-Solver++ folds the reference's D0/D1 terms into per-step coefficients). No Python in
// here: the denoiser, the progress report and errors go through the caller's callables /
// std::invalid_argument.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "dpm_solver.hpp"
#include "noise.hpp"
#include "parallel.hpp"
#include "platform.hpp"

namespace lf {

// The reverse loop's state became NaN or infinite (the denoiser returned non-finite values).
struct NonFiniteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Method { Ancestral, Ddpm, Ddim, DpmSolver2M, SdeDpmSolver2M };

inline const char* method_name(Method m) {
  switch (m) {
    case Method::Ancestral: return "ancestral";
    case Method::Ddpm: return "ddpm";
    case Method::Ddim: return "ddim";
    case Method::DpmSolver2M: return "dpmpp-2m";
    case Method::SdeDpmSolver2M: return "sde-dpmpp-2m";
  }
  return "?";
}

inline bool is_dpm_solver(Method m) {
  return m == Method::DpmSolver2M || m == Method::SdeDpmSolver2M;
}

// The five schedule arrays (float32, equal lengths T), as the ONNX manifest carries them.
struct Schedule {
  std::vector<float> betas, alphas, alphas_cumprod, alphas_cumprod_prev, posterior_variance;
  size_t size() const { return betas.size(); }
};

enum class Form { AncestralNoisy, AncestralLast, Ddpm, Ddim, DpmSolver };

// One reverse update, elementwise:
//   AncestralNoisy: x' = (x − a·ε)/s + k·z
//   AncestralLast:  x' = (x − a·ε)/s
//   Ddpm:           x̂0 = clip((x − a·ε)/s); x' = c0·x̂0 + c1·x  [+ k·z]
//   Ddim:           x̂0 = clip((x − a·ε)/s); x' = c0·x̂0 + c1·ε̂  [+ k·z]
//                   with ε̂ = ε, or ε̂ = (x − s·x̂0)/a when clipping (ε re-derived from the
//                   clipped x̂0, as GLIDE does; the raw ε with a clipped x̂0 can diverge)
//   DpmSolver:      x̂0 = (x − a·ε)/s; x' = cx·x + c0·x̂0 [+ c1·x̂0_prev] [+ k·z]; x̂0_prev = x̂0
//                   (dpm_solver.hpp; x̂0_prev is the loop's state buffer, read if second_order)
struct StepPlan {
  int64_t t = 0;
  Form form = Form::AncestralLast;
  float a = 0, s = 1, c0 = 0, c1 = 0, k = 0, cx = 0;
  bool clip = false;
  bool second_order = false;  // DpmSolver: uses the previous step's x̂0
  bool noise = false;  // adds k·z with z = randn(seed, step = i + 1, ...)
};

inline void check_schedule(const Schedule& sc) {
  const size_t T = sc.size();
  if (T == 0) throw std::invalid_argument("schedule: arrays must not be empty");
  const std::vector<float>* arrays[] = {&sc.alphas, &sc.alphas_cumprod, &sc.alphas_cumprod_prev,
                                        &sc.posterior_variance};
  const char* names[] = {"alphas", "alphas_cumprod", "alphas_cumprod_prev", "posterior_variance"};
  for (int i = 0; i < 4; ++i)
    if (arrays[i]->size() != T)
      throw std::invalid_argument("schedule: " + std::string(names[i]) + " has length " +
                                  std::to_string(arrays[i]->size()) + " but betas has " +
                                  std::to_string(T) + " (all five arrays need equal length)");
  for (size_t t = 0; t < T; ++t) {
    const double b = sc.betas[t], a = sc.alphas[t], ac = sc.alphas_cumprod[t];
    const double acp = sc.alphas_cumprod_prev[t], pv = sc.posterior_variance[t];
    if (!(b >= 0 && b < 1) || !(a > 0 && a <= 1) || !(ac > 0 && ac < 1) ||
        !(acp > 0 && acp <= 1) || !(pv >= 0 && std::isfinite(pv)))
      throw std::invalid_argument(
          "schedule: values out of range at t = " + std::to_string(t) +
          " (need 0 <= betas < 1, 0 < alphas <= 1, 0 < alphas_cumprod < 1, "
          "0 < alphas_cumprod_prev <= 1, finite posterior_variance >= 0)");
  }
}

// Validates timesteps (non-empty, strictly descending, within [0, T)) and builds the plan.
inline std::vector<StepPlan> plan_steps(const Schedule& sc, Method method,
                                        const std::vector<int64_t>& timesteps, double eta,
                                        bool clip_x0) {
  check_schedule(sc);
  const int64_t T = static_cast<int64_t>(sc.size());
  if (timesteps.empty()) throw std::invalid_argument("timesteps must not be empty");
  for (size_t i = 0; i < timesteps.size(); ++i) {
    const int64_t t = timesteps[i];
    if (t < 0 || t >= T)
      throw std::invalid_argument("timesteps[" + std::to_string(i) + "] = " + std::to_string(t) +
                                  " is outside [0, " + std::to_string(T) + ")");
    if (i > 0 && t >= timesteps[i - 1])
      throw std::invalid_argument("timesteps must be strictly descending (timesteps[" +
                                  std::to_string(i) + "] = " + std::to_string(t) + ")");
  }
  if (!(std::isfinite(eta) && eta >= 0)) throw std::invalid_argument("eta must be finite and >= 0");
  if (method != Method::Ddim && eta != 0)
    throw std::invalid_argument("eta applies to method='ddim' only");
  if ((method == Method::Ancestral || is_dpm_solver(method)) && clip_x0)
    throw std::invalid_argument("clip_x0 applies to methods 'ddpm' and 'ddim' only");

  std::vector<StepPlan> plan(timesteps.size());
  if (is_dpm_solver(method)) {
    const std::vector<DpmCoeffs> coeffs = dpm_solver_2m_coefficients(
        sc.alphas_cumprod, timesteps, method == Method::SdeDpmSolver2M, method_name(method));
    for (size_t i = 0; i < plan.size(); ++i) {
      const DpmCoeffs& c = coeffs[i];
      StepPlan& p = plan[i];
      p.t = timesteps[i];
      p.form = Form::DpmSolver;
      p.a = c.a, p.s = c.s, p.cx = c.cx, p.c0 = c.c0, p.c1 = c.c1, p.k = c.k;
      p.second_order = c.second_order;
      p.noise = c.noise;
    }
    return plan;
  }
  for (size_t i = 0; i < timesteps.size(); ++i) {
    const int64_t t = timesteps[i];
    const double b = sc.betas[t], a = sc.alphas[t], ac = sc.alphas_cumprod[t];
    const double acp = sc.alphas_cumprod_prev[t];
    StepPlan& p = plan[i];
    p.t = t;
    p.clip = clip_x0;
    if (method == Method::Ancestral) {
      if (t == 0) {
        p.form = Form::AncestralLast;
        p.a = static_cast<float>(std::sqrt(1.0 - ac));
        p.s = static_cast<float>(std::sqrt(ac));
      } else {
        p.form = Form::AncestralNoisy;
        p.a = static_cast<float>(b / std::sqrt(1.0 - ac));
        p.s = static_cast<float>(std::sqrt(a));
        p.k = static_cast<float>(std::sqrt(b));
        p.noise = true;
      }
      continue;
    }
    p.a = static_cast<float>(std::sqrt(1.0 - ac));
    p.s = static_cast<float>(std::sqrt(ac));
    if (method == Method::Ddpm) {
      p.form = Form::Ddpm;
      p.c0 = static_cast<float>(std::sqrt(acp) * b / (1.0 - ac));
      p.c1 = static_cast<float>(std::sqrt(a) * (1.0 - acp) / (1.0 - ac));
      p.noise = t > 0;
      p.k = static_cast<float>(std::sqrt(static_cast<double>(sc.posterior_variance[t])));
      continue;
    }
    const bool last = i + 1 == timesteps.size();
    const double ac_prev = last ? 1.0 : static_cast<double>(sc.alphas_cumprod[timesteps[i + 1]]);
    const double ratio = 1.0 - ac / ac_prev;
    if (ratio < 0)
      throw std::invalid_argument("schedule: alphas_cumprod must decrease with t (DDIM step t = " +
                                  std::to_string(t) + ")");
    const double sigma = eta * std::sqrt((1.0 - ac_prev) / (1.0 - ac)) * std::sqrt(ratio);
    p.form = Form::Ddim;
    p.c0 = static_cast<float>(std::sqrt(ac_prev));
    p.c1 = static_cast<float>(std::sqrt(std::max(1.0 - ac_prev - sigma * sigma, 0.0)));
    p.noise = eta > 0 && !last && sigma > 0;
    p.k = static_cast<float>(sigma);
  }
  return plan;
}

inline bool plan_needs_noise(const std::vector<StepPlan>& plan) {
  for (const auto& p : plan)
    if (p.noise) return true;
  return false;
}

namespace detail {

inline float clamp1(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }  // keeps NaN

template <Form F, bool Clip, bool Noise>
LF_CLONES void step_span(const StepPlan& p, float* x, const float* eps, const float* z, size_t n) {
  const float a = p.a, s = p.s, c0 = p.c0, c1 = p.c1, k = p.k;
  for (size_t i = 0; i < n; ++i) {
    const float xi = x[i], e = eps[i];
    float out;
    if (F == Form::AncestralNoisy || F == Form::AncestralLast) {
      out = (xi - a * e) / s;
    } else {
      float x0 = (xi - a * e) / s;
      if (Clip) x0 = clamp1(x0);
      const float e_hat = (F == Form::Ddim && Clip) ? (xi - s * x0) / a : e;
      out = F == Form::Ddpm ? c0 * x0 + c1 * xi : c0 * x0 + c1 * e_hat;
    }
    if (Noise) out = out + k * z[i];
    x[i] = out;
  }
}

template <Form F>
void step_span_dispatch(const StepPlan& p, float* x, const float* eps, const float* z, size_t n) {
  if (p.noise) {
    p.clip ? step_span<F, true, true>(p, x, eps, z, n) : step_span<F, false, true>(p, x, eps, z, n);
  } else {
    p.clip ? step_span<F, true, false>(p, x, eps, z, n)
           : step_span<F, false, false>(p, x, eps, z, n);
  }
}

// prev: the DpmSolver state (x̂0 of the previous step), chunk-aligned with x; unused otherwise.
inline void step_chunk(const StepPlan& p, float* x, const float* eps, const float* z,
                       float* prev, size_t n) {
  switch (p.form) {
    case Form::AncestralNoisy: step_span_dispatch<Form::AncestralNoisy>(p, x, eps, z, n); break;
    case Form::AncestralLast: step_span_dispatch<Form::AncestralLast>(p, x, eps, z, n); break;
    case Form::Ddpm: step_span_dispatch<Form::Ddpm>(p, x, eps, z, n); break;
    case Form::Ddim: step_span_dispatch<Form::Ddim>(p, x, eps, z, n); break;
    case Form::DpmSolver:
      dpm_span_dispatch(p.second_order, p.noise, p.a, p.s, p.cx, p.c0, p.c1, p.k, x, eps, z,
                        prev, n);
      break;
  }
}

// True when all n floats are finite (a read-only pass; the values are not touched).
inline bool all_finite(const float* x, size_t n, int threads) {
  std::atomic<bool> ok{true};
  parallel_for(n, threads, kParallelGrain, kTile, [&](size_t b, size_t e) {
    uint32_t bad = 0;
    for (size_t j = b; j < e; ++j) bad |= (float_bits(x[j]) & 0x7F800000u) == 0x7F800000u;
    if (bad) ok.store(false, std::memory_order_relaxed);
  });
  return ok.load();
}

}  // namespace detail

// Global noise position of a sampling run: z of update i is randn(seed, i + 1, offset + j).
struct NoiseKey {
  uint64_t seed = 0;
  uint64_t offset = 0;  // sample_offset · per-sample size
};

// Applies one planned update to x (n elements) in place; z drawn for noise step `step`.
// prev: n floats of DpmSolver state (x̂0 of the previous step, overwritten with this step's);
// nullptr for the other forms.
inline void apply_step(const StepPlan& p, float* x, const float* eps, const NoiseKey& key,
                       uint64_t step, size_t n, int threads, float* prev = nullptr) {
  parallel_for(n, threads, kParallelGrain, detail::kTile, [&](size_t b, size_t e) {
    float* prev_b = prev == nullptr ? nullptr : prev + b;
    if (!p.noise) {
      detail::step_chunk(p, x + b, eps + b, nullptr, prev_b, e - b);
      return;
    }
    float z[detail::kTile];
    for (size_t j = b; j < e;) {  // sub-chunks on the global tile grid of the noise
      const size_t len = std::min<size_t>(e - j, detail::kTile - (key.offset + j) % detail::kTile);
      randn_fill(key.seed, step, key.offset + j, z, len);
      detail::step_chunk(p, x + j, eps + j, z, prev == nullptr ? nullptr : prev + j, len);
      j += len;
    }
  });
}

// Runs the reverse loop on x (batch × per_sample floats, holding x_T on entry, x_0 clamped to
// [−1, 1] on exit). Per update i:
//   capture[i] (if not null) receives a copy of x before the update;
//   t_buf[0..batch) is filled with float(t); denoise() returns ε̂ (batch × per_sample floats,
//   valid until the next call; may throw);
//   progress(i + 1, total) runs every `progress_every` updates and after the last (may throw).
template <class Denoise, class Progress>
void reverse_loop(const std::vector<StepPlan>& plan, float* x, float* t_buf, size_t batch,
                  size_t per_sample, const NoiseKey& key, int threads, int64_t progress_every,
                  const std::vector<float*>& capture, Denoise&& denoise, Progress&& progress) {
  const size_t n = batch * per_sample;
  const int64_t total = static_cast<int64_t>(plan.size());
  std::vector<float> scratch;
  std::vector<float> x0_prev;  // DpmSolver state: the previous step's x̂0 (written every step)
  if (std::any_of(plan.begin(), plan.end(), [](const StepPlan& p) {
        return p.form == Form::DpmSolver;
      }))
    x0_prev.resize(n);
  float* prev = x0_prev.empty() ? nullptr : x0_prev.data();
  for (size_t i = 0; i < plan.size(); ++i) {
    if (i < capture.size() && capture[i] != nullptr)
      std::memcpy(capture[i], x, n * sizeof(float));
    std::fill(t_buf, t_buf + batch, static_cast<float>(plan[i].t));
    const float* eps = denoise();
    const auto lo = reinterpret_cast<uintptr_t>(x), hi = lo + n * sizeof(float);
    const auto e_lo = reinterpret_cast<uintptr_t>(eps), e_hi = e_lo + n * sizeof(float);
    if (e_lo < hi && lo < e_hi) {  // ε̂ aliases x (a denoiser returning its input)
      scratch.assign(eps, eps + n);
      eps = scratch.data();
    }
    apply_step(plan[i], x, eps, key, static_cast<uint64_t>(i) + 1, n, threads, prev);
    if (!detail::all_finite(x, n, threads))
      throw NonFiniteError("sampling produced NaN or infinity at step " + std::to_string(i + 1) +
                           " of " + std::to_string(plan.size()) + " (t = " +
                           std::to_string(plan[i].t) +
                           "): the denoiser returned non-finite values (a broken or "
                           "mis-exported model?)");
    const int64_t done = static_cast<int64_t>(i) + 1;
    if (done % progress_every == 0 || done == total) progress(done, total);
  }
  parallel_for(n, threads, kParallelGrain, detail::kTile, [&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) x[j] = detail::clamp1(x[j]);
  });
}

}  // namespace lf
