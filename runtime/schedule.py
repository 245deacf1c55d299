"""Timestep lists for the reverse process (numpy only; train/schedule.py uses these too)."""
from __future__ import annotations

import numpy as np

SCHEDULE_ARRAYS = ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev",
                   "posterior_variance")


def ddim_timesteps(num_timesteps: int, steps: int) -> np.ndarray:
    """``steps`` evenly spaced timesteps from T−1 down to 0 (Song et al. 2021), int64."""
    T = int(num_timesteps)
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    if steps == 1:
        return np.array([T - 1], dtype=np.int64)
    return np.unique(np.round(np.linspace(0, T - 1, steps)).astype(np.int64))[::-1].copy()


def schedule_arrays(schedule: dict) -> dict[str, np.ndarray]:
    """The float32 arrays of a manifest's schedule, checked for equal length T."""
    missing = [k for k in SCHEDULE_ARRAYS if k not in schedule]
    if missing:
        raise ValueError(f"schedule lacks {missing}")
    arrays = {k: np.ascontiguousarray(schedule[k], dtype=np.float32) for k in SCHEDULE_ARRAYS}
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"schedule arrays have different lengths {sorted(lengths)}")
    return arrays
