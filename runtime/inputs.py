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
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give image files (or .npy arrays)")
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{path} is not a readable .npy array: {e}") from e
        try:
            return as_images(arr)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{path}: {e}") from e
    return _decode(path, str(path))


def image_from_bytes(data: bytes, what: str = "image") -> np.ndarray:
    """The bytes of an image file (PNG, JPEG, …) → (1, 1, 28, 28), by the same rules as a
    path; ``what`` names it in errors (a corpus reader passes the file's path)."""
    import io

    return _decode(io.BytesIO(data), what)


def _decode(source, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as im:
            return _from_pil(im, what)
    except UnidentifiedImageError as e:
        raise ValueError(f"{what} is not an image file pillow can read") from e
    except (OSError, SyntaxError) as e:  # truncated or corrupt image data
        raise ValueError(f"{what} is a damaged image file ({e})") from e


# pillow modes with more than 8 bits per pixel: their samples' full range
HIGH_DEPTH = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0}


def _from_pil(im, what: str = "PIL image") -> np.ndarray:
    """8-bit images are /255; 16-bit ones /65535; 32-bit integer or float ones by the
    type's range (uint32-like "I") or as [0, 1] floats ("F") — never clipped to 8 bits."""
    if im.size != (SIDE, SIDE):
        raise ValueError(f"{what} is {im.size[0]}x{im.size[1]}; the models take 28x28 images")
    if im.mode in HIGH_DEPTH:
        return np.asarray(im, dtype=np.float32)[None, None] / np.float32(HIGH_DEPTH[im.mode])
    if im.mode == "I":  # 32-bit integer: pillow's 16-bit PNGs often arrive as "I"
        arr = np.asarray(im, dtype=np.int64)
        top = 65535.0 if arr.max(initial=0) <= 65535 and arr.min(initial=0) >= 0 else None
        if top is None:
            raise ValueError(f"{what}: 32-bit integer pixels outside 0-65535 are not supported")
        return (arr.astype(np.float32) / np.float32(top))[None, None]
    if im.mode == "F":
        return as_images(np.asarray(im, dtype=np.float32))
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
    if arr.dtype == object or np.iscomplexobj(arr) or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
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
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
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
