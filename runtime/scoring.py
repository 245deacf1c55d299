"""`latentforge score MODEL IMAGES... -o scores.csv`: one anomaly score per input image
(higher = more anomalous, in nats; see runtime/anomaly.py), torch-free.

Inputs: image files (28x28), .npy arrays of images, and MNIST IDX image files (e.g.
t10k-images-idx3-ubyte[.gz]). The CSV has one row per image: ``path,index,score`` (index:
the image's position within its file, 0 for a single image); .npy writes the scores only.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from .anomaly import SCORE_KINDS
from .helpformat import HelpFormatter

DEFAULT_SAMPLES, DEFAULT_SEED = 16, 0


def register(sub) -> None:
    from .commands import _common, add_digit_flag

    p = sub.add_parser("score", formatter_class=HelpFormatter,
                       help="anomaly score per image (higher = more anomalous)",
                       description="Score images with an autoencoder or a VAE, one row per "
                       "image: AE the reconstruction's Bernoulli negative log-likelihood "
                       "(summed BCE, nats); VAE −ELBO (nats) estimated with --samples draws "
                       "(seeded) or, with --kind recon, the BCE of the reconstruction from μ.")
    _common(p)
    p.add_argument("images", nargs="+",
                   help="image files (28x28), .npy arrays or MNIST IDX image files")
    p.add_argument("-o", "--out", default="scores.csv",
                   help=".csv (path,index,score per image) or .npy (scores only)")
    p.add_argument("--kind", choices=SCORE_KINDS, default=None,
                   help="VAE: elbo (−ELBO) or recon (BCE from μ) (default: elbo; an AE "
                   "scores recon)")
    p.add_argument("--samples", type=int, default=None,
                   help=f"VAE elbo: draws of z per image (default: {DEFAULT_SAMPLES})")
    p.add_argument("--seed", type=int, default=None,
                   help=f"VAE elbo: seed of the draws (default: {DEFAULT_SEED})")
    p.add_argument("--batch-size", type=int, default=256, help="images per graph call")
    add_digit_flag(p, "the digit every image is scored as (required for them)")
    p.set_defaults(func=cmd_score)


def read_inputs(paths) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """(images (N, 1, 28, 28) in [0, 1], [(path, index within the file)] per image)."""
    from .inputs import as_images

    arrays, where = [], []
    for path in paths:
        x = read_idx_images(path) if _is_idx(path) else as_images(path)
        arrays.append(x)
        where += [(str(path), i) for i in range(len(x))]
    return np.concatenate(arrays), where


def _is_idx(path) -> bool:
    name = Path(path).name.lower()
    return "idx" in name and not name.endswith((".npy", ".png", ".jpg", ".jpeg"))


def read_idx_images(path) -> np.ndarray:
    from latentforge.train.data import MAGIC_IMAGES, read_idx

    from .inputs import as_images

    if not Path(path).is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    return as_images(read_idx(path, MAGIC_IMAGES))


def _options(args, model) -> dict:
    """score() keyword arguments for this model kind; ValueError for options that don't apply."""
    from .commands import refuse_digit

    conditional = refuse_digit(args, model)
    if model.kind == "ae":
        given = [f for f, v in (("--samples", args.samples), ("--seed", args.seed))
                 if v is not None]
        if args.kind == "elbo" or given:
            raise ValueError(f"{model.name} is an autoencoder: it scores the reconstruction "
                             f"only (no ELBO, no sampling); drop "
                             f"{' and '.join(given) or '--kind elbo'}")
        return {}
    if model.kind not in ("vae", "cvae"):
        raise ValueError(f"{model.name} is a {model.kind}: only autoencoders and VAEs score "
                         f"images")
    if conditional and conditional["digit"] is None:
        raise ValueError(f"{model.name} is a conditional VAE: give the images' digit with "
                         f"--digit D")
    kind = args.kind or "elbo"
    if kind == "recon" and (args.samples is not None or args.seed is not None):
        raise ValueError("--samples and --seed apply to --kind elbo only")
    opts = {"kind": kind, "samples": args.samples or DEFAULT_SAMPLES,
            "seed": DEFAULT_SEED if args.seed is None else args.seed}
    if conditional:
        opts["digits"] = conditional["digit"]
    return opts


def describe(model, opts: dict) -> str:
    if model.kind == "ae":
        return "reconstruction BCE, nats per image"
    if opts["kind"] == "recon":
        return "reconstruction BCE from μ, nats per image"
    return f"−ELBO, nats per image ({opts['samples']} draws, seed {opts['seed']})"


def cmd_score(args) -> int:
    from .commands import _load
    from .outputs import atomic_output, output_path

    out = output_path(args.out, (".csv", ".npy"), "scores.csv")
    model = _load(args)
    opts = _options(args, model)
    x, where = read_inputs(args.images)
    scores = model.score(x, batch_size=args.batch_size, **opts)
    with atomic_output(out) as tmp:
        if out.suffix.lower() == ".npy":
            np.save(tmp, scores)
        else:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["path", "index", "score"])
                w.writerows([p, i, f"{s:.6f}"] for (p, i), s in zip(where, scores))
    print(f"scores: {describe(model, opts)}; mean {scores.mean():.3f}, min {scores.min():.3f},"
          f" max {scores.max():.3f}", file=sys.stderr)
    print(f"wrote {out} ({len(scores)} images)")
    return 0
