"""Reconstruction and KL terms for autoencoders and VAEs.

Every term is summed over the pixels (or latent dimensions) of one image and averaged over the
batch, so the numbers read "per image" and the VAE objective is the negative ELBO of
Kingma & Welling, "Auto-Encoding Variational Bayes" (ICLR 2014), eq. 10 with Appendix B.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

RECON_KINDS = ("bce", "mse")


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """BCE (Bernoulli decoder) or squared error, summed per image, mean over the batch."""
    if kind == "bce":
        per_pixel = F.binary_cross_entropy(x_hat, x, reduction="none")
    elif kind == "mse":
        per_pixel = F.mse_loss(x_hat, x, reduction="none")
    else:
        raise ValueError(f"recon must be one of {RECON_KINDS}, got {kind!r}")
    return per_pixel.flatten(1).sum(1).mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per sample, (B, dz) → (B,).

    Closed form from Kingma & Welling 2014, Appendix B:
        −KL = ½ Σ_j (1 + log σ_j² − μ_j² − σ_j²)
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def vae_loss(x_hat, x, mu, logvar, beta: float = 1.0, recon: str = "bce") -> dict:
    """Negative ELBO with a β-weighted KL (Higgins et al. 2017 for β ≠ 1), per image."""
    rec = reconstruction_loss(x_hat, x, recon)
    kl = kl_divergence(mu, logvar).mean()
    return {"loss": rec + beta * kl, "recon": rec, "kl": kl}
