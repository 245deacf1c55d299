"""Experiment: the shipped DDPM's U-Net in int8 (`latentforge quantize ddpm`, export/quantize.py)
against the fp32 graph it ships with: ε̂ error per timestep and time per U-Net call.

    python bench/int8_unet.py [--data-dir DATA] [--calibration 512] [--keep DIR]

Prints ε̂'s error against the true noise per timestep for both graphs (the training loss the
int8 graph would have) on 256 test digits, and the best time per call at batch 1, 16 and 64
(each graph timed on its own, so the two sessions' spinning threads do not compete). The
classifier scores of both with the default sampler are in the quantized manifest's
``quantization.accuracy`` (measured by the command).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    import onnxruntime as ort

    from latentforge.export.quantize import digits, quantize_model
    from latentforge.runtime.api import resolve
    from latentforge.runtime.session import make_session
    from latentforge.train.bench import best_of

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--calibration", type=int, default=512, help="calibration digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--keep", default=None, help="keep the int8 model directory here")
    a = p.parse_args(argv)
    shipped = resolve("ddpm")
    tmp = Path(tempfile.mkdtemp())
    out = Path(a.keep) if a.keep else tmp / "ddpm-int8"
    manifest = quantize_model(shipped, out, data_dir=a.data_dir, calibration=a.calibration,
                              test_digits=256)
    print(json.dumps(manifest["quantization"]["accuracy"]))
    abar = np.array(manifest["schedule"]["alphas_cumprod"])
    sessions = {name: make_session(d / "unet.onnx", "cpu") for name, d in
                (("fp32", shipped), ("int8", out))}
    test = digits(a.data_dir, "test", 256)[0].astype(np.float32) / 127.5 - 1.0
    rng = np.random.default_rng(1)
    print(f"cores: {os.cpu_count()}, onnxruntime {ort.__version__}\n"
          "| t | ε-MSE fp32 | ε-MSE int8 | RMS(int8 − fp32) |\n|---|---|---|---|")
    for t in (0, 10, 100, 250, 500, 750, 999):
        eps = rng.standard_normal(test.shape).astype(np.float32)
        xt = (np.sqrt(abar[t]) * test + np.sqrt(1 - abar[t]) * eps).astype(np.float32)
        feeds = {"x": xt, "t": np.full(len(xt), t, np.float32)}
        e32, e8 = (sessions[n].run(None, feeds)[0] for n in ("fp32", "int8"))
        print(f"| {t} | {np.mean((e32 - eps) ** 2):.4f} | {np.mean((e8 - eps) ** 2):.4f} | "
              f"{np.sqrt(np.mean((e8 - e32) ** 2)):.4f} |")
    for batch in (1, 16, 64):
        feeds = {"x": rng.standard_normal((batch, 1, 28, 28), dtype=np.float32),
                 "t": np.full(batch, 500.0, np.float32)}
        ms = {n: 1e3 * best_of(lambda s=s: s.run(None, feeds)) for n, s in sessions.items()}
        print(f"U-Net call, batch {batch}: fp32 {ms['fp32']:.2f} ms, int8 {ms['int8']:.2f} ms "
              f"(×{ms['fp32'] / ms['int8']:.2f})")
    if not a.keep:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
