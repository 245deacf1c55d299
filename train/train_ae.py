"""Training objectives for autoencoders and VAEs (the task interface of train/trainer.py).

AE:  loss = recon(x̂, x), x̂ = model(x̃)
VAE: loss = recon(x̂, x) + β·KL(q(z|x̃) ‖ N(0, I)), x̂ = decode(μ + σ·ε)   (Kingma & Welling 2014)

x̃ = x, or x corrupted by ``--noise`` (denoising: noisy input, clean target). Noise and ε are
drawn from the trainer's per-epoch generator, so resuming reproduces an uninterrupted run.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import add_input_noise
from .losses import reconstruction_loss, vae_loss


class AETask:
    def __init__(self, spec, config, args):
        self.kind = spec.kind
        self.beta, self.recon = float(args.beta), args.recon
        self.noise, self.noise_level = args.noise, float(args.noise_level)

    def corrupt(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The model's input: x, or x plus noise drawn on the CPU (same on any device)."""
        if self.noise == "none":
            return x
        return add_input_noise(x.cpu(), self.noise, self.noise_level, generator).to(x.device)

    def _terms(self, model, x_in, x, generator) -> dict:
        return {"loss": reconstruction_loss(model(x_in), x, self.recon)}

    @staticmethod
    def reconstruct(model, x_in: torch.Tensor) -> torch.Tensor:
        """The reconstruction that is scored: x̂ = model(x̃)."""
        return model(x_in)  # (B, 1, 28, 28)

    def loss(self, model, x, y, generator) -> dict:
        return self._terms(model, self.corrupt(x, generator), x, generator)

    def val_metrics(self, model, x, y, generator) -> dict:
        x_in = self.corrupt(x, generator)
        terms = self._terms(model, x_in, x, generator)
        mse = F.mse_loss(self.reconstruct(model, x_in), x)
        return {**{k: float(v.detach()) for k, v in terms.items()}, "mse": float(mse.detach())}

    def test_metrics(self, model, split) -> dict:
        from .evaluate import evaluate_images

        return evaluate_images(model, self.kind, split.images, self.noise, self.noise_level,
                               beta=self.beta)["metrics"]

    def extra_checkpoint(self) -> dict:
        return {}


class VAETask(AETask):
    def _terms(self, model, x_in, x, generator) -> dict:
        mu, logvar = model.encode(x_in)  # (B, dz) each
        x_hat = model.decode(model.reparameterize(mu, logvar, generator))  # (B, 1, 28, 28)
        return vae_loss(x_hat, x, mu, logvar, self.beta, self.recon)

    @staticmethod
    def reconstruct(model, x_in: torch.Tensor) -> torch.Tensor:
        """The reconstruction that is scored: decode(μ), no sampling."""
        return model.decode(model.encode(x_in)[0])  # (B, 1, 28, 28)
