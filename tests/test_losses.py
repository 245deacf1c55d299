"""Reconstruction and KL terms (Kingma & Welling 2014, App. B)."""
import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from torch.distributions import Normal, kl_divergence as torch_kl

from latentforge.train.losses import kl_divergence, reconstruction_loss, vae_loss

floats = st.floats(-4.0, 4.0, allow_nan=False, width=32)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.data())
def test_kl_equals_torch_distributions_kl(batch, dz, data):
    mu = torch.tensor(data.draw(st.lists(floats, min_size=batch * dz, max_size=batch * dz)),
                      dtype=torch.float64).view(batch, dz)
    logvar = torch.tensor(data.draw(st.lists(floats, min_size=batch * dz,
                                             max_size=batch * dz)),
                          dtype=torch.float64).view(batch, dz)
    expected = torch_kl(Normal(mu, torch.exp(0.5 * logvar)),
                        Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)
    torch.testing.assert_close(kl_divergence(mu, logvar), expected)


def test_kl_is_zero_only_at_the_prior():
    zeros = torch.zeros(3, 5)
    assert torch.equal(kl_divergence(zeros, zeros), torch.zeros(3))
    assert (kl_divergence(zeros + 0.1, zeros) > 0).all()
    assert (kl_divergence(zeros, zeros - 0.1) > 0).all()


@pytest.mark.parametrize("kind,fn", [("bce", F.binary_cross_entropy), ("mse", F.mse_loss)])
def test_reconstruction_is_summed_per_image_and_averaged_over_batch(kind, fn):
    g = torch.Generator().manual_seed(0)
    x, x_hat = torch.rand(4, 1, 28, 28, generator=g), torch.rand(4, 1, 28, 28, generator=g)
    per_image = [fn(x_hat[i], x[i], reduction="sum") for i in range(4)]
    torch.testing.assert_close(reconstruction_loss(x_hat, x, kind), torch.stack(per_image).mean())


def test_vae_loss_is_recon_plus_beta_times_kl():
    g = torch.Generator().manual_seed(1)
    x, x_hat = torch.rand(3, 1, 28, 28, generator=g), torch.rand(3, 1, 28, 28, generator=g)
    mu, logvar = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    terms = vae_loss(x_hat, x, mu, logvar, beta=4.0, recon="mse")
    torch.testing.assert_close(terms["recon"], reconstruction_loss(x_hat, x, "mse"))
    torch.testing.assert_close(terms["kl"], kl_divergence(mu, logvar).mean())
    torch.testing.assert_close(terms["loss"], terms["recon"] + 4.0 * terms["kl"])


def test_unknown_reconstruction_kind_is_rejected():
    with pytest.raises(ValueError, match="bce"):
        reconstruction_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "l1")
