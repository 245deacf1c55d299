"""Report section "conditional": the conditional VAE (cvae-conv) draws the digit it is asked
for. A 10×10 grid whose row r holds digit r and whose column c reuses one prior draw z_c (so a
column shows one "style" as every digit), and the classifier's verdict on n samples requested
as 0, 1, …, 9 in turn (the `latentforge quality CVAE -n N --seed S` set): per digit, the
share classified as the requested digit; for all n, classifier FD, confident share and the
class histogram's largest deviation from 10%."""
from __future__ import annotations

import numpy as np

from .markdown import md_table


def digit_grid(cvae, seed: int) -> np.ndarray:
    """(100, 1, 28, 28): row d = digit d, column c = prior draw c of ``seed`` (the same z
    in every row)."""
    return np.concatenate([cvae.sample(10, seed=seed, digit=d) for d in range(10)])


def conditional(ctx) -> str:
    from latentforge.runtime.images import save_grid
    from latentforge.runtime.quality import requested_digit_accuracy, score

    found = [(k, m) for k, m in ctx.models.items() if m.kind == "cvae"]
    if not found:
        return ("No conditional VAE among the models: ship cvae-conv (`latentforge train "
                "cvae-conv`, then `latentforge ship runs/cvae-conv/last.pt`) or pass its "
                "export with `--models`.")
    seed, n = ctx.cfg.seed, ctx.cfg.n_samples
    parts, results = [], {}
    for label, cvae in found:
        grid = ctx.fig(f"cvae_grid_{label}.png")
        save_grid(digit_grid(cvae, seed), grid, nrow=10)
        requested = cvae.sample_digits(n)  # 0, 1, …, 9, 0, …
        images = cvae.sample(n, seed=seed)
        acc = requested_digit_accuracy(ctx.classifier, images, requested)
        q = score(ctx.classifier, images, ctx.reference)
        overall = float(np.mean([acc[int(d)] for d in requested]))
        results[label] = {"requested_digit_accuracy": acc, "overall": overall,
                          "lowest": min(acc.values()), "n": n, "seed": seed,
                          "parameters": cvae.manifest.get("parameters"), **q.to_dict()}
        rows = [[d, int((requested == d).sum()), 100 * a] for d, a in acc.items()]
        parts += [
            f"**{label}** ({cvae.manifest.get('parameters', 0):,} parameters). Rows: digits "
            f"0–9; columns: 10 prior draws z (seed {seed}), the same z along each column.",
            ctx.image(grid, f"{label}: row = requested digit"),
            f"{n:,} samples requested as 0, 1, …, 9 in turn (seed {seed}; `latentforge "
            f"quality {label} -n {n} --seed {seed}`), classified by "
            f"`{ctx.classifier.directory.name}`: **{100 * overall:.1f}%** are the requested "
            f"digit (lowest digit {100 * min(acc.values()):.1f}%); classifier FD "
            f"**{q.fd:.2f}** against {q.reference_n:,} test images, "
            f"{100 * q.confident:.1f}% confident, largest class deviation "
            f"{q.max_deviation_pp:.1f} pp.",
            md_table(["requested digit", "samples", "classified as requested (%)"], rows)]
    ctx.results["conditional"] = results
    return "\n\n".join(parts)
