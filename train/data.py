"""MNIST from a directory of IDX files (the original distribution's byte layout).

Where the data comes from, in order: ``--data-dir``, then ``$LATENTFORGE_DATA``, then
torchvision's download (for users who are online). Files may be gzip-compressed or raw.

Splits: train / validation (held out from the official 60k with a seed) / test (official 10k).
"""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV_VAR = "LATENTFORGE_DATA"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MAGIC_IMAGES = 0x00000803  # unsigned byte, 3 dimensions
MAGIC_LABELS = 0x00000801  # unsigned byte, 1 dimension
HOW_TO_FIX = (f"pass --data-dir DIR or set {ENV_VAR}=DIR, where DIR holds the four MNIST IDX files "
              f"({', '.join(FILES.values())}, optionally .gz)")


class DataError(ValueError):
    """Missing or corrupt MNIST data; the message names the path and how to fix it."""


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"MNIST file {stem}[.gz] not found in {directory}: {HOW_TO_FIX}")


def read_idx(path: str | os.PathLike, expect_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip or raw) into a uint8 array, checking magic number and size."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read IDX file {path}: {e}. {HOW_TO_FIX}") from e
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is truncated ({len(raw)} bytes, no header)")
    magic = struct.unpack(">I", raw[:4])[0]
    if expect_magic is not None and magic != expect_magic:
        raise DataError(f"IDX file {path} has wrong magic number 0x{magic:08x} "
                        f"(expected 0x{expect_magic:08x}): not an MNIST file or corrupt")
    if magic >> 8 != 0x08:  # only unsigned-byte payloads are used by MNIST
        raise DataError(f"IDX file {path} has unsupported magic number 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated (header needs {header} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape)) + header
    if len(raw) != expected:
        raise DataError(f"IDX file {path} is truncated or padded: {len(raw)} bytes, "
                        f"header says shape {shape} ({expected} bytes)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@dataclass
class MNISTArrays:
    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The directory to read: the argument, else $LATENTFORGE_DATA, else None (download)."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or None
    return None if data_dir is None else Path(data_dir).expanduser()


def load_mnist(data_dir: str | os.PathLike | None = None) -> MNISTArrays:
    """Load the four MNIST arrays from ``data_dir`` / $LATENTFORGE_DATA / torchvision download."""
    directory = resolve_data_dir(data_dir)
    if directory is None:
        return _download_with_torchvision()
    if not directory.is_dir():
        raise DataError(f"MNIST data directory {directory} does not exist: {HOW_TO_FIX}")
    arrays = {}
    for key, stem in FILES.items():
        magic = MAGIC_IMAGES if key.endswith("images") else MAGIC_LABELS
        arrays[key] = read_idx(_find(directory, stem), magic)
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(f"{directory}: {split} has {n_img} images but {n_lab} labels")
        if arrays[f"{split}_images"].shape[1:] != (28, 28):
            raise DataError(f"{directory}: {split} images are not 28x28")
    return MNISTArrays(**arrays)


def _download_with_torchvision() -> MNISTArrays:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "latentforge"
    try:
        from torchvision.datasets import MNIST
        sets = [MNIST(str(root), train=t, download=True) for t in (True, False)]
    except Exception as e:  # offline, or torchvision missing
        raise DataError(f"no data directory given and torchvision download into {root} failed "
                        f"({e}): {HOW_TO_FIX}") from e
    return MNISTArrays(sets[0].data.numpy(), sets[0].targets.numpy().astype(np.uint8),
                       sets[1].data.numpy(), sets[1].targets.numpy().astype(np.uint8))


@dataclass
class Split:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) uint8

    def __len__(self) -> int:
        return len(self.images)


def load_splits(data_dir=None, val_size: int = 10_000, seed: int = 0,
                limit: int | None = None,
                exclude_digits: tuple[int, ...] | None = None) -> dict[str, Split]:
    """train / val (held out from the 60k with ``seed``) / test (the official 10k).

    ``exclude_digits`` removes those classes from train and val (not from test: the held-out
    class is what an anomaly detector is scored on); the split of the other images is the
    same as without it. ``limit`` caps every split (for dry runs and quick tests), after the
    exclusion.
    """
    m = load_mnist(data_dir)
    n = len(m.train_images)
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be in [0, {n}), got {val_size}")
    perm = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(perm[:val_size]), np.sort(perm[val_size:])
    splits = {
        "train": Split(m.train_images[train_idx], m.train_labels[train_idx]),
        "val": Split(m.train_images[val_idx], m.train_labels[val_idx]),
        "test": Split(m.test_images, m.test_labels),
    }
    if exclude_digits:
        drop = np.asarray(check_digits(exclude_digits, "exclude_digits"), dtype=np.uint8)
        for k in ("train", "val"):
            keep = ~np.isin(splits[k].labels, drop)
            splits[k] = Split(splits[k].images[keep], splits[k].labels[keep])
    if limit is not None:
        splits = {k: Split(s.images[:limit], s.labels[:limit]) for k, s in splits.items()}
    return splits


def check_digits(digits, what: str = "--exclude-digits") -> tuple[int, ...]:
    """Distinct class labels 0–9, not all ten, as a sorted tuple; else ValueError."""
    values = tuple(int(d) for d in digits)
    bad = [d for d in values if not 0 <= d <= 9]
    if bad:
        raise ValueError(f"{what} takes digits 0-9, got {bad[0]}")
    if len(set(values)) == 10:
        raise ValueError(f"{what} would remove every class; leave at least one digit")
    return tuple(sorted(set(values)))


# ---------------------------------------------------------------- scaling and input noise
SCALINGS = ("unit", "symmetric")  # [0, 1] for AE/VAE, [-1, 1] for the DDPM


def to_float(images_u8, scaling: str = "unit"):
    """uint8 (N, 28, 28) → float32 (N, 1, 28, 28) in [0, 1] ("unit") or [-1, 1] ("symmetric")."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    x = np.asarray(images_u8, dtype=np.float32)[:, None] / 255.0
    return x if scaling == "unit" else x * 2.0 - 1.0


NOISE_KINDS = ("none", "gaussian", "uniform")


def add_input_noise(x, kind: str, level: float, generator=None, low: float = 0.0,
                    high: float = 1.0):
    """Corrupt a torch batch for denoising: gaussian (std=level) or uniform (±level), clipped."""
    import torch

    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
    if kind == "none" or level == 0:
        return x
    if level < 0:
        raise ValueError(f"noise level must be >= 0, got {level}")
    if kind == "gaussian":
        noise = torch.randn(x.shape, generator=generator, device=x.device) * level
    else:
        noise = (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * level
    return (x + noise).clamp(low, high)
