"""Image I/O for the runtime: grids to PNG, PNG/paths/arrays to (B, 1, 28, 28) float32."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def make_grid(x: np.ndarray, nrow: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """(B, 1, H, W) floats in [0, 1] → uint8 (rows·(H+pad)+pad, cols·(W+pad)+pad) image."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected images of shape (B, 1, H, W), got {x.shape}")
    b, _, h, w = x.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    rows = math.ceil(b / nrow)
    grid = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32)
    for i in range(b):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h,
             pad + c * (w + pad): pad + c * (w + pad) + w] = x[i, 0]
    img = (np.clip(np.nan_to_num(grid), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return img.repeat(scale, 0).repeat(scale, 1) if scale > 1 else img


def save_grid(x, path, nrow: int | None = None, scale: int = 2) -> Path:
    """Write a grid PNG atomically (a uniquely named temp file beside it + rename; only a
    regular file is ever replaced; see outputs.py)."""
    from PIL import Image

    from .outputs import atomic_output

    path = Path(path)
    image = Image.fromarray(make_grid(x, nrow=nrow, scale=scale))
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG")
    return path
