"""Where in the reverse process do the DDPM's unrecognisable digits form? (issue 12)

    python bench/ddpm_error_onset.py [--model ddpm] [-n 1000] [--t0 999,800,600,450,300]
                                     [--data-dir DIR] [--json OUT.json]

Real training digits (the last n of the 60k, none of them in the classifier's FD reference)
are noised by q(x_t0 | x_0) and denoised back to t = 0 with DDIM η = 1 (Song et al. 2021,
eq. 12; ⌈t0/10⌉ evenly spaced steps, as DDIM-100 over the whole chain), the
"SDEdit" probe of Meng et al. 2022. The classifier's confident share of the results,
per t0, says from which noise level on the network loses the digit: at t0 = T − 1 it is
unconditional sampling, at small t0 it only redraws strokes. A diagnostic: numbers to read.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

from latentforge.runtime.api import load
from latentforge.runtime.quality import load_split, load_test_set, reference_stats, score
from latentforge.train.samplers import sample
from latentforge.train.schedule import NoiseSchedule, ScheduleConfig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="ddpm", help="DDPM: shipped name or exported directory")
    p.add_argument("-n", type=int, default=1000, help="real digits per t0")
    p.add_argument("--t0", default="999,800,600,450,300", help="comma-separated start steps")
    p.add_argument("--data-dir", default=None, help="MNIST IDX directory")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="onnxruntime threads")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    ddpm = load(args.model, threads=args.threads)
    if ddpm.kind != "ddpm":
        raise SystemExit(f"--model {args.model} is a {ddpm.kind}, not a DDPM")
    schedule = NoiseSchedule(ScheduleConfig(**ddpm.manifest["schedule"]["config"]))
    unet = ddpm.sessions["unet"]

    def eps(x, t):  # (B, 1, 28, 28), (B,) → ε̂ through the shipped ONNX graph
        return torch.from_numpy(unet.run(None, {"x": x.numpy(), "t": t.numpy()})[0])

    clf = load("classifier", threads=args.threads)
    reference = reference_stats(clf, load_test_set(args.data_dir)[0])
    images = load_split("train", args.data_dir)[0][-args.n:, None]  # (n, 1, 28, 28) uint8
    real = score(clf, images.astype(np.float32) / 255, reference)
    rows = [{"t0": 0, "steps": 0, "fd": real.fd, "confident": real.confident}]
    print(f"{ddpm.name}; n = {len(images)} real training digits; classifier FD / confident")
    print(f"  t0 =    0 (the digits themselves):  FD {real.fd:6.2f}  {real.confident:6.1%}")
    x0 = torch.from_numpy(images.astype(np.float32) / 127.5 - 1)  # [−1, 1]
    for t0 in (int(v) for v in args.t0.split(",")):
        if not 0 < t0 < schedule.num_timesteps:
            raise SystemExit(f"--t0 values must be in 1..{schedule.num_timesteps - 1}")
        g = torch.Generator().manual_seed(args.seed + t0)
        x_t0 = schedule.q_sample(x0, torch.full((len(x0),), t0),
                                 torch.randn(x0.shape, generator=g))
        steps = max(10, -(-t0 // 10))
        ts = np.unique(np.linspace(0, t0, steps).round().astype(int))[::-1]
        out = [sample(eps, schedule, len(chunk), "ddim", timesteps=ts, eta=1.0, generator=g,
                      x_T=chunk)[0].numpy() for chunk in x_t0.split(64)]
        q = score(clf, (np.concatenate(out) + 1) / 2, reference)
        rows.append({"t0": t0, "steps": len(ts), "fd": q.fd, "confident": q.confident})
        print(f"  t0 = {t0:4d} ({len(ts):3d} DDIM η=1 steps):  FD {q.fd:6.2f}  "
              f"{q.confident:6.1%}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": ddpm.name, "n": len(images), "seed": args.seed,
                       "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
