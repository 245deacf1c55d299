"""What `embed-dataset` reads: a directory of image files, an IDX file, a .npy array or a
Parquet dataset, as a Ray dataset, and how one batch of its rows becomes images.

Every row comes back from the actors, bad ones with an error message instead of an
embedding, so nothing is ever dropped silently; image files are decoded by the runtime's own
rules (runtime/inputs.py), the same as ``load(MODEL).embed(paths)`` in one process.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IDX_IMAGES = 0x00000803  # unsigned byte, 3 dimensions: an MNIST image file


@dataclass
class Source:
    kind: str  # "images" | "idx" | "npy" | "parquet"
    path: Path
    rows: int
    key: str  # the output's row key: "path" (image files) or "id"
    payload: str  # the dataset column holding the image
    key_column: str | None = None  # the dataset column carrying the key (None: row numbers)
    files: list[str] = field(default_factory=list)  # image files, sorted, absolute


def _listing(root: Path) -> list[str]:
    """Every regular file under ``root`` (recursive, symlinked folders not followed), in
    sorted order of the relative path. All of them: a file that is not an image becomes an
    error record, not a silent omission."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found += [os.path.join(dirpath, f) for f in filenames
                  if os.path.isfile(os.path.join(dirpath, f))]
    return sorted(found, key=lambda p: Path(p).relative_to(root).as_posix())


def _is_idx(path: Path) -> bool:
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            head = f.read(4)
    except (OSError, EOFError):
        return False
    return head == IDX_IMAGES.to_bytes(4, "big")


def _parquet_columns(path: Path, column: str) -> tuple[int, str | None]:
    import pyarrow.parquet as pq

    try:
        dataset = pq.ParquetDataset(path)
        schema = dataset.schema
        rows = sum(f.metadata.num_rows for f in dataset.fragments)
    except Exception as e:  # pyarrow's ArrowInvalid/OSError for a file that is not Parquet
        raise ValueError(f"{path} is not a readable Parquet dataset: {e}") from e
    if column not in schema.names:
        raise ValueError(f"{path} has no column {column!r} (its columns: "
                         f"{', '.join(schema.names)}); name the image column with --column")
    key = next((k for k in ("id", "path") if k in schema.names and k != column), None)
    return rows, key


def find_source(input_path, column: str = "image") -> Source:
    """Classify INPUT, counting its rows; ValueError (exit 2) when it is none of the four."""
    path = Path(input_path)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    if path.is_dir():
        files = _listing(path)
        if not files:
            raise ValueError(f"{path} holds no files")
        if all(f.endswith(".parquet") for f in files):
            rows, key = _parquet_columns(path, column)
            return Source("parquet", path, rows, key or "id", column, key)
        return Source("images", path, len(files), "path", "bytes", "path", files)
    if path.suffix.lower() == ".parquet":
        rows, key = _parquet_columns(path, column)
        return Source("parquet", path, rows, key or "id", column, key)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            raise ValueError(f"{path} is not a readable .npy array: {e}") from e
        if arr.ndim not in (3, 4) or arr.shape[-2:] != (28, 28) or (
                arr.ndim == 4 and arr.shape[1] != 1):
            raise ValueError(f"{path} holds an array of shape {arr.shape}; a corpus .npy must "
                             f"be (N, 28, 28) or (N, 1, 28, 28)")
        return Source("npy", path, len(arr), "id", "data")
    if _is_idx(path):
        from latentforge.train.data import read_idx  # numpy only, no torch

        return Source("idx", path, len(read_idx(path, IDX_IMAGES)), "id", "data")
    raise ValueError(f"cannot read {path}: INPUT must be a directory of image files, an IDX "
                     f"image file, a .npy array (N, 28, 28) or a Parquet dataset")


def plan_blocks(rows: int, workers: int, rows_per_block: int = 2048) -> int:
    """Blocks to cut the input into: Ray Data hands an actor whole blocks, so at least two
    per worker (an input read as one block would keep all but one actor idle), and about
    ``rows_per_block`` rows each for big inputs; never more blocks than rows."""
    return max(1, min(rows, max(2 * workers, -(-rows // rows_per_block))))


def to_dataset(ray, source: Source, blocks: int, read_cpus: float = 0):
    """The Ray dataset of the source's rows, in input order, in ``blocks`` blocks. Read tasks
    ask for no CPU: they only move bytes (decoding is the actors' job), and when the actors
    hold every CPU Ray Data's budget would hold back any read that asks for some, forever."""
    read = dict(num_cpus=read_cpus, override_num_blocks=blocks)
    if source.kind == "images":
        return ray.data.read_binary_files(source.files, include_paths=True, **read)
    if source.kind == "parquet":
        columns = [source.payload] + ([source.key_column] if source.key_column else [])
        ds = ray.data.read_parquet(str(source.path), **read).select_columns(columns)
        # read before the actors start: Ray lists Parquet files in a task that asks for a
        # whole CPU, which would wait forever behind actors holding every CPU
        return ds.repartition(blocks).materialize()
    # one array file: the driver reads it (memory-mapped for .npy) into the object store;
    # read_numpy would read it as one block and cannot be asked for zero CPUs
    if source.kind == "npy":
        array = np.load(source.path, mmap_mode="r", allow_pickle=False)
    else:
        from latentforge.train.data import read_idx

        array = read_idx(source.path, IDX_IMAGES)
    return ray.data.from_numpy([np.ascontiguousarray(part)
                                for part in np.array_split(array, blocks)])


def decode_batch(column: np.ndarray, names) -> tuple[np.ndarray, list[str]]:
    """One batch's image column → (float32 (n, 1, 28, 28) with zeros in bad rows, one error
    message per row, "" where the row is good). ``names[i]`` names row i in messages."""
    from ..inputs import as_images, image_from_bytes

    n = len(column)
    if column.dtype != object:  # numeric images: one check for the whole batch when clean
        try:
            return as_images(column), [""] * n
        except (TypeError, ValueError):
            pass
    images = np.zeros((n, 1, 28, 28), dtype=np.float32)
    errors = [""] * n
    for i, value in enumerate(column):
        try:
            if isinstance(value, (bytes, bytearray, memoryview)):
                images[i] = image_from_bytes(bytes(value), names[i])[0]
            else:
                arr = np.asarray(value)
                images[i] = as_images(arr.reshape(28, 28) if arr.size == 784 else arr)[0]
        except (TypeError, ValueError) as e:
            errors[i] = str(e)
    return images, errors
