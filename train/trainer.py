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

import contextlib
import copy
import dataclasses
import importlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from latentforge.runtime.progress import Progress

from .argcheck import check_numbers, check_resume, check_run_folder
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
    time_embedding: str | None = None  # DDPM: see unet.TIME_EMBEDDINGS
    # the recipe: None = the model's default (ModelSpec.defaults), else RECIPE_DEFAULTS
    lr_schedule: str | None = None  # see LR_SCHEDULES
    warmup_steps: int | None = None  # linear warm-up from 0 to lr over this many steps
    min_lr: float | None = None  # cosine: the final learning rate
    grad_clip: float | None = None  # max global gradient norm (0 = off)
    init_from: str | None = None  # weights (and EMA weights) from this checkpoint
    exclude_digits: tuple[int, ...] | None = None  # classes removed from train/val (anomaly)
    overwrite: bool = False  # a new run may replace the one in OUT (else --resume it)
    precision: str = "fp32"  # see PRECISIONS
    p2_gamma: float = 0.0  # DDPM: P2 loss weighting exponent (0 = L_simple)
    p2_k: float = 1.0  # DDPM: P2 offset k

    def resolved(self) -> "TrainArgs":
        """Fill every unset recipe value from the model's defaults, else RECIPE_DEFAULTS."""
        base = {**RECIPE_DEFAULTS, **dict(get_spec(self.model).defaults)}
        return dataclasses.replace(self, **{k: v for k, v in base.items()
                                            if getattr(self, k) is None})


LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("fp32", "bf16")
RECIPE_DEFAULTS = {"epochs": 10, "batch_size": 128, "lr": 1e-3, "lr_schedule": "constant",
                   "warmup_steps": 0, "min_lr": 0.0, "grad_clip": 0.0}


def learning_rate(args: TrainArgs, step: int, total_steps: int) -> float:
    """lr at optimizer step ``step`` (0-based) of ``total_steps``: linear warm-up to args.lr
    (Goyal et al. 2017), then constant or cosine decay to args.min_lr (SGDR, Loshchilov &
    Hutter 2017, without restarts). A pure function of the step, so --resume stays exact."""
    if args.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr schedule {args.lr_schedule!r}; valid choices: "
                         f"{', '.join(LR_SCHEDULES)}")
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    if args.lr_schedule == "constant":
        return args.lr
    progress = min(1.0, (step - args.warmup_steps) / max(1, total_steps - args.warmup_steps))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))


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


def training_precision(args: TrainArgs, device: torch.device, model: torch.nn.Module):
    """The autocast context of one training step. bf16: the forward pass under
    torch.autocast(bfloat16) with the model and its inputs channels-last (oneDNN's fast
    layout; AMX tiles on CPUs that have them); the weights, Adam and EMA stay fp32 and the
    task computes its loss in fp32. Validation and test metrics always run in fp32."""
    if args.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {args.precision!r}; valid choices: "
                         f"{', '.join(PRECISIONS)}")
    if args.precision == "fp32":
        return contextlib.nullcontext
    model.to(memory_format=torch.channels_last)
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


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
    check_numbers(args)  # every argument check before any work (argcheck.py)
    spec = get_spec(args.model)
    device = pick_device(args.device)
    out = Path(args.out or f"runs/{args.model}")
    ckpt_path = out / "last.pt"
    check_run_folder(args, out)
    resume = load_checkpoint(ckpt_path) if args.resume and ckpt_path.exists() else None
    if resume is not None:
        check_resume(args, resume, ckpt_path)
    config = (config_from_dict(spec, resume["config"]) if resume else
              make_config(spec, asdict(args)))
    torch.manual_seed(args.seed)
    model = build_model(spec, config).to(device)
    task = load_task(spec, config, args)
    autocast = training_precision(args, device, model)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    use_ema = getattr(task, "use_ema", False) and args.ema_decay > 0
    init = None
    if args.init_from and not resume:
        init = init_weights(model, spec, args.init_from)  # before EMA copies the model
    ema = EMA(model, args.ema_decay) if use_ema else None
    if init is not None and ema is not None and init.get("ema_state") is not None:
        ema.model.load_state_dict(init["ema_state"])
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
    splits = load_splits(args.data_dir, val_size=val_size, seed=args.seed, limit=limit,
                         exclude_digits=args.exclude_digits)
    xs = {k: torch.from_numpy(to_float(s.images, spec.scaling)) for k, s in splits.items()}
    ys = {k: torch.from_numpy(s.labels.astype(np.int64)) for k, s in splits.items()}
    n_train = len(xs["train"])
    print(f"{spec.name}: {count_parameters(model):,} parameters, {n_train} train / "
          f"{len(xs['val'])} val images, device {device}" +
          (f"; digits {args.exclude_digits} excluded" if args.exclude_digits else ""))

    metrics_path = out / "metrics.jsonl"
    history = read_history(metrics_path, start_epoch) if not args.dry_run else []
    epochs = 1 if args.dry_run else args.epochs
    steps_per_epoch = (n_train + args.batch_size - 1) // args.batch_size
    total_steps = epochs * steps_per_epoch
    segments = horizon_segments(resume, start_epoch, epochs)
    ckpt = resume
    for epoch in range(start_epoch, epochs):
        t0 = time.time()
        g = torch.Generator().manual_seed(epoch_seed(args.seed, epoch))
        torch.manual_seed(epoch_seed(args.seed, epoch) + 1)
        model.train()
        sums, count = {}, 0
        steps = 1 if args.dry_run else steps_per_epoch
        with Progress(steps, f"epoch {epoch + 1}/{epochs}", enabled=not args.quiet) as bar:
            for step, idx in enumerate(_batches(n_train, args.batch_size, g)):
                if step >= steps:
                    break
                x, y = xs["train"][idx].to(device), ys["train"][idx].to(device)
                if args.precision == "bf16" and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)  # (B, 1, 28, 28)
                lr = learning_rate(args, epoch * steps_per_epoch + step, total_steps)
                for group in opt.param_groups:
                    group["lr"] = lr
                with autocast():
                    losses = task.loss(model, x, y, g)
                opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                if args.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
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
                  "val": val, "lr": lr, "time_s": round(time.time() - t0, 4)}
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
                "metrics": {"val": val}, "segments": segments, **task.extra_checkpoint()}
        if init is not None or (resume and resume.get("init_from")):
            ckpt["init_from"] = init["source"] if init is not None else resume["init_from"]
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


def horizon_segments(resume: dict | None, start_epoch: int, epochs: int) -> list[dict]:
    """The run's pieces with their --epochs: [{"first_epoch", "epochs"}, …]. A resume that
    changes --epochs changes the lr schedule's horizon from there on, so reproducing the run
    needs each piece's command (export/ship.py writes them into the model card)."""
    if resume is None:
        return [{"first_epoch": 1, "epochs": epochs}]
    segments = [dict(s) for s in resume.get("segments") or
                [{"first_epoch": 1, "epochs": int(resume["args"]["epochs"])}]]
    if segments[-1]["epochs"] != epochs:
        segments.append({"first_epoch": start_epoch + 1, "epochs": epochs})
    return segments


def init_weights(model: torch.nn.Module, spec, path: str) -> dict:
    """Load the weights of checkpoint ``path`` (full or weights-only) into ``model``; returns
    {"ema_state": EMA weights or None, "source": what the new checkpoint records of it}.

    A weights-only checkpoint keeps only the EMA weights (as model_state): they start both the
    model and its EMA. The optimizer, schedule and epoch count start fresh."""
    from latentforge.runtime.hashing import sha256_file

    src = load_checkpoint(path)
    if src.get("model") != spec.name:
        raise ValueError(f"--init-from {path}: a {src.get('model')!r} checkpoint, not "
                         f"{spec.name!r}")
    try:
        model.load_state_dict(src["model_state"])
    except RuntimeError as e:
        raise ValueError(f"--init-from {path}: weights do not fit the {spec.name} config: "
                         f"{e}") from e
    print(f"initialised from {path} (epoch {src.get('epoch')}); fresh optimizer and schedule")
    return {"ema_state": src.get("ema_state"),
            "source": {"file": Path(path).name, "sha256": sha256_file(path),
                       "epoch": src.get("epoch"), "config": src.get("config")}}


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
