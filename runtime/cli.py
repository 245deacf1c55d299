"""The `latentforge` command. Subcommands register themselves; torch is imported only by the
training and export subcommands, when they run."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentforge",
        description="Small generative models for 28x28 digits: train, export, sample.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # argparse set-up only: none of these imports torch or onnx until a command runs
    from latentforge.train import cli as train_cli
    train_cli.register(sub)
    from latentforge.export import cli as export_cli
    export_cli.register(sub)
    from latentforge.runtime import commands
    commands.register(sub)
    from latentforge.runtime import quality
    quality.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from latentforge.runtime import __version__
        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:  # bad input: one clear line, no traceback
        print(f"latentforge {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
