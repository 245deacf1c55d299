"""`sample_dataset`: N digits from a DDPM (or a VAE's prior), split into chunks across Ray
actors, bitwise identical to ``load(MODEL).sample(N, seed=…)`` in one process.

Chunk c covers digits [start, start + count) and runs the C++ loop with
``sample_offset=start``: every noise draw is a pure function of (seed, step, element), so the
digits do not depend on which actor draws which chunk, how many actors there are, or the
chunk size. The driver writes them in index order: Parquet rows (index, png, image) or one
(N, 1, 28, 28) float32 .npy written through a memory map.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import check_int
from .cluster import actor_threads, configure, import_ray, model_files, open_model, \
    plan_workers, ray_session

FORMATS = ("parquet", "npy")


@dataclass
class SampleResult:
    out: Path
    n: int
    seed: int
    chunks: int
    workers: int
    seconds: float = 0.0


def png_bytes(image: np.ndarray) -> bytes:
    """(1, 28, 28) in [0, 1] → an 8-bit grayscale PNG, rounded as the grids round."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(image[0], 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


class Sampler:
    """The map_batches callable: one model per actor, one chunk per call."""

    def __init__(self, files: dict, threads: int, options: dict, png: bool):
        self.model = open_model(files, actor_threads(threads))
        self.options, self.png = options, png

    def __call__(self, batch: dict) -> dict:
        starts, counts = batch["start"], batch["count"]
        images = np.concatenate([
            np.concatenate(list(self.model.iter_samples(
                int(c), offset=int(s), batch_size=int(c), **self.options)))
            for s, c in zip(starts, counts)])
        index = np.concatenate([np.arange(s, s + c, dtype=np.int64)
                                for s, c in zip(starts, counts)])
        rows = {"index": index, "image": images}
        if self.png:
            rows["png"] = np.array([png_bytes(x) for x in images], dtype=object)
        return rows


def _options(manifest: dict, method, steps, eta, seed: int) -> dict:
    if manifest["kind"] == "vae":
        given = [f for f, v in (("method", method), ("steps", steps), ("eta", eta))
                 if v is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} apply to DDPMs only; "
                             f"{manifest['name']} is a vae (it decodes prior draws in one step)")
        return dict(seed=seed)
    if manifest["kind"] != "ddpm":
        raise ValueError(f"{manifest['name']} is a {manifest['kind']}: only DDPMs and VAEs "
                         f"sample")
    return dict(seed=seed, method=method, steps=steps, eta=eta, progress=False)


def sample_dataset(model, n: int, out, method: str | None = None, steps: int | None = None,
                   eta: float | None = None, seed: int | None = None,
                   workers: int | None = None, chunk_size: int = 64,
                   threads_per_worker: int = 1, address: str | None = None,
                   progress: bool = True) -> SampleResult:
    """``n`` digits of ``model`` (a DDPM: ``method``/``steps``/``eta`` as in DDPM.sample; a
    VAE: prior draws) into ``out``: ``.parquet`` (index int64, png binary, image
    list<float32> of 784, seed and sampler in the file's metadata) or ``.npy`` (n, 1, 28, 28).
    Chunks of ``chunk_size`` digits go to ``workers`` actors of ``threads_per_worker`` CPUs;
    the result is the same bits for any workers and chunk_size (and as ``sample``)."""
    from ..model import _seed

    import_ray("sample-dataset")
    n = check_int(n, "n", low=1)
    chunk_size = check_int(chunk_size, "chunk_size", low=1, high=1 << 20)
    workers = check_int(workers, "workers", low=1, high=100_000, optional=True)
    threads = check_int(threads_per_worker, "threads_per_worker", low=1, high=1024)
    out = Path(out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"output {out}: unsupported extension {out.suffix or '(none)'}; "
                         f"valid: {', '.join('.' + f for f in FORMATS)}")
    seed = _seed(seed)
    manifest, files = model_files(model)
    options = _options(manifest, method, steps, eta, seed)
    if manifest["kind"] == "ddpm":  # check method/steps/eta here, not in every actor
        from ..api import load

        load(model).iter_samples(1, **options)
    chunks = [{"start": s, "count": min(chunk_size, n - s)} for s in range(0, n, chunk_size)]
    start_time = time.perf_counter()
    with ray_session(address) as ray:
        wanted = None if workers is None else min(workers, len(chunks))
        workers, cpus = plan_workers(ray, wanted, threads)
        workers = min(workers, len(chunks))  # an actor without a chunk would only wait
        ds = configure(ray.data.from_items(chunks, override_num_blocks=len(chunks)))
        ds = ds.map_batches(Sampler, batch_size=1, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=workers),
                            num_cpus=cpus, fn_constructor_kwargs=dict(
                                files=files, threads=threads, options=options,
                                png=fmt == "parquet"))
        meta = dict(model=manifest["name"], seed=seed, n=n, chunk_size=chunk_size,
                    **{k: v for k, v in options.items() if k not in ("seed", "progress")})
        graph = "unet" if manifest["kind"] == "ddpm" else "decoder"
        meta["model_sha256"] = manifest["graphs"][graph]["sha256"]
        from .writers import write_samples

        write_samples(ds, out, fmt, n, json.dumps(meta), progress)
    return SampleResult(out, n, seed, len(chunks), workers, time.perf_counter() - start_time)
