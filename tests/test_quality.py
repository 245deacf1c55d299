"""Classifier Fréchet distance, confident share and class histogram (runtime/quality.py), and
`latentforge quality` end to end on random-init exports."""
import json
import subprocess
import sys
import textwrap
from dataclasses import asdict

import numpy as np
import pytest
import scipy.linalg
import torch

from latentforge.export import export_checkpoint
from latentforge.runtime.cli import main
from latentforge.runtime.quality import (GaussianStats, frechet_distance, gaussian_stats,
                                         load_test_set, score)
from latentforge.train.data import DataError, load_splits, to_float
from latentforge.train.registry import all_specs, build_model, make_config
from test_packaging import BLOCK_TORCH



def stats(mu, sigma):
    return GaussianStats(np.asarray(mu, float), np.asarray(sigma, float), 100)


def random_cov(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / d


def test_fd_matches_scipy_sqrtm_on_full_rank_covariances():
    rng = np.random.default_rng(0)
    for d in (3, 16, 128):
        a, b = random_cov(rng, d), random_cov(rng, d)
        mu_a, mu_b = rng.standard_normal(d), rng.standard_normal(d)
        covmean = scipy.linalg.sqrtm(a @ b).real
        expected = np.sum((mu_a - mu_b) ** 2) + np.trace(a + b - 2 * covmean)
        got = frechet_distance(stats(mu_a, a), stats(mu_b, b))
        assert got == pytest.approx(expected, rel=1e-8, abs=1e-8)


def test_fd_closed_forms_equal_covariance_and_diagonal():
    rng = np.random.default_rng(1)
    sigma = random_cov(rng, 10)
    shift = rng.standard_normal(10)
    assert frechet_distance(stats(np.zeros(10), sigma), stats(np.zeros(10), sigma)) == \
        pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(stats(np.zeros(10), sigma), stats(shift, sigma)) == \
        pytest.approx(shift @ shift, rel=1e-9)
    va, vb = rng.uniform(0.1, 2, 10), rng.uniform(0.1, 2, 10)  # Σ(√a − √b)² for diagonals
    assert frechet_distance(stats(np.zeros(10), np.diag(va)), stats(np.zeros(10), np.diag(vb))) \
        == pytest.approx(np.sum((np.sqrt(va) - np.sqrt(vb)) ** 2), rel=1e-9)


def test_fd_is_finite_and_symmetric_with_fewer_samples_than_dimensions():
    rng = np.random.default_rng(2)
    a = gaussian_stats(rng.standard_normal((20, 64)))  # rank 19 covariance
    b = gaussian_stats(rng.standard_normal((500, 64)) + 0.5)
    ab, ba = frechet_distance(a, b), frechet_distance(b, a)
    assert np.isfinite(ab) and ab > 0
    assert ab == pytest.approx(ba, rel=1e-6)
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_stats(np.ones((1, 4)))


class FakeClassifier:
    """logits put 0.95 or 0.6 probability on a chosen class; features: one-hot + jitter."""

    def __init__(self, classes, confident):
        self.classes, self.confident = np.asarray(classes), np.asarray(confident)

    def logits_and_features(self, images, batch_size=256):
        n = len(images)
        p_top = np.where(self.confident[:n], 0.95, 0.6)
        probs = np.tile(((1 - p_top) / 9)[:, None], (1, 10))
        probs[np.arange(n), self.classes[:n]] = p_top
        feats = np.eye(10)[self.classes[:n]] + 0.01 * np.random.default_rng(0).random((n, 10))
        return np.log(probs).astype(np.float32), feats.astype(np.float32)


def test_score_counts_confident_samples_and_class_shares():
    classes = np.array([0] * 5 + [3] * 3 + [9] * 2)
    confident = np.array([True] * 7 + [False] * 3)
    clf = FakeClassifier(classes, confident)
    ref = gaussian_stats(np.random.default_rng(0).standard_normal((50, 10)))
    q = score(clf, np.zeros((10, 1, 28, 28), np.float32), ref)
    assert q.confident == pytest.approx(0.7)
    assert q.histogram == pytest.approx([0.5, 0, 0, 0.3, 0, 0, 0, 0, 0, 0.2])
    assert q.max_deviation_pp == pytest.approx(40.0)
    assert q.n == 10 and q.reference_n == 50
    assert "70.0%" in "\n".join(q.lines())


def export_random(name, out, **config):
    spec = all_specs()[name]
    torch.manual_seed(0)
    cfg = make_config(spec, config)
    model = build_model(spec, cfg)
    export_checkpoint({"model": name, "kind": spec.kind, "config": asdict(cfg),
                       "model_state": model.state_dict(), "ema_state": None, "epoch": 0,
                       "metrics": {}}, out)
    return out


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    return {"classifier": export_random("classifier", root / "classifier"),
            "vae": export_random("vae-conv", root / "vae"), "root": root}


def test_quality_command_scores_real_digits_better_than_an_untrained_vae(exports, data_dir,
                                                                         capsys):
    clf = str(exports["classifier"])
    real = to_float(load_splits(data_dir, val_size=200, limit=300)["train"].images[:200])
    np.save(exports["root"] / "real.npy", real)
    common = ["-n", "200", "--classifier", clf, "--data-dir", str(data_dir),
              "--reference-size", "400", "--threads", "1"]
    out_real, out_vae = exports["root"] / "real.json", exports["root"] / "vae.json"
    assert main(["quality", str(exports["root"] / "real.npy"), *common,
                 "--json", str(out_real)]) == 0
    assert main(["quality", str(exports["vae"]), *common, "--json", str(out_vae)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("classifier FD") == 2 and "class histogram" in printed
    real_q, vae_q = json.loads(out_real.read_text()), json.loads(out_vae.read_text())
    assert real_q["n"] == vae_q["n"] == 200 and real_q["reference_n"] == 400
    assert sum(vae_q["histogram"]) == pytest.approx(1.0)
    assert 0 <= real_q["fd"] < vae_q["fd"] / 3


def test_quality_command_runs_without_torch(exports, data_dir, tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((8, 1, 28, 28),
                                                                dtype=np.float32))
    code = BLOCK_TORCH + textwrap.dedent(f"""
        from latentforge.runtime.cli import main
        assert main(["quality", {str(tmp_path / "x.npy")!r}, "-n", "8", "--classifier",
                     {str(exports["classifier"])!r}, "--data-dir", {str(data_dir)!r},
                     "--reference-size", "50"]) == 0
        assert "torch" not in sys.modules
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "classifier FD" in r.stdout


def test_reference_without_data_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="LATENTFORGE_DATA"):
        load_test_set(tmp_path / "missing")


def test_least_confident_grid_shows_the_samples_the_classifier_is_least_sure_of(data_dir,
                                                                                  tmp_path):
    from PIL import Image

    from latentforge.runtime.api import load
    from latentforge.runtime.cli import main
    from latentforge.runtime.quality import features_and_probs

    rng = np.random.default_rng(0)
    real = load_test_set(data_dir, 70)[0][:, None].astype(np.float32) / 255.0
    images = np.concatenate([real, rng.random((10, 1, 28, 28), dtype=np.float32)])  # (80, …)
    np.save(tmp_path / "x.npy", images)
    png = tmp_path / "worst.png"
    assert main(["quality", str(tmp_path / "x.npy"), "-n", "80", "--data-dir", str(data_dir),
                 "--reference-size", "50", "--least-confident", str(png)]) == 0
    grid = np.asarray(Image.open(png).convert("L"), dtype=np.float32) / 255.0
    confidence = features_and_probs(load("classifier"), images)[1].max(axis=1)
    first = images[np.argmin(confidence), 0]  # the least sure sample: top left, 2 px pad, ×2
    np.testing.assert_allclose(grid[4:60:2, 4:60:2], first, atol=1 / 255 + 1e-6)
    assert grid.shape == (2 * (8 * 30 + 2),) * 2  # 64 of the 80, 8 per row
    assert main(["quality", str(tmp_path / "x.npy"), "--least-confident",
                 str(tmp_path / "w.jpg")]) == 2
