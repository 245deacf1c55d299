"""The DDPM noise schedule: a plain object shared by training (`q_sample`) and sampling.

Computed once in float64 and stored in float32 (what the ONNX metadata carries and the C++
loop receives). Notation of Ho et al. 2020: β_t, α_t = 1 − β_t, ᾱ_t = ∏_{s≤t} α_s, and the
posterior variance β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) (eq. 7). Timesteps are 0-based:
t = 0 … T−1.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from latentforge.runtime.schedule import SCHEDULE_ARRAYS, ddim_timesteps

SCHEDULE_KINDS = ("linear", "cosine")


@dataclass
class ScheduleConfig:
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    kind: str = "linear"  # "linear" (Ho et al. 2020) or "cosine" (Nichol & Dhariwal 2021)


def make_betas(config: ScheduleConfig) -> np.ndarray:
    """β_1..β_T in float64."""
    if config.kind not in SCHEDULE_KINDS:
        raise ValueError(f"schedule kind must be one of {SCHEDULE_KINDS}, got {config.kind!r}")
    T = int(config.num_timesteps)
    if T < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {T}")
    if config.kind == "linear":
        if not 0 < config.beta_start <= config.beta_end < 1:
            raise ValueError("need 0 < beta_start <= beta_end < 1, got "
                             f"{config.beta_start}, {config.beta_end}")
        return np.linspace(config.beta_start, config.beta_end, T, dtype=np.float64)
    s = 0.008  # cosine: ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2), β clipped at 0.999
    f = np.cos((np.arange(T + 1, dtype=np.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
    return np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)


class NoiseSchedule:
    """betas, alphas, alphas_cumprod, alphas_cumprod_prev, posterior_variance: float32 (T,)."""

    ARRAYS = SCHEDULE_ARRAYS

    def __init__(self, config: ScheduleConfig | None = None, **kwargs):
        self.config = config or ScheduleConfig(**kwargs)
        betas = make_betas(self.config)  # float64 throughout, rounded once at the end
        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.concatenate([[1.0], alphas_cumprod[:-1]])
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        self.float64 = dict(betas=betas, alphas=alphas, alphas_cumprod=alphas_cumprod,
                            alphas_cumprod_prev=alphas_cumprod_prev,
                            posterior_variance=posterior_variance)
        for name, arr in self.float64.items():
            setattr(self, name, arr.astype(np.float32))

    @property
    def num_timesteps(self) -> int:
        return self.config.num_timesteps

    def to_dict(self) -> dict:
        """Config plus the float32 arrays as lists (for checkpoints and ONNX metadata)."""
        return {"config": asdict(self.config),
                **{name: getattr(self, name).tolist() for name in self.ARRAYS}}

    def q_sample(self, x0, t, noise):
        """Forward process q(x_t | x_0) (Ho et al. eq. 4): √ᾱ_t x_0 + √(1 − ᾱ_t) ε.

        x0, noise: torch (B, ...); t: int64 (B,)."""
        import torch

        ac = torch.as_tensor(self.alphas_cumprod, device=x0.device)[t]  # (B,)
        ac = ac.reshape(-1, *([1] * (x0.dim() - 1)))
        return ac.sqrt() * x0 + (1.0 - ac).sqrt() * noise

    add_noise = q_sample  # diffusers' name

    def snr(self) -> np.ndarray:
        """Signal-to-noise ratio SNR(t) = ᾱ_t / (1 − ᾱ_t), float64 (T,) (Kingma et al. 2021)."""
        ac = self.float64["alphas_cumprod"]
        return ac / (1.0 - ac)

    def p2_weights(self, gamma: float, k: float = 1.0) -> np.ndarray:
        """Perception-prioritized weights λ_t = 1 / (k + SNR(t))^γ (Choi et al. 2022, eq. 8),
        float64 (T,): γ = 0 gives Ho et al.'s L_simple; γ = 1 moves the weight from the
        nearly clean steps (large SNR) to the noisy ones, where the content is decided."""
        if gamma < 0 or k <= 0:
            raise ValueError(f"P2 weighting needs gamma >= 0 and k > 0, got {gamma}, {k}")
        return (k + self.snr()) ** -gamma

    def ddim_timesteps(self, steps: int) -> np.ndarray:
        """`steps` evenly spaced timesteps from T−1 down to 0 (Song et al. 2021)."""
        return ddim_timesteps(self.num_timesteps, steps)
