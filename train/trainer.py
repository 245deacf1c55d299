"""The training loop shared by every model: data, optimizer, EMA, validation, progress bar,
metrics.jsonl, loss.png, atomic checkpoints and exact resume.

A task (``registry.ModelSpec.task``) supplies the objective:
    task = Task(spec, config, args)
    task.loss(model, x, y, generator) -> {"loss": tensor, ...}    (x already scaled)
    task.val_metrics(model, x, y, generator) -> {name: float}     (batch means)
    task.test_metrics(model, split) -> {name: float}               (optional)
    task.on_epoch_end(model, epoch, out_dir)                       (optional: figures)
    task.extra_checkpoint() -> dict                                 (optional: e.g. schedule)

Determinism: each epoch seeds its own generator from (seed, epoch) for shuffling and every
random draw, so resuming from the checkpoint of epoch k reproduces an uninterrupted run.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from latentforge.runtime.progress import Progress

from .checkpoint import load_checkpoint, save_checkpoint
from .data import load_splits, to_float
from .registry import build_model, config_from_dict, count_parameters, get_spec, make_config


@dataclass
class TrainArgs:
    model: str
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    latent_dim: int | None = None
    activation: str | None = None
    hidden: tuple[int, ...] | None = None  # dense widths (ae-dense2, vae-dense)
    channels: tuple[int, ...] | None = None  # conv widths (ae-conv, vae-conv, ddpm-unet)
    beta: float = 1.0
    recon: str = "bce"
    noise: str = "none"
    noise_level: float = 0.0
    data_dir: str | None = None
    out: str | None = None
    resume: bool = False
    dry_run: bool = False
    device: str = "auto"
    val_size: int = 10_000
    limit: int | None = None
    ema_decay: float = 0.999
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    schedule: str = "linear"
    sample_every: int = 1  # DDPM: sample grid every N epochs (0 = never)
    quiet: bool = False

    def resolved(self) -> "TrainArgs":
        """Fill unset epochs/batch_size/lr from the model's defaults."""
        spec = get_spec(self.model)
        base = {"epochs": 10, "batch_size": 128, "lr": 1e-3, **dict(spec.defaults)}
        return dataclasses.replace(self, **{k: v if getattr(self, k) is None else getattr(self, k)
                                            for k, v in base.items() if k in
                                            ("epochs", "batch_size", "lr")})


class EMA:
    """Exponential moving average of the weights, with the usual warm-up
    decay_t = min(decay, (1 + t) / (10 + t)) so early steps are not dominated by the init."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.num_updates = decay, 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for e, p in zip(self.model.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(p.detach(), alpha=1 - d)
            else:
                e.copy_(p)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {name!r}")
    return torch.device(name)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 12345) % (2 ** 63)


def load_task(spec, config, args):
    module, cls = spec.task.split(":")
    return getattr(importlib.import_module(f"latentforge.train.{module}"), cls)(spec, config,
                                                                                args)


def _batches(n: int, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


def train(args: TrainArgs) -> dict:
    """Train ``args.model``; returns the final checkpoint dict (also written to OUT/last.pt)."""
    args = args.resolved()
    spec = get_spec(args.model)
    device = pick_device(args.device)
    out = Path(args.out or f"runs/{args.model}")
    ckpt_path = out / "last.pt"
    resume = load_checkpoint(ckpt_path) if args.resume and ckpt_path.exists() else None
    if args.resume and resume is None:
        print(f"--resume: no checkpoint at {ckpt_path}; starting from scratch")
    config = (config_from_dict(spec, resume["config"]) if resume else
              make_config(spec, asdict(args)))
    torch.manual_seed(args.seed)
    model = build_model(spec, config).to(device)
    task = load_task(spec, config, args)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    use_ema = getattr(task, "use_ema", False) and args.ema_decay > 0
    ema = EMA(model, args.ema_decay) if use_ema else None
    start_epoch = 0
    if resume:
        model.load_state_dict(resume["model_state"])
        opt.load_state_dict(resume["optimizer"])
        if ema is not None:
            ema.model.load_state_dict(resume["ema_state"])
            ema.num_updates = int(resume.get("ema_updates", 0))
        start_epoch = int(resume["epoch"])
        torch.set_rng_state(resume["rng"]["torch"])
        print(f"resumed {ckpt_path} at epoch {start_epoch}")

    limit = 2 * args.batch_size if args.dry_run else args.limit
    val_size = min(args.val_size, args.batch_size) if args.dry_run else args.val_size
    splits = load_splits(args.data_dir, val_size=val_size, seed=args.seed, limit=limit)
    xs = {k: torch.from_numpy(to_float(s.images, spec.scaling)) for k, s in splits.items()}
    ys = {k: torch.from_numpy(s.labels.astype(np.int64)) for k, s in splits.items()}
    n_train = len(xs["train"])
    print(f"{spec.name}: {count_parameters(model):,} parameters, {n_train} train / "
          f"{len(xs['val'])} val images, device {device}")

    metrics_path = out / "metrics.jsonl"
    history = read_history(metrics_path, start_epoch) if not args.dry_run else []
    epochs = 1 if args.dry_run else args.epochs
    ckpt = resume
    for epoch in range(start_epoch, epochs):
        t0 = time.time()
        g = torch.Generator().manual_seed(epoch_seed(args.seed, epoch))
        torch.manual_seed(epoch_seed(args.seed, epoch) + 1)
        model.train()
        sums, count = {}, 0
        steps = 1 if args.dry_run else (n_train + args.batch_size - 1) // args.batch_size
        with Progress(steps, f"epoch {epoch + 1}/{epochs}", enabled=not args.quiet) as bar:
            for step, idx in enumerate(_batches(n_train, args.batch_size, g)):
                if step >= steps:
                    break
                x, y = xs["train"][idx].to(device), ys["train"][idx].to(device)
                losses = task.loss(model, x, y, g)
                opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                opt.step()
                if ema is not None:
                    ema.update(model)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
                count += len(idx)
                bar.update(1, loss=float(losses["loss"].detach()))
        eval_model = ema.model if ema is not None else model
        eval_model.eval()
        val = _validate(task, eval_model, xs["val"], ys["val"], args.batch_size, device,
                        args.seed, args.dry_run)
        record = {"epoch": epoch + 1, "train": {k: v / count for k, v in sums.items()},
                  "val": val, "time_s": round(time.time() - t0, 2)}
        print(json.dumps(record))
        if args.dry_run:
            return {"model": spec.name, "metrics": record}
        history.append(record)
        ckpt = {"model": spec.name, "kind": spec.kind, "config": asdict(config),
                "model_state": model.state_dict(),
                "ema_state": ema.model.state_dict() if ema is not None else None,
                "ema_updates": ema.num_updates if ema is not None else 0,
                "optimizer": opt.state_dict(), "epoch": epoch + 1,
                "rng": {"torch": torch.get_rng_state()}, "args": asdict(args),
                "metrics": {"val": val}, **task.extra_checkpoint()}
        save_checkpoint(ckpt_path, ckpt)  # checkpoint first: a crash never loses an epoch
        _write_history(metrics_path, history)
        _plot_losses(history, out / "loss.png", spec.name)
        if hasattr(task, "on_epoch_end"):
            task.on_epoch_end(eval_model, epoch + 1, out)
    if ckpt is not None and hasattr(task, "test_metrics") and "test" not in ckpt["metrics"]:
        eval_model = ema.model if ema is not None else model
        ckpt["metrics"]["test"] = task.test_metrics(eval_model.eval(), splits["test"])
        print(json.dumps({"test": ckpt["metrics"]["test"]}))
        save_checkpoint(ckpt_path, ckpt)
    return ckpt


@torch.no_grad()
def _validate(task, model, x, y, batch_size, device, seed, dry_run) -> dict:
    g = torch.Generator().manual_seed(seed + 99991)  # the same draws every epoch
    sums, count = {}, 0
    for idx in _batches(len(x), batch_size, None):
        for k, v in task.val_metrics(model, x[idx].to(device), y[idx].to(device), g).items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
        count += len(idx)
        if dry_run:
            break
    return {k: v / count for k, v in sums.items()}


def read_history(path: Path, start_epoch: int) -> list[dict]:
    """The per-epoch rows of a run's metrics.jsonl up to epoch ``start_epoch``."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["epoch"] <= start_epoch]


def _write_history(path: Path, history: list[dict]) -> None:
    from .checkpoint import atomic_write_bytes

    text = "".join(json.dumps(r) + "\n" for r in history)
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def _plot_losses(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    keys = sorted(history[-1]["train"])
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, k in zip(axes[0], keys):
        ax.plot(epochs, [r["train"].get(k) for r in history], "o-", label="train")
        if k in history[-1]["val"]:
            ax.plot(epochs, [r["val"].get(k) for r in history], "s--", label="val")
        ax.set_xlabel("epoch")
        ax.set_title(k)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
