"""Anomaly scores of autoencoders and VAEs (per image, higher = more anomalous) and the AUROC
that rates them, torch-free (numpy + the C++ core's seeded normal draws).

* ``recon``: −log p(x | x̂) of a Bernoulli decoder = the binary cross-entropy of the image
  against its reconstruction, summed over the 784 pixels, in nats. Logs are clamped at −100
  as torch's ``binary_cross_entropy`` clamps them, so the numbers are the training loss's.
  An autoencoder reconstructs from z = encode(x), a VAE from μ.
* ``elbo``: −ELBO(x) = E_q(z|x)[−log p(x | z)] + KL(q(z | x) ‖ N(0, I)), Kingma & Welling,
  "Auto-Encoding Variational Bayes" (ICLR 2014), eq. 10 with the closed-form KL of its
  Appendix B; the expectation is estimated with K draws z_k = μ + σ·ε_k. An upper bound on
  −log p(x), in nats (An & Cho 2015 score anomalies with the VAE's reconstruction
  probability, the same idea). Draw k of image i uses noise row i·K + k of the seed's
  stream, so a score does not depend on the batch size or on how the inputs are split.
* AUROC: the Mann–Whitney U statistic / (n₊·n₋) with average ranks for tied scores, i.e.
  P(s₊ > s₋) + ½·P(s₊ = s₋): the area under the ROC curve, equal to scikit-learn's
  ``roc_auc_score`` (checked in tests/test_anomaly.py).
"""
from __future__ import annotations

import numpy as np

from .checks import check_int

SCORE_KINDS = ("elbo", "recon")
LOG_FLOOR = -100.0  # torch.nn.functional.binary_cross_entropy clamps its logs here


def bernoulli_nll(x: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """−log p(x | x̂) = Σ_pixels BCE(x̂, x) per image: (B, 1, 28, 28) pairs → float64 (B,)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    p = x_hat.reshape(len(x_hat), -1).astype(np.float64)
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), LOG_FLOOR)
        log_q = np.maximum(np.log(1.0 - p), LOG_FLOOR)
    return -(x * log_p + (1.0 - x) * log_q).sum(axis=1)


def kl_to_standard_normal(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²): (B, K) → float64 (B,)."""
    mu, logvar = mu.astype(np.float64), logvar.astype(np.float64)
    return 0.5 * (mu ** 2 + np.exp(logvar) - 1.0 - logvar).sum(axis=1)


def check_score_args(kind: str, samples) -> int:
    if kind not in SCORE_KINDS:
        raise ValueError(f"score kind must be one of {', '.join(SCORE_KINDS)}, got {kind!r}")
    return check_int(samples, "samples", low=1, high=100_000)


def neg_elbo(x: np.ndarray, mu: np.ndarray, logvar: np.ndarray, decode, draw, samples: int,
             batch_size: int) -> np.ndarray:
    """−ELBO per image (float64 (B,)) from the encoder's (μ, log σ²) of images x.

    ``draw(mu_rows, logvar_rows, first_row)`` → z rows (the model's seeded reparameterize,
    noise rows first_row…); ``decode(z, image_index)`` → x̂ for rows belonging to those
    images (a conditional model looks up their labels). Images are processed in chunks of
    about ``batch_size`` decoder rows."""
    n, k = len(x), samples
    out = kl_to_standard_normal(mu, logvar)  # (B,)
    per_chunk = max(1, batch_size // k)
    for start in range(0, n, per_chunk):
        stop = min(n, start + per_chunk)
        rows = np.repeat(np.arange(start, stop), k)  # image index of each draw, (m·K,)
        z = draw(mu[rows], logvar[rows], start * k)  # (m·K, dz)
        nll = bernoulli_nll(x[rows], decode(z, rows))  # (m·K,)
        out[start:stop] += nll.reshape(stop - start, k).mean(axis=1)
    return out


def auroc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` (higher = more likely positive) for binary
    ``labels`` (1/True = positive, e.g. anomalous), ties counted half (Mann–Whitney)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if len(s) != len(y):
        raise ValueError(f"scores ({len(s)}) and labels ({len(y)}) must have one length")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    if y.dtype != np.bool_:
        if not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be 0/1 or booleans (1 = positive / anomalous)")
        y = y.astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUROC needs both classes; got {n_pos} positive and {n_neg} "
                         f"negative labels")
    order = np.argsort(s, kind="mergesort")
    _, first, counts = np.unique(s[order], return_index=True, return_counts=True)
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)  # average 1-based ranks
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
