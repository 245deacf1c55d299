"""Report sections 4 and 5: latent spaces (scatter coloured by digit, interpolation strips)
and successive reconstructions R^k(x) — do autoencoders converge to fixed points?"""
from __future__ import annotations

import numpy as np

from . import report_figures as figs
from .report import md_table

PAIRS = ((0, 1), (4, 9), (3, 8), (5, 6))  # digit pairs of the interpolation strips
ITERATIONS = 10
ITERATE_IMAGES = 256


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


def iterate(model, x: np.ndarray, k: int) -> list[np.ndarray]:
    """[x, R(x), R²(x), …, R^k(x)]."""
    seq = [x]
    for _ in range(k):
        seq.append(model.reconstruct(seq[-1]))
    return seq


def iterates(ctx) -> str:
    if not ctx.latent:
        return "No autoencoder or VAE given."
    x = ctx.x_test[:ITERATE_IMAGES]
    clf_x = ctx.classifier.predict_proba(x).argmax(1)
    curves, rows, out, grids = [], [], {}, []
    for label, m in ctx.latent.items():
        seq = iterate(m, x, ITERATIONS + 1)  # R^0 … R^11
        d = np.array([np.linalg.norm((seq[k + 1] - seq[k]).reshape(len(x), -1), axis=1).mean()
                      for k in range(1, ITERATIONS + 1)])  # d_k, k = 1 … 10
        same = float(np.mean(ctx.classifier.predict_proba(seq[ITERATIONS]).argmax(1) == clf_x))
        drift = float(np.linalg.norm((seq[ITERATIONS] - seq[1]).reshape(len(x), -1),
                                     axis=1).mean())
        ratio = float(d[-1] / max(d[0], 1e-12))
        verdict = ("settles on a fixed point" if d[-1] < 1e-2 or ratio < 0.05 else
                   "contracts slowly" if ratio < 1 else "does not contract")
        curves.append((label, d))
        out[label] = {"d": d.tolist(), "ratio": ratio, "same_class_share": same,
                      "drift_1_to_10": drift, "verdict": verdict}
        rows.append([label, float(d[0]), float(d[-1]), ratio, drift, 100 * same, verdict])
        strip = np.stack(seq[:ITERATIONS + 1], axis=1)[:6]  # (6, 11, 1, 28, 28)
        path = figs.strip(strip, ["x"] + [f"R^{k}" for k in range(1, ITERATIONS + 1)],
                          ctx.fig(f"iterates_{label}.png"), f"{label}: successive reconstructions")
        grids.append(ctx.image(path, f"successive reconstructions {label}"))
    plot = figs.iterate_norms(curves, ctx.fig("iterate_norms.png"))
    ctx.results["iterates"] = out
    return "\n\n".join([
        f"R(x) = decode(encode(x)) (VAEs: decode(μ)), applied {ITERATIONS} times to "
        f"{len(x)} test digits. d_k = mean ‖R^(k+1)(x) − R^k(x)‖₂ over images (pixels in "
        "[0, 1], 784-d); *same class* = share of digits the classifier labels as it labelled "
        "x after 10 iterations.",
        md_table(["model", "d_1", "d_10", "d_10 / d_1", "‖R^10 − R^1‖", "same class %",
                  "verdict"], rows),
        ctx.image(plot, "iterate norms"), *grids])
