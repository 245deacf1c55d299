"""Report section 3: samples of every generative model (VAE priors, the DDPM under each
setting of the sampler table) and their classifier scores against the test-set reference."""
from __future__ import annotations

import time

import numpy as np

from latentforge.runtime.quality import Quality, score
from latentforge.runtime.sampler_table import (QUALITY_MATCH, SETTINGS, Setting,
                                               mark_quality_matched, measure)

from . import figures as figs
from .markdown import md_table

GOAL_CONFIDENT, GOAL_DEVIATION_PP, GOAL_FD = 0.95, 3.0, 20.0


def ddpm_plans(ctx) -> tuple[list[tuple[Setting, int]], list[str]]:
    """[(setting, n)] of the sampler table's settings (runtime/sampler_table.SETTINGS) that
    ``cfg.samplers`` names and the caps allow, and notes about what was capped or skipped."""
    T, cap = ctx.ddpm.num_timesteps, ctx.cfg.max_steps
    plans, notes = [], []
    for setting in SETTINGS:
        if setting.label not in ctx.cfg.samplers:
            continue
        if setting.steps is None:  # ancestral / ddpm: all T steps
            if cap is not None and T > cap:
                notes.append(f"{setting.method} sampling ({T} steps) skipped: --max-steps {cap}")
                continue
            plans.append((setting, ctx.cfg.n_ancestral))
            continue
        real = min(setting.steps, T, cap or T)
        if real != setting.steps:
            notes.append(f"{setting.label} capped at {real} steps")
        capped = Setting(setting.method, real, setting.eta)
        if capped not in [p[0] for p in plans]:
            plans.append((capped, ctx.cfg.n_samples))
    return plans, notes


def samples(ctx) -> str:
    cfg, n = ctx.cfg, ctx.cfg.n_samples
    rng = np.random.default_rng(cfg.seed)
    real = ctx.u8_real[rng.choice(len(ctx.u8_real), size=min(n, len(ctx.u8_real)),
                                  replace=False)].astype(np.float32)[:, None] / 255.0
    out, panels, hists = [], [], []

    def add(label, method, steps, q, secs, images, extra=None):
        name = f"{label} {method}" + (f" {steps}" if steps else "")
        out.append({"samples": label, "method": method, "steps": steps, "seconds": secs,
                    **q.to_dict(), **(extra or {})})
        hists.append((name, q.histogram))
        panels.append((f"{name}: FD {q.fd:.2f}, {100 * q.confident:.0f}% confident",
                       images[:64]))

    add("real training digits", "—", None, score(ctx.classifier, real, ctx.reference), 0.0,
        real)
    for label, m in ctx.latent.items():
        if m.kind == "vae":
            t0 = time.time()
            images = m.sample(n, seed=cfg.seed)
            add(label, "prior", None, score(ctx.classifier, images, ctx.reference),
                time.time() - t0, images)
    notes, ddpm_rows = [], []
    if ctx.ddpm is not None:
        plans, notes = ddpm_plans(ctx)
        for setting, count in plans:
            ctx.log(f"samples: {setting.label}, n = {count}")
            row, images = measure(ctx.ddpm, ctx.classifier, ctx.reference, setting, count,
                                  seed=cfg.seed, cache=ctx.out / "cache" / "samplers",
                                  progress=not cfg.quiet)
            ddpm_rows.append(row)
            q = Quality(fd=row["fd"], confident=row["confident"], histogram=row["histogram"],
                        n=row["n"], reference_n=row["reference_n"])
            label = ctx.ddpm.directory.name
            method = setting.method + (f" η={setting.eta:g}" if setting.eta else "")
            add(label, method, row["steps"], q, row["seconds"], images, {"eta": setting.eta})
        fastest = mark_quality_matched(ddpm_rows)
        for r, o in zip(ddpm_rows, out[-len(ddpm_rows):]):
            ok = r["confident"] >= GOAL_CONFIDENT and r["max_deviation_pp"] <= GOAL_DEVIATION_PP
            o["goal"] = "met" if ok and r["fd"] <= GOAL_FD else "not met"
            o["quality_matched"] = r.get("matched")
            o["fastest_matched"] = fastest is not None and r is fastest
    rows = [[o["samples"], o["method"], o["steps"], o["n"], round(o["seconds"], 1), o["fd"],
             100 * o["confident"], o["max_deviation_pp"],
             {True: "yes", False: "no"}.get(o.get("quality_matched"), "—")
             + (" (fastest)" if o.get("fastest_matched") else ""), o.get("goal")]
            for o in out]
    ctx.results["samples"] = out
    hist = figs.class_histograms(hists, ctx.fig("class_histograms.png"))
    grids = figs.image_panels(panels, ctx.fig("samples.png"), ncols=3, width=4.0)
    return "\n\n".join([
        "Scores against the test-set reference; *real training digits* is the FD floor for "
        "the same n. *Seconds*: sampling time on this machine at batch 64. *Quality-matched*: "
        f"classifier FD within {100 * QUALITY_MATCH:.0f}% of the ancestral 1000-step loop's; "
        "the fastest such setting is `latentforge sample`'s default. DDPM goal: ≥ 95% "
        f"confident, every class within ±3 pp of 10%, FD ≤ {GOAL_FD:g}.",
        md_table(["samples", "method", "steps", "n", "seconds", "classifier FD",
                  "confident %", "max dev. (pp)", "quality-matched", "DDPM goal"], rows),
        *([" ".join(f"Note: {t}." for t in notes)] if notes else []),
        ctx.image(hist, "predicted class histograms"), ctx.image(grids, "samples")])
