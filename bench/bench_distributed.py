"""embed-dataset on Ray Data vs the plain single-process embed loop (issue 16). One run, no
asserts: numbers to read on a quiet machine.

    python bench/bench_distributed.py [--n 60000] [--data-dir DIR] [--model vae-conv]
                                      [--workers 1,2] [--json out.json]

Writes the first N MNIST training digits (IDX files from --data-dir, else $LATENTFORGE_DATA,
else ../shared/data/mnist) as N PNG files and as one Parquet file (id, image = PNG bytes) in a
temp dir, then measures images/s, each from the encoded images to embeddings in memory or on
disk (decoding included everywhere):

* plain loop: ``load(MODEL, threads=T).embed(batch)`` over batches of paths (PNG files) or of
  PNG bytes (Parquet), in this process, with T = 1 and T = all cores;
* ``embed_dataset`` on a local Ray with this machine's cores, for each worker count, from the
  PNG folder and from the Parquet file (Ray's start-up is timed once, apart), after a job on
  the first 1,000 digits: the two give the marginal rate and each job's fixed cost (actors
  started, model shipped and loaded, dataset planned).

Prints the core count and an SGEMM rate as the machine's reference, the table, Ray's overhead
on one worker (vs the 1-thread loop) and the per-worker rate, then all results as JSON.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SMALL = 1000  # digits of the small job that measures a job's fixed cost

def write_corpus(images: np.ndarray, root: Path) -> tuple[Path, Path, list[str]]:
    """N PNGs in folders of 1,000 and one Parquet file of the same PNG bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    pngs, paths, blobs = root / "png", [], []
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "PNG")
        blobs.append(buf.getvalue())
        path = pngs / f"{i // 1000:03d}" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blobs[-1])
        paths.append(str(path))
    parquet = root / "digits.parquet"
    pq.write_table(pa.table({"id": np.arange(len(blobs)), "image": blobs}), parquet)
    return pngs, parquet, paths


def plain_loop(model_name: str, corpus, threads: int, batch_size: int) -> float:
    """Seconds for the single-process loop over a list of PNG paths or a Parquet file of PNG
    bytes: load once, (read,) decode and embed batch after batch."""
    import pyarrow.parquet as pq

    from latentforge.runtime import load
    from latentforge.runtime.inputs import image_from_bytes

    start = time.perf_counter()
    model = load(model_name, threads=threads)
    items = pq.read_table(corpus, columns=["image"])["image"].to_pylist() \
        if isinstance(corpus, Path) else corpus
    for i in range(0, len(items), batch_size):
        batch = items[i:i + batch_size]
        if isinstance(batch[0], bytes):
            batch = np.concatenate([image_from_bytes(b) for b in batch])
        model.embed(batch, batch_size)
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=60_000, help="digits (first N training images)")
    p.add_argument("--data-dir", default=os.environ.get("LATENTFORGE_DATA")
                   or "../shared/data/mnist", help="MNIST IDX directory")
    p.add_argument("--model", default="vae-conv", help="VAE or autoencoder")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--batch-size", type=int, default=256, help="images per encoder call")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    cores = os.cpu_count() or 1

    from latentforge.train.bench import sgemm_gflops  # the reference `latentforge bench` uses
    from latentforge.train.data import FILES, _find, read_idx

    images = read_idx(_find(Path(args.data_dir), FILES["train_images"]))[:args.n]
    sgemm = sgemm_gflops()
    print(f"cores: {cores}; SGEMM 1024² (numpy BLAS): {sgemm:.1f} GFLOP/s; "
          f"{len(images):,} digits, model {args.model}", flush=True)
    rows = []

    def record(source: str, how: str, seconds: float, **extra) -> None:
        rows.append(dict(source=source, how=how, seconds=round(seconds, 3),
                         images_per_s=round(len(images) / seconds, 1), **extra))
        print(f"{source:<8} {how:<34} {seconds:8.2f} s {len(images) / seconds:10,.0f} img/s",
              flush=True)

    with tempfile.TemporaryDirectory(prefix="lf-bench-dist-") as tmp:
        t0 = time.perf_counter()
        png_dir, parquet, paths = write_corpus(images, Path(tmp))
        small = min(SMALL, len(images) // 2)  # a second, small job: Ray's fixed cost per job
        small_png, small_parquet, _ = write_corpus(images[:small], Path(tmp) / "small")
        print(f"wrote the corpus in {time.perf_counter() - t0:.1f} s", flush=True)
        for threads in sorted({1, cores}):
            record("png", f"plain loop, {threads} thread(s)",
                   plain_loop(args.model, paths, threads, args.batch_size))
            record("parquet", f"plain loop, {threads} thread(s)",
                   plain_loop(args.model, parquet, threads, args.batch_size))

        import ray

        from latentforge.runtime.distributed import embed_dataset
        from latentforge.runtime.distributed.cluster import ray_session

        t0 = time.perf_counter()
        with ray_session():
            ray_init = time.perf_counter() - t0
            print(f"ray.init (local, {cores} CPUs): {ray_init:.1f} s", flush=True)
            for w in workers:
                for source, path, path_small in (("png", png_dir, small_png),
                                                 ("parquet", parquet, small_parquet)):
                    out = Path(tmp) / f"out-{source}-{w}.parquet"
                    r0 = embed_dataset(args.model, path_small, out, workers=w,
                                       batch_size=args.batch_size, progress=False)
                    r = embed_dataset(args.model, path, out, workers=w,
                                      batch_size=args.batch_size, progress=False)
                    assert r.rows == len(images) and r.skipped == 0, r
                    marginal = (len(images) - small) / (r.seconds - r0.seconds)
                    record(source, f"embed_dataset, {w} worker(s) x 1 thread", r.seconds,
                           workers=w, small_job_s=round(r0.seconds, 3), small_n=small,
                           marginal_images_per_s=round(marginal, 1),
                           fixed_s=round(r0.seconds - small / marginal, 2))
        assert not ray.is_initialized()

    def row(source, how):
        return next(r for r in rows if r["source"] == source and r["how"] == how)

    summary = {}
    for source in ("png", "parquet"):
        plain1 = row(source, "plain loop, 1 thread(s)")["images_per_s"]
        ray_rows = {w: row(source, f"embed_dataset, {w} worker(s) x 1 thread") for w in workers}
        per_worker = {w: round(r["marginal_images_per_s"] / w, 1) for w, r in ray_rows.items()}
        summary[source] = dict(
            plain_1_thread=plain1, marginal_per_worker=per_worker,
            fixed_s={w: r["fixed_s"] for w, r in ray_rows.items()})
        print(f"{source}: plain 1-thread loop {plain1:,.0f} img/s; Ray, past its fixed cost "
              f"per job: " + ", ".join(
                  f"{w} worker(s) {per_worker[w] * w:,.0f} img/s ({per_worker[w]:,.0f} per "
                  f"worker, {r['fixed_s']:.1f} s fixed)" for w, r in ray_rows.items()))
    result = dict(cores=cores, sgemm_gflops=round(sgemm, 1), n=len(images),
                  model=args.model, batch_size=args.batch_size, ray_init_s=round(ray_init, 2),
                  ray_version=ray.__version__, rows=rows, summary=summary)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
