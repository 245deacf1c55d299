"""The course's architecture comparison (issue 18): the six architectures of the report's
section 8 (their parameter counts pin the layer order against the course's choices),
vae-conv with 2 to 5 conv layers (defaults and shipped checkpoints unchanged), and the
conclusion checks, which must follow the numbers they are given."""
from dataclasses import asdict

import pytest
import torch

from latentforge.export import export_checkpoint
from latentforge.runtime import api
from latentforge.runtime.cli import main
from latentforge.train.checkpoint import load_checkpoint
from latentforge.train.registry import (build_model, count_parameters, get_spec, make_config,
                                        model_from_checkpoint)
from latentforge.train.report import conclusions as C
from latentforge.train.report.architectures import (CHOSEN, FAMILIES, MIDDLE, WIDEST,
                                                    plain_overrides)


def build(family, latent, arch):
    spec = get_spec(family)
    return build_model(spec, make_config(spec, {"latent_dim": latent, **arch}))


def test_the_course_choices_are_the_default_configs_with_the_course_parameter_counts():
    expected = {"vae-dense": 1_071_130, "vae-conv": 313_557}
    for family, (label, latent) in CHOSEN.items():
        arch = dict(FAMILIES[family])[label]
        assert count_parameters(build(family, latent, arch)) == expected[family]
        assert plain_overrides(family, arch) == {}  # shares the β/latent sweeps' runs
    # vae-dense's hidden is the encoder order: 784 → 512 → 256 → z (decoder 256 → 512)
    assert dict(FAMILIES["vae-dense"])[MIDDLE] == {"hidden": (512, 256)}
    assert WIDEST == "784→1024→512"


@pytest.mark.parametrize("family,label", [(f, a) for f, archs in FAMILIES.items()
                                          for a, _ in archs])
def test_every_architecture_builds_and_maps_digits_to_digits(family, label):
    model = build(family, 3, dict(FAMILIES[family])[label])
    x_hat, mu, logvar = model(torch.rand(2, 1, 28, 28))
    assert x_hat.shape == (2, 1, 28, 28) and mu.shape == logvar.shape == (2, 3)
    widths = [int(w) for w in label.split("→")[1:]]
    if family == "vae-conv":
        assert [m.out_channels for m in model.encoder if hasattr(m, "out_channels")] == widths
    else:
        assert [m.out_features for m in model.encoder if hasattr(m, "out_features")] == widths


def test_conv_vae_parameter_count_of_the_two_layer_encoder():
    k = 10
    enc = (16 * 32 + 32) + (16 * 32 * 64 + 64) + 2 * (64 * 7 * 7 * k + k)
    dec = (k * 64 * 49 + 64 * 49) + (16 * 64 * 32 + 32) + (16 * 32 + 1)
    assert count_parameters(build("vae-conv", k, {"channels": (32, 64)})) == enc + dec


@pytest.mark.parametrize("channels", [(32,), (8, 8, 8, 8, 8, 8), (32, 0, 64)])
def test_conv_vae_refuses_channel_lists_it_cannot_build(channels):
    with pytest.raises(ValueError, match="2 to 5 positive channel widths"):
        build("vae-conv", 4, {"channels": channels})


def test_the_shipped_vae_conv_checkpoint_loads_unchanged():
    ckpt = load_checkpoint(api.SHIPPED / "vae-conv" / "checkpoint.pt")
    _, config, model = model_from_checkpoint(ckpt)  # strict load_state_dict
    assert tuple(config.channels) == (32, 64, 128) and count_parameters(model) == 313_557


def test_train_with_channels_stores_them_and_the_export_serves_them(tmp_path, data_dir):
    out = tmp_path / "run"
    assert main(["summary", "vae-conv", "--channels", "16,32,64"]) == 0
    assert main(["train", "vae-conv", "--channels", "32,64", "--latent-dim", "4", "--epochs",
                 "1", "--limit", "64", "--val-size", "200", "--batch-size", "32", "--quiet",
                 "--data-dir", str(data_dir), "--out", str(out)]) == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert tuple(ckpt["config"]["channels"]) == (32, 64)
    assert asdict(model_from_checkpoint(ckpt)[1]) == {"latent_dim": 4, "channels": (32, 64)}
    export_checkpoint(ckpt, tmp_path / "export")
    vae = api.load(str(tmp_path / "export"))
    mu, logvar = vae.encode(torch.rand(3, 1, 28, 28).numpy())
    assert mu.shape == logvar.shape == (3, 4)


def cells(mse_by_latent, fd_by_latent=None, family="vae-dense", arch=MIDDLE, params=1000):
    fd_by_latent = fd_by_latent or mse_by_latent
    return [{"family": family, "architecture": arch, "latent": k, "mse": m,
             "fd": fd_by_latent[k], "parameters": params + k, "train_s": 1.0}
            for k, m in mse_by_latent.items()]


def test_small_latent_verdict_follows_the_mse():
    blurred = cells({2: 0.05, 10: 0.02})
    sharp = cells({2: 0.021, 10: 0.02})
    assert C.small_latent_blurs(blurred)["verdict"] == "confirmed"
    assert C.small_latent_blurs(sharp)["verdict"] == "not confirmed"
    assert C.small_latent_blurs(blurred + cells({2: 0.021, 10: 0.02}, arch=WIDEST))[
        "verdict"] == "partly confirmed"
    assert C.small_latent_blurs(cells({10: 0.02}))["verdict"] == "not tested"


def test_large_latent_verdict_follows_the_gain():
    flat = cells({10: 0.020, 20: 0.019, 50: 0.0188, 100: 0.019})
    better = cells({10: 0.020, 20: 0.019, 50: 0.012, 100: 0.013})
    assert C.large_latent_no_gain(flat)["verdict"] == "confirmed"
    assert C.large_latent_no_gain(better)["verdict"] == "not confirmed"
    assert "at most +36.8%" in C.large_latent_no_gain(better)["text"]  # 1 − 0.012 / 0.019
    assert C.large_latent_no_gain(cells({2: 0.05, 10: 0.02}))["verdict"] == "not tested"


def test_width_verdict_needs_little_gain_and_a_higher_cost():
    mid = cells({5: 0.020, 10: 0.018}, params=1_000_000)
    little = cells({5: 0.0195, 10: 0.0175}, arch=WIDEST, params=2_500_000)
    much = cells({5: 0.012, 10: 0.010}, arch=WIDEST, params=2_500_000)
    cheap = cells({5: 0.0195, 10: 0.0175}, arch=WIDEST, params=1_100_000)
    assert C.widest_dense_gains_little(mid + little, WIDEST, MIDDLE)["verdict"] == "confirmed"
    assert C.widest_dense_gains_little(mid + much, WIDEST, MIDDLE)["verdict"] == "not confirmed"
    assert C.widest_dense_gains_little(mid + cheap, WIDEST, MIDDLE)["verdict"] == \
        "partly confirmed"
    assert C.widest_dense_gains_little(mid, WIDEST, MIDDLE)["verdict"] == "not tested"


def test_conv_verdict_compares_the_course_choices_or_else_the_best_cells():
    conv_label, conv_k = CHOSEN["vae-conv"]
    dense_label, dense_k = CHOSEN["vae-dense"]
    dense = cells({dense_k: 0.024, 10: 0.023}, {dense_k: 350.0, 10: 340.0}, params=1_071_125)
    good = cells({conv_k: 0.012}, {conv_k: 300.0}, "vae-conv", conv_label, 313_547)
    bad = cells({conv_k: 0.030}, {conv_k: 400.0}, "vae-conv", conv_label, 313_547)
    r = C.conv_beats_dense(dense + good, CHOSEN)
    assert r["verdict"] == "confirmed" and abs(r["parameter_ratio"] - 0.2927) < 1e-3
    assert r["dense"] == {"architecture": dense_label, "latent": dense_k}
    assert C.conv_beats_dense(dense + bad, CHOSEN)["verdict"] == "not confirmed"
    off_grid = cells({2: 0.03, 10: 0.02}, {2: 400.0, 10: 330.0}, params=1_071_125)
    r = C.conv_beats_dense(off_grid + good, CHOSEN)
    assert r["dense"] == {"architecture": dense_label, "latent": 10}  # the lowest FD
    assert "outside this grid" in r["text"] and r["verdict"] == "confirmed"
    mixed = cells({conv_k: 0.012}, {conv_k: 360.0}, "vae-conv", conv_label, 313_547)
    assert C.conv_beats_dense(dense + mixed, CHOSEN)["verdict"] == "partly confirmed"
