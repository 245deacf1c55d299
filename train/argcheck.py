"""Training arguments checked before any work (issue 14): numbers in range, the run folder
(a new run never silently replaces one; --resume needs something of the same model to
resume), and --resume flags that contradict the checkpoint it continues."""
from __future__ import annotations

from pathlib import Path

# TrainArgs fields a resumed run may change: how long, where, on what, how loudly
RESUME_MAY_CHANGE = {"epochs", "resume", "dry_run", "quiet", "data_dir", "out", "device",
                     "sample_every", "init_from", "overwrite"}
# config flags (None = the checkpoint's): on --resume they must match its config or be unset
CONFIG_FLAGS = ("latent_dim", "activation", "hidden", "channels", "time_embedding")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_numbers(args) -> None:
    """ValueError naming the flag for any training number out of range (args resolved)."""
    from latentforge.runtime.checks import check_float, check_int

    ints = {"epochs": 1, "batch_size": 1, "val_size": 1, "num_timesteps": 2,
            "sample_every": 0, "warmup_steps": 0, "seed": 0}
    for name, low in ints.items():
        check_int(getattr(args, name), _flag(name), low=low, optional=True)
    check_int(args.limit, "--limit", low=1, optional=True)
    check_int(args.latent_dim, "--latent-dim", low=1, optional=True)
    for name in ("lr", "beta", "noise_level", "min_lr", "grad_clip", "ema_decay", "p2_gamma",
                 "p2_k"):
        if getattr(args, name) is not None:
            check_float(getattr(args, name), _flag(name), low=0.0)
    if args.exclude_digits:
        from .data import check_digits

        check_digits(args.exclude_digits)
    if args.p2_k == 0:  # finite and >= 0 above; P2's 1/(k + SNR)^γ needs k > 0
        raise ValueError(f"--p2-k must be > 0, got {args.p2_k}")
    if args.ema_decay is not None and args.ema_decay >= 1:
        raise ValueError(f"--ema-decay must be in [0, 1), got {args.ema_decay}")


def check_run_folder(args, out: Path) -> None:
    """A new run into a folder holding a run needs --resume or --overwrite."""
    last = out / "last.pt"
    if args.dry_run:
        return
    if args.resume and not last.is_file():
        raise ValueError(f"--resume: nothing to resume, {last} does not exist; drop --resume "
                         f"to start a new run in {out}")
    if not args.resume and last.exists() and not args.overwrite:
        raise ValueError(f"{out} already holds a run ({last}); continue it with --resume or "
                         f"replace it with --overwrite")


def check_resume(args, resume: dict, path: Path) -> None:
    """The checkpoint must be this model's, and no given flag may contradict it."""
    if resume.get("model") != args.model:
        raise ValueError(f"--resume: {path} is a {resume.get('model')!r} run, not "
                         f"{args.model!r}; pick that model or another --out")
    config = resume.get("config") or {}
    for name in CONFIG_FLAGS:
        given = getattr(args, name, None)
        if given is not None and name in config and _norm(config[name]) != _norm(given):
            raise ValueError(f"--resume keeps the checkpoint's config: {_flag(name)} {given} "
                             f"contradicts its {config[name]}; drop the flag or start a new "
                             f"run with --overwrite")
    stored = resume.get("args") or {}
    for name, value in vars(args).items():
        if name in RESUME_MAY_CHANGE or name in CONFIG_FLAGS or name not in stored:
            continue
        if _norm(stored[name]) != _norm(value):
            raise ValueError(f"--resume continues the run as trained: {_flag(name)} {value} "
                             f"contradicts the checkpoint's {stored[name]}; pass "
                             f"{_flag(name)} {stored[name]} (or omit it) or start a new run "
                             f"with --overwrite")


def _norm(v):
    return list(v) if isinstance(v, tuple) else v
