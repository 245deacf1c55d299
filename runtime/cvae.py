"""A conditional VAE (kind "cvae", e.g. the shipped cvae-conv): encoder q(z | x, y) and decoder
p(x | z, y) take the digit y as well, as a one-hot input "y" (B, num_classes) of both ONNX
graphs. ``sample(n, digit=7)`` draws z ~ N(0, I) and decodes it as a 7; the same seed gives
the same z (the same "style") whatever the digit, so rows of one seed differ only in y.
"""
from __future__ import annotations

import numbers

import numpy as np

from .anomaly import bernoulli_nll, check_score_args, neg_elbo
from .api import VAE, _batch, _check_n, _seed
from .checks import check_int
from .inputs import as_images, as_latents
from .session import run_batched


class ConditionalVAE(VAE):
    """Every method that encodes or decodes takes the digits too: one int for all images, or
    one per image. sample/iter_samples default to digits 0, 1, …, 9, 0, 1, … (balanced)."""

    def __init__(self, directory, manifest: dict, sessions: dict):
        super().__init__(directory, manifest, sessions)
        self.num_classes = int(manifest["num_classes"])

    def one_hot(self, digits, n: int, what: str = "digits") -> np.ndarray:
        """``digits`` (an int, or n ints in [0, num_classes)) → float32 one-hot (n, C)."""
        top = self.num_classes - 1
        if digits is None:
            raise ValueError(f"{self.name} is a conditional VAE: its encoder and decoder need "
                             f"the images' {what} (0-{top}); pass {what}=…")
        if isinstance(digits, (numbers.Integral, np.integer)) and not isinstance(
                digits, (bool, np.bool_)):
            d = np.full(n, check_int(digits, what, low=0, high=top), dtype=np.int64)
        else:
            d = np.asarray(digits)
            if d.ndim != 1 or d.dtype == np.bool_ or not np.issubdtype(d.dtype, np.integer):
                raise TypeError(f"{what} must be an integer 0-{top} or a 1-d integer array, "
                                f"got {type(digits).__name__}"
                                f"{'' if d.dtype == object else ' of dtype ' + str(d.dtype)}")
            if len(d) != n:
                raise ValueError(f"{what} holds {len(d)} labels for {n} images; give one "
                                 f"per image or a single int")
            bad = d[(d < 0) | (d > top)]
            if len(bad):
                raise ValueError(f"{what} must be in 0-{top}, got {bad[0]}")
        return np.eye(self.num_classes, dtype=np.float32)[d]

    def encode(self, images, digits=None, batch_size: int = 256):
        """images and their digits → (μ, log σ²), each (B, K)."""
        batch_size = _batch(batch_size)
        x = self._in(images)
        y = self.one_hot(digits, len(x))
        mu, logvar = run_batched(self.sessions["encoder"], {"x": x, "y": y}, batch_size,
                                 outputs=["mu", "logvar"])
        return mu, logvar

    def embed(self, images, digits=None, batch_size: int = 256) -> np.ndarray:
        return self.encode(images, digits, batch_size)[0]

    def decode(self, z, digits=None, batch_size: int = 256) -> np.ndarray:
        """z (B, K) decoded as the given digits → images (B, 1, 28, 28) in [0, 1]."""
        batch_size = _batch(batch_size)
        z = as_latents(z, self.latent_dim)
        y = self.one_hot(digits, len(z))
        return self._out(run_batched(self.sessions["decoder"], {"z": z, "y": y},
                                     batch_size)[0])

    def reconstruct(self, images, digits=None, batch_size: int = 256,
                    seed: int | None = None) -> np.ndarray:
        x = as_images(images)
        y = self._digit_array(digits, len(x))
        mu, logvar = self.encode(x, y, batch_size)
        z = mu if seed is None else self.reparameterize(mu, logvar, seed=seed)
        return self.decode(z, y, batch_size)

    def interpolate(self, a, b, digits=None, steps: int = 10) -> np.ndarray:
        """Decode the straight line from (z_a, y_a) to (z_b, y_b), ``digits`` = (d_a, d_b):
        code and one-hot label both move linearly, (steps, 1, 28, 28)."""
        steps = check_int(steps, "steps", low=2, high=100_000)
        if digits is None or np.ndim(digits) != 1 or len(digits) != 2:
            raise ValueError(f"{self.name} is a conditional VAE: interpolate needs "
                             f"digits=(digit of a, digit of b)")
        ya, yb = self.one_hot(int(digits[0]), 1), self.one_hot(int(digits[1]), 1)
        za, zb = self.embed(a, int(digits[0]))[:1], self.embed(b, int(digits[1]))[:1]
        w = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
        z, y = (1 - w) * za + w * zb, (1 - w) * ya + w * yb
        return self._out(run_batched(self.sessions["decoder"], {"z": z, "y": y}, steps)[0])

    def score(self, images, digits=None, kind: str = "elbo", samples: int = 16,
              seed: int = 0, batch_size: int = 256) -> np.ndarray:
        """VAE.score given the digits: −ELBO of log p(x | y) or the reconstruction's BCE, in
        nats per image (high: the image does not look like its label)."""
        samples = check_score_args(kind, samples)
        batch_size, seed = _batch(batch_size), _seed(seed)
        x = as_images(images)
        y = self._digit_array(digits, len(x))
        mu, logvar = self.encode(x, y, batch_size)
        if kind == "recon":
            return bernoulli_nll(x, self.decode(mu, y, batch_size))
        return neg_elbo(x, mu, logvar, lambda z, rows: self.decode(z, y[rows], batch_size),
                        lambda m, lv, first: self.reparameterize(m, lv, seed, first),
                        samples, batch_size)

    def _digit_array(self, digits, n: int, what: str = "digits") -> np.ndarray:
        return self.one_hot(digits, n, what).argmax(axis=1)  # checked, one label per image

    def sample_digits(self, n: int, digit=None, offset: int = 0) -> np.ndarray:
        """The labels sample(n, digit=…) decodes: digit for every sample, the given array, or
        (offset + i) mod num_classes when digit is None."""
        if digit is None:
            return (np.arange(offset, offset + n) % self.num_classes).astype(np.int64)
        return self._digit_array(digit, n, "digit")

    def iter_samples(self, n: int, seed: int | None = None, batch_size: int = 256,
                     offset: int = 0, digit=None):
        """VAE.iter_samples decoded as ``digit`` (an int, n ints, or None: 0, 1, …, 9, 0, …
        counted from ``offset``). The z of sample i is the unconditional VAE's, so one seed
        draws the same styles for every digit."""
        n, batch_size = _check_n(n), _batch(batch_size)
        offset = check_int(offset, "offset", low=0)
        labels = self.sample_digits(n, digit, offset)  # checked before any work
        seed = self.last_seed = _seed(seed)
        return self._iter_labelled(n, seed, batch_size, offset, labels)

    def _iter_labelled(self, n, seed, batch_size, offset, labels):
        for i, z in enumerate(self._prior_draws(n, seed, batch_size, offset)):
            start = i * batch_size
            yield self.decode(z, labels[start:start + len(z)], batch_size)
