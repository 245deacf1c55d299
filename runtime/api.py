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
from .checks import check_float, check_int
from .inputs import as_images, as_latents
from .manifest import ModelFileError, graph_path
from .manifest import validate as validate_manifest
from .progress import Progress
from .sampling import DEFAULT_METHOD, DEFAULT_STEPS, METHODS
from .schedule import SOLVER_METHODS, ddim_timesteps, linspace_timesteps, schedule_arrays
from .session import BoundDenoiser, make_session, run_batched

SHIPPED = Path(__file__).parent / "models"
ALIASES = {"ddpm": "ddpm-unet", "vae": "vae-conv", "ae": "ae-conv", "denoiser": "ae-conv"}
# sample() returns one array; above this many bytes of output it refuses and points at the
# streaming form (iter_samples, or `latentforge sample --npy` through a memory-mapped file)
SAMPLE_MEMORY_BUDGET = 1 << 30  # 1 GiB = 342,392 digits of float32 (1, 28, 28)
DIGIT_BYTES = 28 * 28 * 4
# 2·ln(float32 max): exp(½·log σ²) overflows float32 above this
MAX_LOGVAR = 2 * float(np.log(np.finfo(np.float32).max))


class SamplingCancelled(RuntimeError):
    """Sampling stopped on request (``cancel`` set, or the progress callback returned False)."""


def shipped_models() -> list[str]:
    return sorted(p.parent.name for p in SHIPPED.glob("*/manifest.json"))


def _looks_like_path(s: str) -> bool:
    return "/" in s or os.sep in s or bool(os.altsep and os.altsep in s) or s.startswith(".")


def resolve(name_or_dir) -> Path:
    """The name (or alias) of a shipped model, else a directory path. A shipped name wins
    over a same-named folder in the working directory unless written as a path (./ddpm)."""
    text = os.fspath(name_or_dir) if isinstance(name_or_dir, os.PathLike) else name_or_dir
    if not isinstance(text, str):
        raise TypeError(f"model must be a name or a directory path, got "
                        f"{type(name_or_dir).__name__}")
    name = ALIASES.get(text, text)
    if not isinstance(name_or_dir, os.PathLike) and not _looks_like_path(text) \
            and (SHIPPED / name / "manifest.json").is_file():
        return SHIPPED / name
    p = Path(text)
    if p.is_dir():
        return p
    choices = shipped_models() + sorted(a for a, n in ALIASES.items() if n in shipped_models())
    raise ValueError(f"unknown model {text!r}: not a directory and not a shipped "
                     f"model; valid choices: {', '.join(choices) or '(none shipped)'}")


def read_manifest(directory: Path) -> dict:
    """The directory's manifest.json, parsed and checked against the schema."""
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise ModelFileError(f"{directory} has no manifest.json: not an exported model "
                             f"(make one with `latentforge export CKPT -o DIR`)")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{path} is not UTF-8 text: {e}") from e
    except (json.JSONDecodeError, RecursionError) as e:
        raise ModelFileError(f"{path} is not valid JSON: {e}") from e
    return validate_manifest(manifest, path)


def check_file(path: Path, expected_sha256: str) -> None:
    from .hashing import sha256_file

    if not path.is_file():
        raise ModelFileError(f"model file {path} is missing")
    digest = sha256_file(path)
    if digest != expected_sha256:
        raise ModelFileError(f"model file {path} is corrupted: sha256 {digest[:16]}… "
                             f"does not match the manifest's {expected_sha256[:16]}…")


def _check_session_io(session, info: dict, path: Path) -> None:
    """The ONNX graph's own input/output names and fixed sizes against the manifest's."""
    for io, nodes in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        actual = {node.name: node.shape for node in nodes}
        if set(actual) != set(info[io]):
            raise ModelFileError(f"{path}: graph {io} {sorted(actual)} do not match the "
                                 f"manifest's {sorted(info[io])}")
        for name, shape in info[io].items():
            got = actual[name]
            if len(got) != len(shape) or any(isinstance(g, int) and isinstance(e, int)
                                             and g != e for g, e in zip(got, shape)):
                raise ModelFileError(f"{path}: graph {io[:-1]} {name!r} has shape {got}, "
                                     f"the manifest declares {shape}")


def load(name_or_dir, providers="auto", threads: int | None = None, verify: bool = True):
    """Load an exported model directory or a shipped model by name ("ddpm", "vae-conv", …).

    providers: "auto" (CUDA when onnxruntime-gpu sees a GPU, else CPU), "cpu", "cuda" or an
    explicit onnxruntime provider list. threads: intra-op threads (default: all cores).
    The manifest is checked against its schema and every graph path confined to the
    directory before any graph file is opened; the sha256 of every graph is checked against
    the manifest unless ``verify=False``.
    """
    threads = check_int(threads, "threads", low=0, high=1024, optional=True)  # 0: all cores
    directory = resolve(name_or_dir)
    manifest = read_manifest(directory)
    mpath = directory / "manifest.json"
    paths = {role: graph_path(directory, info["file"], f"graphs.{role}.file", mpath)
             for role, info in manifest["graphs"].items()}
    sessions = {}
    for role, path in paths.items():
        if verify:
            check_file(path, manifest["graphs"][role]["sha256"])
        sessions[role] = make_session(path, providers, threads)
        _check_session_io(sessions[role], manifest["graphs"][role], path)
    return KINDS[manifest["kind"]](directory, manifest, sessions)


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


class _Latent(Model):
    """Shared by Autoencoder and VAE: decode, interpolate."""

    def decode(self, z, batch_size: int = 256) -> np.ndarray:
        """z (B, K) → images (B, 1, 28, 28) in [0, 1]."""
        batch_size = _batch(batch_size)
        z = as_latents(z, self.latent_dim)
        return self._out(run_batched(self.sessions["decoder"], {"z": z}, batch_size)[0])

    def embed(self, images, batch_size: int = 256) -> np.ndarray:
        raise NotImplementedError

    def interpolate(self, a, b, steps: int = 10) -> np.ndarray:
        """Decode the straight line between the codes of images a and b: (steps, 1, 28, 28)."""
        steps = check_int(steps, "steps", low=2, high=100_000)
        za, zb = self.embed(a)[:1], self.embed(b)[:1]
        w = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
        return self.decode((1 - w) * za + w * zb)


class Autoencoder(_Latent):
    def encode(self, images, batch_size: int = 256) -> np.ndarray:
        """images → z (B, K)."""
        batch_size = _batch(batch_size)
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
        batch_size = _batch(batch_size)
        mu, logvar = run_batched(self.sessions["encoder"], {"x": self._in(images)}, batch_size,
                                 outputs=["mu", "logvar"])
        return mu, logvar

    def embed(self, images, batch_size: int = 256) -> np.ndarray:
        """The embedding most apps want: μ (B, K)."""
        return self.encode(images, batch_size)[0]

    def reparameterize(self, mu, logvar, seed: int | None = None, offset: int = 0):
        """z = μ + exp(½ log σ²)·ε with ε = randn(seed, offset…) (the C++ core). log σ²
        above MAX_LOGVAR (≈ 177.4, where exp(½ log σ²) overflows float32) is refused."""
        mu, logvar = as_latents(mu, self.latent_dim), as_latents(logvar, self.latent_dim)
        if mu.shape != logvar.shape:
            raise ValueError(f"mu {mu.shape} and logvar {logvar.shape} must have one shape")
        if logvar.max() > MAX_LOGVAR:
            raise ValueError(f"logvar holds {logvar.max():.4g}: exp(logvar / 2) overflows "
                             f"float32 above {MAX_LOGVAR:.4g}")
        offset = check_int(offset, "offset", low=0)
        z = _core.reparameterize(mu, logvar, seed=_seed(seed), offset=offset * self.latent_dim)
        if not np.isfinite(z).all():
            raise ValueError("z = mu + sigma * eps overflows float32 (mu or logvar too large)")
        return z

    def reconstruct(self, images, batch_size: int = 256, seed: int | None = None) -> np.ndarray:
        """Decode μ (seed=None) or a draw z = μ + σ·ε with the given seed."""
        mu, logvar = self.encode(images, batch_size)
        z = mu if seed is None else self.reparameterize(mu, logvar, seed=seed)
        return self.decode(z, batch_size)

    def iter_samples(self, n: int, seed: int | None = None, batch_size: int = 256):
        """Like sample(), as a generator of (≤ batch_size, 1, 28, 28) batches: any n in
        bounded memory; the batches joined equal sample(n, seed) bitwise."""
        n, batch_size = _check_n(n), _batch(batch_size)
        seed = self.last_seed = _seed(seed)
        return self._iter(n, seed, batch_size)

    def _iter(self, n: int, seed: int, batch_size: int):
        for start in range(0, n, batch_size):
            zeros = np.zeros((min(batch_size, n - start), self.latent_dim), dtype=np.float32)
            z = _core.reparameterize(zeros, zeros, seed=seed, offset=start * self.latent_dim)
            yield self.decode(z, batch_size)

    def sample(self, n: int, seed: int | None = None, batch_size: int = 256) -> np.ndarray:
        """n images decoded from the prior z ~ N(0, I) (z = 0 + e^0·ε via reparameterize).
        At most SAMPLE_MEMORY_BUDGET bytes of output; stream more with iter_samples."""
        n = _check_budget(_check_n(n), "VAE")
        out = np.empty((n, 1, 28, 28), dtype=np.float32)
        start = 0
        for batch in self.iter_samples(n, seed, batch_size):
            out[start:start + len(batch)] = batch
            start += len(batch)
        return out


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
        steps = check_int(steps, "steps", optional=True)  # the range depends on the method
        if method in SOLVER_METHODS:
            return linspace_timesteps(T, DEFAULT_STEPS if steps is None else steps)
        if method == "ddim":
            return ddim_timesteps(T, T if steps is None else steps)
        if steps not in (None, T):
            raise ValueError(f"{method} runs all {T} steps; use method='ddim', 'dpmpp-2m' or "
                             f"'sde-dpmpp-2m' for fewer (got steps={steps})")
        return np.arange(T - 1, -1, -1, dtype=np.int64)

    def iter_samples(self, n: int, steps: int | None = None, method: str | None = None,
                     eta: float = 0.0, seed: int | None = None, batch_size: int = 64,
                     progress=True, clip_x0: bool = False, cancel=None):
        """sample() as a generator: yields float32 (≤ batch_size, 1, 28, 28) batches in
        [0, 1], each made when asked for, so any n runs in memory bounded by one batch. The
        batches joined are bitwise equal to ``sample(n, …)`` with the same arguments.
        Arguments are checked (and ``last_seed`` set) at this call, before the first batch."""
        return self._chunks(self._plan(n, steps, method, eta, seed, batch_size, progress,
                                       clip_x0, cancel, ()))

    def sample(self, n: int, steps: int | None = None, method: str | None = None,
               eta: float = 0.0, seed: int | None = None, batch_size: int = 64,
               progress=True, capture=None, clip_x0: bool = False, cancel=None):
        """n digits by the reverse process, run in the C++ loop.

        method: "ancestral" (the course's 1000-step loop), "ddpm" (posterior variance, Ho et
        al.), "ddim" (Song et al.; ``steps`` evenly spaced, ``eta`` noise), "dpmpp-2m" or
        "sde-dpmpp-2m" (DPM-Solver++(2M), Lu et al. 2022, deterministic or stochastic, any
        ``steps`` >= 2). None = DEFAULT_METHOD with DEFAULT_STEPS. The same seed gives the
        same digits whatever ``batch_size``. capture: timesteps whose x_t to return too, as
        {t: images}; then the result is (images, captured).

        progress: True (a bar on stderr), False, or a callable(done, total) called after
        every denoiser step; returning False from it cancels. cancel: an object with
        ``is_set()`` (a threading.Event) checked after every step. Either stops the loop
        within one step with SamplingCancelled; Ctrl-C raises KeyboardInterrupt as usual.
        The output (and captures) must fit in SAMPLE_MEMORY_BUDGET (1 GiB, ~342k digits):
        more raises ValueError; stream any n with iter_samples().
        """
        n = _check_n(n)
        capture = _check_capture(capture)
        _check_budget(n * (1 + len(capture)), "DDPM")
        plan = self._plan(n, steps, method, eta, seed, batch_size, progress, clip_x0, cancel,
                          capture)
        images = np.empty((n, 1, 28, 28), dtype=np.float32)
        captured = {t: np.empty_like(images) for t in capture}
        for start, x0, cap in self._chunks(plan, with_captures=True):
            images[start:start + len(x0)] = x0
            for t in capture:
                captured[t][start:start + len(x0)] = cap[t]
        return (images, captured) if capture else images

    def _plan(self, n, steps, method, eta, seed, batch_size, progress, clip_x0, cancel,
              capture) -> dict:
        n, batch_size = _check_n(n), _batch(batch_size)
        method = DEFAULT_METHOD if method is None else method
        timesteps = self.timesteps(method, steps)
        eta = check_float(eta, "eta", low=0.0)
        if cancel is not None and not callable(getattr(cancel, "is_set", None)):
            raise TypeError(f"cancel must have an is_set() method (a threading.Event), got "
                            f"{type(cancel).__name__}")
        if not isinstance(progress, bool) and not callable(progress):
            raise TypeError(f"progress must be True, False or a callable(done, total), got "
                            f"{type(progress).__name__}")
        seed = self.last_seed = _seed(seed)
        return dict(n=n, batch_size=batch_size, method=method, timesteps=timesteps, eta=eta,
                    seed=seed, progress=progress, clip_x0=bool(clip_x0), cancel=cancel,
                    capture=list(capture))

    def _chunks(self, plan: dict, with_captures: bool = False):
        """Lazily, per chunk: (start, images, {t: images}) or just images."""
        n, size, timesteps = plan["n"], plan["batch_size"], plan["timesteps"]
        steps, total = len(timesteps), -(-plan["n"] // plan["batch_size"]) * len(timesteps)
        denoiser = BoundDenoiser(self.sessions["unet"])
        desc = f"{self.name} {plan['method']} {steps} steps"
        user = plan["progress"] if callable(plan["progress"]) else None
        with Progress(total, desc, enabled=plan["progress"] is True) as bar:
            for i, start in enumerate(range(0, n, size)):
                report = _step_report(bar, user, plan["cancel"], i * steps, total)
                res = _core.sample(denoiser, self.schedule, plan["method"], timesteps,
                                   seed=plan["seed"], n=min(size, n - start), eta=plan["eta"],
                                   clip_x0=plan["clip_x0"], sample_offset=start,
                                   capture=plan["capture"], progress=report, progress_every=1)
                x0, cap = res if plan["capture"] else (res, {})
                if with_captures:
                    yield start, self._out(x0), {t: self._out(v) for t, v in cap.items()}
                else:
                    yield self._out(x0)


def _step_report(bar: Progress, user, cancel, base: int, total: int):
    """The per-step callback of one chunk: the bar, the user's callback, cancellation."""
    def report(k: int, _steps: int) -> None:
        done = base + k
        bar.set(done)
        stop = user is not None and user(done, total) is False
        if stop or (cancel is not None and cancel.is_set()):
            raise SamplingCancelled(f"sampling cancelled after step {done} of {total}")
    return report


class Classifier(Model):
    def logits_and_features(self, images, batch_size: int = 256):
        batch_size = _batch(batch_size)
        return run_batched(self.sessions["classifier"], {"x": self._in(images)}, batch_size,
                           outputs=["logits", "features"])

    def predict_proba(self, images, batch_size: int = 256) -> np.ndarray:
        logits = self.logits_and_features(images, batch_size)[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


KINDS = {"ae": Autoencoder, "vae": VAE, "ddpm": DDPM, "classifier": Classifier}


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


def _check_capture(capture) -> list[int]:
    if capture is None:
        return []
    if isinstance(capture, (str, bytes)) or not hasattr(capture, "__iter__"):
        raise TypeError(f"capture must be a collection of timesteps, got "
                        f"{type(capture).__name__}")
    return sorted({check_int(t, "capture timestep", low=0) for t in capture})


def _seed(seed) -> int:
    if seed is None:
        return int.from_bytes(os.urandom(8), "little") >> 1
    return check_int(seed, "seed", low=0, high=2**64 - 1)
