"""One rule for the files the CLI writes.

* The extension chooses the format; any other is refused with the list of valid ones.
* A trailing ``/`` (or an existing directory) means a directory: the default name goes in it.
* Only regular files are replaced: a symlink, a directory or a device at the target is
  refused, and so is a path whose parent is a file.
* Writes are atomic: a fresh, uniquely named temp file beside the target, renamed over it at
  the end (two runs writing one path both succeed; the last one wins whole). On any error or
  interrupt the temp file is removed, so no partial output is ever left.
"""
from __future__ import annotations

import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_replaceable(path: Path) -> None:
    """ValueError unless ``path`` is absent or a regular file (a symlink is not followed)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise ValueError(f"refusing to replace {path}: it is {_kind(mode)}; only regular "
                         f"files are overwritten")


def output_path(path, valid: tuple[str, ...], default_name: str, option: str = "-o") -> Path:
    """The file to write for ``option PATH``: checked as the module docstring says."""
    text = os.fspath(path)
    if not text:
        raise ValueError(f"{option}: empty path")
    p = Path(text)
    if text.endswith(("/", os.sep)) or p.is_dir():
        p = p / default_name
    ext = p.suffix.lower()
    if ext not in valid:
        raise ValueError(f"{option} {text}: unsupported extension {ext or '(none)'}; "
                         f"valid: {', '.join(valid)}")
    for parent in p.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise ValueError(f"{option} {text}: {parent} is a file, not a directory")
            break
    check_replaceable(p)
    return p


def _fresh_file(target: Path) -> Path:
    """A new empty file beside ``target`` with the umask's permissions (mkstemp's are 0600)."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp{target.suffix}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_output(path):
    """``with atomic_output(p) as tmp:`` write ``tmp`` (same extension as p); on a clean exit
    it replaces p in one rename, on any exception (Ctrl-C included) it is removed."""
    path = Path(path)
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_file(path)
    try:
        yield tmp
        check_replaceable(path)  # again: something may have appeared while we worked
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
