"""Checkpoint → exported model directory: one ONNX graph per GraphSpec plus manifest.json.

Exporter: torch.onnx's dynamo (torch.export-based) path. The TorchScript exporter
(``dynamo=False``) is deprecated and warns on every call; on these models both give graphs of
the same onnxruntime speed (U-Net, batch 1 and 64, ORT_ENABLE_ALL) and the same numbers. The
example batch is 2 with ``Dim.DYNAMIC`` on axis 0 of every input: torch.export specialises a
size-1 dimension to a constant, and a named ``Dim`` shared by two inputs (U-Net x and t)
makes the exporter warn that the shared name "will not be used". The symbol torch.export
picks is renamed to "B" afterwards, and the export fails unless every input and output has it.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .atomic import check_replaceable, staged_directory, write_file
from .graphs import BATCH, GraphSpec, example_input, graph_module, graphs_for

FORMAT = 1
OPSET = 18  # ≥ 17 (LayerNorm etc.); onnxruntime ≥ 1.14 runs it
EXAMPLE_BATCH = 2
META_KEY, META_GRAPH_KEY = "latentforge", "latentforge.graph"


def package_version() -> str:
    from latentforge.runtime import __version__

    return __version__


def load_any(ckpt) -> tuple[dict, str | None]:
    """(checkpoint dict, sha256 of its file or None for an in-memory dict)."""
    if isinstance(ckpt, dict):
        return ckpt, None
    from latentforge.runtime.hashing import sha256_file
    from latentforge.train.checkpoint import load_checkpoint

    return load_checkpoint(ckpt), sha256_file(ckpt)


def jsonable(value):
    """Plain JSON types: tuples → lists, numpy/torch scalars → numbers, non-finite → None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def uses_ema(ckpt: dict) -> bool:
    return ckpt.get("ema_state") is not None or bool(ckpt.get("ema"))


def base_manifest(ckpt: dict, spec, config, model, sha: str | None) -> dict:
    """Everything the runtime needs to know about the model, except the graph files."""
    from latentforge.train.checkpoint import portable_args
    from latentforge.train.registry import count_parameters

    schedule = None
    if spec.kind == "ddpm":
        from latentforge.train.schedule import NoiseSchedule, ScheduleConfig

        if not ckpt.get("schedule"):
            raise ValueError(f"DDPM checkpoint of {spec.name} has no 'schedule'")
        schedule = NoiseSchedule(ScheduleConfig(**ckpt["schedule"])).to_dict()
    cfg = asdict(config)
    conditional = {"num_classes": cfg["num_classes"]} if spec.kind == "cvae" else {}
    return jsonable({
        "format": FORMAT, "name": spec.name, "kind": spec.kind, "config": cfg,
        "scaling": spec.scaling, "latent_dim": cfg.get("latent_dim"), **conditional,
        "schedule": schedule,
        "ema": uses_ema(ckpt), "metrics": ckpt.get("metrics") or {},
        "training": portable_args(ckpt.get("args") or {}), "epochs": ckpt.get("epoch"),
        "init_from": ckpt.get("init_from"),
        "checkpoint_sha256": sha, "version": package_version(),
        "parameters": count_parameters(model)})


def example_inputs(gspec: GraphSpec, manifest: dict, batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    T = (manifest["schedule"] or {}).get("config", {}).get("num_timesteps")
    return {name: example_input(name, batch, scaling=manifest["scaling"],
                                latent_dim=manifest["latent_dim"], num_timesteps=T, rng=rng,
                                num_classes=manifest.get("num_classes"))
            for name in gspec.inputs}


def run_torch(model, gspec: GraphSpec, feeds: dict) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        outs = graph_module(model, gspec)(*(torch.from_numpy(feeds[n]) for n in gspec.inputs))
    if len(outs) != len(gspec.outputs):
        raise ValueError(f"{gspec.role}: {gspec.method}() returned {len(outs)} tensors, the "
                         f"graph table names {len(gspec.outputs)} ({', '.join(gspec.outputs)})")
    return [o.detach().cpu().numpy() for o in outs]


def graph_info(model, gspec: GraphSpec, manifest: dict) -> dict:
    """File name and I/O shapes (batch as "B") of one graph, from a PyTorch forward pass."""
    feeds = example_inputs(gspec, manifest, EXAMPLE_BATCH)
    outs = run_torch(model, gspec, feeds)
    return {"file": gspec.file,
            "inputs": {n: [BATCH, *feeds[n].shape[1:]] for n in gspec.inputs},
            "outputs": {n: [BATCH, *o.shape[1:]] for n, o in zip(gspec.outputs, outs)}}


def to_onnx(model, gspec: GraphSpec, manifest: dict, opset: int = OPSET):
    """The ONNX ModelProto of one graph, batch dimension named "B" on every input/output."""
    import torch

    feeds = example_inputs(gspec, manifest, EXAMPLE_BATCH)
    args = tuple(torch.from_numpy(feeds[n]) for n in gspec.inputs)
    dyn = torch.export.Dim.DYNAMIC
    program = torch.onnx.export(
        graph_module(model, gspec), args, dynamo=True, verbose=False,
        input_names=list(gspec.inputs), output_names=list(gspec.outputs),
        dynamic_shapes=(tuple({0: dyn} for _ in args),),  # forward(*args): one nested tuple
        opset_version=opset, optimize=True, external_data=False)
    proto = program.model_proto
    _name_batch_dim(proto, gspec)
    return proto


def _name_batch_dim(proto, gspec: GraphSpec) -> None:
    ios = list(proto.graph.input) + list(proto.graph.output)
    first = [v.type.tensor_type.shape.dim[0] for v in ios]
    symbol = first[0].dim_param
    bad = [v.name for v, d in zip(ios, first) if not symbol or d.dim_param != symbol]
    if bad:
        raise RuntimeError(f"{gspec.role}: the batch dimension of {', '.join(bad)} was not "
                           f"exported as one dynamic dimension")
    for v in [*ios, *proto.graph.value_info]:
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param == symbol:
                d.dim_param = BATCH


def graph_metadata(manifest_without_shas: dict, role: str) -> dict[str, str]:
    return {META_KEY: json.dumps(manifest_without_shas, sort_keys=True),
            META_GRAPH_KEY: role}


def finish_proto(proto, metadata: dict[str, str]) -> bytes:
    """Embed metadata, check (full check, with shape inference), serialise as one file."""
    import onnx

    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    external = [t.name for t in proto.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise RuntimeError(f"initializers {external[:3]} point at external data; the export "
                           f"must be one self-contained file")
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def export_checkpoint(ckpt, out_dir, *, opset: int = OPSET, log=None) -> dict:
    """Export ``ckpt`` (a path or a checkpoint dict) to ``out_dir``; returns the manifest.

    ``out_dir`` is replaced as a whole (it must be absent, empty, or a previous export)."""
    from latentforge.train.registry import model_from_checkpoint

    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    check_replaceable(Path(out_dir).absolute())  # fail before the slow part
    ckpt, sha = load_any(ckpt)
    spec, config, model = model_from_checkpoint(ckpt)
    manifest = base_manifest(ckpt, spec, config, model, sha)
    gspecs = graphs_for(spec.kind)
    infos = {g.role: graph_info(model, g, manifest) for g in gspecs}
    described = {**manifest, "graphs": infos}
    graphs = {}
    with staged_directory(out_dir) as tmp:
        for g in gspecs:
            data = finish_proto(to_onnx(model, g, described, opset),
                                graph_metadata(described, g.role))
            write_file(tmp / g.file, data)
            graphs[g.role] = {"file": g.file, "sha256": hashlib.sha256(data).hexdigest(),
                              **{k: v for k, v in infos[g.role].items() if k != "file"}}
            if log:
                log(f"  {g.file}: {len(data) / 1e6:.2f} MB, inputs {infos[g.role]['inputs']}, "
                    f"outputs {infos[g.role]['outputs']}")
        manifest = {**manifest, "graphs": graphs}
        write_file(tmp / "manifest.json", manifest_json(manifest).encode())
    return manifest


def manifest_json(manifest: dict) -> str:
    """One top-level key per line: readable, without a line per schedule float."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v, allow_nan=False)}" for k, v in manifest.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def strip_shas(manifest: dict) -> dict:
    """The manifest as embedded in each graph: no file hashes (a file can't hold its own)."""
    return {**manifest, "graphs": {role: {k: v for k, v in info.items() if k != "sha256"}
                                   for role, info in manifest.get("graphs", {}).items()}}
