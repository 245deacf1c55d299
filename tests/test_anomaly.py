"""Anomaly scores (issue 17): AE/VAE ``score`` through the runtime, the `score` command, the
runtime's AUROC against scikit-learn's, and `--exclude-digits` (leave-one-digit-out data)."""
import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import roc_auc_score

from latentforge.runtime import load
from latentforge.runtime.anomaly import auroc, bernoulli_nll, kl_to_standard_normal
from latentforge.runtime.api import SHIPPED
from latentforge.runtime.cli import main
from latentforge.train.checkpoint import load_checkpoint
from latentforge.train.data import load_mnist, load_splits
from latentforge.train.registry import model_from_checkpoint
from latentforge.train.trainer import TrainArgs, train


@pytest.fixture(scope="module")
def digits(data_dir):
    m = load_mnist(data_dir)
    return m.test_images[:40], m.test_labels[:40]


@pytest.fixture(scope="module")
def vae():
    return load("vae-conv", threads=1)


# ---------------------------------------------------------------- AUROC
@pytest.mark.parametrize("seed", range(6))
def test_auroc_equals_sklearn_on_random_data_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    labels = rng.random(n) < rng.uniform(0.05, 0.95)
    labels[:2] = [True, False]  # both classes present
    # continuous scores, then coarse ones with many ties, then a few distinct values only
    for scores in (rng.normal(size=n) + labels, np.round(rng.normal(size=n) + labels, 1),
                   rng.integers(0, 3, size=n).astype(float)):
        assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert auroc(scores, labels.astype(int)) == auroc(scores, labels)


def test_auroc_limits_and_ties():
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc([1.0, 1.0, 1.0, 1.0], [0, 1, 0, 1]) == 0.5  # every pair tied: half each


@pytest.mark.parametrize("scores, labels, match", [
    ([1, 2, 3], [1, 1, 1], "both classes"),
    ([1, 2], [0, 1, 1], "one length"),
    ([1, np.nan], [0, 1], "NaN"),
    ([1, 2, 3], [0, 1, 2], "0/1"),
    ([1, 2], ["a", "b"], "0/1")])
def test_auroc_rejects_bad_input(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        auroc(scores, labels)


# ---------------------------------------------------------------- per-image scores
def test_bernoulli_nll_is_torch_bce_summed_per_image():
    rng = np.random.default_rng(0)
    x = rng.random((5, 1, 28, 28)).astype(np.float32)
    x_hat = rng.random((5, 1, 28, 28)).astype(np.float32)
    x_hat[0, 0, 0, :3] = [0.0, 1.0, 1.0]  # saturated sigmoid outputs: logs clamped at -100
    ref = F.binary_cross_entropy(torch.from_numpy(x_hat), torch.from_numpy(x),
                                 reduction="none").flatten(1).sum(1).double().numpy()
    np.testing.assert_allclose(bernoulli_nll(x, x_hat), ref, rtol=1e-5)


def test_vae_scores_have_one_finite_value_per_image(vae, digits):
    images = digits[0]
    for kind in ("elbo", "recon"):
        s = vae.score(images, kind=kind, samples=4)
        assert s.shape == (len(images),) and s.dtype == np.float64
        assert np.isfinite(s).all() and (s > 0).all()
    assert vae.score(images[0]).shape == (1,)  # one (28, 28) image


def test_vae_elbo_is_seeded_and_independent_of_batching(vae, digits):
    images = digits[0][:12]
    a = vae.score(images, samples=5, seed=3)
    np.testing.assert_array_equal(a, vae.score(images, samples=5, seed=3))
    np.testing.assert_allclose(a, vae.score(images, samples=5, seed=3, batch_size=7),
                               rtol=1e-6)
    assert not np.allclose(a, vae.score(images, samples=5, seed=4))
    np.testing.assert_array_equal(vae.score(images, kind="recon"),
                                  vae.score(images, kind="recon", seed=9))  # no sampling


def test_vae_elbo_with_one_draw_is_the_reparameterized_bound(vae, digits):
    images = digits[0][:10]
    mu, logvar = vae.encode(images)
    z = vae.reparameterize(mu, logvar, seed=11)  # draw i of image i: noise row i
    x = images.astype(np.float32)[:, None] / 255
    expected = bernoulli_nll(x, vae.decode(z)) + kl_to_standard_normal(mu, logvar)
    np.testing.assert_allclose(vae.score(images, samples=1, seed=11), expected, rtol=1e-6)


def test_vae_recon_score_matches_pytorch(vae, digits):
    _, _, model = model_from_checkpoint(load_checkpoint(SHIPPED / "vae-conv" / "checkpoint.pt"))
    x = torch.from_numpy(digits[0].astype(np.float32)[:, None] / 255)
    with torch.no_grad():
        x_hat = model.decode(model.encode(x)[0])
    ref = F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1).sum(1).numpy()
    np.testing.assert_allclose(vae.score(digits[0], kind="recon"), ref, rtol=1e-4)


def test_autoencoder_score_is_the_reconstruction_bce(digits):
    ae = load("ae-conv", threads=1)
    s = ae.score(digits[0])
    x = digits[0].astype(np.float32)[:, None] / 255
    assert s.shape == (len(x),)
    np.testing.assert_allclose(s, bernoulli_nll(x, ae.reconstruct(x)), rtol=1e-12)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"kind": "iwae"}, ValueError, "elbo, recon"),
    ({"samples": 0}, ValueError, "samples"),
    ({"samples": 2.5}, ValueError, "samples"),
    ({"seed": -1}, ValueError, "seed"),
    ({"batch_size": 0}, ValueError, "batch_size")])
def test_vae_score_rejects_bad_arguments(vae, digits, kwargs, error, match):
    with pytest.raises(error, match=match):
        vae.score(digits[0][:2], **kwargs)


@pytest.mark.parametrize("images, error", [
    (np.full((2, 28, 28), np.nan, dtype=np.float32), ValueError),
    (np.zeros((0, 28, 28), dtype=np.uint8), ValueError),
    (np.zeros((2, 28, 28), dtype=np.uint16), TypeError),
    (np.zeros((2, 27, 27), dtype=np.uint8), ValueError)])
def test_scores_reject_bad_images(vae, images, error):
    with pytest.raises(error):
        vae.score(images)


# ---------------------------------------------------------------- `latentforge score`
def test_score_command_writes_one_row_per_image(vae, digits, data_dir, tmp_path):
    png = tmp_path / "a.png"
    Image.fromarray(digits[0][0]).save(png)
    npy = tmp_path / "b.npy"
    np.save(npy, digits[0][1:4])
    out = tmp_path / "s.csv"
    assert main(["score", "vae-conv", str(png), str(npy), "-o", str(out), "--samples", "3",
                 "--threads", "1"]) == 0
    with out.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "index", "score"]
    assert [(r[0], int(r[1])) for r in rows[1:]] == [(str(png), 0)] + [(str(npy), i)
                                                                       for i in range(3)]
    expected = vae.score(digits[0][:4], samples=3, seed=0)
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], expected, rtol=1e-5)
    idx = next(data_dir.glob("t10k-images-idx3-ubyte*"))  # an MNIST IDX file works too
    assert main(["score", "ae-conv", str(idx), "-o", str(tmp_path / "s.npy"), "--threads",
                 "1"]) == 0
    assert np.load(tmp_path / "s.npy").shape == (len(load_mnist(data_dir).test_images),)


@pytest.mark.parametrize("argv, match", [
    (["ae-conv", "--kind", "elbo"], "autoencoder"),
    (["ae-conv", "--samples", "4"], "autoencoder"),
    (["vae-conv", "--kind", "recon", "--seed", "1"], "elbo only"),
    (["vae-conv", "--digit", "7"], "conditional"),
    (["vae-conv", "-o", "s.txt"], "extension"),
    (["classifier"], "only autoencoders and VAEs")])
def test_score_command_refuses_bad_usage_with_exit_2(argv, match, digits, tmp_path, capsys,
                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", digits[0][:2])
    assert main(["score", argv[0], "x.npy", *argv[1:], "--threads", "1"]) == 2
    assert match in capsys.readouterr().err


def test_score_command_missing_file_exits_2(tmp_path, capsys):
    assert main(["score", "vae-conv", str(tmp_path / "nope.png"), "-o",
                 str(tmp_path / "s.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------- --exclude-digits
@pytest.mark.parametrize("drop", [(7,), (0, 3)])
def test_exclude_digits_removes_exactly_those_labels(data_dir, drop):
    full = load_splits(data_dir, val_size=200)
    held = load_splits(data_dir, val_size=200, exclude_digits=drop)
    for split in ("train", "val"):
        before = np.bincount(full[split].labels, minlength=10)
        after = np.bincount(held[split].labels, minlength=10)
        assert after[list(drop)].sum() == 0
        keep = [d for d in range(10) if d not in drop]
        np.testing.assert_array_equal(after[keep], before[keep])  # every other image stays
        assert len(held[split]) == len(full[split]) - before[list(drop)].sum()
    np.testing.assert_array_equal(held["test"].labels, full["test"].labels)  # test keeps all


@pytest.mark.parametrize("bad, match", [((10,), "0-9"), ((-1,), "0-9"),
                                        (tuple(range(10)), "every class")])
def test_exclude_digits_rejects_bad_digits(data_dir, bad, match):
    with pytest.raises(ValueError, match=match):
        load_splits(data_dir, val_size=200, exclude_digits=bad)
    with pytest.raises(ValueError, match=match):
        train(TrainArgs(model="vae-conv", exclude_digits=bad, dry_run=True,
                        data_dir=str(data_dir)))


def test_exclude_digits_cli_flag_is_checked(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "vae-conv", "--exclude-digits", "12", "--dry-run"])
    assert e.value.code == 2 and "digits 0-9" in capsys.readouterr().err


def test_exclude_digits_is_recorded_and_resume_keeps_it(data_dir, tmp_path, capsys):
    from latentforge.export.ship import command_line

    out = tmp_path / "run"
    args = dict(model="ae-dense1", latent_dim=4, epochs=1, limit=64, val_size=50,
                data_dir=str(data_dir), out=str(out), quiet=True)
    ckpt = train(TrainArgs(**args, exclude_digits=(7,)))
    assert tuple(ckpt["args"]["exclude_digits"]) == (7,)
    assert "--exclude-digits 7" in command_line(ckpt)
    assert "digits (7,) excluded" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--exclude-digits"):
        train(TrainArgs(**{**args, "epochs": 2}, exclude_digits=(3,), resume=True))


# ---------------------------------------------------------------- the report's section
def fake_context(tmp_path, models, data_dir, n=300, **cfg):
    """What a report section reads from its Context, without the report's set-up."""
    from types import SimpleNamespace

    m = load_mnist(data_dir)
    figs = tmp_path / "figures"
    return SimpleNamespace(
        models=models, x_test=m.test_images[:n].astype(np.float32)[:, None] / 255,
        y_test=m.test_labels[:n].astype(np.int64), results={}, fig=lambda name: figs / name,
        image=lambda path, caption: f"![{caption}]({path.relative_to(tmp_path).as_posix()})",
        cfg=SimpleNamespace(**{"seed": 0, "threads": 1, **cfg}))


def test_anomaly_section_rates_held_out_models_against_the_shipped_twin(data_dir, tmp_path):
    import json
    import shutil

    from latentforge.train.report.anomaly import anomaly, held_out

    d = tmp_path / "no7"  # the shipped graphs, with a manifest saying 7 was left out
    shutil.copytree(SHIPPED / "vae-conv", d, ignore=shutil.ignore_patterns("*.pt"))
    m = json.loads((d / "manifest.json").read_text())
    m["training"]["exclude_digits"] = [7]
    (d / "manifest.json").write_text(json.dumps(m))
    no7 = load(d, threads=1)
    assert held_out(no7) == (7,) and held_out(load("vae-conv", threads=1)) == ()
    ctx = fake_context(tmp_path, {"no7": no7}, data_dir, n=150)
    text = anomaly(ctx)
    rows = ctx.results["anomaly"]
    assert [(r["model"], r["score"]) for r in rows] == [
        ("no7", "elbo"), ("no7", "recon"), ("vae-conv (control)", "elbo"),
        ("vae-conv (control)", "recon")]
    for r in rows:
        assert 0 <= r["auroc"] <= 1 and r["n_held_out"] == int((ctx.y_test == 7).sum())
    assert rows[0]["auroc"] == rows[2]["auroc"]  # the same graphs score the same
    assert "![score histograms" in text and (tmp_path / "figures" / "anomaly_scores.png").is_file()
    assert "No held-out model" in anomaly(fake_context(tmp_path, {}, data_dir))
