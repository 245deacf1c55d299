"""Timestep lists for the reverse process (numpy only; train/schedule.py uses these too)."""
from __future__ import annotations

import numpy as np

SCHEDULE_ARRAYS = ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev",
                   "posterior_variance")
# The multistep DPM-Solver++ methods of the C++ loop; they step on linspace_timesteps.
SOLVER_METHODS = ("dpmpp-2m", "sde-dpmpp-2m")


def ddim_timesteps(num_timesteps: int, steps: int) -> np.ndarray:
    """``steps`` evenly spaced timesteps from T−1 down to 0 (Song et al. 2021), int64."""
    T = int(num_timesteps)
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    if steps == 1:
        return np.array([T - 1], dtype=np.int64)
    return np.unique(np.round(np.linspace(0, T - 1, steps)).astype(np.int64))[::-1].copy()


def linspace_timesteps(num_timesteps: int, steps: int) -> np.ndarray:
    """``steps`` timesteps from T−1 down, int64: diffusers' ``timestep_spacing="linspace"``,
    round(linspace(0, T−1, steps + 1)) reversed without its final 0 (T = 1000, steps = 10:
    999, 899, …, 100). The multistep solvers take their last step from the final timestep
    to x_0 itself, so 0 is not listed.

    steps must be in [2, T−1]: the solvers need two steps (one to start the multistep
    history, one to finish at x_0), and at steps = T the rounding repeats a timestep (the
    grid spacing drops below 1), which a strictly descending schedule cannot hold."""
    T = int(num_timesteps)
    try:
        n = int(steps)
    except (TypeError, ValueError):
        n = None
    if n is None or isinstance(steps, (bool, str)) or n != steps or not 2 <= n <= T - 1:
        raise ValueError(f"steps must be an integer in [2, T-1] = [2, {T - 1}] for "
                         f"{T} training timesteps, got {steps!r}")
    return np.linspace(0, T - 1, n + 1).round()[::-1][:-1].astype(np.int64)


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
