"""Test-set evaluation of an autoencoder or VAE checkpoint: `latentforge evaluate CKPT`.

Metrics (means over the test images, pixels in [0, 1]):
    mse   per pixel            bce   summed per image        kl   per image (VAE)
    psnr  10·log10(1 / MSE_i)  ssim  Wang et al. 2004 (11x11 Gaussian window, σ = 1.5)
VAEs reconstruct from the mean: x̂ = decode(μ). With input noise (a denoising autoencoder)
``noisy_*`` scores the noisy input against the clean image too, and ``psnr_gain`` is the
denoiser's improvement in dB.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import add_input_noise, to_float
from .losses import kl_divergence

NOISE_SEED = 2024  # the test-set corruption is the same for every evaluation


def psnr(x_hat: torch.Tensor, x: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, (B, 1, H, W) pairs → (B,); capped at 100."""
    mse = (x_hat.double() - x.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-10))


def _gaussian_taps(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The 1-D Gaussian whose outer product with itself is SSIM's window, (size,) float64."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x_hat: torch.Tensor, x: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image, (B, 1, H, W) pairs → (B,).

    Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to
    structural similarity", IEEE TIP 2004: local means, variances and covariance under an
    11x11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, averaged over the valid positions.
    The window is separable, so the five local moments are filtered together as channels by
    two 11-tap passes (22 multiply-adds per pixel instead of 121, one call instead of five).
    """
    g = _gaussian_taps().to(x.device)
    a, b = x_hat.double(), x.double()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    maps = torch.cat([a, b, a * a, b * b, a * b], dim=1)  # (B, 5, H, W)
    maps = F.conv2d(maps, g.view(1, 1, 1, -1).expand(5, 1, 1, -1), groups=5)  # along W
    maps = F.conv2d(maps, g.view(1, 1, -1, 1).expand(5, 1, -1, 1), groups=5)  # along H
    mu_a, mu_b, e_aa, e_bb, e_ab = maps.unbind(1)  # each (B, H-10, W-10)
    var_a, var_b, cov = e_aa - mu_a ** 2, e_bb - mu_b ** 2, e_ab - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) *
                                                     (var_a + var_b + c2))
    return s.flatten(1).mean(1)


@torch.no_grad()
def evaluate_images(model, kind: str, images_u8: np.ndarray, noise: str = "none",
                    noise_level: float = 0.0, beta: float = 1.0, batch_size: int = 256,
                    n_grid: int = 16, labels: np.ndarray | None = None) -> dict:
    """{"metrics": {name: float}, "grid": (3·n, 1, 28, 28) inputs / targets / reconstructions}.
    A conditional VAE ("cvae") encodes and decodes with the true ``labels``."""
    if kind not in ("ae", "vae", "cvae"):
        raise ValueError(f"evaluate handles ae and vae checkpoints (and conditional cvae "
                         f"ones), not {kind!r}")
    if kind == "cvae" and labels is None:
        raise ValueError("a conditional VAE is evaluated with the images' labels")
    model.eval()
    device = next(model.parameters()).device
    x_all = torch.from_numpy(to_float(images_u8, "unit"))  # (N, 1, 28, 28)
    g = torch.Generator().manual_seed(NOISE_SEED)
    sums: dict[str, float] = {}
    grid = None
    for i in range(0, len(x_all), batch_size):
        x = x_all[i:i + batch_size]
        x_in = add_input_noise(x, noise, noise_level, g)
        x, x_in = x.to(device), x_in.to(device)
        if kind == "cvae":
            y1 = F.one_hot(torch.from_numpy(labels[i:i + batch_size].astype(np.int64)),
                           model.config.num_classes).float().to(device)  # (B, 10)
            mu, logvar = model.encode(x_in, y1)  # (B, dz) each
            x_hat = model.decode(mu, y1)
        elif kind == "vae":
            mu, logvar = model.encode(x_in)  # (B, dz) each
            x_hat = model.decode(mu)
        else:
            x_hat = model(x_in)
        x_hat = x_hat.clamp(0, 1)
        per_image = {
            "mse": (x_hat - x).pow(2).flatten(1).mean(1),
            "bce": F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1).sum(1),
            "psnr": psnr(x_hat, x), "ssim": ssim(x_hat, x)}
        if kind in ("vae", "cvae"):
            per_image["kl"] = kl_divergence(mu, logvar)
        if noise != "none":
            per_image.update({"noisy_mse": (x_in - x).pow(2).flatten(1).mean(1),
                              "noisy_psnr": psnr(x_in, x), "noisy_ssim": ssim(x_in, x)})
        for k, v in per_image.items():
            sums[k] = sums.get(k, 0.0) + float(v.double().sum())
        if grid is None:
            n = min(n_grid, len(x))
            grid = torch.cat([x_in[:n], x[:n], x_hat[:n]]).cpu()
    metrics = {k: v / len(x_all) for k, v in sums.items()}
    if kind in ("vae", "cvae"):
        metrics["neg_elbo_mu"] = metrics["bce"] + beta * metrics["kl"]  # bound at z = μ
    if noise != "none":
        metrics["psnr_gain"] = metrics["psnr"] - metrics["noisy_psnr"]
    return {"metrics": metrics, "grid": grid}


def evaluate_checkpoint(path, data_dir=None, out=None, noise: str | None = None,
                        noise_level: float | None = None, limit: int | None = None,
                        device: str = "auto", batch_size: int = 256) -> dict:
    """Evaluate CKPT on the test split; writes OUT/eval.json and OUT/eval.png (OUT defaults to
    the checkpoint's directory). Noise settings default to the ones it was trained with."""
    from .checkpoint import atomic_write_bytes, load_checkpoint
    from .data import load_splits
    from .figures import save_grid
    from .registry import model_from_checkpoint
    from .trainer import pick_device

    path = Path(path)
    ckpt = load_checkpoint(path)
    spec, config, model = model_from_checkpoint(ckpt)
    targs = ckpt.get("args") or {}
    noise = noise if noise is not None else targs.get("noise", "none")
    noise_level = float(noise_level if noise_level is not None else
                        targs.get("noise_level", 0.0))
    test = load_splits(data_dir or targs.get("data_dir"), val_size=0, limit=limit)["test"]
    model = model.to(pick_device(device))
    res = evaluate_images(model, spec.kind, test.images, noise, noise_level,
                          beta=float(targs.get("beta", 1.0)), batch_size=batch_size,
                          labels=test.labels)
    report = {"checkpoint": str(path), "model": spec.name, "epoch": ckpt.get("epoch"),
              "config": ckpt["config"], "noise": noise, "noise_level": noise_level,
              "n_images": len(test), "metrics": res["metrics"]}
    out = Path(out) if out is not None else path.parent
    text = json.dumps(report, indent=2, default=list) + "\n"
    atomic_write_bytes(out / "eval.json", lambda f: f.write(text.encode()))
    save_grid(res["grid"], out / "eval.png", nrow=len(res["grid"]) // 3)
    return report
