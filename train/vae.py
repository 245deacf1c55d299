"""Variational autoencoders (Kingma & Welling 2014) for 28x28x1 images in [0, 1].

    vae-dense  784 → 512 → 256 → (μ, log σ²) dz; dz → 256 → 512 → 784 sigmoid
               1,071,130 params at dz=5
    vae-conv   conv 32 (4,s2,p1) → 64 (4,s2,p1) → 128 (3) → 3200 → (μ, log σ²);
               fc → 128x5x5 → ConvT 64 (3) → 32 (4,s2,p1) → 1 (4,s2,p1) sigmoid
               313,557 params at dz=10

API (the ONNX export relies on it): encode(x) → (μ, log σ²) each (B, dz),
reparameterize(μ, log σ²) → z, decode(z) → x̂ (B, 1, 28, 28), forward(x) → (x̂, μ, log σ²).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .autoencoders import mlp


class VAE(nn.Module):
    """encode/reparameterize/decode on top of ``encoder`` (x → features), ``fc_mu``,
    ``fc_logvar`` and ``decoder`` (z → x̂), set by the subclass."""

    encoder: nn.Module
    fc_mu: nn.Module
    fc_logvar: nn.Module
    decoder: nn.Module

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)  # (B, features)
        return self.fc_mu(h), self.fc_logvar(h)  # (B, dz), (B, dz)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ·ε, ε ~ N(0, I), σ = exp(½ log σ²)."""
        std = torch.exp(0.5 * logvar)
        eps = torch.randn(std.shape, generator=generator).to(std)  # CPU draw: same on any device
        return mu + eps * std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, dz) → (B, 1, 28, 28)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar, generator)), mu, logvar


@dataclass
class DenseVAEConfig:
    latent_dim: int = 5
    hidden: tuple[int, ...] = (512, 256)  # encoder widths; the decoder mirrors them


class DenseVAE(VAE):
    def __init__(self, config: DenseVAEConfig = DenseVAEConfig()):
        super().__init__()
        self.config = config
        h, dz = list(config.hidden), config.latent_dim
        self.encoder = nn.Sequential(nn.Flatten(), *mlp([784, *h], "relu"))  # (B, h[-1])
        self.fc_mu = nn.Linear(h[-1], dz)
        self.fc_logvar = nn.Linear(h[-1], dz)
        self.decoder = nn.Sequential(*mlp([dz, *h[::-1]], "relu"), nn.Linear(h[0], 784),
                                     nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))


@dataclass
class ConvVAEConfig:
    latent_dim: int = 10
    channels: tuple[int, int, int] = (32, 64, 128)


class ConvVAE(VAE):
    def __init__(self, config: ConvVAEConfig = ConvVAEConfig()):
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        dz, flat = config.latent_dim, c3 * 5 * 5
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.ReLU(),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),  # (B, c2, 7, 7)
            nn.Conv2d(c2, c3, 3), nn.ReLU(),  # (B, c3, 5, 5)
            nn.Flatten())  # (B, 3200)
        self.fc_mu = nn.Linear(flat, dz)
        self.fc_logvar = nn.Linear(flat, dz)
        self.decoder = nn.Sequential(
            nn.Linear(dz, flat), nn.ReLU(), nn.Unflatten(1, (c3, 5, 5)),
            nn.ConvTranspose2d(c3, c2, 3), nn.ReLU(),  # (B, c2, 7, 7)
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),  # (B, c1, 14, 14)
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1), nn.Sigmoid())  # (B, 1, 28, 28)


def _specs():
    from .registry import ModelSpec

    return [ModelSpec("vae-dense", "vae", DenseVAEConfig, DenseVAE, "unit", "train_ae:VAETask"),
            ModelSpec("vae-conv", "vae", ConvVAEConfig, ConvVAE, "unit", "train_ae:VAETask")]


SPECS = _specs()
