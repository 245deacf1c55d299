"""Cut the test fixture in tests/data/ from the official MNIST test set.

    python tests/make_fixture.py ../shared/data/mnist

Writes 1,500 + 500 images (test images 0-1499 and 1500-1999) in the four-file IDX layout.
"""
import gzip
import struct
import sys
from pathlib import Path

import numpy as np

from latentforge.train.data import MAGIC_IMAGES, MAGIC_LABELS, load_mnist


def write_idx(path: Path, arr: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # mtime=0: byte-identical reruns
        f.write(header + arr.astype(np.uint8).tobytes())


def main(src: str, dst: str = str(Path(__file__).parent / "data")) -> None:
    m = load_mnist(src)
    out = Path(dst)
    out.mkdir(exist_ok=True)
    for prefix, sl in (("train", slice(0, 1500)), ("t10k", slice(1500, 2000))):
        write_idx(out / f"{prefix}-images-idx3-ubyte.gz", m.test_images[sl], MAGIC_IMAGES)
        write_idx(out / f"{prefix}-labels-idx1-ubyte.gz", m.test_labels[sl], MAGIC_LABELS)


if __name__ == "__main__":
    main(*sys.argv[1:])
