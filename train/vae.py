"""Variational autoencoders (Kingma & Welling 2014) for 28x28x1 images in [0, 1].

    vae-dense  784 → 512 → 256 → (μ, log σ²) dz; dz → 256 → 512 → 784 sigmoid
               1,071,130 params at dz=5
    vae-conv   conv 32 (4,s2,p1) → 64 (4,s2,p1) → 128 (3) → 3200 → (μ, log σ²);
               fc → 128x5x5 → ConvT 64 (3) → 32 (4,s2,p1) → 1 (4,s2,p1) sigmoid
               313,557 params at dz=10 (the default channels (32, 64, 128)). Other widths:
               the first two convs halve 28 → 14 → 7, each further one is a 3x3 valid conv
               (7 → 5 → 3 → 1), the decoder mirrors them; e.g. channels (32, 64) or
               (16, 32, 64), the course's other encoders.

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
    channels: tuple[int, ...] = (32, 64, 128)  # encoder widths, 2 to 5; the decoder mirrors


class ConvVAE(VAE):
    def __init__(self, config: ConvVAEConfig = ConvVAEConfig()):
        super().__init__()
        self.config = config
        ch, dz = list(config.channels), config.latent_dim
        if not 2 <= len(ch) <= 5 or min(ch) < 1:
            raise ValueError(f"vae-conv takes 2 to 5 positive channel widths (two stride-2 "
                             f"convs, then 3x3 ones down to 1x1), got {config.channels}")
        side = 7 - 2 * (len(ch) - 2)  # 7, 5, 3 or 1
        flat = ch[-1] * side * side  # 3200 for (32, 64, 128)
        deep = list(zip(ch[1:], ch[2:]))  # the 3x3 valid convs after the two stride-2 ones
        enc = [nn.Conv2d(1, ch[0], 4, stride=2, padding=1), nn.ReLU(),  # (B, c1, 14, 14)
               nn.Conv2d(ch[0], ch[1], 4, stride=2, padding=1), nn.ReLU()]  # (B, c2, 7, 7)
        for a, b in deep:
            enc += [nn.Conv2d(a, b, 3), nn.ReLU()]  # side − 2 each: (B, c3, 5, 5), …
        self.encoder = nn.Sequential(*enc, nn.Flatten())  # (B, flat)
        self.fc_mu = nn.Linear(flat, dz)
        self.fc_logvar = nn.Linear(flat, dz)
        dec = [nn.Linear(dz, flat), nn.ReLU(), nn.Unflatten(1, (ch[-1], side, side))]
        for a, b in reversed(deep):
            dec += [nn.ConvTranspose2d(b, a, 3), nn.ReLU()]  # side + 2 each, back to 7
        self.decoder = nn.Sequential(
            *dec,
            nn.ConvTranspose2d(ch[1], ch[0], 4, stride=2, padding=1), nn.ReLU(),  # (B, c1, 14, 14)
            nn.ConvTranspose2d(ch[0], 1, 4, stride=2, padding=1), nn.Sigmoid())  # (B, 1, 28, 28)


def _specs():
    from .registry import ModelSpec

    return [ModelSpec("vae-dense", "vae", DenseVAEConfig, DenseVAE, "unit", "train_ae:VAETask"),
            ModelSpec("vae-conv", "vae", ConvVAEConfig, ConvVAE, "unit", "train_ae:VAETask")]


SPECS = _specs()
