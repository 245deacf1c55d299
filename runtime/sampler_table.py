"""Sampling methods side by side: seconds for n digits and the digits' classifier scores, the
table `latentforge bench --quality` prints and the report's samples section shows.

A setting is *quality-matched* when its classifier FD is within ``QUALITY_MATCH`` (10%) of
the course's ancestral 1000-step loop at the same n and seed; the fastest such setting is what
`latentforge sample` runs by default (runtime/sampling.py). Finished rows can be kept in a
cache directory (JSON + the first 64 digits), keyed by everything that decides them, so the
bench and the report can share one costly measurement.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .quality import score

QUALITY_MATCH = 0.10
GRID = 64  # digits kept per row for a picture


@dataclass(frozen=True)
class Setting:
    method: str
    steps: int | None = None  # None: all T (ancestral, ddpm)
    eta: float = 0.0

    @property
    def label(self) -> str:
        steps = "" if self.steps is None else f"-{self.steps}"
        return f"{self.method}{steps}" + (f" η={self.eta:g}" if self.eta else "")


# ancestral first: it is the reference the others are matched against
SETTINGS = (Setting("ancestral"), Setting("ddim", 50), Setting("ddim", 50, 1.0),
            Setting("ddim", 100, 1.0), Setting("dpmpp-2m", 10), Setting("dpmpp-2m", 20),
            Setting("dpmpp-2m", 50), Setting("sde-dpmpp-2m", 20), Setting("sde-dpmpp-2m", 50),
            Setting("sde-dpmpp-2m", 100))


def _key(ddpm, classifier, reference, setting: Setting, n: int, seed: int) -> str:
    parts = [ddpm.manifest["graphs"]["unet"]["sha256"],
             classifier.manifest["graphs"]["classifier"]["sha256"], reference.n,
             float(reference.mu.sum()), setting.method, setting.steps, setting.eta, n, seed]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def measure(ddpm, classifier, reference, setting: Setting, n: int, seed: int = 0,
            batch_size: int = 64, cache: str | Path | None = None,
            progress: bool = True) -> tuple[dict, np.ndarray]:
    """(row, first GRID digits) for one setting: seconds to sample n digits (batch_size per
    denoiser call) and their classifier scores against ``reference``."""
    path = Path(cache) / _key(ddpm, classifier, reference, setting, n, seed) if cache else None
    if path is not None and path.with_suffix(".json").is_file():
        row = json.loads(path.with_suffix(".json").read_text())
        return {**row, "cached": True}, np.load(path.with_suffix(".npy"))
    t0 = time.perf_counter()
    images = ddpm.sample(n, steps=setting.steps, method=setting.method, eta=setting.eta,
                         seed=seed, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - t0
    q = score(classifier, images, reference)
    row = {"setting": setting.label, "method": setting.method,
           "steps": len(ddpm.timesteps(setting.method, setting.steps)), "eta": setting.eta,
           "n": n, "seed": seed, "batch_size": batch_size, "seconds": seconds,
           "fd": q.fd, "confident": q.confident, "max_deviation_pp": q.max_deviation_pp,
           "histogram": q.histogram, "reference_n": q.reference_n,
           "measured": time.strftime("%Y-%m-%d %H:%M")}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".npy"), images[:GRID])
        path.with_suffix(".json").write_text(json.dumps(row, indent=1) + "\n")
    return row, images[:GRID]


def mark_quality_matched(rows: list[dict], tolerance: float = QUALITY_MATCH) -> dict | None:
    """Mark each row ``matched`` (FD ≤ (1 + tolerance) × the ancestral row's FD) and return
    the fastest matched row (None without an ancestral row)."""
    base = next((r for r in rows if r["method"] == "ancestral"), None)
    if base is None:
        return None
    for r in rows:
        r["fd_vs_ancestral"] = r["fd"] / base["fd"]
        r["matched"] = r["fd"] <= (1 + tolerance) * base["fd"]
    return min((r for r in rows if r["matched"]), key=lambda r: r["seconds"])


def table_rows(rows: list[dict]) -> tuple[list[str], list[list]]:
    """(header, rows) of the side-by-side table (Markdown or console)."""
    header = ["setting", "steps", "n", "seconds", "classifier FD", "FD / ancestral",
              "confident %", "max dev. (pp)", "quality-matched"]
    body = [[r["setting"], r["steps"], r["n"], round(r["seconds"], 1), round(r["fd"], 2),
             round(r.get("fd_vs_ancestral", float("nan")), 3), round(100 * r["confident"], 1),
             round(r["max_deviation_pp"], 1),
             {True: "yes", False: "no"}.get(r.get("matched"), "—")] for r in rows]
    return header, body
