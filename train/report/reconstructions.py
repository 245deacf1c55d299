"""Report section 2: reconstructions of test digits, and denoising under four noise
settings (the denoising autoencoders, else the plain ones)."""
from __future__ import annotations

import numpy as np

from . import figures as figs
from .markdown import md_table
from .metrics import image_metrics

NOISE_SETTINGS = (("gaussian", 0.3), ("gaussian", 0.5), ("uniform", 0.5), ("uniform", 0.8))


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
