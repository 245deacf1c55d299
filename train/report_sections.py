"""Report sections 1, 2, 3 and 7: the model table, reconstructions and denoising, scored
samples, and the DDPM's forward and reverse processes. Each takes the report Context and
returns Markdown; numbers also go to ``ctx.results`` (report.json)."""
from __future__ import annotations

import time

import numpy as np

from latentforge.runtime.images import save_grid
from latentforge.runtime.quality import Quality, score
from latentforge.runtime.sampler_table import (QUALITY_MATCH, SETTINGS, Setting,
                                               mark_quality_matched, measure)

from . import report_figures as figs
from .report import md_table

NOISE_SETTINGS = (("gaussian", 0.3), ("gaussian", 0.5), ("uniform", 0.5), ("uniform", 0.8))
GOAL_CONFIDENT, GOAL_DEVIATION_PP, GOAL_FD = 0.95, 3.0, 20.0


def image_metrics(x_hat: np.ndarray, x: np.ndarray) -> dict:
    """Means over images of MSE per pixel, BCE summed per image, PSNR and SSIM
    (train/evaluate.py's definitions)."""
    import torch
    import torch.nn.functional as F

    from .evaluate import psnr, ssim

    a, b = torch.from_numpy(np.clip(x_hat, 0, 1)), torch.from_numpy(x)
    bce = F.binary_cross_entropy(a, b, reduction="none").flatten(1).sum(1)
    return {"mse": float((a - b).double().pow(2).mean()), "bce": float(bce.double().mean()),
            "psnr": float(psnr(a, b).mean()), "ssim": float(ssim(a, b).mean())}


def kl_to_prior(mu: np.ndarray, logvar: np.ndarray) -> float:
    mu, lv = mu.astype(np.float64), logvar.astype(np.float64)
    return float(np.mean(0.5 * np.sum(mu ** 2 + np.exp(lv) - 1.0 - lv, axis=1)))


def onnx_mb(model) -> float:
    return sum((model.directory / g["file"]).stat().st_size
               for g in model.manifest["graphs"].values()) / 1e6


def models_table(ctx) -> str:
    everything = dict(ctx.models)
    for m in (ctx.classifier, ctx.ddpm):
        if m is not None and all(m is not v for v in everything.values()):
            everything[m.directory.name] = m
    rows, out = [], {}
    for label, m in everything.items():
        r = {"kind": m.kind, "latent": m.latent_dim, "parameters": m.manifest.get("parameters"),
             "onnx_mb": onnx_mb(m)}
        if m.kind in ("ae", "vae"):
            r.update(image_metrics(m.reconstruct(ctx.x_test), ctx.x_test))
            if m.kind == "vae":
                r["kl"] = kl_to_prior(*m.encode(ctx.x_test))
        elif m.kind == "classifier":
            logits = m.logits_and_features(ctx.x_test)[0]
            r["other"] = f"accuracy {100 * np.mean(logits.argmax(1) == ctx.y_test):.2f}%"
        elif m.kind == "ddpm":
            eps = (m.metrics.get("test") or {}).get("eps_mse")
            r["other"] = f"T = {m.num_timesteps}" + (f", test ε-MSE {eps:.4f} (manifest)"
                                                     if eps is not None else "")
        out[label] = r
        rows.append([label, m.kind, r["latent"], r["parameters"], r.get("mse"), r.get("bce"),
                     r.get("kl"), r.get("psnr"), r.get("ssim"), r.get("other", ""),
                     round(r["onnx_mb"], 2)])
    ctx.results["models"] = out
    return ("Test metrics computed here through the ONNX runtime on the first "
            f"{len(ctx.x_test):,} test images (VAEs decode μ). MSE per pixel, BCE summed per "
            "image, KL(q(z|x) ‖ N(0, I)) per image, PSNR in dB, SSIM (11×11 Gaussian window).\n\n"
            + md_table(["model", "kind", "latent", "parameters", "MSE", "BCE", "KL", "PSNR",
                        "SSIM", "other", "ONNX MB"], rows))


def add_noise(x: np.ndarray, kind: str, level: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        noise = rng.standard_normal(x.shape, dtype=np.float32) * level
    else:
        noise = rng.uniform(-level, level, size=x.shape).astype(np.float32)
    return np.clip(x + noise, 0.0, 1.0).astype(np.float32)


def reconstructions(ctx) -> str:
    text, images = [], []
    x16 = ctx.x_test[:16]
    if ctx.latent:
        rows = np.stack([x16] + [m.reconstruct(x16) for m in ctx.latent.values()])
        path = figs.strip(rows, [""] * 16, ctx.fig("reconstructions.png"),
                          "16 test digits and their reconstructions",
                          row_labels=["input", *ctx.latent])
        text.append(ctx.image(path, "reconstructions"))
    targets, note = ctx.denoisers, ""
    if not targets:
        targets = {k: m for k, m in ctx.latent.items() if m.kind == "ae"}
        note = ("\n\nNo denoising autoencoder was given (a model whose test metrics include "
                "`noisy_psnr`, or `--denoiser`), so the plain autoencoders are shown.")
    rows, out = [], {}
    for label, m in targets.items():
        panels = []
        for i, (kind, level) in enumerate(NOISE_SETTINGS):
            noisy = add_noise(ctx.x_test, kind, level, ctx.cfg.seed + i)
            clean = m.denoise(noisy)
            before, after = image_metrics(noisy, ctx.x_test), image_metrics(clean, ctx.x_test)
            out[f"{label} {kind} {level}"] = {"noisy": before, "denoised": after}
            rows.append([label, kind, level, before["psnr"], after["psnr"], before["ssim"],
                         after["ssim"]])
            panels.append((f"{kind} {'σ' if kind == 'gaussian' else '±'}{level}: "
                           f"{before['psnr']:.1f} → {after['psnr']:.1f} dB",
                           np.concatenate([noisy[:8], ctx.x_test[:8], clean[:8]])))
        path = figs.image_panels(panels, ctx.fig(f"denoise_{label}.png"), nrow=8)
        images.append(f"**{label}**: rows of each panel: noisy / clean / denoised\n\n"
                      + ctx.image(path, f"denoising {label}"))
    ctx.results["denoising"] = out
    if rows:
        text.append(f"Denoising on the first {len(ctx.x_test):,} test images (noise clipped to "
                    "[0, 1]; uniform noise is ±level):\n\n" + md_table(
                        ["model", "noise", "level", "PSNR noisy", "PSNR denoised", "SSIM noisy",
                         "SSIM denoised"], rows) + note)
    return "\n\n".join(text + images)


def ddpm_plans(ctx) -> tuple[list[tuple[Setting, int]], list[str]]:
    """[(setting, n)] of the sampler table (runtime/sampler_table.SETTINGS) the caps allow,
    and notes about what was capped or skipped."""
    T, cap = ctx.ddpm.num_timesteps, ctx.cfg.max_steps
    plans, notes = [], []
    for setting in SETTINGS:
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


def reverse_capture(timesteps: np.ndarray) -> list[int]:
    """About nine timesteps of a reverse trajectory for the strip, noisiest first."""
    T = int(timesteps[0]) + 1
    want = np.array([1.0, 0.8, 0.6, 0.4, 0.25, 0.15, 0.08, 0.03, 0.0]) * (T - 1)
    picks = {int(timesteps[np.argmin(np.abs(timesteps - w))]) for w in want}
    return sorted(picks, reverse=True)


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


def ddpm_strips(ctx) -> str:
    if ctx.ddpm is None:
        return "No DDPM given (ship runtime/models/ddpm-unet or pass --ddpm DIR)."
    d, cfg = ctx.ddpm, ctx.cfg
    ac = d.schedule["alphas_cumprod"].astype(np.float64)
    T = d.num_timesteps
    ts = sorted({int(round(f * (T - 1))) for f in (0, .025, .05, .1, .2, .3, .5, .7, 1.0)})
    x0 = ctx.x_test[:8].astype(np.float64) * 2 - 1
    eps = np.random.default_rng(cfg.seed).standard_normal(x0.shape)
    fwd = np.stack([np.sqrt(ac[t]) * x0 + np.sqrt(1 - ac[t]) * eps for t in ts], axis=1)
    fwd = np.clip((fwd + 1) / 2, 0, 1).astype(np.float32)  # (8, len(ts), 1, 28, 28)
    p1 = figs.strip(fwd, [f"t={t}" for t in ts], ctx.fig("ddpm_forward.png"),
                    r"forward process $q(x_t | x_0) = N(\sqrt{\bar\alpha_t}\,x_0,\ "
                    r"(1 - \bar\alpha_t) I)$")
    # 8 digits by the course's ancestral loop (DDIM-50 when --max-steps caps T)
    method = "ancestral" if T <= (cfg.max_steps or T) else "ddim"
    steps = None if method == "ancestral" else min(50, cfg.max_steps)
    capture = reverse_capture(d.timesteps(method, steps))
    images, cap = d.sample(8, steps=steps, method=method, seed=cfg.seed,
                           progress=not cfg.quiet, capture=capture)
    steps = len(d.timesteps(method, steps))
    rev = np.stack([cap[t][:8] for t in capture] + [images[:8]], axis=1)
    p2 = figs.strip(rev, [f"t={t}" for t in capture] + ["x0"], ctx.fig("ddpm_reverse.png"),
                    f"reverse process ({method}, {steps} steps): x_t before the update at t")
    return "\n\n".join([ctx.image(p1, "forward noising"), ctx.image(p2, "reverse evolution")])
