"""P2 loss weighting for the DDPM (Choi et al. 2022): the weights, the weighted training loss,
the unweighted validation number, and the flag's checks and record."""
import math

import numpy as np
import pytest
import torch

from latentforge.train.registry import get_spec
from latentforge.train.schedule import NoiseSchedule
from latentforge.train.train_ddpm import DDPMTask
from latentforge.train.trainer import train
from latentforge.train.unet import UNet, UNetConfig
from test_ddpm_recipe import ddpm_args  # the same one-epoch, 32-digit run


def test_p2_weights_with_k1_gamma1_are_one_minus_alpha_bar_and_gamma0_is_uniform():
    s = NoiseSchedule()  # linear β 1e-4 … 0.02, T = 1000
    # 1/(1 + ᾱ/(1−ᾱ)) = 1 − ᾱ; at t = 0, ᾱ_0 = 1 − β_1 = 0.9999, so λ_0 = 1e-4 (by hand)
    w = s.p2_weights(1.0, 1.0)
    assert w[0] == pytest.approx(1e-4, rel=1e-6)
    np.testing.assert_allclose(w, 1.0 - s.float64["alphas_cumprod"], rtol=1e-12)
    assert np.all(np.diff(w) > 0)  # more weight the noisier the step
    np.testing.assert_array_equal(s.p2_weights(0.0), np.ones(1000))
    # γ = 0.5, k = 2 at t = 0: (2 + 9999)^-0.5
    assert s.p2_weights(0.5, 2.0)[0] == pytest.approx(1 / math.sqrt(10001.0), rel=1e-6)


@pytest.mark.parametrize("gamma,k", [(-0.5, 1.0), (1.0, 0.0)])
def test_p2_weights_reject_negative_gamma_and_nonpositive_k(gamma, k):
    with pytest.raises(ValueError, match="gamma >= 0 and k > 0"):
        NoiseSchedule().p2_weights(gamma, k)


def test_weighted_training_loss_is_the_mean_of_lambda_t_times_each_draws_mse(data_dir):
    torch.manual_seed(0)
    model = UNet(UNetConfig()).eval()
    x = torch.randn(8, 1, 28, 28).clamp(-1, 1)
    task = DDPMTask(get_spec("ddpm-unet"), model.config,
                    ddpm_args(data_dir, "unused", p2_gamma=1.0))
    with torch.no_grad():
        got = float(task.loss(model, x, None, torch.Generator().manual_seed(5))["loss"])
        # the same draws by hand
        g = torch.Generator().manual_seed(5)
        t = torch.randint(0, 1000, (8,), generator=g)
        noise = torch.randn(x.shape, generator=g)
        eps = model(task.schedule.q_sample(x, t, noise), t.float())
        lam = torch.from_numpy(1.0 - task.schedule.float64["alphas_cumprod"]).float()[t]
        want = float((lam * (eps - noise).pow(2).mean((1, 2, 3))).mean())
        plain = float((eps - noise).pow(2).mean())
        val = task.val_metrics(model, x, None, torch.Generator().manual_seed(5))["loss"]
    assert got == pytest.approx(want, rel=1e-5)
    assert got < plain  # every λ_t < 1
    assert val == pytest.approx(plain, rel=1e-5)  # validation stays the unweighted ε-MSE


def test_gamma_zero_trains_on_l_simple_exactly(data_dir):
    model = UNet(UNetConfig()).eval()
    x = torch.zeros(4, 1, 28, 28)
    task = DDPMTask(get_spec("ddpm-unet"), model.config, ddpm_args(data_dir, "unused"))
    assert task.weights is None
    with torch.no_grad():
        a = task.loss(model, x, None, torch.Generator().manual_seed(1))["loss"]
        b = task.val_metrics(model, x, None, torch.Generator().manual_seed(1))["loss"]
    assert float(a) == b


@pytest.mark.parametrize("kw,flag", [({"p2_gamma": -1.0}, "--p2-gamma"),
                                     ({"p2_gamma": 1.0, "p2_k": 0.0}, "--p2-k")])
def test_bad_p2_flags_name_the_flag_before_any_work(tmp_path, data_dir, kw, flag):
    with pytest.raises(ValueError, match=flag):
        train(ddpm_args(data_dir, tmp_path / "bad", **kw))
    assert not (tmp_path / "bad").exists()


def test_p2_run_is_recorded_in_the_checkpoint_and_command_and_resume_keeps_it(tmp_path,
                                                                            data_dir):
    from latentforge.export.ship import command_line
    from latentforge.train.checkpoint import weights_only

    out = tmp_path / "p2"
    ckpt = train(ddpm_args(data_dir, out, p2_gamma=1.0))
    assert ckpt["args"]["p2_gamma"] == 1.0 and ckpt["args"]["p2_k"] == 1.0
    assert "--p2-gamma 1.0" in command_line(weights_only(ckpt))
    with pytest.raises(ValueError, match="--p2-gamma 0.0 contradicts the checkpoint's 1.0"):
        train(ddpm_args(data_dir, out, epochs=2, resume=True, p2_gamma=0.0))
