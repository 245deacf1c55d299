"""Model names → (kind, config dataclass, nn.Module class, input scaling, training task).

Each model module exports ``SPECS`` (a list of ModelSpec); this module gathers them. The
checkpoint stores ``model`` (the name) and ``config`` (the dataclass as a dict), so loading and
exporting never guess.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass

KINDS = ("ae", "vae", "cvae", "ddpm", "classifier")
_MODULES = ("unet", "autoencoders", "vae", "cvae", "classifier")  # modules under latentforge.train that define SPECS


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # one of KINDS
    config_cls: type
    model_cls: type
    scaling: str  # "unit" ([0, 1]) or "symmetric" ([-1, 1])
    task: str  # "module:Class" of the training objective, under latentforge.train
    defaults: tuple = ()  # training defaults as (flag, value) pairs, e.g. (("lr", 5e-4),)
    # config fields that older checkpoints lack, with the value those checkpoints were made with
    legacy: tuple = ()


def all_specs() -> dict[str, ModelSpec]:
    specs = {}
    for mod in _MODULES:
        for spec in importlib.import_module(f"latentforge.train.{mod}").SPECS:
            specs[spec.name] = spec
    return specs


def model_names() -> list[str]:
    """Names without importing torch (kept in sync by a test)."""
    return ["ae-dense1", "ae-dense2", "ae-conv", "vae-dense", "vae-conv", "cvae-conv",
            "ddpm-unet", "classifier"]


def get_spec(name: str) -> ModelSpec:
    specs = all_specs()
    if name not in specs:
        raise ValueError(f"unknown model {name!r}; valid choices: {', '.join(sorted(specs))}")
    return specs[name]


def make_config(spec: ModelSpec, overrides: dict | None = None):
    """The spec's config dataclass, with every non-None override whose name is a field."""
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    kwargs = {k: v for k, v in (overrides or {}).items() if k in fields and v is not None}
    return spec.config_cls(**kwargs)


def config_from_dict(spec: ModelSpec, d: dict):
    """The config stored in a checkpoint or manifest; a field it lacks takes the value in
    ``spec.legacy`` (what it meant when the field did not exist yet), else the default."""
    fields = {f.name: f for f in dataclasses.fields(spec.config_cls)}
    d = {**dict(spec.legacy), **d}
    unknown = set(d) - set(fields)
    if unknown:
        raise ValueError(f"config for {spec.name} has unknown fields {sorted(unknown)}")
    return spec.config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def build_model(spec: ModelSpec, config):
    return spec.model_cls(config)


def model_from_checkpoint(ckpt: dict):
    """(spec, config, model in eval mode) from a checkpoint dict; uses the EMA weights when
    the checkpoint has them."""
    spec = get_spec(ckpt["model"])
    config = config_from_dict(spec, ckpt["config"])
    model = build_model(spec, config)
    state = ckpt.get("ema_state") or ckpt["model_state"]
    model.load_state_dict(state)
    return spec, config, model.eval()


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
