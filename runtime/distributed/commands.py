"""`latentforge embed-dataset | sample-dataset`: argparse only at import; ray is imported when
one of them runs (and its absence is exit 2 with the extra to install)."""
from __future__ import annotations

import sys

from ..helpformat import HelpFormatter
from ..sampling import DEFAULT_ETA, DEFAULT_METHOD, DEFAULT_STEPS, METHODS, SOLVER_STEPS

EXIT_USAGE = 2
CLUSTER_HELP = ("join this Ray cluster (HEAD:6379, or auto on one of its nodes; default "
                "$RAY_ADDRESS, else a local Ray on this machine's cores)")


def _ray_options(p, what: str) -> None:
    p.add_argument("--workers", type=int, default=None,
                   help=f"actors {what} (default: as many as the cluster's CPUs hold)")
    p.add_argument("--threads-per-worker", type=int, default=1,
                   help="CPUs of each actor = its onnxruntime intra-op threads")
    p.add_argument("--address", default=None, help=CLUSTER_HELP)


def register(sub) -> None:
    p = sub.add_parser("embed-dataset", formatter_class=HelpFormatter,
                       help="embed an image corpus on Ray Data (VAE: μ; AE: z)",
                       description="Embed every image of INPUT with MODEL on Ray Data actors; "
                       "the rows equal load(MODEL).embed in one process, in input order. Bad "
                       "rows are listed in OUT.errors.jsonl and counted, never dropped "
                       "silently. Needs the scale extra: pip install \"latentforge[scale]\".")
    p.add_argument("model", help="VAE or autoencoder: shipped name or exported directory")
    p.add_argument("input", help="a directory of image files (recursive; paths sorted), an "
                   "IDX image file, a .npy (N, 28, 28) or a Parquet file/directory")
    p.add_argument("-o", "--out", default=None,
                   help="embeddings file, .parquet (path or id, embedding, model, "
                   "model_sha256) or .npy (row keys in OUT.ids.json) (default: "
                   "embeddings.parquet; a trailing / means a directory)")
    p.add_argument("--format", choices=("parquet", "npy"), default=None,
                   help="must match -o's extension (default: from -o)")
    p.add_argument("--batch-size", type=int, default=256, help="rows per encoder call")
    _ray_options(p, "embedding in parallel")
    p.add_argument("--logvar", action="store_true", help="VAEs: also write log σ²")
    p.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                   help="a row that is not a readable 28x28 image: skip it (listed in "
                   "OUT.errors.jsonl) or stop with exit 2, writing nothing")
    p.add_argument("--column", default="image",
                   help="Parquet input: the image column (encoded image bytes or 784 "
                   "numbers); an 'id' or 'path' column is carried into the output")
    p.set_defaults(func=cmd_embed_dataset)

    p = sub.add_parser("sample-dataset", formatter_class=HelpFormatter,
                       help="N digits across Ray actors, identical to `sample` in one process",
                       description="Draw N digits from a DDPM (or a VAE's prior) in chunks on "
                       "Ray actors; the same seed gives the same bits for any number of "
                       "workers and chunk size, and as DDPM.sample in one process. Needs the "
                       "scale extra: pip install \"latentforge[scale]\".")
    p.add_argument("model", help="DDPM or VAE: shipped name or exported directory")
    p.add_argument("-n", type=int, required=True, help="number of digits")
    p.add_argument("-o", "--out", default="samples.parquet",
                   help="digits file: .parquet (index, png, image) or .npy (N, 1, 28, 28); "
                   "a trailing / means a directory")
    p.add_argument("--method", choices=METHODS, default=None,
                   help=f"DDPM reverse process (default: {DEFAULT_METHOD} with "
                   f"{DEFAULT_STEPS} steps and η = {DEFAULT_ETA:g}, as `sample`)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"steps of ddim (default: all T), dpmpp-2m and sde-dpmpp-2m "
                   f"(default: {SOLVER_STEPS})")
    p.add_argument("--eta", type=float, default=None, help="DDIM η (default: 0 with --method)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: random, printed)")
    p.add_argument("--chunk-size", type=int, default=64,
                   help="digits per actor call (the result does not depend on it)")
    _ray_options(p, "sampling in parallel")
    p.set_defaults(func=cmd_sample_dataset)


def _refuse_missing_ray(args, run) -> int:
    from .cluster import RayMissing

    try:
        return run()
    except RayMissing as e:
        print(f"latentforge {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE


def cmd_embed_dataset(args) -> int:
    from ..outputs import output_path
    from .embed import embed_dataset

    default = f"embeddings.{args.format or 'parquet'}"
    valid = (f".{args.format}",) if args.format else (".parquet", ".npy")
    out = output_path(args.out or default, valid, default)

    def run() -> int:
        r = embed_dataset(args.model, args.input, out, batch_size=args.batch_size,
                          workers=args.workers, threads_per_worker=args.threads_per_worker,
                          fmt=args.format, logvar=args.logvar, on_error=args.on_error,
                          column=args.column, address=args.address)
        total = r.rows + r.skipped
        print(f"wrote {r.out}: {r.rows:,} of {total:,} rows embedded by {r.workers} workers "
              f"in {r.seconds:.1f} s ({total / max(r.seconds, 1e-9):,.0f} rows/s)")
        if r.skipped:
            print(f"warning: skipped {r.skipped:,} rows that are not readable 28x28 images, "
                  f"all listed in {r.errors_path}:", file=sys.stderr)
            for key, why in r.errors:
                print(f"  {why}" if why.startswith(key) else f"  {key}: {why}",
                      file=sys.stderr)
            if r.skipped > len(r.errors):
                print(f"  … and {r.skipped - len(r.errors):,} more", file=sys.stderr)
        return 0

    return _refuse_missing_ray(args, run)


def cmd_sample_dataset(args) -> int:
    from ..checks import check_int
    from ..model import _seed
    from ..outputs import output_path
    from .sample import sample_dataset

    out = output_path(args.out, (".parquet", ".npy"), "samples.parquet")
    check_int(args.n, "n", low=1)  # before the seed line, like the seed itself
    seed = _seed(args.seed)

    def run() -> int:
        from .cluster import import_ray

        import_ray("sample-dataset")  # before the seed line: a missing extra fails first
        print(f"seed {seed}", flush=True)
        r = sample_dataset(args.model, args.n, out, method=args.method, steps=args.steps,
                           eta=args.eta, seed=seed, workers=args.workers,
                           chunk_size=args.chunk_size,
                           threads_per_worker=args.threads_per_worker, address=args.address)
        print(f"wrote {r.out}: {r.n:,} digits in {r.chunks:,} chunks on {r.workers} workers "
              f"in {r.seconds:.1f} s")
        return 0

    return _refuse_missing_ray(args, run)

