"""Report section 6: the β sweep and the latent-size sweep of vae-conv.

Each run trains with the shared trainer (``--quick``: 1 epoch on a 6,000-image subset at
batch 32; full: 5 epochs on the 50k training split at batch 128, see config.QUICK/FULL) under
DIR/runs/<subset>/, and a finished run is reused when the report is generated again
(``--resume`` semantics). Scores: the trainer's test metrics (reconstruction BCE/MSE
and KL with decode(μ) on the first ``sweep_limit`` test images, or all 10,000), and the
classifier FD of prior samples z ~ N(0, I)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from latentforge.runtime.quality import score

from . import figures as figs
from .markdown import md_table

BETAS = (0.2, 0.5, 1.0, 2.0, 5.0)  # at latent size BASE_LATENT
LATENTS = (2, 5, 10, 20, 50, 100)  # at β = BASE_BETA
BASE_LATENT, BASE_BETA = 10, 1.0
MODEL = "vae-conv"


def train_seconds(run_dir: Path, epochs: int) -> float:
    """Training time of a run as its metrics.jsonl records it (per-epoch time_s summed), so a
    reused run still reports what it cost."""
    from latentforge.train.trainer import read_history

    rows = read_history(run_dir / "metrics.jsonl", epochs)
    return float(sum(r["time_s"] for r in rows)) if rows else float("nan")


def train_run(ctx, beta: float, latent: int):
    """(model in eval mode, checkpoint, run directory) of one sweep run, trained or reused."""
    from latentforge.train.registry import model_from_checkpoint
    from latentforge.train.trainer import TrainArgs, train

    cfg = ctx.cfg
    subset = (f"limit{cfg.sweep_limit}" if cfg.sweep_limit else "all") + \
        f"-batch{cfg.sweep_batch_size}"
    out = ctx.out / "runs" / subset / f"{MODEL}-beta{beta:g}-z{latent}"
    val_size = min(cfg.sweep_val_size, len(ctx.u8_real) // 3)
    ckpt = train(TrainArgs(model=MODEL, epochs=cfg.sweep_epochs, beta=beta, latent_dim=latent,
                           batch_size=cfg.sweep_batch_size,
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


def sweeps(ctx) -> str:
    cfg = ctx.cfg
    runs: dict[tuple[float, int], dict] = {}

    def run(beta, latent):
        if (beta, latent) not in runs:
            ctx.log(f"  {MODEL} β={beta:g} latent={latent}")
            t0 = time.time()
            model, ckpt, out = train_run(ctx, beta, latent)
            r = evaluate_run(ctx, model, ckpt, latent)
            runs[(beta, latent)] = {**r, "epochs": int(ckpt["epoch"]),
                                    "train_s": round(train_seconds(out, int(ckpt["epoch"])), 1),
                                    "seconds": round(time.time() - t0, 1)}
        return runs[(beta, latent)]

    beta_rows = [{"value": b, **run(b, BASE_LATENT)} for b in BETAS]
    latent_rows = [{"value": k, **run(BASE_BETA, k)} for k in LATENTS]
    header = ["recon BCE", "KL", "BCE + β·KL", "MSE", "classifier FD", "confident %",
              "max dev. (pp)", "epochs", "train s"]

    def table(name, rows):
        return md_table([name, *header], [[r["value"], r["bce"], r["kl"], r["neg_elbo_mu"],
                                           r["mse"], r["fd"], 100 * r["confident"],
                                           r["max_deviation_pp"], r["epochs"], r["train_s"]]
                                          for r in rows])

    images = []
    for name, rows, fmt in (("beta", beta_rows, "β = {:g}"), ("latent", latent_rows,
                                                              "latent {}")):
        path = figs.labelled_rows([(fmt.format(r["value"]), r["_grid"]) for r in rows],
                                  ["test digits / reconstructions", "prior samples"],
                                  ctx.fig(f"sweep_{name}.png"), nrow=8)
        images.append(ctx.image(path, f"{name} sweep"))
    curves = figs.sweep_curves([("β", beta_rows), ("latent", latent_rows)],
                               ctx.fig("sweep_curves.png"))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "_grid"} for r in rows]  # noqa
    ctx.results["sweeps"] = {"beta": strip(beta_rows), "latent": strip(latent_rows)}
    subset = (f"the first {cfg.sweep_limit:,} images of each split" if cfg.sweep_limit
              else "the full training split")
    n_test = min(cfg.sweep_limit or 10_000, 10_000)
    epochs = sorted({r["epochs"] for r in beta_rows + latent_rows})
    return "\n\n".join([
        f"`{MODEL}` trained for {', '.join(map(str, epochs))} epoch(s) on {subset} "
        f"(BCE reconstruction, Adam, batch {cfg.sweep_batch_size}, seed {cfg.seed}); scored "
        f"on up to {n_test:,} test images (decode(μ)) and {cfg.n_samples:,} prior samples; "
        f"*train s* is each run's training time from its metrics.jsonl (a run reused from "
        f"DIR/runs keeps the time it took when trained). β sweep at latent size {BASE_LATENT}:",
        table("β", beta_rows),
        f"Latent-size sweep at β = {BASE_BETA:g}:",
        table("latent", latent_rows),
        ctx.image(curves, "sweep curves"), *images])
