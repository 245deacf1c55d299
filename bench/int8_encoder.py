"""Experiment: the shipped vae-conv encoder in int8 (onnxruntime static QDQ quantization),
against the fp32 graph it ships with and PyTorch eager, for issue 15's `embed` target (≥ 2×
eager at batch 256 from uint8). A measurement, not a shipped variant: the README's tuning
record has the result; rerun it on a CPU with VNNI / AMX or after an onnxruntime upgrade:

    python bench/int8_encoder.py [--model vae-conv] [--data-dir DATA] [--keep DIR]

Quantization as bench/int8_unet.py: QDQ, Conv and Gemm weights int8 per output channel,
activations uint8 with ``reduce_range`` (AVX2 without VNNI), MinMax calibration on 1,024 real
training digits. Prints the best-of wall time per `embed`-equivalent call at batch 256 (eager:
uint8 → float → encode; runtime: the model's own `embed`, which feeds the session), and the
int8 graph's error on the test digits: max |μ_int8 − μ_fp32| against the spread of μ, and the
reconstruction MSE of the fp32 decoder from each μ.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from int8_unet import quantize  # the same QDQ recipe (this script runs from bench/)


def nearest_neighbour_accuracy(mu: np.ndarray, labels: np.ndarray) -> float:
    """Share of embeddings whose nearest other embedding (Euclidean) has the same digit."""
    sq = (mu ** 2).sum(1)
    dist = sq[:, None] + sq[None, :] - 2.0 * mu @ mu.T  # (N, N)
    np.fill_diagonal(dist, np.inf)
    return float((labels[dist.argmin(1)] == labels).mean())


def main(argv=None) -> None:
    import torch

    from latentforge.runtime.api import load, resolve
    from latentforge.runtime.session import make_session
    from latentforge.train.bench import _eager, best_of
    from latentforge.train.data import load_mnist

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="vae-conv", help="shipped VAE name or exported directory")
    p.add_argument("--data-dir", default=os.environ.get("LATENTFORGE_DATA"),
                   help="MNIST IDX directory (default: $LATENTFORGE_DATA, else the fixture)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both")
    p.add_argument("--keep", default=None, help="also keep the int8 encoder.onnx here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    directory = Path(resolve(args.model))
    mnist = load_mnist(args.data_dir)
    calib = (mnist.train_images[:1024].astype(np.float32) / 255.0)[:, None]  # (1024, 1, 28, 28)
    test_u8 = mnist.test_images[:2048][:, None]                                # (2048, 1, 28, 28)
    work = Path(tempfile.mkdtemp(prefix="lf-int8-enc-"))
    try:
        q_path = work / "encoder.int8.onnx"
        quantize(directory / "encoder.onnx", q_path,
                 ({"x": calib[i:i + 128]} for i in range(0, len(calib), 128)))
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(q_path, Path(args.keep) / "encoder.int8.onnx")
        vae = load(directory, providers="cpu", threads=args.threads)
        q = make_session(q_path, "cpu", threads=args.threads)
        enc = _eager(directory)

        def q_embed(u8):
            return q.run(None, {"x": u8.astype(np.float32) / np.float32(255.0)})[0]

        u8 = np.random.default_rng(2).integers(0, 256, (256, 1, 28, 28), dtype=np.uint8)
        with torch.no_grad():
            eager_s = best_of(lambda: enc.encode(torch.from_numpy(u8).float().div_(255.0)))
        fp32_s = best_of(lambda: vae.embed(u8))
        int8_s = best_of(lambda: q_embed(u8))
        print(f"cores {os.cpu_count()}, threads {args.threads}; batch 256 from uint8")
        for what, s in (("eager", eager_s), ("runtime fp32", fp32_s), ("runtime int8", int8_s)):
            print(f"  {what:14s} {s * 1e3:7.2f} ms  {256 / s:9,.0f} img/s  "
                  f"×{eager_s / s:.2f} vs eager")

        mu32 = vae.embed(test_u8)
        mu8 = np.concatenate([q_embed(test_u8[i:i + 256]) for i in range(0, len(test_u8), 256)])
        x = test_u8.astype(np.float32) / 255.0
        mse = [float(np.mean((vae.decode(m) - x) ** 2)) for m in (mu32, mu8)]
        labels = mnist.test_labels[:len(test_u8)]
        nn = [nearest_neighbour_accuracy(m, labels) for m in (mu32, mu8)]
        d = np.abs(mu8 - mu32)
        print(f"test digits ({len(test_u8)}): |μ_int8 − μ_fp32| mean {d.mean():.4f}, max "
              f"{d.max():.4f} (std of μ {mu32.std():.3f}); reconstruction MSE from μ: fp32 "
              f"{mse[0]:.5f}, int8 {mse[1]:.5f}; 1-NN digit accuracy on μ (leave one out): "
              f"fp32 {nn[0]:.2%}, int8 {nn[1]:.2%}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
