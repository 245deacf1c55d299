"""DDPM training recipe: the course's time embedding, the lr schedule, --init-from, and
shipped files free of the training machine's paths."""
import json
import math
from pathlib import Path

import pytest
import torch

from latentforge.runtime.hashing import sha256_file
from latentforge.train.checkpoint import load_checkpoint, portable_args, save_checkpoint, \
    weights_only
from latentforge.train.registry import config_from_dict, get_spec
from latentforge.train.trainer import TrainArgs, learning_rate, train
from latentforge.train.unet import UNet, UNetConfig, timestep_embedding

MODELS = Path(__file__).resolve().parents[1] / "runtime" / "models"


def test_course_time_embedding_matches_values_written_from_its_definition():
    # The course's SinusoidalPositionEmbeddings, dim 8 (half = 4):
    # freqs_i = exp(−ln(10000)·i/(half − 1)) = 1, 10000^(−1/3), 10000^(−2/3), 1e-4;
    # embedding = cat(sin(t·freqs), cos(t·freqs)). Values to 6 decimals, by hand.
    expected = torch.tensor([
        [0.841471, 0.046399, 0.002154, 0.000100, 0.540302, 0.998923, 0.999998, 1.000000],
        [-0.970528, -0.820565, 0.512942, 0.024997, 0.240988, 0.571553, 0.858423, 0.999688]])
    got = timestep_embedding(torch.tensor([1.0, 250.0]), 8, "course")
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)


def test_half_embedding_is_the_old_formula_and_differs_from_the_course():
    t = torch.tensor([250.0])
    old = timestep_embedding(t, 8, "half")
    freqs = [math.exp(-math.log(10000) * i / 4) for i in range(4)]
    want = [math.sin(250 * f) for f in freqs] + [math.cos(250 * f) for f in freqs]
    torch.testing.assert_close(old, torch.tensor([want]), atol=2e-6, rtol=0)
    assert (old - timestep_embedding(t, 8, "course")).abs().max() > 0.1


def test_new_unets_use_the_course_embedding_and_old_checkpoints_load_as_half():
    assert UNetConfig().time_embedding == "course"
    spec = get_spec("ddpm-unet")
    old = config_from_dict(spec, {"channels": [32, 64, 128], "bottleneck": 256,
                                  "time_dim": 64, "image_size": 28})
    assert old.time_embedding == "half"
    assert config_from_dict(spec, {"time_embedding": "course"}).time_embedding == "course"


def test_unknown_time_embedding_lists_the_choices():
    with pytest.raises(ValueError, match="course, half"):
        UNet(UNetConfig(time_embedding="fourier"))
    with pytest.raises(ValueError, match="course, half"):
        timestep_embedding(torch.zeros(1), 8, "fourier")


def test_ddpm_recipe_defaults_and_other_models_unchanged():
    ddpm = TrainArgs(model="ddpm-unet").resolved()
    assert (ddpm.lr_schedule, ddpm.warmup_steps, ddpm.min_lr, ddpm.grad_clip) == \
        ("cosine", 500, 1e-6, 1.0)
    vae = TrainArgs(model="vae-conv").resolved()
    assert (vae.lr_schedule, vae.warmup_steps, vae.grad_clip, vae.lr) == \
        ("constant", 0, 0.0, 1e-3)
    assert TrainArgs(model="ddpm-unet", grad_clip=0.0).resolved().grad_clip == 0.0


def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_min_lr():
    args = TrainArgs(model="ddpm-unet", lr=1e-3, warmup_steps=10, min_lr=1e-5,
                     lr_schedule="cosine")
    lrs = [learning_rate(args, s, 110) for s in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[10] == pytest.approx(1e-3)  # cosine starts at the peak
    assert lrs[60] == pytest.approx((1e-3 + 1e-5) / 2)  # half-way
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert learning_rate(args, 110, 110) == pytest.approx(1e-5)
    const = TrainArgs(model="vae-conv", lr=2e-3, warmup_steps=0, lr_schedule="constant")
    assert {learning_rate(const, s, 50) for s in range(50)} == {2e-3}
    with pytest.raises(ValueError, match="constant, cosine"):
        learning_rate(TrainArgs(model="vae-conv", lr_schedule="step", warmup_steps=0), 0, 1)


def ddpm_args(data_dir, out, **kw):
    return TrainArgs(**{"model": "ddpm-unet", "epochs": 1, "batch_size": 16, "limit": 32,
                        "val_size": 16, "data_dir": str(data_dir), "out": str(out),
                        "quiet": True, "sample_every": 0, **kw})


def test_init_from_starts_model_and_ema_from_the_weights_with_a_fresh_optimizer(tmp_path,
                                                                               data_dir):
    first = train(ddpm_args(data_dir, tmp_path / "a"))
    shipped = tmp_path / "shipped.pt"
    save_checkpoint(shipped, weights_only(first))  # EMA weights only, no optimizer
    # lr 0 throughout (warm-up from 0 to 0): the weights must come through unchanged
    second = train(ddpm_args(data_dir, tmp_path / "b", init_from=str(shipped), lr=0.0))
    for k, v in first["ema_state"].items():
        assert torch.equal(second["model_state"][k], v), k
        assert torch.equal(second["ema_state"][k], v), k
    assert second["epoch"] == 1  # a new run, not a resume
    steps = {int(s["step"]) for s in second["optimizer"]["state"].values()}
    assert steps == {2}  # fresh Adam: only this run's 2 steps
    assert second["init_from"]["sha256"] == sha256_file(shipped)
    assert second["init_from"]["file"] == "shipped.pt" and second["init_from"]["epoch"] == 1


def test_init_from_a_checkpoint_of_another_model_is_a_clear_error(tmp_path, data_dir):
    ckpt = {"model": "vae-conv", "config": {}, "model_state": {}}
    save_checkpoint(tmp_path / "vae.pt", ckpt)
    with pytest.raises(ValueError, match="'vae-conv' checkpoint, not 'ddpm-unet'"):
        train(ddpm_args(data_dir, tmp_path / "c", init_from=str(tmp_path / "vae.pt")))


def test_a_resume_that_changes_epochs_is_recorded_and_the_card_gives_each_command(tmp_path,
                                                                               data_dir):
    from latentforge.export.ship import reproduce_text

    out = tmp_path / "run"
    train(ddpm_args(data_dir, out, epochs=3, lr_schedule="cosine"))
    ckpt = load_checkpoint(out / "last.pt")
    ckpt["epoch"] = 1  # as if stopped after epoch 1 of 3
    save_checkpoint(out / "last.pt", ckpt)
    final = train(ddpm_args(data_dir, out, epochs=2, lr_schedule="cosine", resume=True))
    assert final["segments"] == [{"first_epoch": 1, "epochs": 3},
                                 {"first_epoch": 2, "epochs": 2}]
    text = reproduce_text(weights_only(final))
    assert "--epochs 3" in text and "(epochs 1–1, stopped after epoch 1)" in text
    assert "--resume --epochs 2" in text.split(", then ")[1] and "(epochs 2–2)" in text
    unchanged = train(ddpm_args(data_dir, out, epochs=3, lr_schedule="cosine", resume=True))
    assert len(unchanged["segments"]) == 3  # 2 → 3 is another horizon change


def test_portable_args_drop_machine_paths():
    args = {"data_dir": "/data/mnist", "out": "/home/me/runs/x", "device": "cuda",
            "init_from": "/home/me/base.pt", "lr": 5e-4}
    assert portable_args(args) == {"init_from": "base.pt", "lr": 5e-4}


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


@pytest.mark.parametrize("name", sorted(p.name for p in MODELS.iterdir() if p.is_dir()))
def test_shipped_checkpoint_and_manifest_carry_no_absolute_paths(name):
    manifest = json.loads((MODELS / name / "manifest.json").read_text())
    if manifest.get("quantization"):  # an int8 variant: no checkpoint of its own
        assert not (MODELS / name / "checkpoint.pt").exists()
        assert not [s for s in _strings(manifest) if s.startswith(("/", "~")) or ":\\" in s]
        return
    ckpt = load_checkpoint(MODELS / name / "checkpoint.pt")
    meta = {k: v for k, v in ckpt.items() if not k.endswith("state")}
    found = [s for s in _strings([manifest, meta]) if s.startswith(("/", "~")) or ":\\" in s]
    assert not found
    assert manifest["training"] == ckpt["args"]  # the recipe travels with the model


def test_bf16_step_gives_the_fp32_loss_to_bf16_precision_with_fp32_weights(data_dir):
    from latentforge.train.data import load_splits, to_float
    from latentforge.train.train_ddpm import DDPMTask
    from latentforge.train.trainer import training_precision

    x = torch.from_numpy(to_float(load_splits(str(data_dir), val_size=0, limit=16)["train"]
                                  .images, "symmetric"))  # (16, 1, 28, 28)
    model = UNet(UNetConfig()).train()
    args = ddpm_args(data_dir, "unused")
    task = DDPMTask(get_spec("ddpm-unet"), model.config, args)
    with torch.no_grad():
        fp32 = float(task._loss(model, x, torch.Generator().manual_seed(3)))
    autocast = training_precision(TrainArgs(model="ddpm-unet", precision="bf16"),
                                  torch.device("cpu"), model)
    with autocast():
        loss = task._loss(model, x.contiguous(memory_format=torch.channels_last),
                          torch.Generator().manual_seed(3))
    assert loss.dtype == torch.float32  # the loss itself is fp32
    # bf16 keeps 8 mantissa bits: the loss of the same draws within 2% (measured: 2e-6 here,
    # 0.6% on the shipped weights, where the loss is 40x smaller)
    assert abs(loss.item() - fp32) <= 0.02 * fp32
    loss.backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32
               for p in model.parameters())
    assert model.out.weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_run_is_recorded_in_checkpoint_and_command_and_resume_keeps_it(tmp_path,
                                                                             data_dir):
    from latentforge.export.ship import command_line

    out = tmp_path / "bf16"
    ckpt = train(ddpm_args(data_dir, out, precision="bf16"))
    assert ckpt["args"]["precision"] == "bf16"
    assert all(v.dtype == torch.float32 for v in ckpt["ema_state"].values()
               if v.is_floating_point())
    assert math.isfinite(ckpt["metrics"]["val"]["loss"])
    assert "--precision bf16" in command_line(weights_only(ckpt))
    assert "--precision" not in command_line(weights_only(train(ddpm_args(data_dir,
                                                                          tmp_path / "f"))))
    with pytest.raises(ValueError, match="--precision fp32 contradicts the checkpoint's bf16"):
        train(ddpm_args(data_dir, out, epochs=2, resume=True, precision="fp32"))


def test_unknown_precision_lists_the_choices(tmp_path, data_dir):
    with pytest.raises(ValueError, match="fp32, bf16"):
        train(ddpm_args(data_dir, tmp_path / "p", precision="fp16"))
