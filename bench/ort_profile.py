"""What onnxruntime actually runs: the optimized graph's op counts and the time per op type.

    python bench/ort_profile.py ddpm unet 16          # shipped DDPM's U-Net at batch 16
    python bench/ort_profile.py vae-conv encoder 256 --uint8
    python bench/ort_profile.py DIR/unet.onnx - 16     # any ONNX file (graph name "-")

Saves the optimized graph (``SessionOptions.optimized_model_filepath``) and an onnxruntime
profile (``enable_profiling``) under --out, then prints two tables: node count per op type
in the optimized graph (domains dropped: NCHWc Conv counts as Conv) (NCHWc ``ReorderInput``/``ReorderOutput`` are the layout changes), and
mean milliseconds per run per op type from the profile (``Node`` events, ``*_kernel_time``).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def feeds_for(session: ort.InferenceSession, batch: int, rng) -> dict:
    feeds = {}
    for inp in session.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in inp.shape]
        if inp.type == "tensor(uint8)":
            feeds[inp.name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        elif inp.name == "t":
            feeds[inp.name] = rng.integers(0, 1000, size=shape).astype(np.float32)
        else:
            feeds[inp.name] = rng.standard_normal(shape, dtype=np.float32)
    return feeds


def op_counts(path: Path) -> collections.Counter:
    model = onnx.load(str(path), load_external_data=False)
    return collections.Counter(n.op_type for n in model.graph.node)


def profile_times(profile: Path, runs: int) -> dict[str, float]:
    """ms per run per op type, from the Node kernel-time events of an onnxruntime profile."""
    events = json.loads(profile.read_text())
    total: dict[str, float] = collections.defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            total[e["args"]["op_name"]] += e["dur"] / 1e3 / runs  # µs → ms per run
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def graph_path(model: str, graph: str) -> Path:
    if graph == "-":
        return Path(model)
    from latentforge.runtime.api import resolve

    return Path(resolve(model)) / f"{graph}.onnx"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", help="shipped name or model directory (or an .onnx file with '-')")
    p.add_argument("graph", help="graph role: unet, encoder, decoder, classifier, or '-'")
    p.add_argument("batch", type=int)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--out", default="runs/ort-profile")
    a = p.parse_args(argv)
    src = graph_path(a.model, a.graph)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{src.parent.name}-{src.stem}-b{a.batch}"
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads, so.inter_op_num_threads = a.threads, 1
    so.optimized_model_filepath = str(out / f"{stem}.optimized.onnx")
    so.enable_profiling, so.profile_file_prefix = True, str(out / stem)
    session = ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    feeds = feeds_for(session, a.batch, np.random.default_rng(0))
    for _ in range(5):
        session.run(None, feeds)
    t0 = time.perf_counter()
    for _ in range(a.runs):
        session.run(None, feeds)
    wall = (time.perf_counter() - t0) / a.runs * 1e3
    profile = Path(session.end_profiling())
    times = profile_times(profile, a.runs + 5)
    counts = op_counts(out / f"{stem}.optimized.onnx")
    print(f"{src} batch {a.batch}, {a.threads} threads: {wall:.2f} ms per run (profiled)")
    print("| op type | nodes | ms per run | share |\n|---|---|---|---|")
    kernel = sum(times.values())
    for op in sorted(set(counts) | set(times), key=lambda o: -times.get(o, 0.0)):
        ms = times.get(op, 0.0)
        print(f"| {op} | {counts.get(op, 0)} | {ms:.3f} | {100 * ms / kernel:.1f}% |")
    print(f"| all kernels | {sum(counts.values())} | {kernel:.3f} | |")
    print(f"optimized graph: {out / f'{stem}.optimized.onnx'}; profile: {profile}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
