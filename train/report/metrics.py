"""Image metrics the report computes through the runtime: train/evaluate.py's definitions
of MSE, BCE, PSNR and SSIM, and the VAE's KL to its prior."""
from __future__ import annotations

import numpy as np


def image_metrics(x_hat: np.ndarray, x: np.ndarray) -> dict:
    """Means over images of MSE per pixel, BCE summed per image, PSNR and SSIM
    (train/evaluate.py's definitions)."""
    import torch
    import torch.nn.functional as F

    from latentforge.train.evaluate import psnr, ssim

    a, b = torch.from_numpy(np.clip(x_hat, 0, 1)), torch.from_numpy(x)
    bce = F.binary_cross_entropy(a, b, reduction="none").flatten(1).sum(1)
    return {"mse": float((a - b).double().pow(2).mean()), "bce": float(bce.double().mean()),
            "psnr": float(psnr(a, b).mean()), "ssim": float(ssim(a, b).mean())}


def kl_to_prior(mu: np.ndarray, logvar: np.ndarray) -> float:
    mu, lv = mu.astype(np.float64), logvar.astype(np.float64)
    return float(np.mean(0.5 * np.sum(mu ** 2 + np.exp(lv) - 1.0 - lv, axis=1)))
