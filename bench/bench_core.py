"""Benchmarks for latentforge.runtime._core (no asserts: numbers to read, not to gate on).

    python bench/bench_core.py [--reps 7] [--unet-reps 3] [--n 8] [--steps 50] [--no-unet]

1. Reparameterization of a (10^6, 10) latent batch, ours vs the numpy expression
   ``mu + np.exp(0.5 * logvar) * eps``: with noise generation on both sides (our seeded path
   vs numpy's Generator.standard_normal) and with ε given on both sides.
2. Sampling-loop overhead: `_core.sample` vs the same number of bare denoiser calls on the
   same buffers, and the time `sample` spends outside the denoiser (noise draws, the update,
   the GIL hand-offs), for (a) the project's U-Net (random weights) exported to ONNX and run through
   an onnxruntime IO binding (needs torch for the export), (b) a tiny ONNX graph and (c) a
   numpy one-liner; the last two show the loop's absolute cost per step.

Repetitions are interleaved; medians (and for the loop also minima, the least disturbed runs)
are reported. On a shared machine expect noise: "outside denoiser" is the robust measure.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import onnxruntime as ort

from latentforge.runtime import _core
from latentforge.runtime.session import BoundDenoiser  # what the runtime ships


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(cases: dict, reps: int) -> dict:
    """Median seconds per case; one warm-up call each, then `reps` rounds in turn."""
    for fn in cases.values():
        fn()
    times = {name: [] for name in cases}
    for _ in range(reps):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_reparameterize(reps: int) -> None:
    shape = (10**6, 10)
    rng = np.random.default_rng(0)
    mu = rng.normal(size=shape).astype(np.float32)
    logvar = rng.normal(size=shape).astype(np.float32)
    eps = rng.standard_normal(shape, dtype=np.float32)
    cases = {
        "ours, seed (noise drawn)": lambda: _core.reparameterize(mu, logvar, seed=1),
        "ours, seed, 1 thread": lambda: _core.reparameterize(mu, logvar, seed=1, threads=1),
        "numpy, rng.standard_normal": lambda: mu + np.exp(0.5 * logvar) * rng.standard_normal(
            shape, dtype=np.float32),
        "ours, eps given": lambda: _core.reparameterize(mu, logvar, eps=eps),
        "ours, eps given, 1 thread": lambda: _core.reparameterize(mu, logvar, eps=eps,
                                                                  threads=1),
        "numpy, eps given": lambda: mu + np.exp(0.5 * logvar) * eps,
        "ours, randn only": lambda: _core.randn(1, shape),
        "numpy, standard_normal only": lambda: rng.standard_normal(shape, dtype=np.float32),
    }
    med = interleaved(cases, reps)
    print(f"\nreparameterization, (B, D) = {shape}, float32, median of {reps}:")
    for name, sec in med.items():
        print(f"  {name:32s} {sec * 1e3:8.1f} ms")
    print(f"  speed-up with noise generation: "
          f"{med['numpy, rng.standard_normal'] / med['ours, seed (noise drawn)']:.1f}x")
    print(f"  speed-up with eps given:        "
          f"{med['numpy, eps given'] / med['ours, eps given']:.1f}x")


def tiny_onnx_graph(path: str) -> None:
    """eps = 0.1 * tanh(x) + 0 * t: a real onnxruntime call with almost no compute."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 1, 28, 28])
    t = helper.make_tensor_value_info("t", TensorProto.FLOAT, ["B"])
    eps = helper.make_tensor_value_info("eps", TensorProto.FLOAT, ["B", 1, 28, 28])
    k = helper.make_tensor("k", TensorProto.FLOAT, [], [0.1])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3])
    nodes = [helper.make_node("Tanh", ["x"], ["h"]), helper.make_node("Mul", ["h", "k"], ["m"]),
             helper.make_node("Mul", ["t", "zero"], ["t0"]),
             helper.make_node("Unsqueeze", ["t0", "axes"], ["t4"]),
             helper.make_node("Add", ["m", "t4"], ["eps"])]
    graph = helper.make_graph(nodes, "tiny", [x, t], [eps], initializer=[k, zero, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by any onnxruntime >= 1.17
    onnx.save(model, path)


def export_unet(path: str) -> bool:
    try:
        import torch

        from latentforge.train.unet import UNet
    except ImportError:
        return False
    torch.manual_seed(0)
    model = UNet().eval()
    example = (torch.randn(2, 1, 28, 28), torch.tensor([999.0, 3.0]))
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, path, input_names=["x", "t"], output_names=["eps"],
                          dynamo=True, verbose=False,
                          dynamic_shapes={"x": {0: batch}, "t": {0: batch}})
    return True


def numpy_denoiser():
    out = {}

    def denoiser(x, t):
        if "buf" not in out:
            out["buf"] = np.empty_like(x)
        return np.multiply(x, np.float32(0.1), out=out["buf"])

    return denoiser


def loop_overhead(name: str, make_denoiser, n: int, steps: int, reps: int) -> None:
    """Two measures: `sample` minus the same number of bare calls (noisy on a busy machine),
    and the time `sample` spends outside the denoiser (robust: same run, no second workload)."""
    from latentforge.train.schedule import NoiseSchedule  # numpy only; no torch import

    schedule = NoiseSchedule()
    timesteps = schedule.ddim_timesteps(steps)
    x = _core.randn(0, (n, 1, 28, 28))
    t = np.full((n,), 999.0, np.float32)
    inner, bare_den, inside = make_denoiser(), make_denoiser(), [0.0]

    def timed_denoiser(xs, ts):
        start = time.perf_counter()
        out = inner(xs, ts)
        inside[0] += time.perf_counter() - start
        return out

    def bare():
        for _ in range(steps):
            bare_den(x, t)

    def loop():
        _core.sample(timed_denoiser, schedule, "ddim", timesteps, seed=0, n=n, eta=1.0)

    loop(), bare()  # warm-up
    runs = {"sample": [], "bare": [], "outside": []}
    for _ in range(reps):
        inside[0] = 0.0
        runs["sample"].append(timed(loop))
        runs["outside"].append(runs["sample"][-1] - inside[0])
        runs["bare"].append(timed(bare))
    med = {k: statistics.median(v) for k, v in runs.items()}
    low = {k: min(v) for k, v in runs.items()}  # least disturbed run: robust to other load
    direct = 100 * (med["sample"] - med["bare"]) / med["bare"]
    direct_min = 100 * (low["sample"] - low["bare"]) / low["bare"]
    outside = 100 * med["outside"] / med["bare"]
    print(f"  {name:30s} sample {med['sample'] * 1e3:8.2f} ms  bare {med['bare'] * 1e3:8.2f} ms"
          f"  sample-bare {direct:+7.2f} % (min-based {direct_min:+7.2f} %)"
          f"  outside denoiser {med['outside'] / steps * 1e6:6.1f} us/step"
          f" = {outside:7.2f} % of bare")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--unet-reps", type=int, default=3, help="the U-Net case is slow")
    parser.add_argument("--n", type=int, default=8, help="batch for the sampling loop")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--no-unet", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"cores: os.cpu_count() = {os.cpu_count()}, build: {_core.build_info()}, "
          f"load average: {load}")
    bench_reparameterize(args.reps)

    print(f"\nsampling loop, DDIM eta=1, {args.steps} steps, n = {args.n}, median of {args.reps}:")
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_unet and export_unet(os.path.join(tmp, "unet.onnx")):
            session = ort.InferenceSession(os.path.join(tmp, "unet.onnx"), options,
                                           providers=["CPUExecutionProvider"])
            loop_overhead("U-Net (ONNX, IO binding)", lambda: BoundDenoiser(session), args.n,
                          args.steps, args.unet_reps)
        tiny_onnx_graph(os.path.join(tmp, "tiny.onnx"))
        session = ort.InferenceSession(os.path.join(tmp, "tiny.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        loop_overhead("tiny ONNX graph (IO binding)", lambda: BoundDenoiser(session), args.n,
                      args.steps, args.reps)
    loop_overhead("numpy one-liner", numpy_denoiser, args.n, args.steps, args.reps)


if __name__ == "__main__":
    main()
