"""`latentforge summary MODEL`: the layer table (layer, output shape, parameters) of a model.

Rows are the leaf modules in the order a forward pass of one example calls them; the last
line is the model's exact total, ``total parameters: N``.
"""
from __future__ import annotations

import torch
from torch import nn

from .registry import count_parameters


def example_inputs(kind: str, batch: int = 2) -> tuple:
    x = torch.zeros(batch, 1, 28, 28)  # (B, 1, 28, 28)
    if kind == "cvae":  # and the one-hot label (B, 10)
        return x, torch.nn.functional.one_hot(torch.zeros(batch).long(), 10).float()
    return (x, torch.zeros(batch)) if kind == "ddpm" else (x,)  # the U-Net also takes t (B,)


def _shape(out) -> str:
    if isinstance(out, (tuple, list)):
        return ", ".join(_shape(o) for o in out)
    return "(" + ", ".join(["B", *map(str, out.shape[1:])]) + ")"


@torch.no_grad()
def layer_table(model: nn.Module, inputs: tuple) -> list[tuple[str, str, int]]:
    """[(layer, output shape, parameters)] for each leaf module call; a module called twice
    counts its parameters once."""
    rows, seen, hooks = [], set(), []

    def hook(name):
        def fn(module, args, out):
            params = 0 if name in seen else sum(p.numel() for p in module.parameters())
            seen.add(name)
            rows.append((f"{name} ({type(module).__name__})", _shape(out), params))
        return fn

    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            hooks.append(module.register_forward_hook(hook(name)))
    try:
        model.eval()(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return rows


def format_summary(model: nn.Module, inputs: tuple, title: str = "") -> str:
    rows = [("layer", "output shape", "parameters")]
    rows += [(name, shape, f"{n:,}") for name, shape, n in layer_table(model, inputs)]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    line = "-" * (w[0] + w[1] + w[2] + 4)
    text = [title] if title else []
    text.append(f"{rows[0][0]:<{w[0]}}  {rows[0][1]:<{w[1]}}  {rows[0][2]:>{w[2]}}")
    text.append(line)
    text += [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}" for a, b, c in rows[1:]]
    text.append(line)
    text.append(f"total parameters: {count_parameters(model):,}")
    return "\n".join(text)


def summarize(name: str, overrides: dict | None = None) -> str:
    """The table for model ``name`` built with config ``overrides`` (e.g. latent_dim)."""
    from .registry import build_model, get_spec, make_config

    spec = get_spec(name)
    config = make_config(spec, overrides)
    return format_summary(build_model(spec, config), example_inputs(spec.kind),
                          title=f"{name}: {config}")
