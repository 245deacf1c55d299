"""ddpm-unet: the course's small U-Net for 28x28x1 ε-prediction (2,495,457 parameters).

    x (B,1,28,28), t (B,) float32 timestep → ε̂ (B,1,28,28)

Encoder 32 @28 → 64 @14 → 128 @7 (2x2 max-pool between), bottleneck 256 @3, up path with
ConvTranspose(4, s2, p1) and skip concatenation; every block adds a per-block projection of the
time embedding after its first conv.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class UNetConfig:
    channels: tuple[int, int, int] = (32, 64, 128)
    bottleneck: int = 256
    time_dim: int = 64  # sinusoidal embedding size, also the MLP width
    image_size: int = 28
    time_embedding: str = "course"  # one of TIME_EMBEDDINGS


# Frequency denominators of the sinusoidal embedding: freqs_i = exp(−ln(10000)·i / d), i < half.
#   "course": d = half − 1, the course's SinusoidalPositionEmbeddings (also Ho et al.'s
#             get_timestep_embedding), so the highest frequency is exactly 1/10000;
#   "half":   d = half, what latentforge ≤ 0.1 trained with (kept to load those checkpoints).
TIME_EMBEDDINGS = ("course", "half")


def timestep_embedding(t: torch.Tensor, dim: int, kind: str = "course") -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017; Ho et al. 2020): t (B,) → (B, dim) =
    cat(sin(t·freqs), cos(t·freqs)), freqs as TIME_EMBEDDINGS[kind] says."""
    if kind not in TIME_EMBEDDINGS:
        raise ValueError(f"unknown time embedding {kind!r}; valid choices: "
                         f"{', '.join(TIME_EMBEDDINGS)}")
    half = dim // 2
    denominator = half - 1 if kind == "course" else half
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32,
                                                       device=t.device) / denominator)
    args = t.to(torch.float32)[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class Block(nn.Module):
    """conv3x3 → SiLU → (+ Linear(time)) → conv3x3 → SiLU."""

    def __init__(self, c_in: int, c_out: int, time_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.conv1(x))
        h = h + self.time(temb)[:, :, None, None]
        return F.silu(self.conv2(h))


class UNet(nn.Module):
    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        if config.time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(f"unknown time_embedding {config.time_embedding!r}; valid choices: "
                             f"{', '.join(TIME_EMBEDDINGS)}")
        self.config = config
        c1, c2, c3 = config.channels
        td = config.time_dim
        self.time_mlp = nn.Sequential(nn.Linear(td, td), nn.SiLU(), nn.Linear(td, td))
        self.down1 = Block(1, c1, td)  # (B, 32, 28, 28)
        self.down2 = Block(c1, c2, td)  # (B, 64, 14, 14)
        self.down3 = Block(c2, c3, td)  # (B, 128, 7, 7)
        self.mid = Block(c3, config.bottleneck, td)  # (B, 256, 3, 3)
        self.up3 = nn.ConvTranspose2d(config.bottleneck, c3, 4, stride=2, padding=1)  # 3 → 6
        self.dec3 = Block(2 * c3, c3, td)
        self.up2 = nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1)  # 7 → 14
        self.dec2 = Block(2 * c2, c2, td)
        self.up1 = nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)  # 14 → 28
        self.dec1 = Block(2 * c1, c1, td)
        self.out = nn.Conv2d(c1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.config.time_dim,
                                                 self.config.time_embedding))  # (B, 64)
        h1 = self.down1(x, temb)  # (B, 32, 28, 28)
        h2 = self.down2(F.max_pool2d(h1, 2), temb)  # (B, 64, 14, 14)
        h3 = self.down3(F.max_pool2d(h2, 2), temb)  # (B, 128, 7, 7)
        m = self.mid(F.max_pool2d(h3, 2), temb)  # (B, 256, 3, 3)
        u3 = F.interpolate(self.up3(m), size=h3.shape[-2:], mode="nearest")  # (B, 128, 7, 7)
        d3 = self.dec3(torch.cat([u3, h3], dim=1), temb)
        d2 = self.dec2(torch.cat([self.up2(d3), h2], dim=1), temb)  # (B, 64, 14, 14)
        d1 = self.dec1(torch.cat([self.up1(d2), h1], dim=1), temb)  # (B, 32, 28, 28)
        return self.out(d1)  # (B, 1, 28, 28)


def _specs():
    from .registry import ModelSpec

    return [ModelSpec("ddpm-unet", "ddpm", UNetConfig, UNet, "symmetric",
                      "train_ddpm:DDPMTask",
                      defaults=(("lr", 5e-4), ("batch_size", 128), ("epochs", 8),
                                ("lr_schedule", "cosine"), ("warmup_steps", 500),
                                ("min_lr", 1e-6), ("grad_clip", 1.0)),
                      legacy=(("time_embedding", "half"),))]


SPECS = _specs()
