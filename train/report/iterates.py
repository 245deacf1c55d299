"""Report section 5: successive reconstructions R^k(x) = decode(encode(·)) applied k times
— do autoencoders converge to fixed points?"""
from __future__ import annotations

import numpy as np

from . import figures as figs
from .markdown import md_table

ITERATIONS = 10
ITERATE_IMAGES = 256


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
