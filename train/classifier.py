"""classifier: a small MNIST CNN (≥ 99% test accuracy) whose penultimate features give the
classifier Fréchet distance used to score generated digits (FID's recipe, Heusel et al. 2017,
with an MNIST classifier in place of Inception).

    x (B,1,28,28) in [0,1] → logits (B,10), features (B,128)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ClassifierConfig:
    channels: tuple[int, int] = (32, 64)
    feature_dim: int = 128
    dropout: float = 0.25


class Classifier(nn.Module):
    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.Conv2d(c1, c1, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, 7, 7)
        )
        self.fc = nn.Linear(c2 * 7 * 7, config.feature_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.conv(x).flatten(1)))  # (B, 128)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.head(self.dropout(f)), f  # logits (B, 10), features (B, 128)


class ClassifierTask:
    """Cross-entropy on labels, with small random shifts (±2 px) as augmentation."""

    def __init__(self, spec, config, args):
        pass

    @staticmethod
    def _shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=generator))
        return torch.roll(x, shifts=(dy, dx), dims=(2, 3))

    def loss(self, model, x, y, generator):
        logits, _ = model(self._shift(x, generator))
        return {"loss": F.cross_entropy(logits, y)}

    @torch.no_grad()
    def val_metrics(self, model, x, y, generator):
        logits, _ = model(x)
        return {"loss": float(F.cross_entropy(logits, y)),
                "accuracy": float((logits.argmax(1) == y).float().mean())}

    @torch.no_grad()
    def test_metrics(self, model, split):
        from .data import to_float

        x = torch.from_numpy(to_float(split.images, "unit"))
        y = torch.from_numpy(split.labels.astype("int64"))
        correct = sum(int((model(x[i:i + 500])[0].argmax(1) == y[i:i + 500]).sum())
                      for i in range(0, len(x), 500))
        return {"accuracy": correct / len(x)}

    def extra_checkpoint(self) -> dict:
        return {}


def _specs():
    from .registry import ModelSpec

    return [ModelSpec("classifier", "classifier", ClassifierConfig, Classifier, "unit",
                      "classifier:ClassifierTask",
                      defaults=(("lr", 1e-3), ("batch_size", 128), ("epochs", 4)))]


SPECS = _specs()
