"""Report section "anomaly": leave-one-digit-out anomaly detection. A model trained with
``--exclude-digits D`` never saw D; its per-image scores (runtime ``score``: AE reconstruction
BCE; VAE −ELBO and reconstruction BCE, nats) should rank the test set's Ds above the other
digits. Rated by AUROC ("D vs the rest", the runtime's Mann–Whitney AUROC) on the test images,
next to the same model trained on every digit (the shipped one of the same name) as a control.

Held-out models are the ``--models`` whose manifest records ``exclude_digits``:

    latentforge train vae-conv --exclude-digits 7 ... --out runs/vae-conv-no7
    latentforge export runs/vae-conv-no7/last.pt -o runs/vae-conv-no7/export
    latentforge report --sections anomaly --models runs/vae-conv-no7/export ...
"""
from __future__ import annotations

import numpy as np

from .markdown import md_table

SAMPLES = 16  # draws of z per image for the VAE's ELBO (the runtime's default)
KINDS = {"ae": ("recon",), "vae": ("elbo", "recon")}
WHAT = {"elbo": "−ELBO", "recon": "recon BCE"}


def held_out(model) -> tuple[int, ...]:
    """The digits ``model`` was trained without (from its manifest), else ()."""
    return tuple(int(d) for d in ((model.manifest.get("training") or {})
                                  .get("exclude_digits") or ()))


def score_model(model, x, positive, seed: int) -> list[dict]:
    """One row per score kind: AUROC of positive (held-out) vs the rest, plus the scores."""
    from latentforge.runtime.anomaly import auroc

    rows = []
    for kind in KINDS[model.kind]:
        s = model.score(x) if model.kind == "ae" else \
            model.score(x, kind=kind, samples=SAMPLES, seed=seed)
        rows.append({"kind": kind, "auroc": auroc(s, positive), "scores": s,
                     "normal_mean": float(s[~positive].mean()),
                     "held_out_mean": float(s[positive].mean())})
    return rows


def controls(models: dict, load) -> dict:
    """{label: the same-named model trained on every digit} for each held-out model."""
    from latentforge.runtime.api import resolve

    found = {}
    for label, m in models.items():
        if not held_out(m):
            continue
        twin = [k for k, o in models.items() if o.name == m.name and not held_out(o)]
        if twin:
            found[label] = models[twin[0]]
            continue
        try:
            resolve(m.name)
        except ValueError:
            continue
        shipped = load(m.name)
        if not held_out(shipped):
            found[label] = shipped
    return found


def anomaly(ctx) -> str:
    from latentforge.runtime.api import load

    heldout = {k: m for k, m in ctx.models.items() if held_out(m) and m.kind in KINDS}
    if not heldout:
        return ("No held-out model among the models: train one with `latentforge train "
                "vae-conv --exclude-digits 7 --out runs/vae-conv-no7` (and ae-conv likewise), "
                "export it, and pass the export with `--models`.")
    twins = controls(heldout, lambda name: load(name, threads=ctx.cfg.threads))
    table, results, panels = [], [], []
    for label, m in heldout.items():
        digits = held_out(m)
        positive = np.isin(ctx.y_test, digits)
        runs = [(label, m, f"all but {_digits(digits)}")]
        if label in twins:
            runs.append((f"{twins[label].name} (control)", twins[label], "every digit"))
        for who, model, trained in runs:
            for r in score_model(model, ctx.x_test, positive, ctx.cfg.seed):
                table.append([who, trained, WHAT[r["kind"]], r["auroc"], r["normal_mean"],
                              r["held_out_mean"]])
                results.append({"model": who, "kind_of_model": model.kind, "trained_on": trained,
                                 "held_out": list(digits), "score": r["kind"],
                                 "auroc": r["auroc"], "normal_mean": r["normal_mean"],
                                 "held_out_mean": r["held_out_mean"],
                                 "n_normal": int((~positive).sum()),
                                 "n_held_out": int(positive.sum())})
                if model is m:
                    panels.append((f"{label}: {WHAT[r['kind']]} (AUROC {r['auroc']:.3f})",
                                   r["scores"][~positive], r["scores"][positive],
                                   _digits(digits)))
    ctx.results["anomaly"] = results
    path = score_histograms(panels, ctx.fig("anomaly_scores.png"))
    n = len(ctx.x_test)
    return "\n\n".join([
        f"Scores of the first {n:,} test images (higher = more anomalous, nats per image; "
        f"VAE −ELBO with {SAMPLES} draws of z, seed {ctx.cfg.seed}). AUROC = probability that "
        "a held-out digit scores above a normal one (ties count half; 0.5 = chance). The "
        "shipped model of the same name saw every digit in training: its AUROC is the "
        "control.",
        md_table(["model", "trained on", "score", "AUROC", "mean score, normal",
                  "mean score, held out"], table),
        ctx.image(path, "score histograms, normal vs held out")])


def _digits(digits) -> str:
    return ", ".join(map(str, digits))


def score_histograms(panels, path):
    """One panel per (model, score): normal vs held-out score histograms (density)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False)
    for ax, (title, normal, held, digits) in zip(axes[0], panels):
        hi = np.percentile(np.concatenate([normal, held]), 99.5)
        bins = np.linspace(min(normal.min(), held.min()), hi, 60)
        ax.hist(normal, bins=bins, density=True, alpha=0.6, label="normal (other digits)")
        ax.hist(held, bins=bins, density=True, alpha=0.6, label=f"held out ({digits})")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("score (nats per image)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
