"""AE/VAE architectures: the issue's exact parameter counts, the export API, `summary`."""
import pytest
import torch

from latentforge.runtime.cli import main
from latentforge.train.registry import (all_specs, build_model, count_parameters, get_spec,
                                        make_config, model_names)

AE_MODELS = ["ae-dense1", "ae-dense2", "ae-conv"]
VAE_MODELS = ["vae-dense", "vae-conv"]


def build(name, **overrides):
    spec = get_spec(name)
    return build_model(spec, make_config(spec, overrides))


@pytest.mark.parametrize("name,overrides,expected", [
    ("ae-dense1", {"latent_dim": 64}, 101_200),
    ("ae-dense2", {"latent_dim": 64}, 218_192),
    ("ae-conv", {"latent_dim": 64}, 210_369),
    ("vae-dense", {"latent_dim": 5}, 1_071_130),
    ("vae-conv", {"latent_dim": 10}, 313_557),
])
def test_parameter_counts_match_the_issue(name, overrides, expected):
    assert count_parameters(build(name, **overrides)) == expected
    assert count_parameters(build(name)) == expected  # the stated config is the default


@pytest.mark.parametrize("k", [2, 20])
def test_dense_parameter_counts_follow_latent_and_widths(k):
    assert count_parameters(build("ae-dense1", latent_dim=k)) == 784 * k + k + k * 784 + 784
    h1, h2 = 1024, 512  # the widest sweep point
    enc = 784 * h1 + h1 + h1 * h2 + h2 + 2 * (h2 * k + k)
    dec = k * h2 + h2 + h2 * h1 + h1 + h1 * 784 + 784
    assert count_parameters(build("vae-dense", latent_dim=k, hidden=(h1, h2))) == enc + dec


@pytest.mark.parametrize("name", AE_MODELS)
def test_autoencoder_api_shapes_and_range(name):
    model = build(name, latent_dim=7, **({"channels": (8, 16)} if name == "ae-conv" else {}))
    x = torch.rand(3, 1, 28, 28)
    z = model.encode(x)
    assert z.shape == (3, 7)
    x_hat = model.decode(z)
    assert x_hat.shape == (3, 1, 28, 28)
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    torch.testing.assert_close(model(x), x_hat)


@pytest.mark.parametrize("name", VAE_MODELS)
def test_vae_api_shapes_and_reparameterization(name):
    model = build(name, latent_dim=3)
    x = torch.rand(4, 1, 28, 28)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (4, 3)
    z1 = model.reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    z2 = model.reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    assert torch.equal(z1, z2) and not torch.equal(z1, mu)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(z1, mu + torch.exp(0.5 * logvar) * eps)
    x_hat, mu2, logvar2 = model(x)
    assert x_hat.shape == (4, 1, 28, 28) and torch.equal(mu2, mu) and torch.equal(logvar2, logvar)


@pytest.mark.parametrize("act", ["none", "relu", "sigmoid", "tanh"])
def test_dense1_code_activation_is_applied(act):
    model = build("ae-dense1", activation=act)
    z = model.encode(torch.rand(8, 1, 28, 28) * 4 - 2)
    lo, hi = {"none": (-1e9, 1e9), "relu": (0, 1e9), "sigmoid": (0, 1), "tanh": (-1, 1)}[act]
    assert lo <= z.min() and z.max() <= hi
    if act == "none":
        assert z.min() < 0  # a linear code is not squashed


def test_unknown_activation_lists_choices():
    with pytest.raises(ValueError, match="none, relu|'none', 'relu'"):
        build("ae-dense2", activation="gelu")


def test_registered_models_are_listed_without_torch():
    assert set(all_specs()) <= set(model_names())


@pytest.mark.parametrize("name", AE_MODELS + VAE_MODELS + ["ddpm-unet"])
def test_summary_table_ends_with_exact_total(name, capsys):
    assert main(["summary", name]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    total = count_parameters(build(name))
    assert lines[-1] == f"total parameters: {total:,}"
    first, second = [i for i, ln in enumerate(lines) if set(ln) == {"-"}]
    rows = lines[first + 1:second]  # layer, output shape, parameters
    assert sum(int(r.split()[-1].replace(",", "")) for r in rows) == total
    if name == "ddpm-unet":
        assert lines[-1] == "total parameters: 2,495,457"


def test_summary_applies_config_flags(capsys):
    assert main(["summary", "vae-dense", "--latent-dim", "2", "--hidden", "256,128"]) == 0
    out = capsys.readouterr().out
    assert "(B, 2)" in out and "(B, 256)" in out
    total = count_parameters(build("vae-dense", latent_dim=2, hidden=(256, 128)))
    assert out.strip().endswith(f"total parameters: {total:,}")
