"""Turn what users hand us into float32 (B, 1, 28, 28) images in [0, 1], or say clearly why not.

Accepted: uint8 arrays (values 0–255), float arrays in [0, 1], of shape (28, 28), (B, 28, 28)
or (B, 1, 28, 28); PIL images; paths to image files (PNG, JPEG, … — 28×28 grayscale or
converted to it) or to ``.npy`` arrays; lists of any of these.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SIDE = 28


def _is_pathlike(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def _load_path(p) -> np.ndarray:
    path = Path(p)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    if path.suffix.lower() == ".npy":
        return as_images(np.load(path, allow_pickle=False))
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return _from_pil(im, str(path))
    except UnidentifiedImageError as e:
        raise ValueError(f"{path} is not an image file pillow can read") from e


def _from_pil(im, what: str = "PIL image") -> np.ndarray:
    if im.size != (SIDE, SIDE):
        raise ValueError(f"{what} is {im.size[0]}x{im.size[1]}; the models take 28x28 images")
    return np.asarray(im.convert("L"), dtype=np.float32)[None, None] / 255.0


def as_images(inputs) -> np.ndarray:
    """Any accepted input → float32 (B, 1, 28, 28) in [0, 1] (C-contiguous)."""
    if _is_pathlike(inputs):
        return _load_path(inputs)
    if hasattr(inputs, "convert") and hasattr(inputs, "size"):  # a PIL image
        return _from_pil(inputs)
    if isinstance(inputs, (list, tuple)) and inputs and not isinstance(inputs[0], (int, float)):
        if all(_is_pathlike(i) or hasattr(i, "convert") for i in inputs):
            return np.concatenate([as_images(i) for i in inputs])
    if isinstance(inputs, (list, tuple)) and not inputs:
        raise ValueError("empty batch: no images given")
    arr = np.asarray(inputs)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise TypeError(f"cannot read images from {type(inputs).__name__} of dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1:] != (1, SIDE, SIDE):
        raise ValueError(f"images must have shape (28, 28), (B, 28, 28) or (B, 1, 28, 28); "
                         f"got {tuple(np.shape(inputs))}")
    if arr.shape[0] == 0:
        raise ValueError("empty batch: no images given")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr, dtype=np.float32) / np.float32(255.0)
    if np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"integer images must be uint8 (0-255), got {arr.dtype}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError("images contain NaN or infinity")
    if out.min() < -1e-6 or out.max() > 1 + 1e-6:
        raise ValueError(f"float images must be in [0, 1] (got values in "
                         f"[{out.min():.3g}, {out.max():.3g}]); pass uint8 for 0-255 data")
    return np.clip(out, 0.0, 1.0)


def as_latents(z, latent_dim: int) -> np.ndarray:
    """(B, K) or (K,) latent codes → float32 (B, K), checked against the model's size."""
    arr = np.asarray(z)
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"latent codes must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != latent_dim:
        raise ValueError(f"latent codes must have shape (B, {latent_dim}), got {np.shape(z)}")
    if arr.shape[0] == 0:
        raise ValueError("empty batch: no latent codes given")
    if not np.isfinite(arr).all():
        raise ValueError("latent codes contain NaN or infinity")
    return arr
