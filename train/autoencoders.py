"""Deterministic autoencoders for 28x28x1 images in [0, 1].

    ae-dense1  784 → K (activation) → 784 sigmoid                      101,200 params at K=64
    ae-dense2  784 → 128 → K → 128 → 784 sigmoid (activation: relu)    218,192 params at K=64
    ae-conv    conv 16 s2 → conv 32 s2 → conv 64 7x7 → mirror           210,369 params at K=64

API (the ONNX export relies on it): encode(x) → z (B, K), decode(z) → x̂ (B, 1, 28, 28),
forward(x) → x̂. A denoising autoencoder is the same module trained on noisy inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ACTIVATIONS = ("none", "relu", "sigmoid", "tanh")


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
    return {"none": nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid,
            "tanh": nn.Tanh}[name]()


def mlp(sizes: list[int], act: str) -> list[nn.Module]:
    """Linear layers through ``sizes`` with ``act`` after each one."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), activation(act)]
    return layers


class Autoencoder(nn.Module):
    """encode/decode/forward on top of an ``encoder`` and ``decoder`` set by the subclass."""

    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, 1, 28, 28) → (B, K)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, K) → (B, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


@dataclass
class DenseAE1Config:
    latent_dim: int = 64
    activation: str = "none"  # of the code layer: none (linear, PCA-like), relu, sigmoid, tanh


class DenseAE1(Autoencoder):
    def __init__(self, config: DenseAE1Config = DenseAE1Config()):
        super().__init__()
        self.config = config
        self.encoder = nn.Sequential(nn.Flatten(),  # (B, 784)
                                     *mlp([784, config.latent_dim], config.activation))
        self.decoder = nn.Sequential(nn.Linear(config.latent_dim, 784), nn.Sigmoid(),
                                     nn.Unflatten(1, (1, 28, 28)))


@dataclass
class DenseAE2Config:
    latent_dim: int = 64
    hidden: tuple[int, ...] = (128,)  # encoder widths; the decoder mirrors them
    activation: str = "relu"


class DenseAE2(Autoencoder):
    def __init__(self, config: DenseAE2Config = DenseAE2Config()):
        super().__init__()
        self.config = config
        h, act = list(config.hidden), config.activation
        self.encoder = nn.Sequential(nn.Flatten(), *mlp([784, *h], act),
                                     nn.Linear(h[-1], config.latent_dim), activation(act))
        self.decoder = nn.Sequential(*mlp([config.latent_dim, *h[::-1]], act),
                                     nn.Linear(h[0], 784), nn.Sigmoid(),
                                     nn.Unflatten(1, (1, 28, 28)))


@dataclass
class ConvAEConfig:
    latent_dim: int = 64  # channels of the 1x1 code
    channels: tuple[int, int] = (16, 32)


class ConvAE(Autoencoder):
    def __init__(self, config: ConvAEConfig = ConvAEConfig()):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        k = config.latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.ReLU(),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),  # (B, c2, 7, 7)
            nn.Conv2d(c2, k, 7),  # (B, K, 1, 1)
            nn.Flatten())  # (B, K)
        self.decoder = nn.Sequential(
            nn.Unflatten(1, (k, 1, 1)),
            nn.ConvTranspose2d(k, c2, 7), nn.ReLU(),  # (B, c2, 7, 7)
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),  # (B, c1, 14, 14)
            nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1),
            nn.Sigmoid())  # (B, 1, 28, 28)


def _specs():
    from .registry import ModelSpec

    return [ModelSpec("ae-dense1", "ae", DenseAE1Config, DenseAE1, "unit", "train_ae:AETask"),
            ModelSpec("ae-dense2", "ae", DenseAE2Config, DenseAE2, "unit", "train_ae:AETask"),
            ModelSpec("ae-conv", "ae", ConvAEConfig, ConvAE, "unit", "train_ae:AETask")]


SPECS = _specs()
