"""Image grids and strips as PNG (pillow only, so the runtime can share the layout)."""
from __future__ import annotations

from latentforge.runtime.images import save_grid as _save_grid


def save_grid(x, path, nrow: int | None = None) -> None:
    """x: torch or numpy (B, 1, 28, 28) in [0, 1] → PNG grid."""
    x = x.detach().cpu().numpy() if hasattr(x, "detach") else x
    _save_grid(x, path, nrow=nrow)
