"""`latentforge models | sample | encode | reconstruct | denoise | interpolate` (torch-free)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from .helpformat import HelpFormatter
from .sampling import DEFAULT_ETA, DEFAULT_METHOD, DEFAULT_STEPS, METHODS, SOLVER_STEPS

HELP = HelpFormatter
MODELS_ENV = "LATENTFORGE_MODELS"
GRID_MAX = 10_000  # digits drawn into the sample grid PNG; --npy holds all n


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="shipped model name (see `latentforge models`) or a directory "
                                 "from `latentforge export`")
    p.add_argument("--providers", default="auto", help="auto, cpu, cuda")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (all cores)")


def register(sub) -> None:
    p = sub.add_parser("models", help="list shipped and local models with their metrics",
                       formatter_class=HELP)
    p.add_argument("--path", action="append", default=[],
                   help=f"also list exported models under DIR (and ${MODELS_ENV}, "
                        f"{os.pathsep}-separated)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("sample", help="generate digits and save a grid PNG", formatter_class=HELP)
    _common(p)
    p.add_argument("-n", type=int, default=64, help="number of digits")
    p.add_argument("-o", "--out", default="samples.png",
                   help=f"grid PNG to write (the first {GRID_MAX:,} digits; a trailing / means "
                   f"a directory: DIR/samples.png)")
    p.add_argument("--npy", default=None,
                   help="also save the (n, 1, 28, 28) array here (.npy, written as the batches "
                   "are made: any n)")
    p.add_argument("--method", choices=METHODS, default=None,
                   help=f"DDPM reverse process (default: {DEFAULT_METHOD} with {DEFAULT_STEPS} "
                   f"steps{f' and η = {DEFAULT_ETA:g}' if DEFAULT_METHOD == 'ddim' else ''}, "
                   "the fastest quality-matched setting measured; ancestral is the course's "
                   "exact 1000-step loop)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"steps of ddim (default: all T), dpmpp-2m and sde-dpmpp-2m (default: "
                   f"{SOLVER_STEPS}); ancestral and ddpm run all T")
    p.add_argument("--eta", type=float, default=None,
                   help="DDIM η (default: 0 with --method ddim)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: random, printed)")
    p.add_argument("--batch-size", type=int, default=64, help="digits per denoiser call")
    add_digit_flag(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("encode", help="embed images (VAE: μ; AE: z)", formatter_class=HELP)
    _common(p)
    p.add_argument("images", nargs="+", help="image files (28x28) or .npy arrays")
    p.add_argument("-o", "--out", default="embeddings.npy", help=".npy or .csv")
    p.set_defaults(func=cmd_encode)

    for name, helptext in (("reconstruct", "encode and decode images"),
                           ("denoise", "clean noisy images with a denoising autoencoder")):
        p = sub.add_parser(name, help=helptext, formatter_class=HELP)
        _common(p)
        p.add_argument("images", nargs="+", help="image files (28x28) or .npy arrays")
        p.add_argument("-o", "--out", default=f"{name}.png",
                       help="grid PNG (row 1: inputs, row 2: outputs)")
        p.add_argument("--npy", default=None, help="also save the outputs here")
        if name == "denoise":
            p.add_argument("--add-noise", type=float, default=0.0,
                           help="first corrupt the inputs with gaussian noise of this std")
            p.add_argument("--seed", type=int, default=0, help="seed for --add-noise")
        p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("interpolate", help="decode the line between two images' codes",
                       formatter_class=HELP)
    _common(p)
    p.add_argument("a", help="first image (file or .npy)")
    p.add_argument("b", help="second image (file or .npy)")
    p.add_argument("--steps", type=int, default=10, help="images in the strip")
    p.add_argument("-o", "--out", default="interpolation.png", help="strip PNG")
    p.set_defaults(func=cmd_interpolate)


def _load(args):
    from .api import load

    model = load(args.model, providers=args.providers, threads=args.threads)
    print(f"{model.name} ({model.kind}) on {model.provider}", file=sys.stderr)
    return model


def _refuse_kind(model, needs: str, what: str) -> None:
    raise ValueError(f"{model.name} is a {model.kind}: {what}; use a {needs} model")


def _save_array(path: Path, arr: np.ndarray) -> None:
    from .outputs import atomic_output

    with atomic_output(path) as tmp:
        if path.suffix.lower() == ".csv":
            np.savetxt(tmp, arr.reshape(len(arr), -1), delimiter=",", fmt="%.7g")
        else:
            np.save(tmp, arr)
    print(f"wrote {path} {arr.shape}")


def refuse_ddpm_options(args, what: str) -> None:
    """ValueError when --method/--steps/--eta were given for something that is not a DDPM
    (``what`` says what it is); shared by `sample` and `quality`."""
    given = [f for f, v in (("--method", args.method), ("--steps", args.steps),
                            ("--eta", args.eta)) if v is not None]
    if given:
        raise ValueError(f"{' and '.join(given)} apply to DDPMs only; {what}")


def add_digit_flag(p: argparse.ArgumentParser, helptext: str = "draw this digit, 0-9 "
                   "(default: 0, 1, ..., 9 in turn)") -> None:
    p.add_argument("--digit", type=int, default=None,
                   help=f"conditional VAEs (cvae-conv) only: {helptext}")


def refuse_digit(args, model) -> dict:
    """{"digit": …} for a conditional VAE; ValueError when --digit is given for another kind."""
    digit = getattr(args, "digit", None)
    if model.kind == "cvae":
        return {"digit": digit}
    if digit is not None:
        raise ValueError(f"--digit applies to conditional VAEs only (e.g. cvae-conv); "
                         f"{model.name} is an unconditional {model.kind}")
    return {}


def _sample_batches(model, args):
    """The model's sample stream (a generator of batches) for this command's options."""
    conditional = refuse_digit(args, model)
    if model.kind == "ddpm":
        return model.iter_samples(args.n, steps=args.steps, method=args.method,
                                  eta=args.eta, seed=args.seed,
                                  batch_size=args.batch_size)
    if model.kind in ("vae", "cvae"):
        refuse_ddpm_options(args, f"{model.name} is a {model.kind} (it decodes prior draws "
                            f"in one step)")
        return model.iter_samples(args.n, seed=args.seed, batch_size=args.batch_size,
                                  **conditional)
    _refuse_kind(model, "DDPM or VAE", "only DDPMs and VAEs sample")


def cmd_sample(args) -> int:
    from contextlib import nullcontext

    from numpy.lib.format import open_memmap

    from .images import save_grid
    from .outputs import atomic_output, output_path

    out = output_path(args.out, (".png",), "samples.png")
    npy = output_path(args.npy, (".npy",), "samples.npy", "--npy") if args.npy else None
    if args.n > GRID_MAX and npy is None:
        raise ValueError(f"-n {args.n} is more than the grid's {GRID_MAX:,} digits: add "
                         f"--npy FILE.npy to keep them all (written as they are made)")
    model = _load(args)
    batches = _sample_batches(model, args)
    print(f"seed {model.last_seed}", flush=True)  # before the long part: scripts read it
    grid = np.empty((min(args.n, GRID_MAX), 1, 28, 28), dtype=np.float32)
    with atomic_output(npy) if npy else nullcontext() as tmp:
        arr = open_memmap(tmp, mode="w+", dtype=np.float32,
                          shape=(args.n, 1, 28, 28)) if tmp else None
        start = 0
        for batch in batches:
            if arr is not None:
                arr[start:start + len(batch)] = batch
            keep = max(0, min(len(batch), GRID_MAX - start))
            grid[start:start + keep] = batch[:keep]
            start += len(batch)
        if arr is not None:
            arr.flush()
            del arr
        save_grid(grid, out)
    print(f"wrote {out} ({len(grid)} digits)")
    if npy:
        print(f"wrote {npy} ({args.n}, 1, 28, 28)")
    return 0


def cmd_encode(args) -> int:
    from .outputs import output_path

    out = output_path(args.out, (".npy", ".csv"), "embeddings.npy")
    model = _load(args)
    if not hasattr(model, "embed"):
        _refuse_kind(model, "VAE or autoencoder", "it has no encoder")
    _save_array(out, model.embed(args.images))
    return 0


def cmd_reconstruct(args) -> int:
    from .images import save_grid
    from .inputs import as_images
    from .outputs import output_path

    out = output_path(args.out, (".png",), f"{args.command}.png")
    npy = output_path(args.npy, (".npy", ".csv"), f"{args.command}.npy", "--npy") \
        if args.npy else None
    model = _load(args)
    if not hasattr(model, "reconstruct"):
        _refuse_kind(model, "VAE or autoencoder", "it cannot reconstruct")
    x = as_images(args.images)
    if getattr(args, "add_noise", 0.0) > 0:
        noise = _core_randn(args.seed, x.shape) * np.float32(args.add_noise)
        x = np.clip(x + noise, 0.0, 1.0)
    y = model.reconstruct(x)
    save_grid(np.concatenate([x, y]), out, nrow=len(x))
    print(f"wrote {out} (inputs above, outputs below)")
    if npy:
        _save_array(npy, y)
    return 0


def _core_randn(seed: int, shape) -> np.ndarray:
    from . import _core

    return _core.randn(int(seed), tuple(shape))


def cmd_interpolate(args) -> int:
    from .images import save_grid
    from .outputs import output_path

    out = output_path(args.out, (".png",), "interpolation.png")
    model = _load(args)
    if not hasattr(model, "interpolate"):
        _refuse_kind(model, "VAE or autoencoder", "it has no latent space")
    strip = model.interpolate(args.a, args.b, steps=args.steps)
    save_grid(strip, out, nrow=len(strip))
    print(f"wrote {out} ({len(strip)} images)")
    return 0


def cmd_models(args) -> int:
    from .api import SHIPPED, ModelFileError, read_manifest

    roots = [SHIPPED] + [Path(p) for p in args.path]
    roots += [Path(p) for p in os.environ.get(MODELS_ENV, "").split(os.pathsep) if p]
    rows = []
    for root in roots:
        for manifest_path in sorted(root.glob("*/manifest.json")) + sorted(
                root.glob("manifest.json")):
            try:
                m = read_manifest(manifest_path.parent)
            except (ModelFileError, OSError) as e:
                print(f"warning: skipping {manifest_path.parent}: {e}", file=sys.stderr)
                continue
            where = "shipped" if root == SHIPPED else str(manifest_path.parent)
            rows.append((m["name"], m["kind"], _describe(m), where))
    if not rows:
        print("no models found")
        return 0
    width = max(len(r[0]) for r in rows)
    for name, kind, metrics, where in rows:
        print(f"{name:<{width}}  {kind:<10}  {where:<8}  {metrics}")
    return 0


def _describe(m: dict) -> str:
    """Test metrics; for an int8 variant, what was quantized and its measured cost instead
    (its manifest carries the source's fp32 metrics, which are not its own)."""
    q = m.get("quantization")
    if not isinstance(q, dict):
        return _fmt_metrics(m.get("metrics", {}))
    a = q.get("accuracy") or {}
    text = f"int8 {', '.join(map(str, q.get('graphs', [])))} of {q.get('source')}"
    if "fd_int8" in a:
        text += f": classifier FD {a['fd_int8']:.4g} vs {a['fd_fp32']:.4g} ({a['sampler']})"
    elif "recon_fd_int8" in a:
        text += (f": reconstruction FD {a['recon_fd_int8']:.4g} vs {a['recon_fd_fp32']:.4g}, "
                 f"1-NN {a['nn_accuracy_int8']:.4g} vs {a['nn_accuracy_fp32']:.4g}")
    return text


def _fmt_metrics(metrics: dict) -> str:
    test = metrics.get("test", metrics)
    return ", ".join(f"{k}={v:.4g}" for k, v in test.items() if isinstance(v, (int, float)))
