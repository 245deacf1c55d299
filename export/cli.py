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


def _run_ship(args) -> int:
    from .ship import ship

    ship(args.checkpoint)
    return 0
