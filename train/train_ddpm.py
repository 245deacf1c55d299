"""The DDPM objective (Ho et al. 2020, Algorithm 1): t ~ U{0..T−1}, ε ~ N(0, I),
loss = ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖² (mean over pixels). Data in [−1, 1].

With --p2-gamma γ > 0 the training loss weights each draw by λ_t = 1/(k + SNR(t))^γ
(P2 weighting, Choi et al. 2022, eq. 8); validation and test report the unweighted
ε-MSE, so runs with and without the weighting compare on one number."""
from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn.functional as F

from .schedule import NoiseSchedule, ScheduleConfig


class DDPMTask:
    use_ema = True

    def __init__(self, spec, config, args):
        self.args = args
        self.schedule = NoiseSchedule(ScheduleConfig(args.num_timesteps, args.beta_start,
                                                     args.beta_end, args.schedule))
        self.weights = (torch.from_numpy(self.schedule.p2_weights(args.p2_gamma, args.p2_k))
                        .float() if args.p2_gamma > 0 else None)  # (T,); None = L_simple

    def _loss(self, model, x0, generator, weighted=False):
        T = self.schedule.num_timesteps
        t = torch.randint(0, T, (len(x0),), generator=generator)  # (B,)
        noise = torch.randn(x0.shape, generator=generator)  # (B, 1, 28, 28)
        t, noise = t.to(x0.device), noise.to(x0.device)
        x_t = self.schedule.q_sample(x0, t, noise)
        eps = model(x_t, t.float()).float()  # fp32 loss under autocast
        if not weighted or self.weights is None:
            return F.mse_loss(eps, noise)
        per_draw = (eps - noise).pow(2).flatten(1).mean(1)  # (B,)
        return (self.weights.to(x0.device)[t] * per_draw).mean()

    def loss(self, model, x, y, generator):
        return {"loss": self._loss(model, x, generator, weighted=True)}

    def val_metrics(self, model, x, y, generator):
        return {"loss": float(self._loss(model, x, generator))}

    def test_metrics(self, model, split):
        from .data import to_float

        x = torch.from_numpy(to_float(split.images, "symmetric"))
        g = torch.Generator().manual_seed(2024)
        device = next(model.parameters()).device
        with torch.no_grad():
            losses = [float(self._loss(model, x[i:i + 256].to(device), g)) * len(x[i:i + 256])
                      for i in range(0, len(x), 256)]
        return {"eps_mse": sum(losses) / len(x)}

    def extra_checkpoint(self) -> dict:
        return {"schedule": asdict(self.schedule.config)}

    def on_epoch_end(self, model, epoch, out_dir):
        """A 64-digit grid from the EMA weights (DDIM, 50 steps, fixed seed) per epoch."""
        every = self.args.sample_every
        if not every or epoch % every:
            return
        from .figures import save_grid
        from .samplers import sample

        device = next(model.parameters()).device
        g = torch.Generator().manual_seed(0)
        x, _ = sample(lambda xt, t: model(xt.to(device), t.to(device)).cpu(), self.schedule,
                      64, method="ddim", steps=50, generator=g)
        save_grid((x + 1) / 2, out_dir / f"samples_epoch{epoch:03d}.png")
        if epoch == self.args.epochs:  # the figures of the course, from the final weights
            from .figures import forward_strip, reverse_strip
            from .data import load_splits, to_float

            digit = load_splits(self.args.data_dir, val_size=0, limit=1)["test"].images
            forward_strip(torch.from_numpy(to_float(digit, "symmetric")), self.schedule,
                          out_dir / "forward_strip.png")
            reverse_strip(lambda xt, t: model(xt.to(device), t.to(device)).cpu(),
                          self.schedule, out_dir / "reverse_strip.png")
