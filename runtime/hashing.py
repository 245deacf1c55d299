"""sha256 of a file, streamed in 1 MiB chunks: the one hash function the manifest checks
(runtime), the export's checkpoint record and `latentforge verify` all use."""
from __future__ import annotations

from hashlib import sha256


def sha256_file(path) -> str:
    h = sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
