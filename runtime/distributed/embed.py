"""`embed_dataset`: a corpus of images → embeddings, on Ray Data actors.

Each actor loads the model once (its own onnxruntime session, intra-op threads = its CPUs,
spinning off) and embeds batch after batch; the driver receives the rows in input order and
writes them to one Parquet file (or .npy) atomically. Bad rows come back with an error
message: ``on_error="skip"`` lists them in ``OUT.errors.jsonl`` and counts them in the
result, ``"fail"`` stops at the first and writes nothing.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checks import check_int
from .cluster import actor_threads, configure, import_ray, model_files, open_model, \
    plan_workers, ray_session
from .sources import decode_batch, find_source, plan_blocks, to_dataset

FORMATS = ("parquet", "npy")


@dataclass
class EmbedResult:
    out: Path
    rows: int  # embedded rows written
    skipped: int  # bad rows, listed in errors_path
    errors_path: Path
    errors: list[tuple[str, str]] = field(default_factory=list)  # the first few (key, why)
    seconds: float = 0.0
    workers: int = 0


class Embedder:
    """The map_batches callable: constructed once per actor, so is the model."""

    def __init__(self, files: dict, threads: int, payload: str, key_column: str | None,
                 root: str | None, logvar: bool, batch_size: int):
        self.model = open_model(files, actor_threads(threads))
        self.payload, self.key_column, self.root = payload, key_column, root
        self.logvar, self.batch_size = logvar, batch_size

    def _names(self, batch) -> list[str]:
        if self.root is None:
            return ["row"] * len(batch[self.payload])
        return [Path(os.path.relpath(p, self.root)).as_posix() for p in batch["path"]]

    def __call__(self, batch: dict) -> dict:
        names = self._names(batch)
        images, errors = decode_batch(batch[self.payload], names)
        good = np.array([not e for e in errors], dtype=bool)
        k = self.model.latent_dim
        emb = np.full((len(errors), k), np.nan, dtype=np.float32)
        logvar = np.full_like(emb, np.nan)
        if good.any():
            out = self.model.encode(images[good], self.batch_size)
            if self.model.kind == "vae":
                emb[good], logvar[good] = out
            else:
                emb[good] = out
        rows = {"embedding": emb, "error": np.array(errors, dtype=object)}
        if self.logvar:
            rows["logvar"] = logvar
        if self.root is not None:
            rows["path"] = np.array(names, dtype=object)
        elif self.key_column is not None:  # a Parquet input's own id or path column
            rows[self.key_column] = batch[self.key_column]
        return rows


def embed_dataset(model, input_path, out, batch_size: int = 256, workers: int | None = None,
                  threads_per_worker: int = 1, fmt: str | None = None, logvar: bool = False,
                  on_error: str = "skip", column: str = "image", address: str | None = None,
                  progress: bool = True) -> EmbedResult:
    """Embed every image of ``input_path`` (a directory of image files, recursive; an IDX
    file; a .npy (N, 28, 28); a Parquet dataset with an image ``column``) with ``model``
    (VAE: μ, plus log σ² when ``logvar``; AE: z) into ``out``: Parquet rows (path or id,
    embedding list<float32>, [logvar,] model, model_sha256) or a .npy (N, K) with the row
    keys in ``OUT.ids.json``. Rows keep the input's order (paths sorted). ``workers`` actors
    of ``threads_per_worker`` CPUs each (default: as many as the cluster's CPUs hold).
    """
    import_ray("embed-dataset")
    batch_size = check_int(batch_size, "batch_size", low=1, high=1 << 20)
    workers = check_int(workers, "workers", low=1, high=100_000, optional=True)
    threads = check_int(threads_per_worker, "threads_per_worker", low=1, high=1024)
    out = Path(out)
    fmt = fmt or out.suffix.lower().lstrip(".")
    if fmt not in FORMATS or out.suffix.lower() != f".{fmt}":
        raise ValueError(f"output {out}: the format ({fmt}) and the extension must agree, "
                         f"one of {', '.join('.' + f for f in FORMATS)}")
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    manifest, files = model_files(model)
    if manifest["kind"] not in ("ae", "vae"):
        raise ValueError(f"{manifest['name']} is a {manifest['kind']}: embed-dataset embeds "
                         f"with a VAE or an autoencoder")
    if logvar and manifest["kind"] != "vae":
        raise ValueError(f"--logvar: {manifest['name']} is an autoencoder, only VAEs have one")
    source = find_source(input_path, column)
    sha = manifest["graphs"]["encoder"]["sha256"]
    start = time.perf_counter()
    with ray_session(address) as ray:
        workers, cpus = plan_workers(ray, workers, threads)
        workers = min(workers, source.rows)  # an actor without rows would only wait
        ds = configure(to_dataset(ray, source, plan_blocks(source.rows, workers)))
        ds = ds.map_batches(
            Embedder, batch_size=batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus,
            fn_constructor_kwargs=dict(
                files=files, threads=threads, payload=source.payload,
                key_column=source.key_column,
                root=str(source.path) if source.kind == "images" else None,
                logvar=logvar, batch_size=batch_size))
        from .writers import write_embeddings

        result = write_embeddings(ds, out, fmt, source, manifest["name"], sha, on_error,
                                  progress)
    result.seconds, result.workers = time.perf_counter() - start, workers
    return result


def errors_file(out: Path) -> Path:
    return out.with_name(out.name + ".errors.jsonl")


def write_errors(path: Path, errors: list[tuple[str, str]], key: str) -> None:
    from ..outputs import atomic_output

    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for k, why in errors:
            f.write(json.dumps({key: k, "error": why}) + "\n")
