"""Issue 14, items 1–2: one schema check of manifest.json at `load`, and graph files confined
to the model directory (checked before any file is opened)."""
import copy
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentforge.runtime import api
from latentforge.runtime.api import ModelFileError, load
from latentforge.runtime.manifest import validate

MODELS = Path(api.SHIPPED)
SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("m") / "vae"
    shutil.copytree(MODELS / "vae-conv", d, ignore=shutil.ignore_patterns("*.pt"))
    return d


@pytest.fixture(scope="module")
def vae_manifest(vae_dir):
    return json.loads((vae_dir / "manifest.json").read_text())


@pytest.fixture(scope="module")
def ddpm_manifest():
    return json.loads((MODELS / "ddpm-unet" / "manifest.json").read_text())


def write(d: Path, manifest) -> Path:
    text = manifest if isinstance(manifest, (str, bytes)) else json.dumps(manifest)
    (d / "manifest.json").write_bytes(text.encode() if isinstance(text, str) else text)
    return d


@pytest.fixture
def model_dir(vae_dir, vae_manifest):
    yield vae_dir
    write(vae_dir, vae_manifest)


def edited(manifest, path: str, value=..., delete=False):
    m = copy.deepcopy(manifest)
    *parents, last = path.split(".")
    node = m
    for key in parents:
        node = node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    return m


DEFECTS = [  # (description, path, value or delete) — each seen in issue 14
    ("missing name", "name", None, True),
    ("missing graphs", "graphs", None, True),
    ("missing decoder graph", "graphs.decoder", None, True),
    ("graph without file", "graphs.encoder.file", None, True),
    ("graph without sha256", "graphs.decoder.sha256", None, True),
    ("missing latent_dim", "latent_dim", None, True),
    ("latent_dim 5 on a K=10 graph", "latent_dim", 5, False),
    ("kind not matching the graphs", "kind", "ddpm", False),
    ("unknown kind", "kind", "gan", False),
    ("bogus scaling", "scaling", "bogus", False),
    ("latent_dim a string", "latent_dim", "10", False),
    ("latent_dim a bool", "latent_dim", True, False),
    ("graphs a list", "graphs", [], False),
    ("metrics a list", "metrics", [1], False),
    ("declared decoder input of another size", "graphs.decoder.inputs.z", ["B", 5], False),
    ("missing output name", "graphs.encoder.outputs.logvar", None, True),
]


@pytest.mark.parametrize("what,path,value,delete", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_each_manifest_defect_is_a_model_file_error_naming_field_and_file(
        model_dir, vae_manifest, what, path, value, delete):
    write(model_dir, edited(vae_manifest, path, value, delete))
    field = path.split(".")[0]
    with pytest.raises(ModelFileError, match=f"manifest.json.*{field}"):
        load(model_dir, threads=1)


@pytest.mark.parametrize("text", ["[1, 2]", "null", "42", '"name"', b"\xff\xfe{}", "{",
                                  "[" * 100_000])
def test_manifest_that_is_not_a_json_object_is_a_model_file_error(model_dir, text):
    write(model_dir, text)
    with pytest.raises(ModelFileError, match="manifest.json"):
        load(model_dir, threads=1)


@pytest.mark.parametrize("path,value", [
    ("schedule", None), ("schedule.betas", None), ("schedule.alphas", [0.5] * 999),
    ("schedule.betas", "0.1"), ("schedule.config.num_timesteps", 10),
    ("schedule.posterior_variance", [float("nan")] * 1000), ("latent_dim", 3)])
def test_ddpm_schedule_must_hold_five_arrays_of_one_length(ddpm_manifest, path, value):
    m = edited(ddpm_manifest, path, delete=True) if value is None else \
        edited(ddpm_manifest, path, value)
    with pytest.raises(ModelFileError, match=path.split(".")[0]):
        validate(m, "x/manifest.json")


def test_older_manifest_without_informational_keys_still_loads(model_dir, vae_manifest):
    old = {k: v for k, v in vae_manifest.items() if k not in ("training", "epochs", "init_from")}
    write(model_dir, old)
    assert load(model_dir, threads=1).latent_dim == 10


def test_ddpm_manifest_with_time_embedding_in_config_is_valid(ddpm_manifest):
    validate(edited(ddpm_manifest, "config.time_embedding", "half"), "m.json")
    validate(edited(ddpm_manifest, "training", {"epochs": 30}), "m.json")


@pytest.fixture
def no_file_opened(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a graph file was opened: {args}")
    monkeypatch.setattr(api, "make_session", refuse)
    monkeypatch.setattr("latentforge.runtime.hashing.sha256_file", refuse)


@pytest.mark.parametrize("file", ["../../../../etc/passwd", "/etc/passwd", "../vae/x.onnx",
                                  "sub/../../escape.onnx", "C:\\evil.onnx", "..\\x.onnx", ""])
@pytest.mark.parametrize("verify", [True, False])
def test_graph_paths_outside_the_directory_are_refused_before_any_file_is_opened(
        model_dir, vae_manifest, no_file_opened, file, verify):
    write(model_dir, edited(vae_manifest, "graphs.decoder.file", file))
    with pytest.raises(ModelFileError, match="graphs.decoder.file"):
        load(model_dir, threads=1, verify=verify)


def test_symlink_leading_out_of_the_directory_is_refused(model_dir, vae_manifest, tmp_path,
                                                         no_file_opened):
    outside = tmp_path / "outside.onnx"
    shutil.copy(model_dir / "decoder.onnx", outside)
    (model_dir / "link.onnx").symlink_to(outside)
    try:
        write(model_dir, edited(vae_manifest, "graphs.decoder.file", "link.onnx"))
        with pytest.raises(ModelFileError, match="leads outside"):
            load(model_dir, threads=1, verify=False)
    finally:
        (model_dir / "link.onnx").unlink()


def test_graph_whose_onnx_io_differs_from_the_manifest_is_refused(model_dir, vae_manifest):
    m = edited(vae_manifest, "graphs.decoder.file", "encoder.onnx")  # swapped graphs
    m["graphs"]["decoder"]["sha256"] = m["graphs"]["encoder"]["sha256"]
    write(model_dir, m)
    with pytest.raises(ModelFileError, match="graph inputs"):
        load(model_dir, threads=1)


def test_shipped_name_wins_over_a_same_named_local_folder(tmp_path, monkeypatch):
    (tmp_path / "ddpm").mkdir()
    monkeypatch.chdir(tmp_path)
    assert api.resolve("ddpm") == MODELS / "ddpm-unet"
    assert api.resolve("./ddpm") == Path("./ddpm")
    with pytest.raises(ModelFileError, match="no manifest.json"):
        load("./ddpm")


# --- properties: any mutation is a ModelFileError or a model, never another exception -----

def leaf_paths(node, prefix=""):
    """Dotted paths of every key, skipping the long schedule arrays' elements."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{prefix}{k}"
            yield from leaf_paths(v, f"{prefix}{k}.")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3), max_leaves=6)
JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "bool", int: "number",
              float: "number", type(None): "null"}
VALIDATED = ["name", "kind", "scaling", "latent_dim", "graphs", "graphs.encoder",
             "graphs.encoder.file", "graphs.encoder.sha256", "graphs.encoder.inputs",
             "graphs.encoder.inputs.x", "graphs.decoder.outputs", "graphs.decoder.outputs.x_hat",
             "metrics", "metrics.test", "training", "epochs", "init_from", "format", "version"]


@settings(max_examples=120, deadline=None, suppress_health_check=SUPPRESS)
@given(path=st.sampled_from(VALIDATED), value=JSON_VALUES, delete=st.booleans())
def test_deleting_or_retyping_a_validated_field_is_a_model_file_error(
        vae_manifest, path, value, delete):
    original = edited(vae_manifest, path, delete=True)  # just to reach the node
    node = vae_manifest
    for key in path.split("."):
        node = node[key]
    optional = path in ("metrics", "metrics.test", "training", "epochs", "init_from",
                        "format", "version")
    same_type = JSON_TYPES[type(value)] == JSON_TYPES[type(node)] or (
        path in ("training", "epochs", "init_from") and value is None) or (
        path == "init_from" and isinstance(value, dict))  # null, or the base run's record
    if (delete and optional) or (not delete and same_type):
        return
    m = original if delete else edited(vae_manifest, path, value)
    with pytest.raises(ModelFileError, match=path.split(".")[0]):
        validate(m, "dir/manifest.json")


@settings(max_examples=60, deadline=None, suppress_health_check=SUPPRESS)
@given(data=st.data())
def test_any_manifest_mutation_loads_or_raises_model_file_error(model_dir, vae_manifest, data):
    path = data.draw(st.sampled_from(list(leaf_paths(vae_manifest))))
    delete = data.draw(st.booleans())
    m = edited(vae_manifest, path, delete=True) if delete else \
        edited(vae_manifest, path, data.draw(JSON_VALUES))
    write(model_dir, m)
    try:
        model = load(model_dir, threads=1)
    except ModelFileError:
        return
    assert model.latent_dim == 10 and model.kind == "vae"

