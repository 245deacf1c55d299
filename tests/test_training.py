"""AE/VAE training: real learning, denoising inputs, checkpoints, exact resume, dry runs."""
import json
from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from latentforge.runtime.cli import main
from latentforge.train.checkpoint import load_checkpoint
from latentforge.train.data import load_splits, to_float
from latentforge.train.losses import reconstruction_loss
from latentforge.train.registry import (all_specs, build_model, get_spec, make_config,
                                        model_from_checkpoint)
from latentforge.train.trainer import TrainArgs, load_task, train


def task_for(name, **args):
    spec = get_spec(name)
    config = make_config(spec, args)
    defaults = {"beta": 1.0, "recon": "bce", "noise": "none", "noise_level": 0.0}
    return build_model(spec, config), load_task(spec, config, SimpleNamespace(**{**defaults,
                                                                                **args}))


@pytest.mark.parametrize("name,steps", [("ae-conv", 250), ("vae-dense", 250)])
def test_model_overfits_64_images(name, steps, data_dir):
    x = torch.from_numpy(to_float(load_splits(data_dir, val_size=200, limit=64)["train"].images))
    torch.manual_seed(0)
    model, task = task_for(name)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3 if name.startswith("ae") else 2e-3)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        before = F.mse_loss(task.reconstruct(model, x), x).item()
    for _ in range(steps):
        losses = task.loss(model, x, None, g)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    with torch.no_grad():
        after = F.mse_loss(task.reconstruct(model, x), x).item()
    assert before > 0.15 and after < 0.01, (before, after)
    if name.startswith("vae"):
        assert losses["kl"] > 1  # the code carries information about x


class Spy(torch.nn.Module):
    """Identity 'autoencoder' that remembers its input."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        self.seen = x
        return (x * self.w).clamp(1e-4, 1 - 1e-4)


def test_denoising_feeds_noisy_input_and_scores_clean_target():
    _, task = task_for("ae-conv", noise="gaussian", noise_level=0.5)
    x = torch.rand(8, 1, 28, 28)
    spy = Spy()
    loss = task.loss(spy, x, None, torch.Generator().manual_seed(0))["loss"]
    assert not torch.equal(spy.seen, x)
    assert 0 <= spy.seen.min() and spy.seen.max() <= 1
    torch.testing.assert_close(loss, reconstruction_loss(spy(spy.seen), x, "bce"))
    again = task.loss(Spy(), x, None, torch.Generator().manual_seed(0))["loss"]
    assert torch.equal(loss, again)  # the noise comes from the epoch generator


def small_args(data_dir, out, **kw):
    return TrainArgs(**{"model": "vae-dense", "epochs": 2, "batch_size": 32, "limit": 96,
                        "val_size": 200, "data_dir": str(data_dir), "out": str(out),
                        "quiet": True, "hidden": (64, 32), "latent_dim": 4,
                        "noise": "gaussian", "noise_level": 0.3, **kw})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("full")
    return out, train(small_args(data_dir, out))


def test_checkpoint_round_trip(uninterrupted):
    out, ckpt = uninterrupted
    loaded = load_checkpoint(out / "last.pt")  # torch.load(weights_only=True)
    assert loaded["model"] == "vae-dense" and loaded["epoch"] == 2
    assert loaded["config"] == {"latent_dim": 4, "hidden": (64, 32)}
    assert {"optimizer", "rng", "args"} <= set(loaded) and loaded["optimizer"]["state"]
    assert set(loaded["metrics"]) == {"val", "test"} and loaded["metrics"]["test"]["psnr"] > 0
    spec, config, model = model_from_checkpoint(loaded)
    assert asdict(config) == ckpt["config"]
    for k, v in ckpt["model_state"].items():
        assert torch.equal(model.state_dict()[k], v), k
    assert not [p for p in out.iterdir() if ".tmp" in p.name]  # no temp file left
    assert (out / "loss.png").stat().st_size > 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_continues_to_the_uninterrupted_result(uninterrupted, tmp_path, data_dir):
    full_out, full = uninterrupted
    train(small_args(data_dir, tmp_path, epochs=1))
    resumed = train(small_args(data_dir, tmp_path, epochs=2, resume=True))
    assert resumed["epoch"] == 2
    for k, v in full["model_state"].items():
        assert torch.equal(resumed["model_state"][k], v), k
    assert resumed["metrics"] == full["metrics"]

    def rows(path):
        return [{k: v for k, v in json.loads(ln).items() if k != "time_s"}
                for ln in path.read_text().splitlines()]

    assert rows(tmp_path / "metrics.jsonl") == rows(full_out / "metrics.jsonl")


@pytest.mark.parametrize("name", sorted(all_specs()))
def test_dry_run_of_every_model_runs_one_batch_and_writes_nothing(name, tmp_path, data_dir,
                                                                  capsys):
    out = tmp_path / "run"
    assert main(["train", name, "--dry-run", "--data-dir", str(data_dir), "--val-size", "200",
                 "--batch-size", "16", "--quiet", "--out", str(out)]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["epoch"] == 1 and record["train"]["loss"] > 0
    assert not out.exists()
