"""Checkpoints: config + weights (+ EMA) + optimizer + epoch + RNG state, written atomically.

A checkpoint is a plain dict of tensors and Python primitives, so it loads with
``torch.load(..., weights_only=True)``:

    {"format": 1, "model": name, "kind": "ae"|"vae"|"ddpm"|..., "config": {...},
     "model_state": ..., "ema_state": ... | None, "optimizer": ... | None, "epoch": int,
     "rng": {"torch": ByteTensor}, "args": {...}, "metrics": {...}, "schedule": {...}?}

A weights-only checkpoint (what ships) drops "optimizer" and "rng" and keeps the EMA weights.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from latentforge.runtime.outputs import atomic_output

FORMAT = 1


def atomic_write_bytes(path: str | os.PathLike, write) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync, then rename it over
    ``path`` (runtime.outputs.atomic_output: removed on any error or Ctrl-C, only a regular
    file is ever replaced)."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(path, payload: dict) -> None:
    atomic_write_bytes(path, lambda f: torch.save({"format": FORMAT, **payload}, f))


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(f"cannot load checkpoint {path}: {_reason(e)}") from e
    if not isinstance(ckpt, dict) or "model_state" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path} is not a latentforge checkpoint (no model_state/config)")
    return ckpt


def _reason(e: Exception) -> str:
    """torch's load error in one line, without its advice to load with weights_only=False
    (which would run arbitrary pickled code from the file)."""
    text = str(e)
    if "weights_only" in text or "Weights only load failed" in text:
        return ("it holds objects other than tensors and plain data; latentforge loads "
                "checkpoints with weights_only=True only and never unpickles arbitrary code")
    return (text.strip().splitlines() or [type(e).__name__])[0] + \
        " (the file is damaged or not a torch checkpoint)"


MACHINE_ARGS = ("data_dir", "out", "device")  # where and on what it ran, not how


def portable_args(args: dict) -> dict:
    """Training args without the training machine's paths: data and output directories are
    dropped and --init-from keeps its file name only (its sha256 is in ckpt["init_from"])."""
    out = {k: v for k, v in args.items() if k not in MACHINE_ARGS}
    if out.get("init_from"):
        out["init_from"] = Path(out["init_from"]).name
    return out


def weights_only(ckpt: dict) -> dict:
    """The shippable part: config, the weights to use (EMA where present), metrics, and the
    training args without machine paths."""
    keep = {k: v for k, v in ckpt.items() if k not in ("optimizer", "rng", "format")}
    if keep.get("args"):
        keep["args"] = portable_args(keep["args"])
    if ckpt.get("ema_state") is not None:
        keep["model_state"], keep["ema_state"] = ckpt["ema_state"], None
        keep["ema"] = True
    return keep
