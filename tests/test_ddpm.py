"""DDPM: U-Net size, schedule properties, forward process, reference samplers, learning."""
import math

import numpy as np
import pytest
import torch

from latentforge.train.registry import count_parameters
from latentforge.train.samplers import ddim_step, ddpm_step, sample
from latentforge.train.schedule import NoiseSchedule, ScheduleConfig
from latentforge.train.unet import UNet, UNetConfig


def test_unet_has_course_parameter_count_and_shapes():
    net = UNet(UNetConfig())
    assert count_parameters(net) == 2_495_457
    eps = net(torch.zeros(3, 1, 28, 28), torch.tensor([0.0, 500.0, 999.0]))
    assert eps.shape == (3, 1, 28, 28)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_alphas_cumprod_strictly_decreasing_in_unit_interval(kind):
    s = NoiseSchedule(ScheduleConfig(kind=kind))
    ac = s.alphas_cumprod
    assert ac.dtype == np.float32 and ac.shape == (1000,)
    assert np.all(np.diff(s.float64["alphas_cumprod"]) < 0)
    assert np.all((ac > 0) & (ac < 1))


def test_float32_arrays_are_float64_rounded_once():
    s = NoiseSchedule()
    for name in s.ARRAYS:
        assert np.array_equal(getattr(s, name), s.float64[name].astype(np.float32)), name
    assert s.betas[0] == np.float32(1e-4) and s.betas[-1] == np.float32(0.02)
    assert s.posterior_variance[0] == 0.0  # β̃_1 = 0: x_0 is deterministic given x_1


def test_schedule_rejects_unknown_kind_listing_choices():
    with pytest.raises(ValueError, match="linear.*cosine"):
        NoiseSchedule(ScheduleConfig(kind="quadratic"))


def test_q_sample_has_closed_form_mean_and_variance():
    s = NoiseSchedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000, 1), 0.7)
    for t in (0, 250, 999):
        tt = torch.full((len(x0),), t, dtype=torch.long)
        xt = s.q_sample(x0, tt, torch.randn(x0.shape, generator=g))
        ac = float(s.float64["alphas_cumprod"][t])
        assert abs(float(xt.mean()) - math.sqrt(ac) * 0.7) < 0.01
        assert abs(float(xt.var()) - (1 - ac)) < 0.01


def test_ddim_timesteps_even_and_start_at_T_minus_1():
    s = NoiseSchedule()
    ts = s.ddim_timesteps(50)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 50 and np.all(np.diff(ts) < 0)
    assert np.array_equal(s.ddim_timesteps(1000), np.arange(999, -1, -1))


def toy_eps(x, t):
    """A deterministic stand-in for the network, smooth in x and t."""
    return 0.3 * torch.tanh(x) + 1e-4 * t.view(-1, 1, 1, 1)


def schedule_in_float64() -> NoiseSchedule:
    """The same schedule with its float64 arrays: tests of identities between formulas."""
    s = NoiseSchedule()
    for name in s.ARRAYS:
        setattr(s, name, s.float64[name])
    return s


def test_ddim_eta1_all_steps_equals_ddpm_posterior_sampler():
    """Song et al. 2021: η = 1 over all T steps is the DDPM posterior (σ² = β̃_t).

    Tolerance 1e-3: the two formulas are identical in exact arithmetic (the single-step test
    below checks that to 1e-5), but they round differently in float32 — DDIM's
    1 − ᾱ_t/ᾱ_{t−1} against DDPM's β_t (relative 3e-4 near t = 1, where 1 − ᾱ_t ≈ 2e-4) —
    and 1000 steps accumulate ~1e-4."""
    noise = torch.randn(1001, 4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ddpm, _ = sample(toy_eps, NoiseSchedule(), 4, "ddpm", noise=noise)
    ddim, _ = sample(toy_eps, NoiseSchedule(), 4, "ddim", steps=1000, eta=1.0, noise=noise)
    assert float((ddpm - ddim).abs().max()) <= 1e-3


def test_ddim_and_ddpm_single_steps_agree():
    s = schedule_in_float64()
    g = torch.Generator().manual_seed(2)
    x, eps, z = (torch.randn(2, 1, 28, 28, generator=g) for _ in range(3))
    for t in (1, 10, 500, 999):
        assert torch.allclose(ddpm_step(s, x, eps, t, z), ddim_step(s, x, eps, t, t - 1, z,
                                                                    eta=1.0), atol=1e-5)


def test_ancestral_t0_step_inverts_forward_process():
    s = NoiseSchedule()
    x0, eps = torch.rand(3, 1, 28, 28) * 2 - 1, torch.randn(3, 1, 28, 28)
    xt = s.q_sample(x0, torch.zeros(3, dtype=torch.long), eps)
    out, _ = sample(lambda x, t: eps, s, 3, "ancestral", timesteps=[0], x_T=xt)
    assert torch.allclose(out, x0, atol=1e-5)


def test_sampler_noise_source_keys_and_capture():
    keys = []

    def noise(key, shape):
        keys.append(key)
        return torch.zeros(shape)

    s = NoiseSchedule(ScheduleConfig(num_timesteps=10))
    out, cap = sample(toy_eps, s, 2, "ancestral", noise=noise, capture=(9, 5))
    assert keys == list(range(0, 10))  # x_T, then z for t = 9..1 (none at t = 0)
    assert set(cap) == {9, 5} and torch.all(cap[9] == 0)
    assert out.abs().max() <= 1.0


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match="ancestral.*ddpm.*ddim"):
        sample(toy_eps, NoiseSchedule(), 1, "euler")


def test_unet_overfits_tiny_set():
    """A real learning test: ε-prediction loss on 16 images drops well below its start."""
    from latentforge.train.data import load_splits, to_float
    from pathlib import Path

    torch.manual_seed(0)
    x0 = torch.from_numpy(to_float(load_splits(Path(__file__).parent / "data", val_size=100)
                                   ["train"].images[:16], "symmetric"))
    s, net = NoiseSchedule(), UNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(120):
        t = torch.randint(0, 1000, (16,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        loss = torch.nn.functional.mse_loss(net(s.q_sample(x0, t, noise), t.float()), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[:5]) > 0.8 and np.mean(losses[-20:]) < 0.25, losses[-20:]


def test_forward_and_reverse_strips_are_written(tmp_path):
    from PIL import Image

    from latentforge.train.figures import forward_strip, reverse_strip

    s = NoiseSchedule()
    ts = forward_strip(torch.zeros(1, 1, 28, 28), s, tmp_path / "f.png")
    assert ts == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999]
    reverse_strip(toy_eps, s, tmp_path / "r.png", n=2)
    with Image.open(tmp_path / "f.png") as f, Image.open(tmp_path / "r.png") as r:
        assert f.size[0] > 10 * f.size[1]  # one row of 11 digits
        assert r.size == (11 * (28 + 2) * 2 + 4, 2 * (28 + 2) * 2 + 4)  # 2 chains of 11
