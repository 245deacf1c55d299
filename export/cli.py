"""`latentforge export | verify`: argument set-up only; torch and onnx load when one runs."""
from __future__ import annotations

import argparse
import sys

from latentforge.runtime.helpformat import HelpFormatter

HELP = HelpFormatter


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,7,64, got {text!r}")
    return sizes


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser("export", formatter_class=HELP,
                       help="export a checkpoint to ONNX graphs + manifest.json",
                       description="Write DIR/manifest.json and the model's ONNX graphs "
                       "(encoder.onnx + decoder.onnx, or unet.onnx). DIR is replaced as a "
                       "whole; it must be absent, empty, or a previous export.")
    p.add_argument("checkpoint", help="a .pt checkpoint (training or weights-only)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17)")
    p.set_defaults(func=_run_export)

    p = sub.add_parser("verify",
                       help="check an exported directory against its checkpoint",
                       description="Feed the same random and real inputs to the checkpoint "
                       "(PyTorch) and the exported graphs (onnxruntime, CPU); print max abs and "
                       "relative error per graph; exit 1 if any output is outside "
                       "atol + rtol*|reference| or a file, hash or metadata does not match.")
    p.add_argument("directory", help="directory written by `latentforge export`")
    p.add_argument("checkpoint", help="the checkpoint it was exported from")
    p.add_argument("--batch-sizes", type=_batch_sizes, default="1,7,64",
                   metavar="N,N,...", help="batch sizes to run (default: 1,7,64)")
    p.add_argument("--atol", type=_non_negative, default=None,
                   help="absolute tolerance (default: 1e-5 for AE/VAE graphs, 1e-4 for the "
                   "U-Net and classifier)")
    p.add_argument("--rtol", type=_non_negative, default=1e-5,
                   help="relative tolerance, times |reference| per element (default: 1e-5)")
    p.add_argument("--data-dir", default=None,
                   help="MNIST IDX directory for real digits (default: $LATENTFORGE_DATA, "
                   "else the test fixture of a source checkout, else random inputs only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    p.set_defaults(func=_run_verify)

    p = sub.add_parser("ship", formatter_class=HELP,
                       help="export a checkpoint into the package's shipped models",
                       description="Write runtime/models/NAME/ (graphs, manifest, weights-only "
                       "checkpoint.pt) and regenerate the model card runtime/models/README.md.")
    p.add_argument("checkpoint", help="a training checkpoint (e.g. runs/vae-conv/last.pt)")
    p.set_defaults(func=_run_ship)

    from .quantize import CALIBRATION_DIGITS

    p = sub.add_parser("quantize", formatter_class=HELP,
                       help="write an int8 variant of an exported AE/VAE or DDPM (opt-in)",
                       description="Copy MODEL into DIR with its encoder (AE/VAE) or U-Net "
                       "(DDPM) quantized to int8 (static QDQ, per-channel weights, uint8 "
                       "activations, calibrated on real training digits; the U-Net's 28x28 "
                       "convolutions stay fp32). The manifest records the recipe and the "
                       "accuracy against the source (classifier scores included); load(DIR) "
                       "runs it as one single-threaded call per core. Check it with `latentforge "
                       "verify DIR CHECKPOINT` (quantized graphs get their own tolerance).")
    p.add_argument("model", help="shipped model name or exported directory (ae, vae, ddpm)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--out", metavar="DIR", help="output directory")
    where.add_argument("--ship", action="store_true",
                       help="write runtime/models/NAME-int8 and regenerate the model card")
    p.add_argument("--data-dir", default=None,
                   help="MNIST IDX directory (default: $LATENTFORGE_DATA, else the test "
                   "fixture of a source checkout)")
    p.add_argument("--calibration", type=int, default=CALIBRATION_DIGITS,
                   help="training digits to calibrate on")
    p.add_argument("--test-digits", type=int, default=2048,
                   help="test digits to measure an encoder's accuracy on (a DDPM: up to "
                   "1,000 samples scored)")
    p.set_defaults(func=_run_quantize)


def _run_export(args) -> int:
    from .onnx_export import export_checkpoint

    print(f"exporting {args.checkpoint} -> {args.out}")
    try:
        manifest = export_checkpoint(args.checkpoint, args.out, opset=args.opset, log=print)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {manifest['name']} ({manifest['kind']}, "
          f"{manifest['parameters']:,} parameters), graphs {', '.join(manifest['graphs'])}")
    return 0


def _run_verify(args) -> int:
    from .parity import verify

    try:
        report = verify(args.directory, args.checkpoint, batch_sizes=args.batch_sizes,
                        atol=args.atol, rtol=args.rtol, data_dir=args.data_dir, seed=args.seed)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.table())
    return 0 if report.ok else 1


def _run_quantize(args) -> int:
    from latentforge.runtime.checks import check_int

    from .quantize import quantize_model

    check_int(args.calibration, "--calibration", low=1)
    check_int(args.test_digits, "--test-digits", low=2)
    from .ship import MODELS_DIR, write_model_card

    out = args.out
    if args.ship:
        from latentforge.runtime.api import read_manifest, resolve

        out = MODELS_DIR / f"{read_manifest(resolve(args.model))['name']}-int8"
    m = quantize_model(args.model, out, data_dir=args.data_dir,
                       calibration=args.calibration, test_digits=args.test_digits)
    if args.ship:
        write_model_card()
    a = m["quantization"]["accuracy"]
    what = ", ".join(m["quantization"]["graphs"])
    if "sampler" in a:  # a DDPM: both models' digits by the default sampler, same seed
        print(f"wrote {out}: {m['name']} ({what} int8). Classifier on {a['samples']} digits "
              f"by {a['sampler']} (seed {a['seed']}): FD {a['fd_int8']:.2f} vs "
              f"{a['fd_fp32']:.2f}, confident {a['confident_int8']:.1%} vs "
              f"{a['confident_fp32']:.1%}")
        return 0
    print(f"wrote {out}: {m['name']} ({what} int8). On "
          f"{a['test_digits']} test digits: |code int8 - fp32| mean {a['mean_abs_diff']:.4f}, "
          f"max {a['max_abs_diff']:.4f} (code std {a['code_std']:.3f}); reconstruction MSE "
          f"{a['recon_mse_int8']:.5f} vs {a['recon_mse_fp32']:.5f}; 1-NN digit accuracy "
          f"{a['nn_accuracy_int8']:.2%} vs {a['nn_accuracy_fp32']:.2%}; classifier on "
          f"{a['recon_scored']} reconstructions: FD {a['recon_fd_int8']:.2f} vs "
          f"{a['recon_fd_fp32']:.2f}, right digit {a['recon_digit_accuracy_int8']:.2%} vs "
          f"{a['recon_digit_accuracy_fp32']:.2%}")
    return 0


def _run_ship(args) -> int:
    from .ship import ship

    ship(args.checkpoint)
    return 0
