"""`verify`'s failure paths, atomic re-export, EMA / weights-only checkpoints, and the two
commands end to end (small dense models: quick to export)."""
import json
import shutil
from dataclasses import asdict

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from latentforge.export import atomic, export_checkpoint, onnx_export, verify
from latentforge.runtime.cli import main
from latentforge.runtime.hashing import sha256_file
from latentforge.train.checkpoint import save_checkpoint, weights_only
from latentforge.train.registry import all_specs, build_model, make_config


def checkpoint(name="vae-dense", seed=0, **extra):
    spec = all_specs()[name]
    torch.manual_seed(seed)
    config = make_config(spec)
    state = build_model(spec, config).state_dict()
    return {"model": name, "kind": spec.kind, "config": asdict(config), "model_state": state,
            "ema_state": None, "metrics": {}, **extra}


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae")
    save_checkpoint(root / "vae.pt", checkpoint())
    export_checkpoint(root / "vae.pt", root / "out")
    return root


@pytest.fixture
def copy(vae, tmp_path):
    """A private copy of the exported directory, free to damage."""
    shutil.copytree(vae / "out", tmp_path / "out")
    return tmp_path / "out"


def perturb(path, scale=1.001):
    """Scale the largest weight tensor of an ONNX graph in place."""
    proto = onnx.load(path)
    init = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * scale, init.name))
    onnx.save(proto, path)


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_verify_fails_on_a_perturbed_graph_even_with_a_matching_hash(vae, copy):
    perturb(copy / "decoder.onnx")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["graphs"]["decoder"]["sha256"] = sha256_file(copy / "decoder.onnx")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    report = verify(copy, vae / "vae.pt", batch_sizes=(1, 3))
    assert not report.ok and not report.problems  # only the numbers give it away
    assert all(r.ok for r in report.rows if r.graph == "encoder")
    assert not any(r.ok for r in report.rows if r.graph == "decoder")
    assert report.max_abs("decoder") > 1e-5
    assert "FAIL" in report.table().splitlines()[-1]


def test_verify_command_exits_nonzero_on_a_perturbed_graph(vae, copy, capsys):
    assert main(["verify", str(copy), str(vae / "vae.pt"), "--batch-sizes", "1,7"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("PASS")
    perturb(copy / "encoder.onnx")
    assert main(["verify", str(copy), str(vae / "vae.pt"), "--batch-sizes", "1,7"]) == 1
    out = capsys.readouterr().out
    assert "sha256 does not match" in out and "FAIL" in out
    assert "encoder    random" in out and "max abs" in out


def test_verify_reports_an_unreadable_graph_instead_of_crashing(vae, copy, capsys):
    (copy / "decoder.onnx").write_bytes((copy / "decoder.onnx").read_bytes()[:1000])
    assert main(["verify", str(copy), str(vae / "vae.pt"), "--batch-sizes", "1"]) == 1
    out = capsys.readouterr().out
    assert "decoder.onnx: onnxruntime cannot load it" in out and "FAIL" in out


def test_verify_reports_a_checkpoint_of_another_model(vae, tmp_path):
    save_checkpoint(tmp_path / "ae.pt", checkpoint("ae-dense1"))
    report = verify(vae / "out", tmp_path / "ae.pt", batch_sizes=(1,))
    assert not report.ok and "ae-dense1" in report.problems[0]


def test_verify_reports_metadata_that_disagrees_with_the_checkpoint(vae, copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["scaling"] = "symmetric"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    report = verify(copy, vae / "vae.pt", batch_sizes=(1,))
    assert not report.ok
    assert any("'scaling'" in p for p in report.problems)
    assert any("embedded" in p for p in report.problems)


def test_verify_without_real_digits_uses_random_inputs(vae, tmp_path):
    report = verify(vae / "out", vae / "vae.pt", batch_sizes=(2,), data_dir=tmp_path / "none")
    assert report.ok and {r.inputs for r in report.rows} == {"random"}
    assert "random inputs only" in report.notes[-1]


def test_reexport_replaces_the_whole_directory(vae, copy):
    (copy / "stale.onnx").write_bytes(b"old")
    manifest = export_checkpoint(vae / "vae.pt", copy)
    assert sorted(p.name for p in copy.iterdir()) == ["decoder.onnx", "encoder.onnx",
                                                       "manifest.json"]
    assert manifest["graphs"]["encoder"]["sha256"] == sha256_file(copy / "encoder.onnx")
    assert [p.name for p in copy.parent.iterdir() if p.name.startswith(".")] == []


def test_failure_mid_export_leaves_the_old_directory_intact(vae, copy, monkeypatch):
    before = snapshot(copy)
    written = []

    def fail_after_first_graph(path, data):
        if written:
            raise OSError("disk full")
        written.append(path)
        atomic.write_file(path, data)

    monkeypatch.setattr(onnx_export, "write_file", fail_after_first_graph)
    with pytest.raises(OSError, match="disk full"):
        export_checkpoint(vae / "vae.pt", copy)
    assert written and written[0].parent != copy  # the first graph went to a staging dir
    assert snapshot(copy) == before
    assert [p.name for p in copy.parent.iterdir() if p.name.startswith(".")] == []


def test_failure_during_the_swap_puts_the_old_directory_back(vae, copy, monkeypatch):
    before, real_rename, calls = snapshot(copy), atomic.os.rename, []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old → aside succeeded; new → place fails
            raise OSError("rename failed")
        real_rename(src, dst)

    monkeypatch.setattr(atomic.os, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        export_checkpoint(vae / "vae.pt", copy)
    assert snapshot(copy) == before
    assert [p.name for p in copy.parent.iterdir() if p.name.startswith(".")] == []


def test_export_refuses_to_replace_a_directory_that_is_not_an_export(vae, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an exported model"):
        export_checkpoint(vae / "vae.pt", tmp_path)
    assert main(["export", str(vae / "vae.pt"), "-o", str(tmp_path)]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_export_uses_ema_weights_and_accepts_a_weights_only_dict(tmp_path):
    ckpt = checkpoint("ae-dense1", seed=0)
    ckpt["ema_state"] = checkpoint("ae-dense1", seed=1)["model_state"]
    manifest = export_checkpoint(weights_only(ckpt), tmp_path / "out")
    assert manifest["ema"] is True and manifest["checkpoint_sha256"] is None
    spec = all_specs()["ae-dense1"]
    ema = build_model(spec, make_config(spec))
    ema.load_state_dict(ckpt["ema_state"])
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    sess = ort.InferenceSession(str(tmp_path / "out" / "encoder.onnx"),
                                providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = ema.eval().encode(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(sess.run(["z"], {"x": x})[0] - ref)) <= 1e-5
    assert verify(tmp_path / "out", ckpt, batch_sizes=(3,)).ok  # full checkpoint, same EMA


def test_export_command_writes_a_verifiable_directory(tmp_path, capsys):
    save_checkpoint(tmp_path / "ae.pt", checkpoint("ae-dense2"))
    assert main(["export", str(tmp_path / "ae.pt"), "-o", str(tmp_path / "ae")]) == 0
    assert "encoder.onnx" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "ae"), str(tmp_path / "ae.pt"),
                 "--batch-sizes", "1,64", "--atol", "1e-5", "--rtol", "0"]) == 0
    assert main(["verify", str(tmp_path / "missing"), str(tmp_path / "ae.pt")]) == 2
