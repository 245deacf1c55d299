"""Report section 1: every model with its size and test metrics, computed here through the
ONNX runtime."""
from __future__ import annotations

import numpy as np

from .markdown import md_table
from .metrics import image_metrics, kl_to_prior


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
