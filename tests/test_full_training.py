"""Full-data acceptance runs (minutes each): excluded by default, run with `pytest -m slow`.
They need the full MNIST ($LATENTFORGE_DATA or ../shared/data/mnist)."""
import pytest

from latentforge.train.trainer import TrainArgs, train
from test_data import full_data_dir

pytestmark = pytest.mark.slow


def test_vae_conv_dz10_reaches_test_mse_0_013_in_10_epochs(tmp_path):
    ckpt = train(TrainArgs(model="vae-conv", latent_dim=10, beta=1.0, epochs=10,
                           data_dir=str(full_data_dir()), out=str(tmp_path), quiet=True))
    assert ckpt["metrics"]["test"]["mse"] <= 0.013


def test_ae_conv_gaussian_denoiser_gains_10_db(tmp_path):
    ckpt = train(TrainArgs(model="ae-conv", noise="gaussian", noise_level=0.5, epochs=20,
                           data_dir=str(full_data_dir()), out=str(tmp_path), quiet=True))
    test = ckpt["metrics"]["test"]
    assert test["psnr"] >= 18.0 and test["psnr"] - test["noisy_psnr"] >= 10.0
