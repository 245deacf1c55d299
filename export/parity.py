"""`verify`: prove an exported directory computes what its checkpoint computes.

Every graph gets the same inputs in PyTorch (the checkpoint's module) and onnxruntime (the
exported file), at each batch size: random ones, and real digits where some are found
(``--data-dir`` / $LATENTFORGE_DATA, else the repository's test fixture). Decoders get the
PyTorch encoder's codes of those digits; the U-Net gets them noised by q(x_t | x_0) at
t ∈ {0, 1, T/2, T−1}; a conditional model's label input "y" gets the digits' true labels. An
output element passes when |onnx − torch| ≤ atol + rtol·|torch|. A graph that `latentforge
quantize` made int8 is held to its own bound instead: the RMS of (onnx − torch) at most
QUANTIZED_RMS[role] of the RMS of the torch output, per output and input set.
The files' sha256s, I/O names and embedded metadata are checked against the manifest and
the checkpoint too.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from latentforge.runtime.manifest import quantized_roles

from .graphs import graphs_for
from .onnx_export import (META_GRAPH_KEY, META_KEY, base_manifest, example_inputs, jsonable,
                          load_any, run_torch, strip_shas)

REAL_DIGITS = 64
# int8 graphs (latentforge quantize): RMS error ≤ this share of the output's RMS. Measured
# at batch 1, 7, 64 on random and real inputs: the ae-conv and vae-conv encoders 0.5–3.0%; the
# DDPM's U-Net 0.2–1.8% at t ≥ T/2 and 9–14% at t ≤ 1, where ε̂ is a faint residual of a
# nearly clean image (its samples' classifier FD, the measure that matters, is in the
# manifest's quantization.accuracy).
QUANTIZED_RMS = {"encoder": 0.05, "unet": 0.20}


@dataclass
class Row:
    graph: str
    inputs: str
    batch: int
    max_abs: float
    rel: float  # max_abs / max |torch output|
    atol: float
    rtol: float
    ok: bool
    quantized: bool = False  # atol is then the relative-RMS bound, rel the relative RMS


@dataclass
class VerifyReport:
    directory: str
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.problems and all(r.ok for r in self.rows)

    def max_abs(self, graph: str | None = None) -> float:
        return max((r.max_abs for r in self.rows if graph in (None, r.graph)), default=0.0)

    def table(self) -> str:
        head = f"{'graph':<11}{'inputs':<16}{'batch':>6}{'max abs':>12}{'relative':>12}" \
               f"{'tolerance':>22}  result"
        lines = [f"verify {self.directory}", head, "-" * len(head)]
        for r in self.rows:
            tol = (f"rms <= {r.atol:.0%} (int8)" if r.quantized
                   else f"{r.atol:.0e} + {r.rtol:.0e}|ref|")
            lines.append(f"{r.graph:<11}{r.inputs:<16}{r.batch:>6}{r.max_abs:>12.3e}"
                         f"{r.rel:>12.3e}{tol:>22}  {'ok' if r.ok else 'FAIL'}")
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"problem: {p}" for p in self.problems]
        failed = sum(not r.ok for r in self.rows)
        lines.append("PASS" if self.ok else
                     f"FAIL ({failed} of {len(self.rows)} comparisons, "
                     f"{len(self.problems)} other problems)")
        return "\n".join(lines)


def real_digits(data_dir=None) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Up to 64 uint8 test digits (N, 28, 28), their int64 labels (N,) and where they came
    from, read as `latentforge quality` reads them; (None, None, why) where there are none.
    Never downloads."""
    from latentforge.runtime.quality import load_split
    from latentforge.train.data import DataError

    try:
        images, labels, where = load_split("test", data_dir, limit=REAL_DIGITS)
    except (DataError, OSError) as e:
        return None, None, f"no real digits ({e}): random inputs only"
    return np.ascontiguousarray(images), labels.astype(np.int64), str(where)


def timesteps(num_timesteps: int) -> list[int]:
    T = int(num_timesteps)
    return sorted({0, min(1, T - 1), T // 2, T - 1})


def _input_sets(gspec, manifest, model, batch, real, seed, labels=None):
    """[(label, feeds)] for one graph at one batch size (``manifest`` as derived from the
    checkpoint, so a damaged manifest.json cannot change the inputs)."""
    from latentforge.train.data import to_float

    sets = [("random", example_inputs(gspec, manifest, batch, seed=seed + batch))]
    if real is not None:
        idx = np.arange(batch) % len(real)
        x = to_float(real[idx], manifest["scaling"])
        feeds = dict(sets[0][1])
        if "x" in feeds:
            feeds["x"] = x
        if "y" in feeds and labels is not None:  # the real digits' own labels, one-hot
            feeds["y"] = np.eye(feeds["y"].shape[1], dtype=np.float32)[labels[idx]]
        if "z" in feeds and hasattr(model, "encode"):  # the PyTorch encoder's code (AE z, VAE μ) of the real digits
            import torch

            cond = (torch.from_numpy(feeds["y"]),) if "y" in feeds else ()  # a CVAE's label
            with torch.no_grad():
                code = model.encode(torch.from_numpy(x), *cond)
            feeds["z"] = (code[0] if isinstance(code, tuple) else code).numpy()
        sets.append(("real", feeds))
    if "t" not in gspec.inputs:
        return sets
    ac = np.asarray(manifest["schedule"]["alphas_cumprod"], dtype=np.float64)
    out = []
    rng = np.random.default_rng(seed + 7 * batch)
    for label, feeds in sets:
        for t in timesteps(len(ac)):
            f = dict(feeds, t=np.full(batch, t, dtype=np.float32))
            if label == "real":  # q(x_t | x_0) of the real digits
                noise = rng.standard_normal(f["x"].shape)
                f["x"] = (np.sqrt(ac[t]) * f["x"] + np.sqrt(1 - ac[t]) * noise).astype(np.float32)
            out.append((f"{label} t={t}", f))
    return out


def _compare(ref: list, got: list, atol: float, rtol: float) -> tuple[float, float, bool]:
    if len(ref) != len(got):
        return float("inf"), float("inf"), False
    max_abs, scale, ok = 0.0, 0.0, True
    for r, g in zip(ref, got):
        if r.shape != g.shape:
            return float("inf"), float("inf"), False
        diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
        max_abs = max(max_abs, float(np.max(diff)) if diff.size else 0.0)
        scale = max(scale, float(np.max(np.abs(r))) if r.size else 0.0)
        ok = ok and bool(np.all(diff <= atol + rtol * np.abs(r)))  # False on any NaN
    if not np.isfinite(max_abs):
        ok = False
    return max_abs, max_abs / max(scale, 1e-30), ok


def _compare_rms(ref: list, got: list, bound: float) -> tuple[float, float, bool]:
    """(max abs error, largest relative RMS error over the outputs, every one ≤ bound)."""
    if len(ref) != len(got) or any(r.shape != g.shape for r, g in zip(ref, got)):
        return float("inf"), float("inf"), False
    max_abs, worst = 0.0, 0.0
    for r, g in zip(ref, got):
        diff = g.astype(np.float64) - r.astype(np.float64)
        max_abs = max(max_abs, float(np.max(np.abs(diff))))
        power = max(float(np.mean(r.astype(np.float64) ** 2)), 1e-30)
        worst = max(worst, float(np.sqrt(np.mean(diff ** 2) / power)))
    ok = bool(np.isfinite(max_abs) and np.isfinite(worst) and worst <= bound)
    return max_abs, worst, ok


def as_exported(manifest: dict) -> dict:
    """A quantized directory's manifest as its source export wrote it: its graphs keep that
    one embedded (the decoder is the same file), manifest.json adds the int8 record."""
    q = manifest.get("quantization")
    if not isinstance(q, dict):
        return manifest
    return {**{k: v for k, v in manifest.items() if k != "quantization"},
            "name": q.get("source")}


def _check_metadata(report, manifest, session, gspec) -> bool:
    """Record metadata problems; False when the I/O names make the graph unusable."""
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get(META_GRAPH_KEY) != gspec.role:
        report.problems.append(f"{gspec.file}: metadata {META_GRAPH_KEY!r} is "
                               f"{meta.get(META_GRAPH_KEY)!r}, expected {gspec.role!r}")
    try:
        embedded = json.loads(meta.get(META_KEY, ""))
    except json.JSONDecodeError:
        embedded = None
    if embedded != strip_shas(manifest):
        report.problems.append(f"{gspec.file}: embedded {META_KEY!r} metadata differs from "
                               f"manifest.json")
    names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if names != (list(gspec.inputs), list(gspec.outputs)):
        report.problems.append(f"{gspec.file}: I/O names {names}, expected "
                               f"{(list(gspec.inputs), list(gspec.outputs))}")
        return False
    return True


def verify(out_dir, ckpt, batch_sizes=(1, 7, 64), atol: float | None = None,
           rtol: float = 1e-5, data_dir=None, seed: int = 0) -> VerifyReport:
    """Compare every graph in ``out_dir`` with checkpoint ``ckpt`` (path or dict).

    atol None: each graph's default (graphs.GraphSpec.atol). Returns a VerifyReport; its
    ``ok`` is False on any out-of-tolerance output, hash or metadata mismatch."""
    import onnxruntime as ort

    from latentforge.runtime.hashing import sha256_file
    from latentforge.train.registry import model_from_checkpoint

    out_dir = Path(out_dir)
    report = VerifyReport(str(out_dir))
    manifest_path = out_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{out_dir} has no manifest.json: not an exported model "
                                f"directory (make one with `latentforge export CKPT -o DIR`)")
    manifest = json.loads(manifest_path.read_text())
    ckpt, ckpt_sha = load_any(ckpt)
    spec, config, model = model_from_checkpoint(ckpt)
    quantized = set(quantized_roles(manifest))
    manifest = as_exported(manifest)
    if manifest.get("name") != spec.name:
        report.problems.append(f"manifest is for {manifest.get('name')!r}, the checkpoint for "
                               f"{spec.name!r}")
        return report
    if ckpt_sha and manifest.get("checkpoint_sha256") not in (None, ckpt_sha):
        report.notes.append("the checkpoint file differs from the one exported (sha256); "
                            "comparing the weights anyway")
    expected = base_manifest(ckpt, spec, config, model, manifest.get("checkpoint_sha256"))
    found = dict(manifest)
    if isinstance(manifest.get("config"), dict):  # fields older exports lack take spec.legacy
        from latentforge.train.registry import config_from_dict

        try:
            found["config"] = asdict(config_from_dict(spec, manifest["config"]))
        except (TypeError, ValueError):
            pass  # reported as a mismatch below
    for key in ("kind", "config", "scaling", "latent_dim", "num_classes", "schedule", "ema",
                "parameters"):
        if jsonable(found.get(key)) != expected.get(key):
            report.problems.append(f"manifest {key!r} does not match the checkpoint")
    real, labels, source = real_digits(data_dir)
    report.notes.append(f"real digits from {source}" if real is not None else source)
    for gspec in graphs_for(spec.kind):
        info = manifest.get("graphs", {}).get(gspec.role)
        path = out_dir / gspec.file
        if info is None or not path.is_file():
            report.problems.append(f"graph {gspec.role} ({gspec.file}) is missing")
            continue
        if sha256_file(path) != info.get("sha256"):
            report.problems.append(f"{gspec.file}: sha256 does not match manifest.json")
        try:
            session = ort.InferenceSession(str(path), ort.SessionOptions(),
                                           providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for unreadable graphs
            report.problems.append(f"{gspec.file}: onnxruntime cannot load it: {e}")
            continue
        if not _check_metadata(report, manifest, session, gspec):
            continue
        tol = gspec.atol if atol is None else atol
        for b in batch_sizes:
            for label, feeds in _input_sets(gspec, expected, model, int(b), real, seed,
                                            labels):
                ref = run_torch(model, gspec, feeds)
                try:
                    got = session.run(list(gspec.outputs), {n: feeds[n] for n in gspec.inputs})
                except Exception as e:  # e.g. a graph whose batch dimension is fixed
                    report.problems.append(f"{gspec.file}: batch {b} {label}: {e}")
                    got = []
                if gspec.role in quantized:
                    bound = QUANTIZED_RMS.get(gspec.role, 0.05)
                    max_abs, rel, ok = _compare_rms(ref, got, bound)
                    report.rows.append(Row(gspec.role, label, int(b), max_abs, rel, bound, 0.0,
                                           ok, quantized=True))
                    continue
                max_abs, rel, ok = _compare(ref, got, tol, rtol)
                report.rows.append(Row(gspec.role, label, int(b), max_abs, rel, tol, rtol, ok))
    return report

