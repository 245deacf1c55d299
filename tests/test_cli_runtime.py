"""CLI smoke tests of the torch-free commands on the shipped models."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from latentforge.runtime.cli import main
from latentforge.train.data import load_mnist
from test_packaging import BLOCK_TORCH


@pytest.fixture(scope="module")
def pngs(data_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("pngs")
    paths = []
    for i, img in enumerate(load_mnist(data_dir).test_images[:3]):
        paths.append(str(d / f"{i}.png"))
        Image.fromarray(img).save(paths[-1])
    return paths


def _png_size(path):
    with Image.open(path) as im:
        return im.size


def test_sample_writes_grid_and_array(tmp_path, capsys):
    out, npy = tmp_path / "d.png", tmp_path / "d.npy"
    assert main(["sample", "ddpm", "-n", "6", "--method", "ddim", "--steps", "4", "--seed", "1",
                 "-o", str(out), "--npy", str(npy)]) == 0
    x = np.load(npy)
    assert x.shape == (6, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert _png_size(out)[0] > 28 * 2
    assert "seed 1" in capsys.readouterr().out


def test_vae_sample_from_prior(tmp_path):
    assert main(["sample", "vae-conv", "-n", "9", "-o", str(tmp_path / "v.png")]) == 0
    assert (tmp_path / "v.png").stat().st_size > 0


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_encode_writes_embeddings(pngs, tmp_path, suffix):
    out = tmp_path / f"emb{suffix}"
    assert main(["encode", "vae-conv", *pngs, "-o", str(out)]) == 0
    emb = np.load(out) if suffix == ".npy" else np.loadtxt(out, delimiter=",")
    assert emb.shape == (3, 10)


def test_reconstruct_denoise_interpolate(pngs, tmp_path):
    assert main(["reconstruct", "vae-dense", *pngs, "-o", str(tmp_path / "r.png")]) == 0
    assert main(["denoise", "ae-conv", *pngs, "--add-noise", "0.5", "-o", str(tmp_path / "n.png"),
                 "--npy", str(tmp_path / "n.npy")]) == 0
    assert np.load(tmp_path / "n.npy").shape == (3, 1, 28, 28)
    assert main(["interpolate", "vae-conv", pngs[0], pngs[1], "--steps", "5",
                 "-o", str(tmp_path / "i.png")]) == 0
    w, h = _png_size(tmp_path / "i.png")
    assert w > 4 * h


def test_models_lists_shipped_with_metrics(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("ddpm-unet", "vae-conv", "ae-conv"):
        assert name in out
    assert "mse=" in out


def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, capsys):
    assert main(["sample", "stylegan", "-n", "1"]) == 2
    assert "unknown model 'stylegan'" in capsys.readouterr().err
    assert main(["encode", "vae-conv", str(tmp_path / "missing.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sample", "ddpm", "-n", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err


def test_sampling_and_encoding_never_import_torch(tmp_path):
    x, e = str(tmp_path / "x.npy"), str(tmp_path / "e.npy")
    code = BLOCK_TORCH + textwrap.dedent(f"""
        from latentforge.runtime.cli import main
        main(["sample", "ddpm", "-n", "2", "--method", "ddim", "--steps", "3",
              "-o", {str(tmp_path / 'x.png')!r}, "--npy", {x!r}])
        main(["encode", "vae-conv", {x!r}, "-o", {e!r}])
        assert "torch" not in sys.modules
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert np.load(e).shape == (2, 10)


def test_models_describes_int8_variants_by_their_own_measurements(capsys):
    """Not the source's fp32 test metrics, which their manifests carry."""
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "int8 unet of ddpm-unet: classifier FD" in lines["ddpm-unet-int8"]
    assert "int8 encoder of vae-conv: reconstruction FD" in lines["vae-conv-int8"]
    assert "mse=" not in lines["vae-conv-int8"]
