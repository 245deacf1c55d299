"""Matplotlib figures of `latentforge report` (Agg backend; matplotlib is a train extra).

Every function takes plain numpy data and a path, writes one PNG and returns the path.
Image grids without axes or labels are written by ``latentforge.runtime.images.save_grid``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from latentforge.runtime.images import make_grid


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def image_panels(panels: list[tuple[str, np.ndarray]], path, ncols: int = 2,
                 nrow: int | None = None, width: float = 5.0) -> Path:
    """Titled image grids side by side: [(title, images (B, 1, 28, 28))]."""
    plt = _plt()
    nrows = math.ceil(len(panels) / ncols)
    grids = [make_grid(x, nrow=nrow) for _, x in panels]
    aspect = max(g.shape[0] / g.shape[1] for g in grids)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, width * aspect * nrows + 0.5),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, _), grid in zip(axes.flat, panels, grids):
        ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def labelled_rows(rows: list[tuple[str, list[np.ndarray]]], headers: list[str], path,
                  nrow: int = 8) -> Path:
    """A table of grids: one row per (label, [images per column]) — used by the sweeps."""
    plt = _plt()
    ncols = len(headers)
    first = [make_grid(x, nrow=nrow) for x in rows[0][1]]
    widths = [g.shape[1] for g in first]
    height = first[0].shape[0]
    scale = 0.012
    fig, axes = plt.subplots(len(rows), ncols, squeeze=False, layout="constrained",
                             figsize=(scale * sum(widths) + 1.0,
                                      scale * height * len(rows) * 1.25 + 0.4),
                             gridspec_kw={"width_ratios": widths})
    for r, (label, images) in enumerate(rows):
        for c, x in enumerate(images):
            ax = axes[r, c]
            ax.imshow(make_grid(x, nrow=nrow), cmap="gray", vmin=0, vmax=255,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
            if r == 0:
                ax.set_title(headers[c], fontsize=9)
    return _save(fig, path)


def latent_scatter(panels: list[tuple[str, np.ndarray, np.ndarray]], path) -> Path:
    """[(title, points (N, 2), labels (N,))] → one scatter per model, coloured by digit."""
    plt = _plt()
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.0 * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, pts, labels) in zip(axes.flat, panels):
        ax.axis("on")
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5,
                        s=6, alpha=0.8, linewidths=0)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes, ticks=range(10), label="digit", shrink=0.8)
    return _save(fig, path)


def class_histograms(rows: list[tuple[str, list[float]]], path, band_pp: float = 3.0) -> Path:
    """Grouped bars of the predicted-class shares of each sampler, with the 10% ± band."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
    width = 0.8 / max(1, len(rows))
    ax.axhspan(10 - band_pp, 10 + band_pp, color="0.9", label=f"10% ± {band_pp:g} pp")
    for i, (label, hist) in enumerate(rows):
        ax.bar(np.arange(10) - 0.4 + width * (i + 0.5), 100 * np.asarray(hist), width,
               label=label)
    ax.set_xticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("share of samples (%)")
    ax.legend(fontsize=8, ncols=2)
    return _save(fig, path)


def iterate_norms(curves: list[tuple[str, np.ndarray]], path) -> Path:
    """[(model, d_k for k = 1…K)] with d_k = mean ‖R^{k+1}(x) − R^k(x)‖₂, log scale."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    for label, d in curves:
        ax.semilogy(np.arange(1, len(d) + 1), np.maximum(d, 1e-12), "o-", label=label)
    ax.set_xlabel("k")
    ax.set_ylabel(r"mean $\|R^{k+1}(x) - R^k(x)\|_2$")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def sweep_curves(sweeps: list[tuple[str, list[dict]]], path) -> Path:
    """Reconstruction BCE against KL for every sweep (points annotated with the swept value),
    then the classifier FD of prior samples against each swept value (log x)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 1 + len(sweeps), figsize=(4.2 * (1 + len(sweeps)), 3.8),
                             layout="constrained")
    for ax, (name, rows) in zip(axes[1:], sweeps):
        kl, bce = [r["kl"] for r in rows], [r["bce"] for r in rows]
        line, = axes[0].plot(kl, bce, "o-", label=name)
        for r, x, y in zip(rows, kl, bce):
            axes[0].annotate(f"{r['value']:g}", (x, y), textcoords="offset points",
                             xytext=(4, 4), fontsize=7, color=line.get_color())
        ax.semilogx([r["value"] for r in rows], [r["fd"] for r in rows], "o-",
                    color=line.get_color())
        ax.set_xticks([r["value"] for r in rows], [f"{r['value']:g}" for r in rows])
        ax.minorticks_off()
        ax.set_xlabel(name)
        ax.set_ylabel("classifier FD of prior samples")
        ax.set_title(f"sample quality against {name}")
    axes[0].set_xlabel("KL per image (nats)")
    axes[0].set_ylabel("reconstruction BCE per image")
    axes[0].set_title("rate vs distortion")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return _save(fig, path)


def strip(images: np.ndarray, col_labels: list[str], path, title: str = "",
          row_labels: list[str] | None = None) -> Path:
    """images (rows, cols, 1, 28, 28) as one grid with a label under each column."""
    plt = _plt()
    rows, cols = images.shape[:2]
    grid = make_grid(images.reshape(rows * cols, *images.shape[2:]), nrow=cols)
    fig, ax = plt.subplots(figsize=(0.75 * cols + 0.8, 0.75 * rows + 0.9), layout="constrained")
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([2 + 30 * c + 14 for c in range(cols)], col_labels, fontsize=7)
    ax.set_yticks([2 + 30 * r + 14 for r in range(rows)], row_labels or [""] * rows,
                  fontsize=7)
    ax.tick_params(length=0)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def architecture_curves(family: str, lines: list[tuple[str, list[dict]]], path) -> Path:
    """One panel per metric (test MSE, BCE + KL, classifier FD of prior samples, parameters)
    against the latent size d_z (log x): [(architecture, cells sorted by "latent")]."""
    plt = _plt()
    panels = (("mse", "test MSE per pixel"), ("neg_elbo_mu", "test BCE + KL per image"),
              ("fd", "classifier FD of prior samples"), ("parameters", "parameters"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.6),
                             layout="constrained")
    latents = sorted({c["latent"] for _, cells in lines for c in cells})
    for ax, (key, name) in zip(axes, panels):
        for label, cells in lines:
            ax.plot([c["latent"] for c in cells], [c[key] for c in cells], "o-", label=label)
        ax.set_xscale("log")
        ax.set_xticks(latents, [str(k) for k in latents])
        ax.minorticks_off()
        if key == "parameters":
            ax.set_yscale("log")  # its own minor ticks: labelled when the span is < 1 decade
        ax.set_xlabel("latent size $d_z$")
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{family}: architectures against latent size", fontsize=10)
    return _save(fig, path)
