"""Loaded models: `load(name_or_dir)` → Autoencoder | VAE | DDPM | Classifier.

Everything about a model (kind, scaling, latent size, schedule) comes from its manifest;
nothing is hard-coded here. Images go in and come out as float32 (B, 1, 28, 28) in [0, 1]
whatever scaling the network uses inside.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import _core
from .inputs import as_images, as_latents
from .progress import Progress
from .sampling import DEFAULT_METHOD, DEFAULT_STEPS, METHODS
from .schedule import SOLVER_METHODS, ddim_timesteps, linspace_timesteps, schedule_arrays
from .session import BoundDenoiser, make_session, run_batched

SHIPPED = Path(__file__).parent / "models"
ALIASES = {"ddpm": "ddpm-unet", "vae": "vae-conv", "ae": "ae-conv", "denoiser": "ae-conv"}


class ModelFileError(ValueError):
    """A model directory that is missing, incomplete or corrupted."""


def shipped_models() -> list[str]:
    return sorted(p.parent.name for p in SHIPPED.glob("*/manifest.json"))


def resolve(name_or_dir) -> Path:
    """A directory path, or the name (or alias) of a shipped model."""
    p = Path(name_or_dir)
    if p.is_dir():
        return p
    name = ALIASES.get(str(name_or_dir), str(name_or_dir))
    if (SHIPPED / name / "manifest.json").is_file():
        return SHIPPED / name
    choices = shipped_models() + sorted(a for a, n in ALIASES.items() if n in shipped_models())
    raise ValueError(f"unknown model {str(name_or_dir)!r}: not a directory and not a shipped "
                     f"model; valid choices: {', '.join(choices) or '(none shipped)'}")


def read_manifest(directory: Path) -> dict:
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise ModelFileError(f"{directory} has no manifest.json: not an exported model "
                             f"(make one with `latentforge export CKPT -o DIR`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path} is not valid JSON: {e}") from e


def check_file(path: Path, expected_sha256: str) -> None:
    from .hashing import sha256_file

    if not path.is_file():
        raise ModelFileError(f"model file {path} is missing")
    digest = sha256_file(path)
    if digest != expected_sha256:
        raise ModelFileError(f"model file {path} is corrupted: sha256 {digest[:16]}… "
                             f"does not match the manifest's {expected_sha256[:16]}…")


def load(name_or_dir, providers="auto", threads: int | None = None, verify: bool = True):
    """Load an exported model directory or a shipped model by name ("ddpm", "vae-conv", …).

    providers: "auto" (CUDA when onnxruntime-gpu sees a GPU, else CPU), "cpu", "cuda" or an
    explicit onnxruntime provider list. threads: intra-op threads (default: all cores).
    The sha256 of every graph is checked against the manifest unless ``verify=False``.
    """
    directory = resolve(name_or_dir)
    manifest = read_manifest(directory)
    kind = manifest.get("kind")
    if kind not in KINDS:
        raise ModelFileError(f"{directory}: unknown model kind {kind!r}; valid: {sorted(KINDS)}")
    sessions = {}
    for role, info in manifest.get("graphs", {}).items():
        path = directory / info["file"]
        if verify:
            check_file(path, info["sha256"])
        sessions[role] = make_session(path, providers, threads)
    return KINDS[kind](directory, manifest, sessions)


class Model:
    def __init__(self, directory: Path, manifest: dict, sessions: dict):
        self.directory, self.manifest, self.sessions = Path(directory), manifest, sessions
        self.name, self.kind = manifest["name"], manifest["kind"]
        self.scaling = manifest.get("scaling", "unit")
        self.latent_dim = manifest.get("latent_dim")
        self.metrics = manifest.get("metrics", {})

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


class _Latent(Model):
    """Shared by Autoencoder and VAE: decode, interpolate."""

    def decode(self, z, batch_size: int = 256) -> np.ndarray:
        """z (B, K) → images (B, 1, 28, 28) in [0, 1]."""
        z = as_latents(z, self.latent_dim)
        return self._out(run_batched(self.sessions["decoder"], {"z": z}, batch_size)[0])

    def embed(self, images, batch_size: int = 256) -> np.ndarray:
        raise NotImplementedError

    def interpolate(self, a, b, steps: int = 10) -> np.ndarray:
        """Decode the straight line between the codes of images a and b: (steps, 1, 28, 28)."""
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        za, zb = self.embed(a)[:1], self.embed(b)[:1]
        w = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
        return self.decode((1 - w) * za + w * zb)


class Autoencoder(_Latent):
    def encode(self, images, batch_size: int = 256) -> np.ndarray:
        """images → z (B, K)."""
        return run_batched(self.sessions["encoder"], {"x": self._in(images)}, batch_size)[0]

    embed = encode

    def reconstruct(self, images, batch_size: int = 256) -> np.ndarray:
        return self.decode(self.encode(images, batch_size), batch_size)

    def denoise(self, images, batch_size: int = 256) -> np.ndarray:
        """For a model trained with --noise: noisy images → clean ones."""
        return self.reconstruct(images, batch_size)


class VAE(_Latent):
    def encode(self, images, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """images → (μ, log σ²), each (B, K)."""
        mu, logvar = run_batched(self.sessions["encoder"], {"x": self._in(images)}, batch_size,
                                 outputs=["mu", "logvar"])
        return mu, logvar

    def embed(self, images, batch_size: int = 256) -> np.ndarray:
        """The embedding most apps want: μ (B, K)."""
        return self.encode(images, batch_size)[0]

    def reconstruct(self, images, batch_size: int = 256, seed: int | None = None) -> np.ndarray:
        """Decode μ (seed=None) or a draw z = μ + σ·ε with the given seed."""
        mu, logvar = self.encode(images, batch_size)
        z = mu if seed is None else _core.reparameterize(mu, logvar, seed=int(seed))
        return self.decode(z, batch_size)

    def sample(self, n: int, seed: int | None = None, batch_size: int = 256) -> np.ndarray:
        """n images decoded from the prior z ~ N(0, I) (z = 0 + e^0·ε via reparameterize)."""
        n = _check_n(n)
        zeros = np.zeros((n, self.latent_dim), dtype=np.float32)
        z = _core.reparameterize(zeros, zeros, seed=_seed(seed))
        return self.decode(z, batch_size)


class DDPM(Model):
    def __init__(self, directory, manifest, sessions):
        super().__init__(directory, manifest, sessions)
        self.schedule = schedule_arrays(manifest["schedule"])
        self.num_timesteps = len(self.schedule["betas"])
        self.last_seed: int | None = None

    def timesteps(self, method: str, steps: int | None) -> np.ndarray:
        """The descending timesteps ``method`` visits: all T for ancestral/ddpm; ``steps``
        (default T) evenly spaced from T−1 for ddim; ``steps`` (default DEFAULT_STEPS) as
        diffusers' timestep_spacing="linspace" for the DPM-Solver++ methods."""
        T = self.num_timesteps
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        if steps is not None and (isinstance(steps, bool)
                                  or not isinstance(steps, (int, np.integer))):
            raise ValueError(f"steps must be an integer, got {steps!r}")
        if method == "ddim":
            return ddim_timesteps(T, T if steps is None else int(steps))
        if method in SOLVER_METHODS:
            return linspace_timesteps(T, DEFAULT_STEPS if steps is None else int(steps))
        if steps not in (None, T):
            raise ValueError(f"{method} runs all {T} steps; use method='ddim', 'dpmpp-2m' or "
                             f"'sde-dpmpp-2m' for fewer (got steps={steps})")
        return np.arange(T - 1, -1, -1, dtype=np.int64)

    def sample(self, n: int, steps: int | None = None, method: str | None = None,
               eta: float = 0.0, seed: int | None = None, batch_size: int = 64,
               progress: bool = True, capture=None, clip_x0: bool = False):
        """n digits by the reverse process, run in the C++ loop.

        method: "ancestral" (the course's 1000-step loop), "ddpm" (posterior variance, Ho et
        al.), "ddim" (Song et al.; ``steps`` evenly spaced, ``eta`` noise), "dpmpp-2m" or
        "sde-dpmpp-2m" (DPM-Solver++(2M), Lu et al. 2022, deterministic or stochastic, any
        ``steps`` >= 2). None = DEFAULT_METHOD with DEFAULT_STEPS. The same seed gives the
        same digits whatever ``batch_size``. capture: timesteps whose x_t to return too, as
        {t: images}; then the result is (images, captured).
        """
        n = _check_n(n)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        method = DEFAULT_METHOD if method is None else method
        timesteps = self.timesteps(method, steps)
        seed = self.last_seed = _seed(seed)
        capture = sorted({int(t) for t in (capture or ())})
        chunks = [(s, min(batch_size, n - s)) for s in range(0, n, batch_size)]
        denoiser = BoundDenoiser(self.sessions["unet"])
        out, captured = [], {t: [] for t in capture}
        desc = f"{self.name} {method} {len(timesteps)} steps"
        with Progress(len(chunks) * len(timesteps), desc, enabled=progress) as bar:
            for i, (start, size) in enumerate(chunks):
                base = i * len(timesteps)
                res = _core.sample(denoiser, self.schedule, method, timesteps, seed=seed,
                                   n=size, eta=float(eta), clip_x0=bool(clip_x0),
                                   sample_offset=start, capture=capture,
                                   progress=lambda k, total, b=base: bar.set(b + k),
                                   progress_every=max(1, len(timesteps) // 100))
                x0, cap = res if capture else (res, {})
                out.append(x0)
                for t in capture:
                    captured[t].append(cap[t])
        images = self._out(np.concatenate(out))
        if capture:
            return images, {t: self._out(np.concatenate(v)) for t, v in captured.items()}
        return images


class Classifier(Model):
    def logits_and_features(self, images, batch_size: int = 256):
        return run_batched(self.sessions["classifier"], {"x": self._in(images)}, batch_size,
                           outputs=["logits", "features"])

    def predict_proba(self, images, batch_size: int = 256) -> np.ndarray:
        logits = self.logits_and_features(images, batch_size)[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


KINDS = {"ae": Autoencoder, "vae": VAE, "ddpm": DDPM, "classifier": Classifier}


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)


def _seed(seed) -> int:
    if seed is None:
        return int.from_bytes(os.urandom(8), "little") >> 1
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)
