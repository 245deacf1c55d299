"""The `latentforge` command. Subcommands register themselves; torch is imported only by the
training and export subcommands, when they run."""
from __future__ import annotations

import argparse
import sys

from latentforge.runtime.helpformat import HelpFormatter

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130  # usage/input errors; interrupted (128 + SIGINT)
# the [train] extra's top-level modules: missing one means a runtime-only install
TRAIN_EXTRA = {"torch", "torchvision", "onnx", "onnxscript", "matplotlib", "sklearn"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentforge",
        description="Small generative models for 28x28 digits: train, export, sample.",
        formatter_class=HelpFormatter)
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
    from latentforge.runtime.distributed import commands as distributed_cli
    distributed_cli.register(sub)  # imports ray only when its commands run
    from latentforge.runtime import scoring
    scoring.register(sub)
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
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C / SIGINT: outputs are atomic, nothing partial is left
        print(f"latentforge {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ModuleNotFoundError as e:
        if e.name not in TRAIN_EXTRA:
            raise
        print(f"latentforge {args.command}: error: this command needs {e.name}, which the "
              f"runtime-only install lacks; install it with: pip install \"latentforge[train]\"",
              file=sys.stderr)
        return EXIT_USAGE
    except FloatingPointError as e:  # a model producing NaN/inf: not the user's input
        print(f"latentforge {args.command}: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError) as e:  # bad input: one clear line, no traceback
        print(f"latentforge {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
