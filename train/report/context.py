"""The report's Context: data, loaded models, the classifier's test-set reference, and where
the sections write their figures and numbers."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from .markdown import jsonable


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

    def __init__(self, cfg):
        from latentforge.runtime.api import load, read_manifest, resolve, shipped_models
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
        # by default every shipped model but the int8 variants (`latentforge quantize`): they
        # share their source's decoder, so their samples are the source's
        names = cfg.models if cfg.models is not None else [
            n for n in shipped_models() if not read_manifest(resolve(n)).get("quantization")]
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
