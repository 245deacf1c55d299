"""Report section 7: the DDPM's forward noising q(x_t | x_0) of test digits, and reverse
chains from noise to digits."""
from __future__ import annotations

import numpy as np

from . import figures as figs


def reverse_capture(timesteps: np.ndarray) -> list[int]:
    """About nine timesteps of a reverse trajectory for the strip, noisiest first."""
    T = int(timesteps[0]) + 1
    want = np.array([1.0, 0.8, 0.6, 0.4, 0.25, 0.15, 0.08, 0.03, 0.0]) * (T - 1)
    picks = {int(timesteps[np.argmin(np.abs(timesteps - w))]) for w in want}
    return sorted(picks, reverse=True)


def ddpm_strips(ctx) -> str:
    if ctx.ddpm is None:
        return "No DDPM given (ship runtime/models/ddpm-unet or pass --ddpm DIR)."
    d, cfg = ctx.ddpm, ctx.cfg
    ac = d.schedule["alphas_cumprod"].astype(np.float64)
    T = d.num_timesteps
    ts = sorted({int(round(f * (T - 1))) for f in (0, .025, .05, .1, .2, .3, .5, .7, 1.0)})
    x0 = ctx.x_test[:8].astype(np.float64) * 2 - 1
    eps = np.random.default_rng(cfg.seed).standard_normal(x0.shape)
    fwd = np.stack([np.sqrt(ac[t]) * x0 + np.sqrt(1 - ac[t]) * eps for t in ts], axis=1)
    fwd = np.clip((fwd + 1) / 2, 0, 1).astype(np.float32)  # (8, len(ts), 1, 28, 28)
    p1 = figs.strip(fwd, [f"t={t}" for t in ts], ctx.fig("ddpm_forward.png"),
                    r"forward process $q(x_t | x_0) = N(\sqrt{\bar\alpha_t}\,x_0,\ "
                    r"(1 - \bar\alpha_t) I)$")
    # 8 digits by the course's ancestral loop (DDIM-50 when --max-steps caps T)
    method = "ancestral" if T <= (cfg.max_steps or T) else "ddim"
    steps = None if method == "ancestral" else min(50, cfg.max_steps)
    capture = reverse_capture(d.timesteps(method, steps))
    images, cap = d.sample(8, steps=steps, method=method, seed=cfg.seed,
                           progress=not cfg.quiet, capture=capture)
    steps = len(d.timesteps(method, steps))
    rev = np.stack([cap[t][:8] for t in capture] + [images[:8]], axis=1)
    p2 = figs.strip(rev, [f"t={t}" for t in capture] + ["x0"], ctx.fig("ddpm_reverse.png"),
                    f"reverse process ({method}, {steps} steps): x_t before the update at t")
    return "\n\n".join([ctx.image(p1, "forward noising"), ctx.image(p2, "reverse evolution")])
