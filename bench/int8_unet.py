"""Experiment: the shipped DDPM's U-Net in int8 (onnxruntime static QDQ quantization), against
the fp32 graph it ships with. Negative result on this machine (README, tuning record), so
no int8 variant ships; rerun it on a CPU with VNNI / AMX or after an onnxruntime upgrade:

    python bench/int8_unet.py [--quality 1000] [--keep DIR]

Quantization (export/quantize.py's quantize_graph, as `latentforge quantize`): QDQ format, Conv and Gemm weights int8 per output channel, activations uint8
with ``reduce_range`` (7-bit weights: AVX2 without VNNI saturates u8·s8 pair sums
otherwise), MinMax calibration on x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε for real training digits x_0
and t uniform over 0…T−1 (the inputs the sampling loop feeds). ConvTranspose stays fp32:
onnxruntime's CPU provider has no quantized kernel for it.

Prints: ε̂ error against the true noise per timestep for both graphs (the training loss the
int8 graph would have), the wall time per call at --batch (interleaved calls), and with
--quality N the project's classifier scores of N digits from the default sampler, same seed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def calibration_batches(abar: np.ndarray, x0: np.ndarray, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(0, len(x0), batch):
        x = x0[i:i + batch]
        t = rng.integers(0, len(abar), len(x))
        a = abar[t][:, None, None, None]
        xt = np.sqrt(a) * x + np.sqrt(1 - a) * rng.standard_normal(x.shape)
        yield {"x": xt.astype(np.float32), "t": t.astype(np.float32)}


def int8_model_dir(shipped: Path, out: Path, abar, x0) -> Path:
    """A copy of the shipped model directory whose unet.onnx is the int8 graph; the manifest
    records the quantization and the new file's sha256."""
    from latentforge.export.quantize import RECIPE, quantize_graph  # `latentforge quantize`'s
    from latentforge.runtime.hashing import sha256_file

    shutil.copytree(shipped, out)
    quantize_graph(shipped / "unet.onnx", out / "unet.onnx", calibration_batches(abar, x0, 32))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["graphs"]["unet"]["sha256"] = sha256_file(out / "unet.onnx")
    manifest["quantization"] = {**RECIPE, "graphs": ["unet"], "source": manifest["name"],
                                "calibration": f"{len(x0)} x_t of real digits, t uniform"}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def main(argv=None) -> int:
    import onnxruntime as ort

    from latentforge.runtime.api import resolve
    from latentforge.runtime.cli import main as cli_main
    from latentforge.runtime.sampling import DEFAULT_ETA, DEFAULT_METHOD, DEFAULT_STEPS
    from latentforge.train.data import load_mnist

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--calibration", type=int, default=512, help="calibration digits")
    p.add_argument("--quality", type=int, default=0, help="classifier scores on N digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--keep", default=None, help="keep the int8 model directory here")
    a = p.parse_args(argv)
    shipped = resolve("ddpm")
    abar = np.array(json.loads((shipped / "manifest.json").read_text())
                    ["schedule"]["alphas_cumprod"])
    mnist = load_mnist(a.data_dir)
    x0 = mnist.train_images[:a.calibration, None].astype(np.float32) / 127.5 - 1.0
    tmp = Path(tempfile.mkdtemp())
    q8 = int8_model_dir(shipped, Path(a.keep) if a.keep else tmp / "ddpm-int8", abar, x0)
    threads = os.cpu_count()
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sessions = {name: ort.InferenceSession(str(d / "unet.onnx"), so,
                                           providers=["CPUExecutionProvider"])
                for name, d in (("fp32", shipped), ("int8", q8))}
    test = mnist.test_images[:256, None].astype(np.float32) / 127.5 - 1.0
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
    feeds = {"x": rng.standard_normal((a.batch, 1, 28, 28), dtype=np.float32),
             "t": np.full(a.batch, 500.0, np.float32)}
    walls = {n: [] for n in sessions}
    for s in sessions.values():
        s.run(None, feeds)
    for _ in range(a.rounds):
        for n, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds)
            walls[n].append(time.perf_counter() - t0)
    for n, w in walls.items():
        print(f"U-Net step, batch {a.batch}, {n}: median {1e3 * np.median(w):.2f} ms, "
              f"best {1e3 * min(w):.2f} ms ({a.rounds} interleaved calls)")
    if a.quality:
        for name, d in (("fp32", shipped), ("int8", q8)):
            print(f"\n{name}: latentforge quality {d} -n {a.quality} (default sampler, seed 0)",
                  flush=True)
            argv = ["quality", str(d), "-n", str(a.quality), "--method", DEFAULT_METHOD,
                    "--steps", str(DEFAULT_STEPS), "--eta", str(DEFAULT_ETA)]
            if cli_main(argv + (["--data-dir", a.data_dir] if a.data_dir else [])) != 0:
                return 1
    if not a.keep:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
