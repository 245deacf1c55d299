"""Replace a directory all at once: fill a staging directory beside it, then swap.

The new files are written into ``.NAME.new-PID-XXXX`` next to the target; only when every file is
complete (and fsynced) is the old directory renamed aside, the new one renamed into place, and
the old one removed. A failure or crash before the swap leaves the old directory untouched (and
the staging directory is removed on failure); readers never see a mix of old and new files.
Staging folders of an export that was killed (its PID gone) are removed by the next export.
"""
from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

MARKER = "manifest.json"  # what makes an existing directory safe to replace


def check_replaceable(out_dir: Path) -> None:
    """Refuse to overwrite anything that is not a previous export (or an empty directory)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise FileExistsError(f"refusing to replace {out_dir}: it is not empty and has no "
                              f"{MARKER}, so it is not an exported model directory")


def write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened; rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _swap(new: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(new, out_dir)
    else:
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(out_dir, old)
        try:
            os.rename(new, out_dir)
        except BaseException:
            os.rename(old, out_dir)  # put the previous export back
            raise
        if old.is_symlink():  # DIR was a link to a directory: drop the link only
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(out_dir.parent)


def _fresh_dir(parent: Path, prefix: str) -> Path:
    """Like tempfile.mkdtemp, but with the umask's permissions (mkdtemp's are 0700, which the
    renamed export directory would keep)."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process, or no way to tell
        return True
    return True


def clean_stale(out_dir: Path) -> list[Path]:
    """Remove ``.NAME.new-PID-*`` / ``.NAME.old-PID-*`` folders beside ``out_dir`` left by an
    export whose process is gone (killed mid-write); those of live processes are kept."""
    removed = []
    for kind in ("new", "old"):
        for path in out_dir.parent.glob(f".{out_dir.name}.{kind}-*"):
            pid = path.name[len(f".{out_dir.name}.{kind}-"):].split("-")[0]
            if pid.isdigit() and not _alive(int(pid)) and path.is_dir() \
                    and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


@contextmanager
def staged_directory(out_dir):
    """``with staged_directory(DIR) as tmp:`` write files into ``tmp``; on a clean exit they
    replace DIR in one swap, on an exception DIR is left as it was and ``tmp`` is removed."""
    out_dir = Path(out_dir).absolute()
    check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out_dir)
    tmp = _fresh_dir(out_dir.parent, f".{out_dir.name}.new-{os.getpid()}-")
    try:
        yield tmp
        _fsync_dir(tmp)
        check_replaceable(out_dir)  # again: something may have appeared while we worked
        _swap(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
