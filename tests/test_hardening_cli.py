"""Issue 14, items 5–6: the CLI's output-path rule, exit codes (2 usage/input, 130 interrupt),
atomic unique temp files, inputs that fail in one line, torch-free messages."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentforge.runtime.api import load
from latentforge.runtime.cli import main
from latentforge.runtime.inputs import as_images

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
BUFFERED = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"}  # as in CI logs
QUICK = ["--method", "ddim", "--steps", "2", "--threads", "1"]


def run_cli(*args, cwd=None, **kw):
    return subprocess.run([sys.executable, "-m", "latentforge.runtime.cli", *args],
                          capture_output=True, text=True, env=ENV, cwd=cwd, timeout=300, **kw)


def one_line_error(capsys, code, match):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) >= 1 and match in err[-1], (code, err)
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize("cmd,out,valid", [
    (["encode", "vae-conv", "IMG"], "emb.txt", ".npy, .csv"),
    (["sample", "vae-conv", "-n", "2"], "out.jpg", ".png"),
    (["reconstruct", "ae-conv", "IMG"], "rec", ".png")])
def test_unknown_output_extension_is_refused_listing_valid_ones(tmp_path, capsys, cmd, out,
                                                                valid):
    img = tmp_path / "a.npy"
    np.save(img, np.zeros((28, 28), np.uint8))
    cmd = [str(img) if c == "IMG" else c for c in cmd]
    code = main([*cmd, "-o", str(tmp_path / out)])
    one_line_error(capsys, code, f"valid: {valid}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_trailing_slash_means_a_directory(tmp_path):
    assert main(["sample", "vae-conv", "-n", "2", "--seed", "0", "-o", f"{tmp_path}/grids/"]) == 0
    assert (tmp_path / "grids" / "samples.png").is_file()


def test_parent_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code = main(["sample", "vae-conv", "-n", "2", "-o", str(tmp_path / "afile" / "x.png")])
    one_line_error(capsys, code, "is a file, not a directory")


def test_symlink_and_pipe_targets_are_not_replaced(tmp_path, capsys):
    real = tmp_path / "real.png"
    real.write_bytes(b"keep")
    (tmp_path / "link.png").symlink_to(real)
    os.mkfifo(tmp_path / "fifo.png")
    for target, kind in (("link.png", "a symlink"), ("fifo.png", "a pipe")):
        code = main(["sample", "vae-conv", "-n", "2", "-o", str(tmp_path / target)])
        one_line_error(capsys, code, f"it is {kind}")
    assert real.read_bytes() == b"keep" and (tmp_path / "link.png").is_symlink()


@pytest.mark.parametrize("cmd,match", [
    (["sample", "vae-conv", "--method", "ddim", "--steps", "3"], "apply to DDPMs only"),
    (["sample", "vae-conv", "--eta", "0.5"], "--eta apply to DDPMs only"),
    (["sample", "classifier"], "only DDPMs and VAEs sample"),
    (["sample", "ddpm", "-n", "0", *QUICK], "n must be a positive integer"),
    (["sample", "ddpm", "--batch-size", "0", *QUICK], "batch_size must be"),
    (["sample", "ddpm", "--threads", "-1"], "threads must be"),
    (["interpolate", "classifier", "A", "B"], "no latent space")])
def test_options_or_models_that_do_not_apply_exit_2(tmp_path, capsys, cmd, match):
    code = main([*cmd, "-o", str(tmp_path / "x.png")])
    one_line_error(capsys, code, match)


@pytest.mark.parametrize("model", ["vae-conv", "classifier"])
def test_quality_refuses_sampler_options_for_a_model_that_is_not_a_ddpm(capsys, model):
    code = main(["quality", model, "-n", "10", "--method", "ddim", "--reference-size", "20"])
    one_line_error(capsys, code, "--method apply to DDPMs only")


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_bytes(_png_bytes()[:300]), "damaged image"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros((2, 28, 28), np.int64)), "uint8"),
    (lambda p: p.write_bytes(b"not an image"), "not an image file")])
def test_bad_input_files_are_one_line_errors(tmp_path, capsys, make, match):
    path = tmp_path / "in.png"
    make(path)
    src = path if path.exists() else path.with_suffix(".npy")
    code = main(["encode", "vae-conv", str(src), "-o", str(tmp_path / "e.npy")])
    one_line_error(capsys, code, match)


def _png_bytes():
    import io

    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(noise).save(buf, format="PNG")  # incompressible: ~800 bytes
    return buf.getvalue()


def test_16_bit_png_is_scaled_by_its_range_not_saturated(tmp_path):
    values = (np.arange(784).reshape(28, 28) * 83).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    x = as_images(tmp_path / "deep.png")
    np.testing.assert_allclose(x[0, 0], values / 65535.0, atol=1e-6)
    assert (x >= 1.0).mean() < 0.01


def test_vae_sample_seed_is_random_and_printed(tmp_path, capsys):
    seeds = []
    for i in range(2):
        assert main(["sample", "vae-conv", "-n", "2", "-o", str(tmp_path / f"{i}.png")]) == 0
        line = [s for s in capsys.readouterr().out.splitlines() if s.startswith("seed ")]
        seeds.append(int(line[0].split()[1]))
    assert seeds[0] != seeds[1]


def test_npy_is_streamed_and_equal_to_the_api(tmp_path):
    npy = tmp_path / "all.npy"
    assert main(["sample", "ddpm", "-n", "5", "--seed", "4", "--batch-size", "2", *QUICK,
                 "-o", str(tmp_path / "g.png"), "--npy", str(npy)]) == 0
    expected = load("ddpm", threads=1).sample(5, method="ddim", steps=2, seed=4, progress=False)
    np.testing.assert_array_equal(np.load(npy), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.npy", "g.png"]


def test_two_concurrent_runs_writing_one_path_both_succeed(tmp_path):
    args = ["sample", "vae-conv", "-n", "64", "-o", "same.png", "--npy", "same.npy"]
    procs = [subprocess.Popen([sys.executable, "-m", "latentforge.runtime.cli", *args],
                              cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300)[1] for p in procs]
    results = [(p.returncode, err) for p, err in zip(procs, results)]
    assert all(code == 0 for code, _ in results), results
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.npy", "same.png"]
    assert np.load(tmp_path / "same.npy").shape == (64, 1, 28, 28)


def test_sigint_exits_130_with_one_line_and_no_output_file(tmp_path):
    cmd = [sys.executable, "-m", "latentforge.runtime.cli", "sample", "ddpm", "-n", "4",
           "--method", "ancestral", "--threads", "1", "-o", "x.png", "--npy", "x.npy"]
    p = subprocess.Popen(cmd, cwd=tmp_path, env=BUFFERED, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    with p:
        assert p.stdout.readline().startswith("seed ")  # sampling has begun
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=60)[1].strip().splitlines()
        code = p.returncode
    assert code == 130, err
    assert err[-1] == "latentforge sample: interrupted" and "Traceback" not in "".join(err)
    assert list(tmp_path.iterdir()) == []


BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from latentforge.runtime.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("cmd", [["train", "vae-conv", "--dry-run"], ["summary", "vae-conv"],
                                 ["export", "missing.pt", "-o", "out"]])
def test_torch_free_install_says_how_to_get_the_training_extra(tmp_path, cmd):
    r = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *cmd], capture_output=True,
                       text=True, env=ENV, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    assert 'pip install "latentforge[train]"' in r.stderr and "Traceback" not in r.stderr


def test_models_skips_a_bad_folder_with_a_warning(tmp_path, capsys):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("[]")
    assert main(["models", "--path", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "warning: skipping" in captured.err and "ddpm-unet" in captured.out


def test_help_names_each_default_once():
    for cmd in (["train"], ["sample"], ["quality"], ["export"], []):
        r = run_cli(*cmd, "--help")
        text = " ".join(r.stdout.split())
        assert "(default: None)" not in text and "(default: False)" not in text, cmd
        assert not re.search(r"\(default: [^)]*\) \(default:", text), cmd


def test_csv_output_is_written_as_csv(tmp_path):
    out = tmp_path / "e.csv"
    np.save(tmp_path / "a.npy", np.zeros((2, 28, 28), np.uint8))
    assert main(["encode", "ae-conv", str(tmp_path / "a.npy"), "-o", str(out)]) == 0
    assert np.loadtxt(out, delimiter=",").shape[0] == 2


def test_readme_api_snippet_runs_as_written(tmp_path, monkeypatch):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## Using the runtime"):]
    code = section[section.index("```python") + len("```python"):section.index("```\n", 10)]
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["z"].shape == (16, 10) and scope["mu"].shape == (16, 10)


def test_export_cleans_staging_folders_of_killed_exports(tmp_path):
    from latentforge.export.atomic import clean_stale

    out = tmp_path / "model"
    dead = tmp_path / ".model.new-999999999-ab12"
    live = tmp_path / f".model.new-{os.getpid()}-cd34"
    dead.mkdir()
    live.mkdir()
    assert clean_stale(out) == [dead]
    assert live.is_dir() and not dead.exists()
