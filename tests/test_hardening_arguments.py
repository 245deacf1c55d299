"""Issue 14, item 4 and "every public numeric argument validated the same way": one helper
(runtime/checks.py) behind n, batch_size, steps, threads, seed, eta; bad values raise
TypeError/ValueError naming the argument, never IndexError/ZeroDivisionError/a silent
truncation. Also the input edges of item 4 (complex arrays, a directory as an image)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentforge.runtime.api import load
from latentforge.runtime.checks import check_int

SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
IMAGES = np.zeros((3, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def models():
    return {name: load(name, threads=1) for name in ("ae-conv", "vae-conv", "ddpm", "classifier")}


NOT_INTEGERS = (st.booleans() | st.floats(allow_nan=True).filter(lambda f: f != int(f)
                                                               if np.isfinite(f) else True)
                | st.text(max_size=3) | st.just(2.0) | st.just([1]) | st.just(1 + 0j)
                | st.just(np.float32(3)) | st.just(np.bool_(True)))
NON_POSITIVE = st.integers(max_value=0) | st.just(np.int64(-3))


def calls(m):
    """(argument name, function of the bad value) for every public numeric argument."""
    ae, vae, ddpm, clf = m["ae-conv"], m["vae-conv"], m["ddpm"], m["classifier"]
    z = np.zeros((2, ae.latent_dim), dtype=np.float32)
    quick = dict(method="ddim", steps=2, seed=0, progress=False)
    return [
        ("batch_size", lambda v: ae.encode(IMAGES, batch_size=v)),
        ("batch_size", lambda v: ae.decode(z, batch_size=v)),
        ("batch_size", lambda v: ae.reconstruct(IMAGES, batch_size=v)),
        ("batch_size", lambda v: ae.denoise(IMAGES, batch_size=v)),
        ("batch_size", lambda v: vae.embed(IMAGES, batch_size=v)),
        ("batch_size", lambda v: vae.sample(2, seed=0, batch_size=v)),
        ("batch_size", lambda v: vae.iter_samples(2, seed=0, batch_size=v)),
        ("batch_size", lambda v: clf.predict_proba(IMAGES, batch_size=v)),
        ("batch_size", lambda v: ddpm.sample(2, batch_size=v, **quick)),
        ("batch_size", lambda v: ddpm.iter_samples(2, batch_size=v, **quick)),
        ("n", lambda v: ddpm.sample(v, **quick)),
        ("n", lambda v: ddpm.iter_samples(v, **quick)),
        ("n", lambda v: vae.sample(v, seed=0)),
        ("n", lambda v: vae.iter_samples(v, seed=0)),
        ("steps", lambda v: ae.interpolate(IMAGES[0], IMAGES[1], steps=v)),
        ("steps", lambda v: ddpm.sample(2, method="ddim", steps=v, seed=0, progress=False)),
        ("steps", lambda v: ddpm.sample(2, method="dpmpp-2m", steps=v, progress=False)),
        ("seed", lambda v: ddpm.sample(2, method="ddim", steps=2, seed=v, progress=False)),
        ("seed", lambda v: vae.sample(2, seed=v)),
        ("seed", lambda v: vae.reconstruct(IMAGES, seed=v)),
        ("threads", lambda v: load("ae-conv", threads=v)),
    ]


def check_refused(fn, name, value):
    with pytest.raises((TypeError, ValueError)) as info:
        fn(value)
    assert name in str(info.value), (name, value, info.value)


@settings(max_examples=150, deadline=None, suppress_health_check=SUPPRESS)
@given(data=st.data())
def test_non_integer_numeric_arguments_are_refused_naming_the_argument(models, data):
    name, fn = data.draw(st.sampled_from(calls(models)))
    value = data.draw(NOT_INTEGERS)
    check_refused(fn, name, value)


@settings(max_examples=80, deadline=None, suppress_health_check=SUPPRESS)
@given(data=st.data())
def test_out_of_range_numeric_arguments_are_refused_naming_the_argument(models, data):
    name, fn = data.draw(st.sampled_from(calls(models)))
    value = data.draw(st.integers(max_value=-1) if name in ("seed", "threads") else NON_POSITIVE)
    check_refused(fn, name, value)


def test_the_errors_issue_14_saw_are_clear(models):
    ae, ddpm = models["ae-conv"], models["ddpm"]
    for bad, error in ((0, ValueError), (-1, ValueError), (True, TypeError), ("8", TypeError)):
        with pytest.raises(error, match=r"batch_size must be an integer in \[1, 1048576\]"):
            ae.embed(IMAGES, batch_size=bad)
    with pytest.raises(ValueError, match="threads must be an integer in"):
        load("ae-conv", threads=-1)
    with pytest.raises(ValueError, match="steps must be an integer, got 2.5"):
        ddpm.sample(2, method="ddim", steps=2.5, seed=0, progress=False)
    with pytest.raises(ValueError, match="eta must be a finite number"):
        ddpm.sample(2, method="ddim", steps=2, eta=float("nan"), seed=0, progress=False)


def test_numpy_integers_are_accepted(models):
    ae = models["ae-conv"]
    assert ae.embed(IMAGES, batch_size=np.int32(2)).shape == (3, ae.latent_dim)
    assert check_int(np.uint8(7), "x", low=1) == 7


def test_complex_images_and_latents_are_type_errors(models):
    ae = models["ae-conv"]
    with pytest.raises(TypeError, match="complex"):
        ae.embed(IMAGES.astype(np.complex64))
    with pytest.raises(TypeError, match="latent codes must be numeric"):
        ae.decode(np.zeros((1, ae.latent_dim), dtype=np.complex128))


def test_a_directory_given_as_an_image_says_so(models, tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        models["ae-conv"].embed(str(tmp_path))
