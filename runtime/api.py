"""Loaded models: `load(name_or_dir)` → Autoencoder | VAE | DDPM | Classifier.

Everything about a model (kind, scaling, latent size, schedule) comes from its manifest;
nothing is hard-coded here. Images go in and come out as float32 (B, 1, 28, 28) in [0, 1]
whatever scaling the network uses inside.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from . import _core
from .anomaly import bernoulli_nll, check_score_args, neg_elbo
from .checks import check_int
from .ddpm import DDPM, SamplingCancelled  # noqa: F401  (re-exported)
from .inputs import as_images, as_latents
from .manifest import ModelFileError, graph_path, quantized_roles
from .manifest import validate as validate_manifest
from .model import (DIGIT_BYTES, SAMPLE_MEMORY_BUDGET, Model, _batch,  # noqa: F401
                    _check_budget, _check_n, _seed)
from .session import CPU, SplitSession, make_session, resolve_providers, run_batched

SHIPPED = Path(__file__).parent / "models"
ALIASES = {"ddpm": "ddpm-unet", "vae": "vae-conv", "ae": "ae-conv", "denoiser": "ae-conv"}
# 2·ln(float32 max): exp(½·log σ²) overflows float32 above this
MAX_LOGVAR = 2 * float(np.log(np.finfo(np.float32).max))


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


def load(name_or_dir, providers="auto", threads: int | None = None, verify: bool = True,
         spinning: bool = True):
    """Load an exported model directory or a shipped model by name ("ddpm", "vae-conv", …).

    providers: "auto" (CUDA when onnxruntime-gpu sees a GPU, else CPU), "cpu", "cuda" or an
    explicit onnxruntime provider list. threads: intra-op threads (default: all cores).
    The manifest is checked against its schema and every graph path confined to the
    directory before any graph file is opened; the sha256 of every graph is checked against
    the manifest unless ``verify=False``. ``spinning=False`` lets idle onnxruntime threads
    sleep instead of spin (for processes sharing cores, e.g. Ray actors).
    """
    threads = check_int(threads, "threads", low=0, high=1024, optional=True)  # 0: all cores
    directory = resolve(name_or_dir)
    manifest = read_manifest(directory)
    mpath = directory / "manifest.json"
    paths = {role: graph_path(directory, info["file"], f"graphs.{role}.file", mpath)
             for role, info in manifest["graphs"].items()}
    # int8 graphs run over batches (not the U-Net, which the C++ loop steps through IO
    # binding) on the CPU: one single-threaded call per core on slices of the batch
    parts = threads or os.cpu_count() or 1
    split = parts > 1 and resolve_providers(providers)[0] == CPU
    sessions = {}
    for role, path in paths.items():
        if verify:
            check_file(path, manifest["graphs"][role]["sha256"])
        if split and role in quantized_roles(manifest) and role != "unet":
            sessions[role] = SplitSession(make_session(path, providers, 1, spinning), parts)
        else:
            sessions[role] = make_session(path, providers, threads, spinning)
        _check_session_io(sessions[role], manifest["graphs"][role], path)
    model = model_class(manifest["kind"])(directory, manifest, sessions)
    if split and "unet" in paths:  # the DDPM splits large chunks over cores (runtime/ddpm.py)
        model.unet_parts = parts
        model.single_thread_unet = functools.partial(make_session, paths["unet"], providers, 1,
                                                     spinning)
    return model


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

    def score(self, images, batch_size: int = 256) -> np.ndarray:
        """Anomaly score per image, float64 (B,), higher = more anomalous: the reconstruction's
        Bernoulli negative log-likelihood Σ BCE(x̂, x) in nats (see runtime/anomaly.py)."""
        x = as_images(images)
        return bernoulli_nll(x, self.reconstruct(x, batch_size))


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

    def score(self, images, kind: str = "elbo", samples: int = 16, seed: int = 0,
              batch_size: int = 256) -> np.ndarray:
        """Anomaly score per image, float64 (B,), in nats, higher = more anomalous (see
        runtime/anomaly.py). kind "elbo": −ELBO estimated with ``samples`` draws
        z = μ + σ·ε through the C++ reparameterize (the same ``seed`` gives the same draws
        for any batch_size; the default seed 0 makes scores repeatable); "recon": Σ BCE of the
        reconstruction from μ (no sampling)."""
        samples = check_score_args(kind, samples)
        batch_size, seed = _batch(batch_size), _seed(seed)
        x = as_images(images)
        mu, logvar = self.encode(x, batch_size)
        if kind == "recon":
            return bernoulli_nll(x, self.decode(mu, batch_size))
        return neg_elbo(x, mu, logvar, lambda z, rows: self.decode(z, batch_size),
                        lambda m, lv, first: self.reparameterize(m, lv, seed, first),
                        samples, batch_size)

    def iter_samples(self, n: int, seed: int | None = None, batch_size: int = 256,
                     offset: int = 0, digit=None):
        """Like sample(), as a generator of (≤ batch_size, 1, 28, 28) batches: any n in
        bounded memory; the batches joined equal sample(n, seed) bitwise. ``offset`` starts
        at digit ``offset`` of the seed's stream (``sample(offset + n, seed)[offset:]``)."""
        self._refuse_digit(digit)
        n, batch_size = _check_n(n), _batch(batch_size)
        offset = check_int(offset, "offset", low=0)
        seed = self.last_seed = _seed(seed)
        return self._iter(n, seed, batch_size, offset)

    def _iter(self, n: int, seed: int, batch_size: int, offset: int = 0):
        for z in self._prior_draws(n, seed, batch_size, offset):
            yield self.decode(z, batch_size)

    def _prior_draws(self, n: int, seed: int, batch_size: int, offset: int = 0):
        """z ~ N(0, I) for samples offset … offset + n − 1, (≤ batch_size, K) at a time."""
        for start in range(offset, offset + n, batch_size):
            zeros = np.zeros((min(batch_size, offset + n - start), self.latent_dim),
                             dtype=np.float32)
            yield _core.reparameterize(zeros, zeros, seed=seed,
                                       offset=start * self.latent_dim)

    def _refuse_digit(self, digit) -> None:
        if digit is not None:
            raise ValueError(f"{self.name} is an unconditional {self.kind}: digit= needs a "
                             f"conditional VAE (kind cvae, e.g. the shipped cvae-conv)")

    def sample(self, n: int, seed: int | None = None, batch_size: int = 256,
               digit=None) -> np.ndarray:
        """n images decoded from the prior z ~ N(0, I) (z = 0 + e^0·ε via reparameterize).
        At most SAMPLE_MEMORY_BUDGET bytes of output; stream more with iter_samples.
        ``digit``: conditional VAEs only (ConditionalVAE.sample)."""
        n = _check_budget(_check_n(n), "VAE")
        out = np.empty((n, 1, 28, 28), dtype=np.float32)
        start = 0
        for batch in self.iter_samples(n, seed, batch_size, digit=digit):
            out[start:start + len(batch)] = batch
            start += len(batch)
        return out


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


def model_class(kind: str) -> type:
    """The class that serves a manifest kind; the conditional VAE's lives in runtime/cvae.py
    (a VAE subclass, so that module imports this one and is imported here only when used)."""
    if kind == "cvae":
        from .cvae import ConditionalVAE
        return ConditionalVAE
    return KINDS[kind]
