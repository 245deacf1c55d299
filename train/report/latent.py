"""Report section 4: latent spaces (test digits' codes scattered and coloured by digit,
interpolation strips between the codes of two digits)."""
from __future__ import annotations

import numpy as np

from . import figures as figs

PAIRS = ((0, 1), (4, 9), (3, 8), (5, 6))  # digit pairs of the interpolation strips


def to_2d(z: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """2-D latents as they are, otherwise a t-SNE embedding (scikit-learn)."""
    if z.shape[1] == 2:
        return z, "direct"
    if z.shape[1] == 1:
        return np.concatenate([z, np.zeros_like(z)], axis=1), "direct (1-D)"
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (len(z) - 1) / 3))
    pts = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
               random_state=seed).fit_transform(np.asarray(z, dtype=np.float64))
    return pts, f"t-SNE of {z.shape[1]}-d"


def pair_indices(labels: np.ndarray) -> list[tuple[int, int, str]]:
    """(index a, index b, "a→b") for each digit pair present in ``labels``."""
    out = []
    for a, b in PAIRS:
        ia, ib = np.flatnonzero(labels == a), np.flatnonzero(labels == b)
        if len(ia) and len(ib):
            out.append((int(ia[0]), int(ib[0]), f"{a}→{b}"))
    if not out:  # too few labels: just the first images
        out = [(0, 1, "#0→#1")]
    return out


def latent_spaces(ctx) -> str:
    if not ctx.latent:
        return "No autoencoder or VAE given."
    n = min(ctx.cfg.tsne_points, len(ctx.x_test))
    x, y = ctx.x_test[:n], ctx.y_test[:n]
    panels, how = [], {}
    for label, m in ctx.latent.items():
        ctx.log(f"  latent space of {label}")
        pts, method = to_2d(m.embed(x), ctx.cfg.seed)
        how[label] = method
        panels.append((f"{label} ({method})", pts, y))
    scatter = figs.latent_scatter(panels, ctx.fig("latent_scatter.png"))
    pairs = pair_indices(ctx.y_test)
    strips = []
    for label, m in ctx.latent.items():
        rows = np.stack([m.interpolate(ctx.x_test[a], ctx.x_test[b], steps=10)
                         for a, b, _ in pairs])  # (pairs, 10, 1, 28, 28)
        path = figs.strip(rows, [f"{w:.2f}" for w in np.linspace(0, 1, 10)],
                          ctx.fig(f"interpolation_{label}.png"),
                          f"{label}: decode((1 − w)·z_a + w·z_b)",
                          row_labels=[p[2] for p in pairs])
        strips.append(ctx.image(path, f"interpolation {label}"))
    ctx.results["latent"] = {"points": n, "projection": how}
    return "\n\n".join([
        f"{n:,} test digits embedded (AE: z, VAE: μ); 2-D latents are drawn directly, larger "
        "ones through t-SNE (scikit-learn, perplexity 30, PCA init).",
        ctx.image(scatter, "latent space scatter"),
        "Interpolation between the codes of two test digits (w = 0 … 1):", *strips])
