"""Corpus-scale jobs on Ray Data (the optional ``latentforge[scale]`` extra):
``embed_dataset`` (images → embeddings) and ``sample_dataset`` (N digits split across
actors), each identical to the same work done in one process.

    from latentforge.runtime.distributed import embed_dataset, sample_dataset
    embed_dataset("vae-conv", "digits/", "emb.parquet")      # local Ray on this machine
    sample_dataset("ddpm", 10_000, "digits.parquet", seed=0, address="auto")  # a cluster

Importing this package does not import ray; calling a job without it raises RayMissing
(an ImportError) naming the extra to install.
"""
from .cluster import SCALE_EXTRA, RayMissing  # noqa: F401


def __getattr__(name):
    if name in ("embed_dataset", "EmbedResult"):
        from . import embed
        return getattr(embed, name)
    if name in ("sample_dataset", "SampleResult"):
        from . import sample
        return getattr(sample, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
