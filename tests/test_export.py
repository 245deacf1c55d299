"""ONNX export of every registered model at random init: parity with PyTorch at batch 1, 3 and
64, a dynamic batch dimension, onnx's full check, self-contained files, and the metadata the
runtime reads (manifest.json and each graph's metadata_props)."""
import json
from dataclasses import asdict

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from latentforge.export import export_checkpoint, verify
from latentforge.export.graphs import GRAPHS, graphs_for
from latentforge.runtime import __version__
from latentforge.runtime.hashing import sha256_file
from latentforge.train.checkpoint import save_checkpoint
from latentforge.train.registry import all_specs, build_model, count_parameters, make_config
from latentforge.train.schedule import NoiseSchedule, ScheduleConfig

MODELS = sorted(all_specs())
TOLERANCE = {"ae": 1e-5, "vae": 1e-5, "cvae": 1e-5, "ddpm": 1e-4,
             "classifier": 1e-4}  # max abs error
BATCHES = (1, 3, 64)  # the export traced batch 2: none of these is the example's size
TIMESTEPS = np.array([0, 1, 500, 999], dtype=np.float32)


def random_checkpoint(name: str, seed: int = 0) -> dict:
    spec = all_specs()[name]
    torch.manual_seed(seed)
    config = make_config(spec)
    model = build_model(spec, config).eval()
    ckpt = {"model": name, "kind": spec.kind, "config": asdict(config),
            "model_state": model.state_dict(), "ema_state": None, "epoch": 0,
            "metrics": {"test": {"loss": 0.25, "accuracy": float("nan")}}}
    if spec.kind == "ddpm":
        ckpt["schedule"] = asdict(ScheduleConfig())
    return ckpt, model


@pytest.fixture(scope="module", params=MODELS)
def exported(request, tmp_path_factory):
    """One export per model for the whole module (the U-Net takes seconds)."""
    name = request.param
    root = tmp_path_factory.mktemp(name)
    ckpt, model = random_checkpoint(name)
    save_checkpoint(root / "model.pt", ckpt)
    manifest = export_checkpoint(root / "model.pt", root / "out")
    return {"name": name, "kind": ckpt["kind"], "ckpt_path": root / "model.pt",
            "out": root / "out", "manifest": manifest, "model": model, "ckpt": ckpt}


def session(path):
    return ort.InferenceSession(str(path), ort.SessionOptions(),
                                providers=["CPUExecutionProvider"])


def inputs_for(names, batch, manifest, rng):
    feeds = {}
    for n in names:
        if n == "x":
            feeds[n] = rng.random((batch, 1, 28, 28), dtype=np.float32)
            if manifest["scaling"] == "symmetric":
                feeds[n] = feeds[n] * 2 - 1
        elif n == "z":
            feeds[n] = rng.standard_normal((batch, manifest["latent_dim"]), dtype=np.float32)
        elif n == "t":
            feeds[n] = np.resize(TIMESTEPS, batch)
        elif n == "y":  # a conditional model's one-hot label
            feeds[n] = np.eye(manifest["num_classes"], dtype=np.float32)[
                rng.integers(0, manifest["num_classes"], size=batch)]
    return feeds


def test_every_model_kind_has_a_graph_table_entry():
    assert {s.kind for s in all_specs().values()} <= set(GRAPHS)


def test_onnx_matches_pytorch_at_batch_1_3_64(exported):
    model, manifest = exported["model"], exported["manifest"]
    rng = np.random.default_rng(1)
    tol = TOLERANCE[exported["kind"]]
    for g in graphs_for(exported["kind"]):
        sess = session(exported["out"] / g.file)
        for batch in BATCHES:
            feeds = inputs_for(g.inputs, batch, manifest, rng)
            with torch.no_grad():
                ref = getattr(model, g.method)(*(torch.from_numpy(feeds[n]) for n in g.inputs))
            ref = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
            got = sess.run(list(g.outputs), feeds)
            for name, r, o in zip(g.outputs, ref, got):
                assert o.shape == r.shape and o.shape[0] == batch, (g.role, name, batch)
                err = float(np.max(np.abs(o - r)))
                assert err <= tol, f"{exported['name']} {g.role}.{name} batch {batch}: {err}"


def test_batch_dimension_is_dynamic_on_every_input_and_output(exported):
    for g in graphs_for(exported["kind"]):
        proto = onnx.load(exported["out"] / g.file)
        ios = list(proto.graph.input) + list(proto.graph.output)
        assert [v.name for v in ios] == [*g.inputs, *g.outputs]
        info = exported["manifest"]["graphs"][g.role]
        for v in ios:
            dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            assert dims[0] == "B" and all(isinstance(d, int) for d in dims[1:]), (v.name, dims)
            assert dims == {**info["inputs"], **info["outputs"]}[v.name]


def test_graphs_pass_full_check_at_opset_17_plus_and_are_single_files(exported):
    out = exported["out"]
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(["manifest.json", *(g.file for g in graphs_for(exported["kind"]))])
    for g in graphs_for(exported["kind"]):
        proto = onnx.load(out / g.file, load_external_data=False)
        onnx.checker.check_model(proto, full_check=True)
        assert {o.domain: o.version for o in proto.opset_import}.get("", 0) >= 17
        assert all(t.data_location == onnx.TensorProto.DEFAULT for t in proto.graph.initializer)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dirs


def test_manifest_carries_everything_the_runtime_needs(exported):
    m, name, kind = exported["manifest"], exported["name"], exported["kind"]
    spec = all_specs()[name]
    assert json.loads((exported["out"] / "manifest.json").read_text()) == m
    assert (m["format"], m["name"], m["kind"], m["scaling"]) == (1, name, kind, spec.scaling)
    assert m["config"] == json.loads(json.dumps(exported["ckpt"]["config"]))
    assert m["latent_dim"] == exported["ckpt"]["config"].get("latent_dim")
    assert (kind in ("ae", "vae", "cvae")) == (m["latent_dim"] is not None)
    assert m.get("num_classes") == (10 if kind == "cvae" else None)
    assert m["ema"] is False and m["version"] == __version__
    assert m["metrics"] == {"test": {"loss": 0.25, "accuracy": None}}  # NaN: not valid JSON
    assert m["checkpoint_sha256"] == sha256_file(exported["ckpt_path"])
    assert m["parameters"] == count_parameters(exported["model"])
    if kind == "ddpm":
        assert m["schedule"] == NoiseSchedule(ScheduleConfig()).to_dict()
        assert m["schedule"]["config"] == {"num_timesteps": 1000, "beta_start": 1e-4,
                                           "beta_end": 0.02, "kind": "linear"}
    else:
        assert m["schedule"] is None
    for role, info in m["graphs"].items():
        assert info["sha256"] == sha256_file(exported["out"] / info["file"])


def test_each_graph_embeds_the_manifest_without_file_hashes(exported):
    m = exported["manifest"]
    for g in graphs_for(exported["kind"]):
        props = {p.key: p.value for p in onnx.load(exported["out"] / g.file).metadata_props}
        assert props["latentforge.graph"] == g.role
        embedded = json.loads(props["latentforge"])
        assert embedded == {**m, "graphs": {r: {k: v for k, v in info.items() if k != "sha256"}
                                            for r, info in m["graphs"].items()}}
        meta = session(exported["out"] / g.file).get_modelmeta().custom_metadata_map
        assert json.loads(meta["latentforge"]) == embedded  # what onnxruntime users see


def test_verify_passes_on_a_fresh_export(exported):
    report = verify(exported["out"], exported["ckpt_path"], batch_sizes=(1, 3), atol=None)
    assert report.ok, report.table()
    roles = {g.role for g in graphs_for(exported["kind"])}
    assert {r.graph for r in report.rows} == roles
    assert report.max_abs() <= TOLERANCE[exported["kind"]]
    if exported["kind"] == "ddpm":  # every t of the brief, random and real inputs
        labels = {r.inputs for r in report.rows}
        assert {f"{s} t={t}" for s in ("random", "real") for t in (0, 1, 500, 999)} <= labels


def test_model_card_is_current_and_names_the_weights_a_fine_tune_started_from():
    from latentforge.export.ship import MODELS_DIR, model_card_text

    text = model_card_text()
    assert text == (MODELS_DIR / "README.md").read_text()  # `latentforge ship` was rerun
    init = json.loads((MODELS_DIR / "ddpm-unet" / "manifest.json").read_text())["init_from"]
    assert f"Started from `{init['file']}` (sha256 `{init['sha256']}`" in text
    assert "/work/" not in text and "/home/" not in text  # no trainer machine's paths
