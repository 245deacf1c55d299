"""Image grids and strips as PNG (pillow only, so the runtime can share the layout)."""
from __future__ import annotations

from latentforge.runtime.images import save_grid as _save_grid


def save_grid(x, path, nrow: int | None = None) -> None:
    """x: torch or numpy (B, 1, 28, 28) in [0, 1] → PNG grid."""
    x = x.detach().cpu().numpy() if hasattr(x, "detach") else x
    _save_grid(x, path, nrow=nrow)


def forward_strip(x0, schedule, path, timesteps=tuple(range(0, 1000, 100)) + (999,), seed=0):
    """One digit x0 (1, 1, 28, 28) in [−1, 1] noised by q(x_t | x_0) at each t (Ho et al.
    eq. 4), left to right."""
    import torch

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=g)
    ts = [t for t in timesteps if t < schedule.num_timesteps]
    xs = [schedule.q_sample(x0, torch.tensor([t]), noise) for t in ts]
    save_grid((torch.cat(xs).clamp(-1, 1) + 1) / 2, path, nrow=len(xs))
    return ts


def reverse_strip(eps_model, schedule, path, n=4, seed=0,
                  timesteps=(999, 800, 600, 400, 300, 200, 100, 50, 20, 0)):
    """n rows, each x_t of one ancestral reverse chain from noise (left) to the digit (right)."""
    import torch

    from .samplers import sample

    g = torch.Generator().manual_seed(seed)
    x0, cap = sample(eps_model, schedule, n, "ancestral", generator=g, capture=timesteps)
    cols = [cap[t].clamp(-1, 1) for t in sorted(cap, reverse=True)] + [x0]
    grid = torch.stack(cols, dim=1).reshape(-1, 1, 28, 28)  # row-major: one chain per row
    save_grid((grid + 1) / 2, path, nrow=len(cols))
