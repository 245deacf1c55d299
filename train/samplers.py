"""Reference reverse-process samplers in PyTorch, written for clarity: the parity oracle for
the C++ loop in `latentforge.runtime._core`.

Noise keys. Every sampler draws its noise from an injectable source ``noise(key, shape)``:
key 0 is x_T, key i + 1 is the fresh noise z of the i-th reverse update (i = 0 for the first,
t = T−1). The C++ loop uses the same keys as the ``step`` argument of its counter-based
generator, so feeding ``lambda k, s: torch.from_numpy(_core.randn(seed, s, step=k))`` here
reproduces it. ``noise`` may also be a tensor (K, *shape) indexed by key, or None
(``torch.randn`` with ``generator``).

``eps_model(x_t, t)`` takes x_t float32 (B, 1, 28, 28) and t float32 (B,) and returns ε̂.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from latentforge.runtime.sampling import METHODS
from latentforge.runtime.schedule import SOLVER_METHODS, linspace_timesteps

from .schedule import NoiseSchedule

NoiseSource = Callable[[int, tuple], torch.Tensor]


def make_noise_source(noise=None, generator: torch.Generator | None = None) -> NoiseSource:
    if noise is None:
        return lambda key, shape: torch.randn(shape, generator=generator)
    if isinstance(noise, torch.Tensor):
        return lambda key, shape: noise[key].reshape(shape)
    if callable(noise):
        return lambda key, shape: torch.as_tensor(noise(key, tuple(shape)), dtype=torch.float32)
    raise TypeError(f"noise must be None, a tensor or a callable, got {type(noise).__name__}")


def ancestral_step(s: NoiseSchedule, x, eps, t: int, z):
    """The course's update. t > 0: x_{t−1} = (x_t − β_t/√(1−ᾱ_t)·ε)/√α_t + √β_t·z;
    t = 0: x_0 = (x_t − √(1−ᾱ_0)·ε)/√ᾱ_0 (no noise)."""
    b, a, ac = (float(s.betas[t]), float(s.alphas[t]), float(s.alphas_cumprod[t]))
    if t == 0:
        return (x - math.sqrt(1.0 - ac) * eps) / math.sqrt(ac)
    return (x - b / math.sqrt(1.0 - ac) * eps) / math.sqrt(a) + math.sqrt(b) * z


def predict_x0(s: NoiseSchedule, x, eps, t: int, clip: bool):
    """x̂_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t (Ho et al. eq. 4 solved for x_0)."""
    ac = float(s.alphas_cumprod[t])
    x0 = (x - math.sqrt(1.0 - ac) * eps) / math.sqrt(ac)
    return x0.clamp(-1.0, 1.0) if clip else x0


def ddpm_step(s: NoiseSchedule, x, eps, t: int, z, clip_x0: bool = False):
    """Posterior q(x_{t−1} | x_t, x̂_0) (Ho et al. eq. 6–7): mean μ̃ = c0·x̂_0 + ct·x_t with
    c0 = √ᾱ_{t−1} β_t/(1−ᾱ_t), ct = √α_t (1−ᾱ_{t−1})/(1−ᾱ_t); variance σ² = β̃_t; no noise at
    t = 0. Without clipping this equals eq. 11."""
    b, a = float(s.betas[t]), float(s.alphas[t])
    ac, ac_prev = float(s.alphas_cumprod[t]), float(s.alphas_cumprod_prev[t])
    x0 = predict_x0(s, x, eps, t, clip_x0)
    mean = (math.sqrt(ac_prev) * b / (1.0 - ac)) * x0 + (math.sqrt(a) * (1.0 - ac_prev)
                                                         / (1.0 - ac)) * x
    if t == 0:
        return mean
    return mean + math.sqrt(float(s.posterior_variance[t])) * z


def ddim_step(s: NoiseSchedule, x, eps, t: int, t_prev: int, z, eta: float = 0.0,
              clip_x0: bool = False):
    """Song et al. 2021 eq. 12: x_{t'} = √ᾱ_{t'} x̂_0 + √(1 − ᾱ_{t'} − σ²) ε + σ z with
    σ = η √((1−ᾱ_{t'})/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t'}); t' = −1 means ᾱ_{t'} = 1.

    With clip_x0, ε is re-derived from the clipped x̂_0, ε = (x_t − √ᾱ_t x̂_0)/√(1−ᾱ_t), as
    GLIDE does (diffusers' use_clipped_model_output): pairing a clipped x̂_0 with the raw ε
    lets a large ε feed back into x and diverge."""
    ac = float(s.alphas_cumprod[t])
    ac_prev = float(s.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
    x0 = predict_x0(s, x, eps, t, clip_x0)
    if clip_x0:
        eps = (x - math.sqrt(ac) * x0) / math.sqrt(1.0 - ac)
    sigma = eta * math.sqrt((1.0 - ac_prev) / (1.0 - ac)) * math.sqrt(1.0 - ac / ac_prev)
    out = math.sqrt(ac_prev) * x0 + math.sqrt(max(1.0 - ac_prev - sigma ** 2, 0.0)) * eps
    return out + sigma * z if sigma > 0 else out


def solver_scalars(s: NoiseSchedule, t: int) -> tuple[float, float, float]:
    """(α_t, σ_t, λ_t) in double: α_t = √ᾱ_t, σ_t = √(1−ᾱ_t), λ_t = log α_t − log σ_t (half
    the log-SNR). t = −1 stands for x_0 itself: α = 1, σ = 0, λ = +∞."""
    if t < 0:
        return 1.0, 0.0, math.inf
    ac = float(s.alphas_cumprod[t])
    alpha, sigma = math.sqrt(ac), math.sqrt(1.0 - ac)
    return alpha, sigma, math.log(alpha) - math.log(sigma)


def dpmpp_2m_step(s: NoiseSchedule, x, eps, t: int, t_next: int, t_prev: int | None = None,
                  x0_prev=None, z=None, sde: bool = False):
    """One step of multistep DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095, Algorithm
    2), or with ``sde=True`` of SDE-DPM-Solver++(2M) (its reverse-diffusion-SDE variant, by
    the same first author in diffusers' DPMSolverMultistepScheduler, PR #3344), from t to
    t_next (−1: to x_0). Returns (x_{t_next}, x̂0_t); pass that x̂0_t as ``x0_prev`` and t as
    ``t_prev`` to the next step.

    With α, σ, λ of ``solver_scalars``, x̂0_t = (x_t − σ_t ε̂)/α_t and h = λ_{t_next} − λ_t:
      first order (no t_prev, or the step to x_0; for the ODE this is DDIM), D = x̂0_t:
        ODE: x' = (σ_{t_next}/σ_t)·x_t − α_{t_next}(e^{−h} − 1)·D
        SDE: x' = (σ_{t_next}/σ_t)e^{−h}·x_t + α_{t_next}(1 − e^{−2h})·D
                  + σ_{t_next}√(1 − e^{−2h})·z
      second order, r = (λ_t − λ_{t_prev})/h: the same with Algorithm 2's
        D = (1 + 1/(2r))·x̂0_t − 1/(2r)·x̂0_prev   (= D0 + ½·D1 with D0 = x̂0_t,
                                                    D1 = (x̂0_t − x̂0_prev)/r: "midpoint").
    Every scalar factor is computed in double (Python floats) and multiplies float32 tensors,
    x' = cx·x_t + c0·x̂0_t [+ c1·x̂0_prev] [+ k·z] in that order, as the C++ loop applies its
    plan (csrc/dpm_solver.hpp), so the two agree to rounding over a whole run.
    The step to x_0 (σ = 0, e^{−h} = 0) returns x̂0_t exactly and uses no z. As diffusers with
    solver_order=2, solver_type="midpoint", final_sigmas_type="zero", lower_order_final=True.
    """
    alpha, sigma, lam = solver_scalars(s, t)
    x0 = predict_x0(s, x, eps, t, clip=False)
    if t_next < 0:
        return x0, x0
    alpha_n, sigma_n, lam_n = solver_scalars(s, t_next)
    h = lam_n - lam
    w = -math.expm1(-2.0 * h) if sde else -math.expm1(-h)  # 1 − e^{−2h} or 1 − e^{−h}
    g = alpha_n * w                                          # D's weight
    cx = sigma_n / sigma * (math.exp(-h) if sde else 1.0)
    if t_prev is None:
        out = cx * x + g * x0
    else:
        r = (lam - solver_scalars(s, t_prev)[2]) / h
        out = cx * x + (g * (1.0 + 0.5 / r)) * x0 + (-g * (0.5 / r)) * x0_prev
    if sde:
        out = out + (sigma_n * math.sqrt(w)) * z
    return out, x0


def _solver_timesteps(schedule: NoiseSchedule, method: str, timesteps, steps, eta, clip_x0):
    if eta != 0 or clip_x0:
        raise ValueError(f"method {method!r} takes neither eta nor clip_x0")
    if timesteps is None:
        if steps is None:
            raise ValueError(f"pass steps or timesteps for method {method!r}")
        timesteps = linspace_timesteps(schedule.num_timesteps, steps)
    if len(timesteps) < 2:
        raise ValueError(f"steps must be >= 2 for {method} (got {len(timesteps)} timestep)")
    return timesteps


@torch.no_grad()
def sample(eps_model, schedule: NoiseSchedule, n: int, method: str = "ancestral",
           timesteps=None, steps: int | None = None, eta: float = 0.0, clip_x0: bool = False,
           noise=None, generator: torch.Generator | None = None, x_T=None,
           capture=(), progress: Callable[[int, int], None] | None = None):
    """Run the reverse process from x_T ~ N(0, I) and return (x_0 clamped to [−1, 1],
    {t: x_t captured before the update at t}).

    timesteps: descending list; default all T for ancestral/ddpm, ``steps`` evenly spaced
    (T−1 first) for ddim, ``linspace_timesteps(T, steps)`` for the solvers (steps required).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    T = schedule.num_timesteps
    if method in SOLVER_METHODS:
        timesteps = _solver_timesteps(schedule, method, timesteps, steps, eta, clip_x0)
    elif timesteps is None:
        timesteps = (schedule.ddim_timesteps(steps or T) if method == "ddim"
                     else np.arange(T - 1, -1, -1))
    timesteps = [int(t) for t in timesteps]
    shape = (n, 1, 28, 28)
    draw = make_noise_source(noise, generator)
    x = draw(0, shape).float() if x_T is None else torch.as_tensor(x_T).float().clone()
    captured = {}
    x0_prev = None  # the solvers' previous x̂0
    for i, t in enumerate(timesteps):
        if t in capture:
            captured[t] = x.clone()
        eps = eps_model(x, torch.full((n,), float(t)))
        is_last = i == len(timesteps) - 1
        if method in SOLVER_METHODS:
            needs_z = method == "sde-dpmpp-2m" and not is_last
        else:
            needs_z = ((method != "ddim" and t > 0)
                       or (method == "ddim" and eta > 0 and not is_last))
        z = draw(i + 1, shape).float() if needs_z else None
        if method in SOLVER_METHODS:
            x, x0_prev = dpmpp_2m_step(schedule, x, eps, t, -1 if is_last else timesteps[i + 1],
                                       timesteps[i - 1] if i > 0 else None, x0_prev, z,
                                       sde=method == "sde-dpmpp-2m")
        elif method == "ancestral":
            x = ancestral_step(schedule, x, eps, t, z)
        elif method == "ddpm":
            x = ddpm_step(schedule, x, eps, t, z, clip_x0)
        else:
            t_prev = timesteps[i + 1] if not is_last else -1
            x = ddim_step(schedule, x, eps, t, t_prev, z, eta, clip_x0)
        if progress is not None:
            progress(i + 1, len(timesteps))
    return x.clamp(-1.0, 1.0), captured
