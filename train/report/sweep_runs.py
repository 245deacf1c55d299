"""Training and scoring one sweep cell, shared by the β/latent sweeps (section 6) and the
architecture sweeps (section 8).

Each run trains with the shared trainer (``--quick``: 1 epoch on a 6,000-image subset at
batch 32; full: 5 epochs on the 50k training split at batch 128, see config.QUICK/FULL) under
DIR/runs/<subset>/<run_name>, and a finished run is reused when the report is generated again
(``--resume`` semantics). Scores: the trainer's test metrics (reconstruction BCE/MSE and KL
with decode(μ) on the first ``sweep_limit`` test images, or all 10,000), and the classifier
FD of prior samples z ~ N(0, I)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from latentforge.runtime.quality import score


def train_seconds(run_dir: Path, epochs: int) -> float:
    """Training time of a run as its metrics.jsonl records it (per-epoch time_s summed), so a
    reused run still reports what it cost."""
    from latentforge.train.trainer import read_history

    rows = read_history(run_dir / "metrics.jsonl", epochs)
    return float(sum(r["time_s"] for r in rows)) if rows else float("nan")


def run_name(model: str, beta: float, latent: int, arch: dict | None = None) -> str:
    """DIR/runs/<subset>/<name> of a run: the model's default architecture keeps the plain
    name, so the β/latent sweeps and the architecture sweeps share those runs."""
    extra = "".join(f"-{key[0]}{'-'.join(map(str, v))}" for key, v in (arch or {}).items())
    return f"{model}-beta{beta:g}-z{latent}{extra}"  # e.g. vae-conv-beta1-z10-c16-32-64


def subset_name(cfg) -> str:
    """The folder under DIR/runs/ that holds the runs of one data subset and batch size."""
    return (f"limit{cfg.sweep_limit}" if cfg.sweep_limit else "all") + \
        f"-batch{cfg.sweep_batch_size}"


def train_run(ctx, model_name: str, beta: float, latent: int, arch: dict | None = None):
    """(model in eval mode, checkpoint, run directory) of one sweep run, trained or reused.
    ``arch``: config overrides such as {"channels": (16, 32, 64)}, only where they differ
    from the model's default (None or {} = the default architecture)."""
    from latentforge.train.registry import model_from_checkpoint
    from latentforge.train.trainer import TrainArgs, train

    cfg = ctx.cfg
    out = ctx.out / "runs" / subset_name(cfg) / run_name(model_name, beta, latent, arch)
    val_size = min(cfg.sweep_val_size, len(ctx.u8_real) // 3)
    ckpt = train(TrainArgs(model=model_name, epochs=cfg.sweep_epochs, beta=beta,
                           latent_dim=latent, batch_size=cfg.sweep_batch_size, **(arch or {}),
                           data_dir=str(ctx.data_dir), out=str(out),
                           resume=(out / "last.pt").is_file(), quiet=True,
                           val_size=val_size, limit=cfg.sweep_limit, seed=cfg.seed,
                           device=cfg.device))
    return model_from_checkpoint(ckpt)[2].cpu(), ckpt, out


def evaluate_run(ctx, model, ckpt: dict, latent: int) -> dict:
    """The trainer's test metrics (decode(μ) on its test split) and the prior samples'
    classifier scores."""
    import torch

    m = ckpt["metrics"]["test"]
    g = torch.Generator().manual_seed(ctx.cfg.seed)
    with torch.no_grad():
        z = torch.randn(ctx.cfg.n_samples, latent, generator=g)
        samples = model.decode(z).clamp(0, 1).numpy()  # (n, 1, 28, 28)
        recon = model.decode(model.encode(torch.from_numpy(ctx.x_test[:8]))[0]).numpy()
    q = score(ctx.classifier, samples, ctx.reference)
    return {"bce": m["bce"], "kl": m["kl"], "neg_elbo_mu": m["neg_elbo_mu"], "mse": m["mse"],
            "psnr": m["psnr"], "fd": q.fd, "confident": q.confident,
            "max_deviation_pp": q.max_deviation_pp,
            "_grid": [np.concatenate([ctx.x_test[:8], recon]), samples[:16]]}


def run_cell(ctx, model_name: str, beta: float, latent: int, arch: dict | None = None):
    """(scores, model) of one cell: evaluate_run's scores plus epochs, train_s (training time
    from metrics.jsonl, kept when the run is reused) and seconds (this call's wall time)."""
    t0 = time.time()
    model, ckpt, out = train_run(ctx, model_name, beta, latent, arch)
    r = evaluate_run(ctx, model, ckpt, latent)
    epochs = int(ckpt["epoch"])
    return {**r, "epochs": epochs, "train_s": round(train_seconds(out, epochs), 3),
            "seconds": round(time.time() - t0, 1)}, model
