"""Evaluation metrics (PSNR, SSIM) and `latentforge evaluate`: JSON, grid, denoising gain."""
import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from latentforge.runtime.cli import main
from latentforge.train.checkpoint import save_checkpoint
from latentforge.train.data import load_splits, to_float
from latentforge.train.evaluate import psnr, ssim
from latentforge.train.losses import kl_divergence
from latentforge.train.registry import build_model, get_spec, make_config


def ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 with scipy's Gaussian filter (σ=1.5, radius 5), border cropped — the
    recipe of skimage's structural_similarity(gaussian_weights=True,
    use_sample_covariance=False, data_range=1)."""
    f = lambda im: gaussian_filter(im, 1.5, truncate=3.5)  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) *
                                                     (va + vb + c2))
    return float(s[5:-5, 5:-5].mean())


def test_psnr_of_a_known_error():
    x = torch.zeros(2, 1, 28, 28)
    torch.testing.assert_close(psnr(x + 0.1, x), torch.full((2,), 20.0, dtype=torch.float64))
    assert psnr(x, x).tolist() == [100.0, 100.0]  # capped, not inf


def test_ssim_matches_reference_and_ranks_noise(data_dir):
    x = torch.from_numpy(to_float(load_splits(data_dir, val_size=200, limit=4)["test"].images))
    g = torch.Generator().manual_seed(0)
    noisy = [(x + s * torch.randn(x.shape, generator=g)).clamp(0, 1) for s in (0.1, 0.3, 0.6)]
    for y in noisy:
        expected = [ssim_reference(x[i, 0].double().numpy(), y[i, 0].double().numpy())
                    for i in range(4)]
        np.testing.assert_allclose(ssim(y, x).numpy(), expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ssim(x, x), torch.ones(4, dtype=torch.float64))
    scores = [ssim(y, x).mean() for y in noisy]
    assert scores[0] > scores[1] > scores[2]


def write_checkpoint(path, name, data_dir, **args):
    spec = get_spec(name)
    config = make_config(spec, {})
    torch.manual_seed(0)
    model = build_model(spec, config)
    save_checkpoint(path, {"model": name, "kind": spec.kind, "config": asdict(config),
                           "model_state": model.state_dict(), "ema_state": None, "epoch": 1,
                           "args": {"data_dir": str(data_dir), "noise": "none",
                                    "noise_level": 0.0, "beta": 1.0, **args},
                           "metrics": {}})
    return model


def test_evaluate_denoiser_reports_noisy_and_denoised_scores(tmp_path, data_dir):
    write_checkpoint(tmp_path / "last.pt", "ae-conv", data_dir, noise="gaussian",
                     noise_level=0.5)
    assert main(["evaluate", str(tmp_path / "last.pt"), "--limit", "40"]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    m = report["metrics"]
    assert report["n_images"] == 40 and report["noise"] == "gaussian"
    assert {"mse", "bce", "psnr", "ssim", "noisy_mse", "noisy_psnr", "noisy_ssim",
            "psnr_gain"} <= set(m)
    assert m["psnr_gain"] == pytest.approx(m["psnr"] - m["noisy_psnr"])
    assert 5 < m["noisy_psnr"] < 12  # std 0.5 noise, clipped to [0, 1]
    with Image.open(tmp_path / "eval.png") as grid:
        size = grid.size
    assert size == (2 * (16 * 30 + 2), 2 * (3 * 30 + 2))  # inputs / targets / outputs


def test_evaluate_vae_scores_the_mean_reconstruction(tmp_path, data_dir):
    model = write_checkpoint(tmp_path / "last.pt", "vae-conv", data_dir).eval()
    out = tmp_path / "eval"
    assert main(["evaluate", str(tmp_path / "last.pt"), "--limit", "40", "--data-dir",
                 str(data_dir), "--out", str(out)]) == 0
    m = json.loads((out / "eval.json").read_text())["metrics"]
    assert "noisy_psnr" not in m
    x = torch.from_numpy(to_float(load_splits(data_dir, val_size=0, limit=40)["test"].images))
    with torch.no_grad():
        mu, logvar = model.encode(x)
        x_hat = model.decode(mu)
    assert m["mse"] == pytest.approx(float((x_hat - x).pow(2).mean()), rel=1e-5)
    assert m["kl"] == pytest.approx(float(kl_divergence(mu, logvar).mean()), rel=1e-5)
    assert m["neg_elbo_mu"] == pytest.approx(m["bce"] + m["kl"])


def test_evaluate_rejects_a_ddpm_checkpoint(tmp_path, data_dir, capsys):
    write_checkpoint(tmp_path / "last.pt", "ddpm-unet", data_dir)
    assert main(["evaluate", str(tmp_path / "last.pt"), "--limit", "8"]) == 2
    assert "ae and vae" in capsys.readouterr().err
