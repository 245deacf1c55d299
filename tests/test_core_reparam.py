"""`_core.reparameterize`: z = μ + exp(½ log σ²)·ε in float32, against the numpy expression."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from latentforge.runtime import _core

TOL = 1e-6  # max |ours − numpy| / max(1, |numpy|): float32 exp to ~1 ulp


def numpy_reparam(mu, logvar, eps):
    return mu + np.exp(0.5 * logvar) * eps


def scaled_error(ours, ref):
    return float(np.max(np.abs(ours.astype(np.float64) - ref) / np.maximum(1.0, np.abs(ref))))


def latent(rng, b=257, d=10, scale=2.0):
    mu = rng.normal(0, scale, (b, d)).astype(np.float32)
    logvar = rng.normal(0, scale, (b, d)).astype(np.float32)
    return mu, logvar


def test_reparameterize_with_eps_equals_numpy_formula():
    rng = np.random.default_rng(0)
    mu, logvar = latent(rng, 4096, 16)
    eps = rng.standard_normal((4096, 16), dtype=np.float32)
    z = _core.reparameterize(mu, logvar, eps=eps)
    assert z.dtype == np.float32 and z.shape == mu.shape
    assert scaled_error(z, numpy_reparam(mu, logvar, eps)) <= TOL


def test_reparameterize_exp_is_accurate_over_the_whole_float32_range():
    logvar = np.linspace(-170, 170, 200_001, dtype=np.float32).reshape(-1, 1)
    ones, zeros = np.ones_like(logvar), np.zeros_like(logvar)
    ours = _core.reparameterize(zeros, logvar, eps=ones).astype(np.float64)
    ref = np.exp(0.5 * logvar.astype(np.float64))
    np.testing.assert_allclose(ours, ref, rtol=TOL, atol=0)
    huge = _core.reparameterize(zeros[:2], np.float32([[178.0], [-180.0]]), eps=ones[:2])
    assert huge[0, 0] == np.inf and huge[1, 0] == 0.0  # overflow / underflow like float32 exp


def test_reparameterize_with_seed_uses_randn_noise_and_returns_it():
    rng = np.random.default_rng(1)
    mu, logvar = latent(rng)
    z, eps = _core.reparameterize(mu, logvar, seed=42, step=3, offset=1000, return_eps=True)
    np.testing.assert_array_equal(eps, _core.randn(42, mu.shape, step=3, offset=1000))
    assert scaled_error(z, numpy_reparam(mu, logvar, eps)) <= TOL
    np.testing.assert_array_equal(_core.reparameterize(mu, logvar, seed=42, step=3, offset=1000), z)


def test_reparameterize_return_eps_with_given_eps_returns_that_eps():
    rng = np.random.default_rng(2)
    mu, logvar = latent(rng)
    eps = rng.standard_normal(mu.shape, dtype=np.float32)
    z, eps_out = _core.reparameterize(mu, logvar, eps=eps, return_eps=True)
    assert eps_out is eps
    np.testing.assert_array_equal(z, _core.reparameterize(mu, logvar, eps=eps))


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_reparameterize_is_bitwise_identical_for_any_thread_count(threads):
    rng = np.random.default_rng(3)
    mu, logvar = latent(rng, 40_001, 7)  # > 4 parallel grains
    eps = rng.standard_normal(mu.shape, dtype=np.float32)
    for kw in (dict(eps=eps), dict(seed=9)):
        ref = _core.reparameterize(mu, logvar, threads=1, **kw)
        np.testing.assert_array_equal(_core.reparameterize(mu, logvar, threads=threads, **kw), ref)


def test_reparameterize_seeded_batch_split_by_offset_matches_whole_batch():
    rng = np.random.default_rng(4)
    mu, logvar = latent(rng, 10, 6)
    whole = _core.reparameterize(mu, logvar, seed=5)
    parts = [_core.reparameterize(mu[a:b], logvar[a:b], seed=5, offset=a * 6)
             for a, b in [(0, 3), (3, 4), (4, 10)]]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


# --- the boundary ---

GOOD = np.zeros((3, 4), np.float32)


@pytest.mark.parametrize("field", ["mu", "logvar"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_reparameterize_rejects_nonfinite_inputs_naming_the_argument(field, bad):
    arrays = dict(mu=GOOD.copy(), logvar=GOOD.copy())
    arrays[field][2, 1] = bad
    with pytest.raises(ValueError, match=field):
        _core.reparameterize(arrays["mu"], arrays["logvar"], seed=0)
    with pytest.raises(ValueError, match=field):
        _core.reparameterize(arrays["mu"], arrays["logvar"], eps=GOOD)


def test_reparameterize_rejects_nonfinite_eps():
    eps = GOOD.copy()
    eps[0, 0] = np.nan
    with pytest.raises(ValueError, match="eps"):
        _core.reparameterize(GOOD, GOOD, eps=eps)


@pytest.mark.parametrize("mu, logvar, match", [
    (np.zeros(4, np.float32), np.zeros(4, np.float32), "mu must be 2-D"),
    (np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 4), np.float32), "mu must be 2-D"),
    (GOOD, np.zeros((3, 5), np.float32), "logvar must have the shape"),
    (GOOD.astype(np.float64), GOOD, "mu must have dtype float32"),
    (GOOD, GOOD.astype(np.float16), "logvar must have dtype float32"),
    (GOOD, GOOD.astype(">f4"), "logvar must have dtype float32"),
    (np.zeros((4, 3), np.float32).T, GOOD, "mu must be C-contiguous"),
    (GOOD, np.zeros((3, 8), np.float32)[:, ::2], "logvar must be C-contiguous"),
    (np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32), "non-empty"),
    (np.zeros((3, 0), np.float32), np.zeros((3, 0), np.float32), "non-empty"),
])
def test_reparameterize_rejects_bad_arrays_with_valueerror(mu, logvar, match):
    with pytest.raises(ValueError, match=match):
        _core.reparameterize(mu, logvar, seed=0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(), ValueError, "exactly one of seed and eps"),
    (dict(seed=1, eps=GOOD), ValueError, "exactly one of seed and eps"),
    (dict(eps=np.zeros((3, 5), np.float32)), ValueError, "eps must have the shape"),
    (dict(eps=GOOD.astype(np.float64)), ValueError, "eps must have dtype"),
    (dict(eps=GOOD.tolist()), TypeError, "eps must be a numpy.ndarray"),
    (dict(seed=-3), ValueError, "seed"),
    (dict(seed="7"), TypeError, "seed"),
    (dict(seed=1, offset=2**64 - 5), ValueError, "offset"),
    (dict(seed=1, threads=-2), ValueError, "threads"),
])
def test_reparameterize_rejects_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        _core.reparameterize(GOOD, GOOD, **kwargs)


def test_reparameterize_rejects_non_arrays_with_typeerror():
    with pytest.raises(TypeError, match="mu must be a numpy.ndarray"):
        _core.reparameterize([[0.0, 1.0]], GOOD, seed=0)


DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.uint8, np.bool_,
                          np.complex64, ">f4"]).map(np.dtype)


@st.composite
def maybe_bad_array(draw):
    """Random shape, dtype, contiguity or a plain list; floats in ±50, sometimes a NaN."""
    dtype = draw(DTYPES)
    elements = (hnp.from_dtype(dtype, min_value=-50, max_value=50)
                if dtype.kind == "f" and dtype.itemsize >= 4 else None)
    arr = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                  max_side=5), elements=elements))
    if dtype.kind == "f" and arr.size and draw(st.booleans()):
        arr.flat[draw(st.integers(0, arr.size - 1))] = np.nan
    view = draw(st.sampled_from(["plain", "transpose", "stride", "list"]))
    if view == "transpose":
        arr = arr.T
    elif view == "stride" and arr.ndim:
        arr = arr[..., ::2]
    elif view == "list":
        return arr.tolist()
    return arr


@st.composite
def mu_logvar(draw):
    """Mostly a valid pair (float32, (B, D), contiguous), else arbitrary arrays."""
    if draw(st.booleans()):
        return draw(maybe_bad_array()), draw(maybe_bad_array())
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6))
    floats = hnp.from_dtype(np.dtype(np.float32), min_value=-50, max_value=50)
    mu, logvar = (draw(hnp.arrays(np.float32, shape, elements=floats)) for _ in range(2))
    return mu, logvar if draw(st.integers(0, 3)) else draw(maybe_bad_array())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=mu_logvar(), use_seed=st.booleans())
def test_reparameterize_boundary_fuzz_gives_result_or_clean_error(pair, use_seed):
    mu, logvar = pair
    kw = dict(seed=3) if use_seed else dict(eps=np.ones(np.shape(mu), np.float32))
    try:
        z = _core.reparameterize(mu, logvar, **kw)
    except (ValueError, TypeError):
        return
    # accepted: then it was a valid call and the result is the formula
    assert isinstance(mu, np.ndarray) and mu.dtype == np.float32 and mu.ndim == 2 and mu.size
    assert mu.flags.c_contiguous and logvar.flags.c_contiguous and logvar.shape == mu.shape
    assert np.isfinite(mu).all() and np.isfinite(logvar).all()
    eps = kw["eps"] if "eps" in kw else _core.randn(3, mu.shape)
    assert scaled_error(z, numpy_reparam(mu, logvar, eps)) <= TOL
