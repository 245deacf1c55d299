"""The torch-free runtime on the shipped models: every public method, determinism, errors."""
import shutil

import numpy as np
import pytest

from latentforge.runtime.api import ModelFileError, load, shipped_models
from latentforge.train.data import load_mnist

SHIPPED = {"ae-conv", "ae-dense2", "vae-conv", "vae-dense", "ddpm-unet", "classifier"}


@pytest.fixture(scope="module")
def digits(data_dir):
    return load_mnist(data_dir).test_images[:32]  # uint8 (32, 28, 28)


@pytest.fixture(scope="module")
def ddpm():
    return load("ddpm")


@pytest.fixture(scope="module", params=["vae-conv", "vae-dense"])
def vae(request):
    return load(request.param)


@pytest.fixture(scope="module")
def ae():
    return load("ae-conv")


def test_shipped_models_are_listed_and_load_on_cpu(ddpm):
    assert SHIPPED <= set(shipped_models())
    assert ddpm.provider == "CPUExecutionProvider" and ddpm.kind == "ddpm"
    assert ddpm.num_timesteps == 1000 and ddpm.scaling == "symmetric"


def _is_image_batch(x, n):
    return (x.shape == (n, 1, 28, 28) and x.dtype == np.float32 and x.min() >= 0
            and x.max() <= 1)


def test_autoencoder_encode_decode_reconstruct(ae, digits):
    z = ae.encode(digits)
    assert z.shape == (32, ae.latent_dim) and z.dtype == np.float32
    assert _is_image_batch(ae.decode(z), 32)
    rec = ae.reconstruct(digits)
    assert _is_image_batch(rec, 32)
    assert np.mean((rec - digits[:, None] / 255.0) ** 2) < 0.03


def test_denoiser_removes_most_of_the_noise(ae, digits):
    clean = digits[:, None].astype(np.float32) / 255
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 0.5, clean.shape).astype(np.float32), 0, 1)
    before, after = np.mean((noisy - clean) ** 2), np.mean((ae.denoise(noisy) - clean) ** 2)
    assert after < before / 5, (before, after)


def test_vae_encode_embed_and_reconstruct(vae, digits):
    mu, logvar = vae.encode(digits)
    assert mu.shape == logvar.shape == (32, vae.latent_dim)
    np.testing.assert_array_equal(vae.embed(digits), mu)
    rec = vae.reconstruct(digits)
    assert _is_image_batch(rec, 32)
    assert np.mean((rec - digits[:, None] / 255.0) ** 2) < 0.05
    noisy_rec = vae.reconstruct(digits, seed=3)
    assert not np.array_equal(rec, noisy_rec)
    np.testing.assert_array_equal(noisy_rec, vae.reconstruct(digits, seed=3))


def test_vae_prior_samples_are_deterministic_with_seed(vae):
    a, b, c = vae.sample(8, seed=1), vae.sample(8, seed=1), vae.sample(8, seed=2)
    assert _is_image_batch(a, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_vae_interpolation_runs_between_the_two_reconstructions(vae, digits):
    strip = vae.interpolate(digits[0], digits[1], steps=7)
    assert _is_image_batch(strip, 7)
    ends = vae.decode(vae.embed(digits[:2]))
    np.testing.assert_allclose(strip[[0, -1]], ends, atol=1e-5)


def test_ddpm_sample_is_deterministic_and_batch_split_invariant(ddpm):
    kw = dict(method="ddim", steps=10, seed=7, progress=False)
    whole = ddpm.sample(5, batch_size=5, **kw)
    assert _is_image_batch(whole, 5)
    np.testing.assert_array_equal(whole, ddpm.sample(5, batch_size=5, **kw))
    np.testing.assert_allclose(ddpm.sample(5, batch_size=2, **kw), whole, atol=1e-6)
    assert not np.array_equal(whole, ddpm.sample(5, batch_size=5, **{**kw, "seed": 8}))


@pytest.mark.parametrize("method", ["ancestral", "ddpm"])
def test_ddpm_stochastic_methods_run_all_steps(ddpm, method):
    x = ddpm.sample(2, method=method, seed=0, progress=False)
    assert _is_image_batch(x, 2)
    with pytest.raises(ValueError, match="ddim"):
        ddpm.sample(2, method=method, steps=50)


def test_ddpm_capture_returns_intermediate_images(ddpm):
    x, cap = ddpm.sample(2, method="ddim", steps=10, seed=0, capture=[999, 0], progress=False)
    assert set(cap) == {999, 0}
    assert all(_is_image_batch(v, 2) for v in cap.values())


def test_ddpm_bad_arguments_raise_clear_errors(ddpm):
    with pytest.raises(ValueError, match="ancestral.*ddpm.*ddim"):
        ddpm.sample(2, method="euler")
    for n in (0, -1, 2.5):
        with pytest.raises(ValueError, match="positive integer"):
            ddpm.sample(n)
    with pytest.raises(ValueError, match="steps"):
        ddpm.sample(2, method="ddim", steps=0)
    with pytest.raises(ValueError, match="seed"):
        ddpm.sample(2, method="ddim", steps=2, seed=-1)


def test_images_in_every_accepted_form_agree(vae, digits, tmp_path):
    from PIL import Image

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"d{i}.png")
        Image.fromarray(digits[i]).save(paths[-1])
    np.save(tmp_path / "d.npy", digits[:3])
    pil_images = []
    for p in paths:
        with Image.open(p) as im:
            pil_images.append(im.copy())
    ref = vae.embed(digits[:3])
    for form in (digits[:3, None], digits[:3].astype(np.float32) / 255, [str(p) for p in paths],
                 pil_images, str(tmp_path / "d.npy")):
        np.testing.assert_allclose(vae.embed(form), ref, atol=1e-6)


@pytest.mark.parametrize("bad, error, match", [
    (np.zeros((2, 32, 32), np.uint8), ValueError, "28"),
    (np.zeros((0, 28, 28), np.uint8), ValueError, "empty"),
    (np.full((1, 28, 28), np.nan, np.float32), ValueError, "NaN"),
    (np.full((1, 28, 28), 7.0, np.float32), ValueError, r"\[0, 1\]"),
    (np.zeros((1, 28, 28), np.int32), TypeError, "uint8"),
    (np.array([["a"] * 28] * 28), TypeError, "dtype"),
    ([], ValueError, "empty"),
])
def test_bad_images_raise_clear_errors(ae, bad, error, match):
    with pytest.raises(error, match=match):
        ae.encode(bad)


def test_bad_latents_raise_clear_errors(vae):
    with pytest.raises(ValueError, match=f"\\(B, {vae.latent_dim}\\)"):
        vae.decode(np.zeros((2, vae.latent_dim + 1), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        vae.decode(np.full((1, vae.latent_dim), np.nan, np.float32))


def test_unknown_model_name_lists_valid_choices():
    with pytest.raises(ValueError, match="unknown model 'gan'.*ddpm-unet"):
        load("gan")


def test_corrupted_model_file_fails_sha256_check(tmp_path):
    from latentforge.runtime.api import resolve

    d = tmp_path / "vae"
    shutil.copytree(resolve("vae-conv"), d)
    onnx_file = d / "decoder.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="decoder.onnx is corrupted: sha256"):
        load(d)
    (d / "manifest.json").unlink()
    with pytest.raises(ModelFileError, match="no manifest.json"):
        load(d)


def test_unknown_provider_lists_available():
    with pytest.raises(ValueError, match="CPUExecutionProvider"):
        load("vae-conv", providers=["TPUExecutionProvider"])


@pytest.mark.parametrize("method, timesteps", [
    ("ddim", None), ("ancestral", list(range(999, 949, -1)) + [0])], ids=["ddim50", "ancestral50"])
def test_shipped_unet_in_cpp_loop_matches_pytorch_reference(ddpm, method, timesteps):
    """The trained U-Net through onnxruntime + the C++ loop against the PyTorch reference
    sampler on the shipped checkpoint, fed the extension's noise: max abs ≤ 1e-3."""
    import torch

    from latentforge.runtime import _core
    from latentforge.runtime.session import BoundDenoiser
    from latentforge.train.checkpoint import load_checkpoint
    from latentforge.train.registry import model_from_checkpoint
    from latentforge.train.samplers import sample
    from latentforge.train.schedule import NoiseSchedule, ScheduleConfig

    ckpt = load_checkpoint(ddpm.directory / "checkpoint.pt")
    unet = model_from_checkpoint(ckpt)[2]
    schedule = NoiseSchedule(ScheduleConfig(**ckpt["schedule"]))
    if timesteps is None:
        timesteps = schedule.ddim_timesteps(50).tolist()
    ours = _core.sample(BoundDenoiser(ddpm.sessions["unet"]), ddpm.schedule, method, timesteps,
                        seed=11, n=3)
    with torch.no_grad():
        ref, _ = sample(lambda x, t: unet(x, t), schedule, 3, method, timesteps=timesteps,
                        noise=lambda k, s: torch.from_numpy(_core.randn(11, s, step=k)))
    assert np.abs(ours - ref.numpy()).max() <= 1e-3


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_verify_passes_on_every_shipped_model(name, data_dir):
    """What ships is what was trained: ONNX vs the shipped PyTorch checkpoint (issue 5's
    tolerances), on random and real digits."""
    from latentforge.export import verify
    from latentforge.runtime.api import resolve

    d = resolve(name)
    report = verify(d, d / "checkpoint.pt", batch_sizes=(1, 7), data_dir=data_dir)
    assert report.ok, report.table()
