"""`latentforge report`: the course's experiments as one reproducible Markdown report.

    latentforge report --quick            # < 10 min on 2 cores: subsets, 1-epoch sweeps
    latentforge report --out report       # the full run (see FULL below)

Writes DIR/report.md, DIR/figures/*.png and DIR/report.json (every number in the tables).
Models come from the shipped ones (``latentforge.runtime.load(name)``) or from exported
directories given with ``--models``; they run through the runtime (ONNX), so the report
measures what ships. The β and latent-size sweeps train ``vae-conv`` with PyTorch under
DIR/runs/{quick,full}/ and reuse finished runs when the report is generated again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# sample counts, test subset, t-SNE points, sweep epochs/subset: quick and full presets
# threads: 1 for --quick, where a small shared machine is the target: there torch's,
# onnxruntime's and OpenMP's thread pools oversubscribe the cores (measured on 2 busy cores:
# a 1-epoch sweep run 25 s → 5 s, t-SNE of 500 points 34 s → 1.6 s, U-Net 3.2 → 2.1 ms per
# image and step). None = every library's default (all cores).
QUICK = dict(n_test=1000, reference_size=2000, n_samples=200, n_ancestral=24, tsne_points=500,
             sweep_epochs=1, sweep_limit=6000, sweep_val_size=500, sweep_batch_size=32,
             threads=1)
FULL = dict(n_test=10_000, reference_size=10_000, n_samples=1000, n_ancestral=1000,
            tsne_points=2000, sweep_epochs=5, sweep_limit=None, sweep_val_size=10_000,
            sweep_batch_size=128, threads=None)
SECTIONS = ("models", "reconstructions", "samples", "latent", "iterates", "sweeps", "ddpm")


@dataclass
class ReportConfig:
    out: str = "report"
    models: list[str] | None = None  # shipped names or exported directories (default: shipped)
    classifier: str | None = None  # default: a classifier among models, else shipped
    ddpm: str | None = None  # default: a DDPM among models, else the shipped "ddpm"
    denoisers: list[str] | None = None  # default: models whose metrics show input noise
    data_dir: str | None = None
    quick: bool = False
    n_test: int | None = None
    reference_size: int | None = None
    n_samples: int | None = None
    n_ancestral: int | None = None
    tsne_points: int | None = None
    sweep_epochs: int | None = None
    sweep_limit: int | None = None
    sweep_val_size: int | None = None
    sweep_batch_size: int | None = None
    max_steps: int | None = None  # cap on DDPM reverse steps (tests); ancestral needs all T
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    seed: int = 0
    threads: int | None = None  # onnxruntime, torch and OpenMP/BLAS threads
    device: str = "auto"
    quiet: bool = False

    def resolved(self) -> "ReportConfig":
        preset = QUICK if self.quick else FULL
        unknown = sorted(set(self.sections) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown report sections {unknown}; valid: {', '.join(SECTIONS)}")
        cfg = dataclasses.replace(self, **{k: v for k, v in preset.items()
                                           if getattr(self, k) is None})
        for name in ("n_samples", "n_ancestral", "reference_size", "n_test"):
            if getattr(cfg, name) < 2:  # a covariance needs two samples
                raise ValueError(f"{name} must be >= 2, got {getattr(cfg, name)}")
        return cfg


def find_data_dir(data_dir=None) -> Path:
    """--data-dir, else $LATENTFORGE_DATA, else the source checkout's test fixture."""
    from latentforge.runtime.quality import FIXTURE
    from latentforge.train.data import HOW_TO_FIX, DataError, resolve_data_dir

    where = resolve_data_dir(data_dir) or FIXTURE
    if not where.is_dir():
        raise DataError(f"the report needs MNIST and {where} is not a directory: {HOW_TO_FIX}")
    return where


def is_denoiser(label: str, model) -> bool:
    test = (model.metrics or {}).get("test", {})
    return "noisy_psnr" in test or "denois" in label or "dae" in label.split("-")


class Context:
    """Data, loaded models, the classifier's test-set reference, and the report's outputs."""

    def __init__(self, cfg: ReportConfig):
        from latentforge.runtime.api import load, resolve, shipped_models
        from latentforge.runtime.quality import reference_stats
        from latentforge.train.data import load_mnist, to_float

        self.cfg, self.out = cfg, Path(cfg.out)
        self.figs = self.out / "figures"
        self.figs.mkdir(parents=True, exist_ok=True)
        self.data_dir = find_data_dir(cfg.data_dir)
        mnist = load_mnist(self.data_dir)
        self.u8_test = np.ascontiguousarray(mnist.test_images[:cfg.n_test])
        self.y_test = mnist.test_labels[:cfg.n_test].astype(np.int64)
        self.x_test = to_float(self.u8_test)  # (N, 1, 28, 28) in [0, 1]
        self.u8_real = mnist.train_images  # real digits for the FD floor at equal n
        self.results: dict = {"settings": jsonable(dataclasses.asdict(cfg))}
        self.results["settings"]["data_dir"] = str(self.data_dir)
        names = cfg.models if cfg.models is not None else shipped_models()
        self.models: dict = {}
        for name in names:
            label = Path(name).name if Path(name).is_dir() else resolve(name).name
            while label in self.models:
                label += "'"
            self.models[label] = load(name, threads=cfg.threads)
        self.classifier = self._pick("classifier", cfg.classifier, "classifier", load, resolve)
        if self.classifier is None:
            raise ValueError("the report needs the MNIST classifier for its sample scores: ship "
                             "runtime/models/classifier, or pass --classifier DIR (an export "
                             "of `latentforge train classifier`)")
        self.ddpm = self._pick("ddpm", cfg.ddpm, "ddpm", load, resolve)
        self.latent = {k: m for k, m in self.models.items() if m.kind in ("ae", "vae")}
        self.denoisers = self._denoisers(load)
        ref = mnist.test_images[:cfg.reference_size]
        self.reference = reference_stats(self.classifier, ref)

    def _pick(self, kind, explicit, shipped, load, resolve):
        if explicit:
            return load(explicit, threads=self.cfg.threads)
        found = [m for m in self.models.values() if m.kind == kind]
        if found:
            return found[0]
        try:
            resolve(shipped)
        except ValueError:
            return None
        return load(shipped, threads=self.cfg.threads)

    def _denoisers(self, load) -> dict:
        if self.cfg.denoisers:
            return {Path(n).name: self.models.get(n) or load(n, threads=self.cfg.threads)
                    for n in self.cfg.denoisers}
        return {k: m for k, m in self.latent.items() if m.kind == "ae" and is_denoiser(k, m)}

    def fig(self, name: str) -> Path:
        return self.figs / name

    def image(self, path: Path, caption: str) -> str:
        return f"![{caption}]({Path(path).relative_to(self.out).as_posix()})"

    def log(self, msg: str) -> None:
        if not self.cfg.quiet:
            print(f"[report] {msg}", file=sys.stderr, flush=True)


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def md_table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        if v is None:
            return "—"
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _sections():
    from . import report_latent, report_sections, report_sweeps

    return {"models": ("1. Models", report_sections.models_table),
            "reconstructions": ("2. Reconstructions and denoising",
                                report_sections.reconstructions),
            "samples": ("3. Samples and their classifier scores", report_sections.samples),
            "latent": ("4. Latent spaces", report_latent.latent_spaces),
            "iterates": ("5. Successive reconstructions", report_latent.iterates),
            "sweeps": ("6. β and latent-size sweeps (vae-conv)", report_sweeps.sweeps),
            "ddpm": ("7. DDPM forward and reverse processes", report_sections.ddpm_strips)}


def build_report(cfg: ReportConfig) -> Path:
    """Run the selected sections and write DIR/report.md + report.json; returns report.md."""
    cfg = cfg.resolved()
    with thread_limits(cfg.threads):
        return _build(cfg)


@contextlib.contextmanager
def thread_limits(threads: int | None):
    """Cap torch's intra-op threads and every OpenMP/BLAS pool (threadpoolctl) while the
    report runs; None leaves the libraries' defaults."""
    if not threads:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        with threadpool_limits(limits=int(threads)):
            yield
    finally:
        torch.set_num_threads(before)


def _build(cfg: ReportConfig) -> Path:
    t_start = time.time()
    ctx = Context(cfg)
    ctx.log(f"data {ctx.data_dir}; models {', '.join(ctx.models) or '(none)'}; "
            f"classifier {ctx.classifier.directory}; reference {ctx.reference.n} test images")
    parts, timings = [_header(ctx)], {}
    kept_md, kept_results, kept_timings = previous_report(ctx.out, cfg)
    for key, (title, fn) in _sections().items():
        if key not in cfg.sections:
            if title in kept_md:  # a partial run updates these sections of the last report
                parts.append(f"## {title}\n\n{kept_md[title]}\n")
                timings[key] = kept_timings.get(key)
            continue
        ctx.log(f"section {title}")
        t0 = time.time()
        quiet = contextlib.redirect_stdout(io.StringIO()) if cfg.quiet else \
            contextlib.nullcontext()
        with quiet:
            body = fn(ctx)
        timings[key] = round(time.time() - t0, 1)
        parts.append(f"## {title}\n\n{body.strip()}\n")
    timings["total"] = round(time.time() - t_start, 1)
    ctx.results = {**kept_results, **ctx.results}
    parts.insert(1, headline(ctx))
    kept = [k for k in _sections() if k not in cfg.sections and _sections()[k][0] in kept_md]
    parts.append("## Timings\n\n" + md_table(["section", "seconds"],
                                             [[k, v] for k, v in timings.items()]) +
                 f"\n\n{os.cpu_count()} CPU cores; generated by `latentforge report"
                 f"{' --quick' if cfg.quick else ''}`" +
                 (f"; kept from the previous run in this directory: {', '.join(kept)} "
                  f"(their timings are that run's; total is this run's)" if kept else "") +
                 ".\n")
    ctx.results["timings_s"] = timings
    path = ctx.out / "report.md"
    path.write_text("\n".join(parts))
    (ctx.out / "report.json").write_text(json.dumps(jsonable(ctx.results), indent=2) + "\n")
    ctx.log(f"wrote {path} in {timings['total']:.0f} s")
    return path


RESULT_KEYS = {"models": "models", "reconstructions": "denoising", "samples": "samples",
               "latent": "latent", "iterates": "iterates", "sweeps": "sweeps"}


def previous_report(out: Path, cfg: ReportConfig) -> tuple[dict, dict, dict]:
    """({title: Markdown body}, results, timings) of the sections this run leaves out, from the
    report already in ``out`` when it was made in the same mode (quick or full); empty when
    every section runs or there is none."""
    md, js = out / "report.md", out / "report.json"
    if set(cfg.sections) == set(SECTIONS) or not (md.is_file() and js.is_file()):
        return {}, {}, {}
    old = json.loads(js.read_text())
    if bool(old.get("settings", {}).get("quick")) != cfg.quick:
        return {}, {}, {}
    bodies, title, lines = {}, None, []
    for line in md.read_text().splitlines() + ["## end"]:
        if line.startswith("## "):
            if title is not None:
                bodies[title] = "\n".join(lines).strip()
            title, lines = line[3:].strip(), []
        elif title is not None:
            lines.append(line)
    skipped = [k for k in SECTIONS if k not in cfg.sections]
    titles = {_sections()[k][0] for k in skipped}
    results = {RESULT_KEYS[k]: old[RESULT_KEYS[k]] for k in skipped
               if k in RESULT_KEYS and RESULT_KEYS[k] in old}
    return ({t: b for t, b in bodies.items() if t in titles}, results,
            {k: v for k, v in old.get("timings_s", {}).items() if k in skipped})


def _header(ctx: Context) -> str:
    c = ctx.cfg
    mode = ("quick (subsets, 1-epoch sweeps: numbers are indicative only)" if c.quick else
            f"full ({c.sweep_epochs}-epoch sweeps)")
    return "\n".join([
        "# latentforge report", "",
        f"Mode: {mode}. Data: `{ctx.data_dir}`. Test metrics on the first {len(ctx.u8_test):,} "
        f"MNIST test images. Sample scores use the classifier `{ctx.classifier.directory.name}`: "
        f"classifier FD = Fréchet distance between Gaussian fits of its 128-d penultimate "
        f"features of the samples and of the first {ctx.reference.n:,} test images (lower is "
        f"better; it grows as n shrinks, so compare at equal n); *confident* = share of "
        f"samples whose top class probability is ≥ 0.9; *max dev.* = largest gap between a "
        f"predicted class's share and 10%, in percentage points.",
        f"Samples per scored set: {c.n_samples:,} (ancestral DDPM: {c.n_ancestral:,}); "
        f"seed {c.seed}; threads: {c.threads or 'library defaults'}.", ""])


def headline(ctx: Context) -> str:
    """The numbers the README quotes: sampler FDs at equal n, and the β sweep."""
    lines = ["## Headline numbers", ""]
    rows = [[r["samples"], r["method"], r["steps"], r["n"], r["fd"], 100 * r["confident"],
             r["max_deviation_pp"]] for r in ctx.results.get("samples", [])]
    if rows:
        lines += [md_table(["samples", "method", "steps", "n", "classifier FD", "confident %",
                            "max dev. (pp)"], rows), ""]
    beta = ctx.results.get("sweeps", {}).get("beta", [])
    if beta:
        lines += [md_table(["β", "recon BCE", "KL", "classifier FD"],
                           [[r["value"], r["bce"], r["kl"], r["fd"]] for r in beta]), ""]
    if len(lines) == 2:
        lines.append("(the samples and sweeps sections did not run)")
    return "\n".join(lines) + "\n"
