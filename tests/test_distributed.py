"""embed-dataset and sample-dataset on a local Ray (issue 16): the same numbers as one process.

One Ray instance (2 CPUs) serves the whole module, so its start-up is paid once.
"""
import io
import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from latentforge.runtime import load
from latentforge.runtime.cli import main
from latentforge.train.data import load_mnist
from test_packaging import import_blocker

pytestmark = [
    # Ray Data's DataContext() sets its own deprecated fields while initializing itself
    # (use_push_based_shuffle, use_polars, use_arrow_tensor_v2): Ray's bug, not ours
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
]

BLOCK_RAY = import_blocker("ray")
DDIM5 = dict(method="ddim", steps=5)


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_BACKEND_LOG_LEVEL", "fatal")  # as the CLI's own local Ray
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False)
        yield ray
        ray.shutdown()


def _write_pngs(images, root):
    """PNG files in two nested folders; their relative paths in sorted order."""
    rel = []
    for i, img in enumerate(images):
        rel.append(f"{'ab'[i % 2]}/{i:05d}.png")
        (root / rel[-1]).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / rel[-1])
    return sorted(rel)


def _column(table, name):
    return np.array(table[name].to_pylist(), dtype=np.float32)


def test_embed_dataset_of_png_files_equals_one_process(ray_local, data_dir, tmp_path):
    import pyarrow.parquet as pq

    from latentforge.runtime.distributed import embed_dataset

    mnist = load_mnist(data_dir)
    digits = np.concatenate([mnist.test_images, mnist.train_images])[:2000]
    rel = _write_pngs(digits, tmp_path / "corpus")
    out = tmp_path / "emb.parquet"
    r = embed_dataset("vae-conv", tmp_path / "corpus", out, workers=2, logvar=True,
                      progress=False)
    assert (r.rows, r.skipped, r.workers) == (2000, 0, 2)
    table = pq.read_table(out)
    assert table["path"].to_pylist() == rel  # input order: sorted relative paths
    vae = load("vae-conv")
    mu, logvar = vae.encode([str(tmp_path / "corpus" / p) for p in rel])
    assert np.abs(_column(table, "embedding") - mu).max() <= 1e-6
    assert np.abs(_column(table, "logvar") - logvar).max() <= 1e-6
    assert set(table["model"].to_pylist()) == {"vae-conv"}
    assert set(table["model_sha256"].to_pylist()) == {
        vae.manifest["graphs"]["encoder"]["sha256"]}
    assert out.with_name("emb.parquet.errors.jsonl").read_text() == ""


def test_sample_dataset_is_bitwise_the_same_for_1_2_3_workers(ray_local, tmp_path):
    import pyarrow.parquet as pq

    from latentforge.runtime.distributed import sample_dataset

    n, seed = 10, 7
    expected = load("ddpm").sample(n, seed=seed, progress=False, **DDIM5)
    runs = {}
    for workers, chunk, suffix in ((1, 10, ".npy"), (2, 3, ".parquet"), (3, 4, ".npy")):
        out = tmp_path / f"w{workers}{suffix}"
        r = sample_dataset("ddpm", n, out, seed=seed, workers=workers, chunk_size=chunk,
                           progress=False, **DDIM5)
        assert (r.workers, r.chunks) == (workers, -(-n // chunk))
        if suffix == ".npy":
            runs[workers] = np.load(out)
            continue
        table = pq.read_table(out)
        assert table["index"].to_pylist() == list(range(n))
        runs[workers] = _column(table, "image").reshape(n, 1, 28, 28)
        first = np.asarray(Image.open(io.BytesIO(table["png"][0].as_py())))
        assert np.array_equal(first, (expected[0, 0] * 255 + 0.5).astype(np.uint8))
        meta = json.loads(table.schema.metadata[b"latentforge"])
        assert (meta["seed"], meta["method"], meta["steps"]) == (seed, "ddim", 5)
    for workers, x in runs.items():
        assert x.dtype == np.float32 and np.array_equal(x, expected), workers


def test_corrupt_and_non_image_files_are_reported_and_the_rest_embedded(ray_local, data_dir,
                                                                        tmp_path, capsys):
    import pyarrow.parquet as pq

    corpus = tmp_path / "corpus"
    rel = _write_pngs(load_mnist(data_dir).test_images[:6], corpus)
    good = (corpus / rel[0]).read_bytes()
    (corpus / "a" / "broken.png").write_bytes(good[: len(good) // 2])  # truncated PNG
    (corpus / "notes.txt").write_text("not an image\n")
    out = tmp_path / "emb.parquet"
    assert main(["embed-dataset", "ae-conv", str(corpus), "-o", str(out),
                 "--workers", "2"]) == 0
    captured = capsys.readouterr()
    assert "6 of 8 rows" in captured.out
    assert "skipped 2 rows" in captured.err
    assert "a/broken.png is a damaged image file" in captured.err
    assert "notes.txt is not an image file" in captured.err
    assert pq.read_table(out)["path"].to_pylist() == rel
    errors = [json.loads(line) for line in
              out.with_name("emb.parquet.errors.jsonl").read_text().splitlines()]
    assert [e["path"] for e in errors] == ["a/broken.png", "notes.txt"]

    strict = tmp_path / "strict.parquet"
    assert main(["embed-dataset", "ae-conv", str(corpus), "-o", str(strict),
                 "--on-error", "fail", "--workers", "1"]) == 2
    assert "a/broken.png is a damaged image file" in capsys.readouterr().err
    assert not strict.exists()


def test_runtime_imports_and_commands_explain_without_ray(tmp_path):
    r = subprocess.run([sys.executable, "-c", BLOCK_RAY + textwrap.dedent(f"""
        import importlib, pkgutil
        import latentforge.runtime as rt
        for m in pkgutil.walk_packages(rt.__path__, "latentforge.runtime."):
            importlib.import_module(m.name)
        assert "ray" not in sys.modules, sorted(k for k in sys.modules if "ray" in k)
        from latentforge.runtime.cli import main
        assert main(["embed-dataset", "vae-conv", {str(tmp_path)!r},
                     "-o", {str(tmp_path / "e.parquet")!r}]) == 2
        assert main(["sample-dataset", "ddpm", "-n", "2",
                     "-o", {str(tmp_path / "s.npy")!r}]) == 2
        print("ok")
    """)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "LATENTFORGE_DATA": ""})
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout
    assert r.stderr.count('pip install "latentforge[scale]"') == 2, r.stderr
    assert not list(tmp_path.glob("*.parquet")) and not list(tmp_path.glob("*.npy"))


@pytest.mark.slow  # three more Ray jobs (~25-40 s on 2 busy cores): the default run keeps ~60 s
def test_idx_npy_and_parquet_inputs_embed_like_one_process(ray_local, data_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from latentforge.runtime.distributed import embed_dataset
    from latentforge.train.data import FILES, _find, read_idx

    idx = _find(data_dir, FILES["test_images"])
    digits = read_idx(idx)
    ref = load("ae-conv").embed(digits)
    r = embed_dataset("ae-conv", idx, tmp_path / "idx.npy", workers=2, progress=False)
    assert (r.rows, r.skipped) == (len(digits), 0)
    assert np.abs(np.load(tmp_path / "idx.npy") - ref).max() <= 1e-6
    assert json.loads((tmp_path / "idx.npy.ids.json").read_text()) == list(range(len(digits)))

    few = digits[:300].copy()
    few[5] = 0
    np.save(tmp_path / "few.npy", few.astype(np.float32) / 255 * np.where(
        np.arange(300) == 5, np.nan, 1)[:, None, None])  # row 5: NaN pixels
    r = embed_dataset("ae-conv", tmp_path / "few.npy", tmp_path / "few.parquet", workers=1,
                      progress=False)
    assert (r.rows, r.skipped) == (299, 1) and r.errors[0][0] == "5"
    table = pq.read_table(tmp_path / "few.parquet")
    assert table["id"].to_pylist() == [i for i in range(300) if i != 5]
    assert np.abs(_column(table, "embedding") - np.delete(ref[:300], 5, 0)).max() <= 1e-6

    pngs = []
    for img in digits[:200]:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "PNG")
        pngs.append(buf.getvalue())
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(200)], "image": pngs}),
                   tmp_path / "corpus.parquet")
    r = embed_dataset("ae-conv", tmp_path / "corpus.parquet", tmp_path / "pq.parquet",
                      workers=2, progress=False)
    table = pq.read_table(tmp_path / "pq.parquet")
    assert table["id"].to_pylist() == [f"d{i}" for i in range(200)]
    assert np.abs(_column(table, "embedding") - ref[:200]).max() <= 1e-6


def test_an_address_where_nothing_listens_fails_at_once():
    from latentforge.runtime.distributed.cluster import _check_reachable

    with pytest.raises(ValueError, match="cannot join the Ray cluster at 127.0.0.1:1"):
        _check_reachable("127.0.0.1:1")
    _check_reachable("auto")  # left to Ray
