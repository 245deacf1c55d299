"""Ray for the corpus-scale jobs: the one place `ray` is imported, the local-or-cluster
connection, and the model shipped to every actor through Ray's object store.

Nothing here imports ray at module level: `latentforge.runtime` works without the extra.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

SCALE_EXTRA = 'pip install "latentforge[scale]"'


class RayMissing(ImportError):
    """Ray Data is not installed (a runtime-only install); the message says how to add it."""


def import_ray(what: str = "this command"):
    """``ray`` with ``ray.data`` loaded, or RayMissing naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise RayMissing(f"{what} needs Ray Data, which this install lacks; install it "
                         f"with: {SCALE_EXTRA}") from e
    return ray


@contextmanager
def ray_session(address: str | None = None):
    """Ray, connected for the duration of the ``with``: an already-initialized Ray is used as
    is (and left running); else ``address`` or $RAY_ADDRESS names an existing cluster to
    join; else a local instance on this machine's cores (no dashboard, warnings and errors
    only), shut down on exit."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
        # Ray's C++ core logs at ERROR that Ray Data's actors keep their constructor
        # arguments in the object store (every map_batches class does); failures that matter
        # reach us as Python exceptions. A level the user set wins.
        saved = os.environ.get("RAY_BACKEND_LOG_LEVEL")
        os.environ["RAY_BACKEND_LOG_LEVEL"] = saved or "fatal"
        try:
            if address:
                _check_reachable(address)
                try:
                    ray.init(address=address, **quiet)
                except ConnectionError as e:  # a wrong --address / RAY_ADDRESS: exit 2
                    raise ValueError(f"cannot join the Ray cluster at {address}: {e}") from e
            else:
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
        finally:
            if saved is None:
                del os.environ["RAY_BACKEND_LOG_LEVEL"]
        started = True
        for name in ("ray", "ray.data"):  # Ray Data logs every execution at INFO
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """A HOST:PORT address where nothing listens fails now, with a clear message (Ray itself
    retries for minutes); "auto" and ray:// addresses are left to Ray."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ValueError(f"cannot join the Ray cluster at {address}: nothing answers there "
                         f"({e}); check --address / RAY_ADDRESS") from e


def configure(ds):
    """Our settings on one dataset's own context (the caller's global context is left alone):
    blocks keep their order (rows come back in input order), Ray's bars and execution banners
    are off (the driver draws one progress bar of its own)."""
    ctx = ds.context
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return ds


def cluster_cpus(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def plan_workers(ray, workers: int | None, threads: int) -> tuple[int, float]:
    """(actors, CPUs each): ``workers`` actors, else as many as the cluster's CPUs hold at
    ``threads`` each. More actors than the CPUs hold share them (each asks for its share),
    so they all start instead of some waiting for a CPU that never frees."""
    cpus = cluster_cpus(ray)
    if workers is None:
        return max(1, cpus // threads), float(min(threads, cpus))
    return workers, min(float(threads), cpus / workers)


# ---------------------------------------------------------------- the model, shipped
def model_files(name_or_dir) -> tuple[dict, dict[str, bytes]]:
    """(manifest, {file name: bytes}) of a model directory: everything an actor needs to
    load it, so workers need no copy of the directory (only the latentforge package)."""
    from ..api import read_manifest, resolve
    from ..manifest import graph_path

    directory = resolve(name_or_dir)
    manifest = read_manifest(directory)
    mpath = directory / "manifest.json"
    files = {"manifest.json": mpath.read_bytes()}
    for role, info in manifest["graphs"].items():
        path = graph_path(directory, info["file"], f"graphs.{role}.file", mpath)
        files[info["file"]] = path.read_bytes()
    return manifest, files


def actor_threads(default: int) -> int:
    """The CPUs Ray gave this actor (its onnxruntime intra-op threads), else ``default``."""
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # not inside a Ray worker
        cpus = None
    return max(1, int(cpus)) if cpus else max(1, int(default))


def open_model(files: dict[str, bytes], threads: int):
    """Load the shipped files in an actor: written to a private temp directory, loaded (every
    graph's sha256 checked against the manifest), on the CPU with ``threads`` intra-op
    threads and spinning off (idle threads sleep: the actors share the machine)."""
    from ..api import load

    directory = Path(tempfile.mkdtemp(prefix="latentforge-model-"))
    try:
        for name, data in files.items():
            (directory / name).write_bytes(data)
        return load(directory, providers="cpu", threads=threads, spinning=False)
    finally:  # the sessions hold the graphs in memory now
        shutil.rmtree(directory, ignore_errors=True)
