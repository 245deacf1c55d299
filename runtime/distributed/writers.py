"""The driver's side of the jobs: rows arrive from the actors in input order and go into one
output file, written atomically (runtime/outputs.py), with a progress bar on stderr."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..outputs import atomic_output
from ..progress import Progress

SHOWN_ERRORS = 5  # bad rows named in the result (all of them are in the errors file)


def list_array(values: np.ndarray):
    """(n, k) float32 → Arrow list<float32> (one list of k per row), without a Python loop."""
    import pyarrow as pa

    n, k = values.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), type=pa.float32()))


def _keys(batch: dict, source, counter: int) -> tuple[list, int]:
    n = len(batch["error"])
    if source.key in batch:
        return list(batch[source.key]), counter + n
    return list(range(counter, counter + n)), counter + n


def write_embeddings(ds, out: Path, fmt: str, source, name: str, sha: str, on_error: str,
                     progress: bool):
    """Stream the embedded dataset into ``out``; returns an EmbedResult (seconds unset)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .embed import EmbedResult, errors_file, write_errors

    errors: list[tuple[str, str]] = []
    kept_keys, kept_arrays, rows, counter, writer = [], [], 0, 0, None
    with atomic_output(out) as tmp, Progress(source.rows, f"embedding {source.path.name}",
                                             enabled=progress) as bar:
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                keys, counter = _keys(batch, source, counter)
                bad = [i for i, e in enumerate(batch["error"]) if e]
                if bad and on_error == "fail":
                    i = bad[0]
                    raise ValueError(f"{source.key} {keys[i]}: {batch['error'][i]} (nothing "
                                     f"written; --on-error skip embeds the rest and lists "
                                     f"the bad rows)")
                errors += [(str(keys[i]), str(batch["error"][i])) for i in bad]
                good = np.array([not e for e in batch["error"]], dtype=bool)
                keys = [k for k, g in zip(keys, good) if g]
                rows += len(keys)
                bar.update(len(good))
                if not keys:
                    continue
                emb = np.asarray(batch["embedding"], dtype=np.float32)[good]
                if fmt == "npy":
                    kept_keys += [k.item() if hasattr(k, "item") else k for k in keys]
                    kept_arrays.append(emb)
                    continue
                columns = {source.key: pa.array(keys), "embedding": list_array(emb)}
                if "logvar" in batch:
                    columns["logvar"] = list_array(
                        np.asarray(batch["logvar"], dtype=np.float32)[good])
                columns["model"] = pa.array([name] * len(keys), type=pa.string())
                columns["model_sha256"] = pa.array([sha] * len(keys), type=pa.string())
                table = pa.table(columns)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
        if fmt == "npy":
            dim = kept_arrays[0].shape[1] if kept_arrays else 0
            np.save(tmp, np.concatenate(kept_arrays) if kept_arrays
                    else np.zeros((0, dim), np.float32))
            _write_json(out.with_name(out.name + ".ids.json"), kept_keys)
        elif writer is None:  # every row was bad: an empty file with the columns
            pq.write_table(pa.table({source.key: pa.array([], pa.string()),
                                     "embedding": pa.array([], pa.list_(pa.float32()))}), tmp)
    write_errors(errors_file(out), errors, source.key)
    return EmbedResult(out, rows, len(errors), errors_file(out), errors[:SHOWN_ERRORS])


def _write_json(path: Path, value) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(value), encoding="utf-8")


def write_samples(ds, out: Path, fmt: str, n: int, meta: str, progress: bool) -> None:
    """Digits in index order into ``out``: Parquet (index, png, image list<float32>) with
    ``meta`` (JSON: model, seed, sampler) in the file's metadata, or an (n, 1, 28, 28) .npy
    written through a memory map (any n in bounded memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from numpy.lib.format import open_memmap

    done, writer, arr = 0, None, None
    with atomic_output(out) as tmp, Progress(n, f"sampling {n:,} digits",
                                             enabled=progress) as bar:
        try:
            if fmt == "npy":
                arr = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, 1, 28, 28))
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                index, images = batch["index"], np.asarray(batch["image"], dtype=np.float32)
                if arr is not None:
                    arr[index] = images
                else:
                    table = pa.table({"index": pa.array(index, pa.int64()),
                                      "png": pa.array(list(batch["png"]), pa.binary()),
                                      "image": list_array(images.reshape(len(images), -1))})
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema.with_metadata(
                            {"latentforge": meta}))
                    writer.write_table(table.cast(writer.schema))
                done += len(index)
                bar.update(len(index))
            if done != n:
                raise RuntimeError(f"the actors returned {done:,} digits of {n:,}")
        finally:
            if writer is not None:
                writer.close()
            if arr is not None:
                arr.flush()
                del arr
