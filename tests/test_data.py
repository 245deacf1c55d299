"""The IDX loader: the real data's sizes and label counts, clear errors for bad data."""
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from latentforge.train.data import (DataError, add_input_noise, load_mnist, load_splits,
                                    read_idx, to_float)

FIXTURE = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
# official MNIST label counts (LeCun et al.)
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def full_data_dir():
    for d in (os.environ.get("LATENTFORGE_DATA"), SHARED):
        if d and Path(d, "train-images-idx3-ubyte.gz").exists():
            return Path(d)
    pytest.skip("full MNIST not present (set LATENTFORGE_DATA or put ../shared beside the repo)")


def test_full_data_has_official_sizes_and_label_counts():
    m = load_mnist(full_data_dir())
    assert m.train_images.shape == (60000, 28, 28) and m.train_images.dtype == np.uint8
    assert m.test_images.shape == (10000, 28, 28)
    assert np.bincount(m.train_labels, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(m.test_labels, minlength=10).tolist() == TEST_COUNTS


def test_splits_hold_out_validation_with_seed():
    s = load_splits(full_data_dir(), val_size=10_000, seed=0)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (50_000, 10_000, 10_000)
    again = load_splits(full_data_dir(), val_size=10_000, seed=0)
    other = load_splits(full_data_dir(), val_size=10_000, seed=1)
    assert np.array_equal(s["val"].images, again["val"].images)
    assert not np.array_equal(s["val"].labels, other["val"].labels)


def test_fixture_is_small_cut_of_test_set():
    m = load_mnist(FIXTURE)
    assert len(m.train_images) + len(m.test_images) <= 2000
    assert len(m.train_labels) == len(m.train_images)
    assert set(np.unique(m.test_labels)) == set(range(10))


def test_reads_uncompressed_idx(tmp_path):
    for f in FIXTURE.glob("*.gz"):
        (tmp_path / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
    raw, gz = load_mnist(tmp_path), load_mnist(FIXTURE)
    assert np.array_equal(raw.train_images, gz.train_images)


def _copy_fixture(tmp_path) -> Path:
    d = tmp_path / "mnist"
    shutil.copytree(FIXTURE, d)
    return d


def test_truncated_file_error_names_file(tmp_path):
    d = _copy_fixture(tmp_path)
    f = d / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(gzip.compress(gzip.decompress(f.read_bytes())[:-100]))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*truncated"):
        load_mnist(d)


def test_wrong_magic_error_names_file(tmp_path):
    d = _copy_fixture(tmp_path)
    f = d / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(f.read_bytes()))
    raw[2:4] = b"\x0d\x03"  # float, 3 dims: not a label file
    f.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz.*wrong magic"):
        load_mnist(d)


def test_corrupt_gzip_error_names_file(tmp_path):
    d = _copy_fixture(tmp_path)
    (d / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_mnist(d)


def test_missing_directory_says_how_to_point_at_data(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*--data-dir.*LATENTFORGE_DATA"):
        load_mnist(tmp_path / "nowhere")


def test_missing_file_says_which(tmp_path):
    d = _copy_fixture(tmp_path)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.*not found"):
        load_mnist(d)


def test_env_var_points_at_data(monkeypatch):
    monkeypatch.setenv("LATENTFORGE_DATA", str(FIXTURE))
    assert len(load_mnist().test_images) == 500


def test_read_idx_rejects_non_idx(tmp_path):
    p = tmp_path / "x-idx1-ubyte"
    p.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


def test_scaling_ranges():
    u8 = np.array([[[0, 255]]], dtype=np.uint8).repeat(28, 1).repeat(14, 2)
    unit, sym = to_float(u8, "unit"), to_float(u8, "symmetric")
    assert unit.shape == (1, 1, 28, 28) and unit.dtype == np.float32
    assert (unit.min(), unit.max()) == (0.0, 1.0) and (sym.min(), sym.max()) == (-1.0, 1.0)
    with pytest.raises(ValueError, match="unit.*symmetric"):
        to_float(u8, "centered")


@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
def test_input_noise_is_clipped_and_has_requested_size(kind):
    import torch

    x = torch.full((2000, 1, 28, 28), 0.5)
    g = torch.Generator().manual_seed(0)
    noisy = add_input_noise(x, kind, 0.1, generator=g)
    assert noisy.min() >= 0 and noisy.max() <= 1
    expected_std = 0.1 if kind == "gaussian" else 0.1 / np.sqrt(3)
    assert abs(float((noisy - x).std()) - expected_std) < 0.002
    clipped = add_input_noise(torch.zeros(1000, 1, 28, 28), kind, 0.5, generator=g)
    assert clipped.min() == 0
    with pytest.raises(ValueError, match="none, gaussian, uniform|'none', 'gaussian'"):
        add_input_noise(x, "salt", 0.1)
