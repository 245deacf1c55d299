"""Which ONNX graphs each model kind exports: the one table to extend when a kind is added.

A graph is one method of the trained module, with named inputs and outputs. Input names say
what an example or test input looks like ("x": an image batch in the model's scaling, "z": a
latent batch, "t": float32 timesteps, "y": float32 one-hot class labels (B, num_classes) of a
conditional model), so export and `verify` need no per-kind code.
Output shapes are not listed: they are read off the PyTorch module's outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

IMAGE_SHAPE = (1, 28, 28)
BATCH = "B"  # the dynamic batch dimension's name in every graph and in the manifest


@dataclass(frozen=True)
class GraphSpec:
    role: str  # graph key in the manifest, file stem, and metadata_props "latentforge.graph"
    method: str  # the module method the graph computes
    inputs: tuple[str, ...]  # each one of INPUT_NAMES
    outputs: tuple[str, ...]
    atol: float  # default `verify` tolerance: float32 reordering error of an untrained net

    @property
    def file(self) -> str:
        return f"{self.role}.onnx"


INPUT_NAMES = ("x", "z", "t", "y")

GRAPHS: dict[str, tuple[GraphSpec, ...]] = {
    "ae": (GraphSpec("encoder", "encode", ("x",), ("z",), 1e-5),
           GraphSpec("decoder", "decode", ("z",), ("x_hat",), 1e-5)),
    "vae": (GraphSpec("encoder", "encode", ("x",), ("mu", "logvar"), 1e-5),
            GraphSpec("decoder", "decode", ("z",), ("x_hat",), 1e-5)),
    "cvae": (GraphSpec("encoder", "encode", ("x", "y"), ("mu", "logvar"), 1e-5),
             GraphSpec("decoder", "decode", ("z", "y"), ("x_hat",), 1e-5)),
    "ddpm": (GraphSpec("unet", "forward", ("x", "t"), ("eps",), 1e-4),),
    "classifier": (GraphSpec("classifier", "forward", ("x",), ("logits", "features"), 1e-4),),
}


def graphs_for(kind: str) -> tuple[GraphSpec, ...]:
    if kind not in GRAPHS:
        raise ValueError(f"no ONNX graphs defined for model kind {kind!r}; "
                         f"valid kinds: {', '.join(GRAPHS)}")
    return GRAPHS[kind]


def example_input(name: str, batch: int, *, scaling: str, latent_dim: int | None,
                  num_timesteps: int | None, rng, num_classes: int | None = None):
    """A random float32 numpy batch for graph input ``name`` (numpy ``rng``)."""
    import numpy as np

    if name == "x":
        x = rng.random((batch, *IMAGE_SHAPE), dtype=np.float32)
        return x * 2.0 - 1.0 if scaling == "symmetric" else x
    if name == "z":
        if not latent_dim:
            raise ValueError("a graph with a latent input needs the config's latent_dim")
        return rng.standard_normal((batch, latent_dim), dtype=np.float32)
    if name == "t":
        T = int(num_timesteps or 1000)
        return rng.integers(0, T, size=batch).astype(np.float32)
    if name == "y":
        if not num_classes:
            raise ValueError("a graph with a label input needs the config's num_classes")
        return np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, size=batch)]
    raise ValueError(f"unknown graph input {name!r}; valid: {', '.join(INPUT_NAMES)}")


def graph_module(model, spec: GraphSpec):
    """An nn.Module whose forward is ``model.<spec.method>``, outputs as a flat tuple."""
    from torch import nn

    class _Graph(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *args):
            out = getattr(self.model, spec.method)(*args)
            return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    return _Graph().eval()
