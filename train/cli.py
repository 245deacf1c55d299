"""`latentforge train | summary | evaluate`: argument set-up only; torch loads when one runs."""
from __future__ import annotations

import argparse

from .registry import model_names

HELP = argparse.ArgumentDefaultsHelpFormatter


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """Config flags shared by `train` and `summary` (None = the model's default)."""
    p.add_argument("model", choices=model_names(), help="model name")
    p.add_argument("--latent-dim", type=int, default=None,
                   help="latent size K / dz (default: the model config's)")
    p.add_argument("--activation", default=None,
                   help="ae-dense1/ae-dense2 activation: none, relu, sigmoid, tanh")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model on MNIST", formatter_class=HELP)
    add_model_flags(p)
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: per model)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: 128)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (per model)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, split and shuffling")
    p.add_argument("--beta", type=float, default=1.0, help="VAE: weight of the KL term")
    p.add_argument("--recon", choices=["bce", "mse"], default="bce",
                   help="reconstruction loss (summed per image)")
    p.add_argument("--noise", choices=["none", "gaussian", "uniform"], default="none",
                   help="input noise for a denoising autoencoder")
    p.add_argument("--noise-level", type=float, default=0.0,
                   help="gaussian std or uniform amplitude")
    p.add_argument("--data-dir", default=None,
                   help="directory of MNIST IDX files (default: $LATENTFORGE_DATA, else download)")
    p.add_argument("--out", default=None, help="output directory (default: runs/MODEL)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--dry-run", action="store_true",
                   help="one training and one validation batch, nothing written")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--val-size", type=int, default=10_000,
                   help="validation images held out from the 60k training set")
    p.add_argument("--limit", type=int, default=None, help="cap every split (quick runs)")
    p.add_argument("--ema-decay", type=float, default=0.999, help="DDPM: EMA decay (0 = off)")
    p.add_argument("--num-timesteps", type=int, default=1000, help="DDPM: T")
    p.add_argument("--beta-start", type=float, default=1e-4, help="DDPM: β_1")
    p.add_argument("--beta-end", type=float, default=0.02, help="DDPM: β_T")
    p.add_argument("--schedule", choices=["linear", "cosine"], default="linear",
                   help="DDPM: β schedule")
    p.add_argument("--sample-every", type=int, default=1,
                   help="DDPM: sample grid every N epochs (0 = never)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from .trainer import TrainArgs, train

    fields = TrainArgs.__dataclass_fields__
    train(TrainArgs(**{k: v for k, v in vars(args).items() if k in fields}))
    return 0
