"""What every loaded model shares: manifest fields, the [0, 1] ↔ network range mapping, and
the argument checks of the sampling methods (count, batch size, seed, output budget)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .checks import check_int
from .inputs import as_images

# sample() returns one array; above this many bytes of output it refuses and points at the
# streaming form (iter_samples, or `latentforge sample --npy` through a memory-mapped file)
SAMPLE_MEMORY_BUDGET = 1 << 30  # 1 GiB = 342,392 digits of float32 (1, 28, 28)
DIGIT_BYTES = 28 * 28 * 4


class Model:
    def __init__(self, directory: Path, manifest: dict, sessions: dict):
        self.directory, self.manifest, self.sessions = Path(directory), manifest, sessions
        self.name, self.kind = manifest["name"], manifest["kind"]
        self.scaling = manifest["scaling"]
        self.latent_dim = manifest.get("latent_dim")
        self.metrics = manifest.get("metrics", {})
        self.last_seed: int | None = None  # the seed of the latest sample()/iter_samples()

    @property
    def provider(self) -> str:
        """The execution provider onnxruntime actually chose."""
        return next(iter(self.sessions.values())).get_providers()[0]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.provider}>"

    def _in(self, images) -> np.ndarray:  # [0, 1] → the network's input range
        x = as_images(images)
        return x * 2.0 - 1.0 if self.scaling == "symmetric" else x

    def _out(self, x: np.ndarray) -> np.ndarray:  # the network's range → [0, 1]
        if self.scaling == "symmetric":
            x = (x + 1.0) * 0.5
        return np.clip(x, 0.0, 1.0).astype(np.float32, copy=False)


def _batch(batch_size) -> int:
    return check_int(batch_size, "batch_size", low=1, high=1 << 20)


def _check_n(n) -> int:
    return check_int(n, "n", low=1)


def _check_budget(n_images: int, what: str) -> int:
    need = n_images * DIGIT_BYTES
    if need > SAMPLE_MEMORY_BUDGET:
        raise ValueError(
            f"{what}.sample would hold {n_images:,} images = {need / 2**30:,.1f} GiB, over its "
            f"{SAMPLE_MEMORY_BUDGET / 2**30:.0f} GiB budget; stream them instead with "
            f"{what}.iter_samples(n, ...) (batches, bitwise equal), or `latentforge sample "
            f"MODEL -n N --npy out.npy` (written through a memory-mapped .npy)")
    return n_images


def _seed(seed) -> int:
    if seed is None:
        return int.from_bytes(os.urandom(8), "little") >> 1
    return check_int(seed, "seed", low=0, high=2**64 - 1)
