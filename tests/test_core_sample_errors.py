"""`_core.sample` at the Python boundary: bad inputs and misbehaving denoisers give clear
exceptions (ValueError naming the argument, TypeError for the wrong kind of object, a
denoiser's own exception unchanged) and never take the process down."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from latentforge.runtime import _core
from latentforge.train.schedule import NoiseSchedule

SCHEDULE = NoiseSchedule()
METHODS = ["ancestral", "ddpm", "ddim", "dpmpp-2m", "sde-dpmpp-2m"]
SCHED = {name: getattr(SCHEDULE, name) for name in NoiseSchedule.ARRAYS}
X_T = np.zeros((2, 1, 28, 28), np.float32)


def zeros(x, t):
    return np.zeros_like(x)


def run(**overrides):
    kw = dict(denoiser=zeros, schedule=SCHED, method="ddim", timesteps=[999, 500, 0],
              seed=1, n=2)
    kw.update(overrides)
    return _core.sample(**kw)


def with_array(name, value):
    return {**SCHED, name: value}


@pytest.mark.parametrize("overrides, match", [
    (dict(schedule=with_array("alphas", SCHEDULE.alphas[:-1])), "alphas has length 999"),
    (dict(schedule=with_array("posterior_variance", SCHEDULE.posterior_variance[:10])),
     "posterior_variance has length"),
    (dict(schedule=with_array("betas", SCHEDULE.float64["betas"])), "schedule.betas .*float32"),
    (dict(schedule=with_array("alphas", SCHEDULE.alphas.reshape(10, 100))), "must be 1-D"),
    (dict(schedule={k: v for k, v in SCHED.items() if k != "betas"}), "missing 'betas'"),
    (dict(schedule=with_array("alphas_cumprod", np.ones(1000, np.float32))), "out of range"),
    (dict(schedule={k: v[:0] for k, v in SCHED.items()}), "must not be empty"),
    (dict(method="euler"), "method must be one of"),
    (dict(timesteps=[]), "timesteps must not be empty"),
    (dict(timesteps=[0, 500, 999]), "strictly descending"),
    (dict(timesteps=[999, 999, 0]), "strictly descending"),
    (dict(timesteps=[1000, 0]), r"outside \[0, 1000\)"),
    (dict(timesteps=[999, -1]), r"outside \[0, 1000\)"),
    (dict(x_T=np.zeros((1, 28, 28), np.float32), seed=None, n=None), "x_T must have shape"),
    (dict(x_T=np.zeros((2, 3, 28, 28), np.float32), n=None), "x_T must have shape"),
    (dict(x_T=X_T.astype(np.float64), n=None), "x_T must have dtype float32"),
    (dict(x_T=np.zeros((2, 1, 28, 56), np.float32)[..., ::2], n=None), "C-contiguous"),
    (dict(x_T=np.zeros((0, 1, 28, 28), np.float32), n=None), "empty batch"),
    (dict(x_T=X_T, n=3), "n does not match"),
    (dict(n=0), "empty batch"),
    (dict(n=-2), "empty batch"),
    (dict(seed=None), "pass x_T, or seed and n"),
    (dict(n=None), "pass x_T, or seed and n"),
    (dict(method="ancestral", timesteps=[999, 0], seed=None, x_T=X_T, n=None),
     "seed is required"),
    (dict(eta=1.0, seed=None, x_T=X_T, n=None), "seed is required"),
    (dict(eta=-0.1), "eta must be finite"),
    (dict(eta=float("nan")), "eta must be finite"),
    (dict(method="ddpm", eta=1.0), "eta applies to method='ddim'"),
    (dict(method="ancestral", clip_x0=True), "clip_x0 applies"),
    (dict(capture=[998]), "capture: timestep 998 is not in timesteps"),
    (dict(progress_every=0), "progress_every must be >= 1"),
    (dict(threads=-1), "threads must be >= 0"),
    (dict(seed=-5), "seed must be in"),
    (dict(sample_offset=-1), "sample_offset must be in"),
    (dict(sample_offset=2**60), "sample_offset is too large"),
])
def test_sample_rejects_bad_input_with_valueerror(overrides, match):
    with pytest.raises(ValueError, match=match):
        run(**overrides)


@pytest.mark.parametrize("overrides, match", [
    (dict(denoiser=None), "denoiser must be callable"),
    (dict(progress="bar"), "progress must be callable"),
    (dict(timesteps=[999.0, 0.0]), "timesteps entries must be an integer"),
    (dict(timesteps="999"), "timesteps must be a sequence"),
    (dict(timesteps=999), "timesteps must be a sequence"),
    (dict(x_T=X_T.tolist(), n=None), "x_T must be a numpy.ndarray"),
    (dict(schedule=with_array("betas", SCHEDULE.betas.tolist())), "schedule.betas must be"),
    (dict(seed=1.5), "seed must be an integer"),
])
def test_sample_rejects_wrong_kinds_of_object_with_typeerror(overrides, match):
    with pytest.raises(TypeError, match=match):
        run(**overrides)


@pytest.mark.parametrize("output, error, match", [
    (np.zeros((2, 1, 28, 27), np.float32), ValueError, r"shape \(2, 1, 28, 28\)"),
    (np.zeros((3, 1, 28, 28), np.float32), ValueError, r"shape \(2, 1, 28, 28\)"),
    (np.zeros((2, 784), np.float32), ValueError, r"shape \(2, 1, 28, 28\)"),
    (np.zeros((2, 1, 28, 28), np.float64), ValueError, "must have dtype float32"),
    (np.zeros((2, 1, 28, 28), np.float16), ValueError, "must have dtype float32"),
    (np.zeros((28, 28, 1, 2), np.float32).T, ValueError, "C-contiguous"),
    (None, TypeError, "denoiser must return a numpy.ndarray"),
    (np.zeros((2, 1, 28, 28), np.float32).tolist(), TypeError, "numpy.ndarray"),
    (torch.zeros(2, 1, 28, 28), TypeError, "numpy.ndarray"),
])
def test_sample_rejects_a_denoiser_returning_the_wrong_thing(output, error, match):
    with pytest.raises(error, match=match):
        run(denoiser=lambda x, t: output)


class DenoiserFailure(RuntimeError):
    pass


@pytest.mark.parametrize("exc", [DenoiserFailure("boom at step 2"), KeyboardInterrupt(),
                                 MemoryError("out of memory")])
def test_sample_propagates_the_denoisers_own_exception_and_survives(exc):
    calls = []

    def failing(x, t):
        calls.append(int(t[0]))
        if len(calls) == 2:
            raise exc
        return np.zeros_like(x)

    with pytest.raises(type(exc)) as info:
        run(denoiser=failing, timesteps=[999, 800, 600, 0])
    assert info.value is exc and calls == [999, 800]
    assert run().shape == (2, 1, 28, 28)  # the module still works afterwards


def test_sample_propagates_a_progress_callback_exception():
    def stop(i, total):
        raise DenoiserFailure(f"cancelled at {i}/{total}")

    with pytest.raises(DenoiserFailure, match="cancelled at 1/3"):
        run(progress=stop)


def test_sample_survives_a_denoiser_that_keeps_or_mutates_its_inputs():
    kept = []

    def rude(x, t):
        kept.append((x, t))
        out = x.copy()
        t[:] = -1.0  # scribbling on the loop's t buffer must not break the next step
        return out

    out = run(denoiser=rude, timesteps=[999, 500, 0])
    assert out.shape == (2, 1, 28, 28) and np.isfinite(out).all()
    assert all(x is kept[0][0] for x, _ in kept)


# --- fuzz ---

@st.composite
def x_T_like(draw):
    """Valid about a third of the time; otherwise a wrong dtype, shape, layout or a list."""
    dtype = draw(st.sampled_from([np.float32, np.float32, np.float64, np.int16, ">f4"]))
    batch = draw(st.integers(0, 3))
    shape = draw(st.sampled_from([(batch, 1, 28, 28)] * 3 + [
        (batch, 28, 28), (batch, 1, 28, 14), (1, 28, 28, batch), (batch,)]))
    arr = np.asarray(draw(hnp.arrays(np.float32, shape, elements=st.floats(-3, 3, width=32))),
                     dtype=dtype)
    form = draw(st.sampled_from(["plain", "plain", "fortran", "list"]))
    if form == "fortran":
        return np.asfortranarray(arr)
    return arr.tolist() if form == "list" else arr


OUTPUT_FORMS = st.sampled_from(["good"] * 4 + ["float64", "transposed", "short", "list",
                                               "scalar"])
TIMESTEPS = st.one_of(
    st.lists(st.integers(0, 999), min_size=1, max_size=4, unique=True).map(
        lambda ts: sorted(ts, reverse=True)),
    st.lists(st.integers(-2, 1001), max_size=4))
SEEDS = st.one_of(st.integers(0, 2**64 - 1), st.none(), st.integers(-1, 2**64))


def make_output(form, x):
    eps = 0.1 * x
    return {"good": eps, "float64": eps.astype(np.float64), "transposed": np.asfortranarray(eps),
            "short": eps[:, :, :27], "list": eps.tolist(), "scalar": np.float32(0.0)}[form]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x_T=x_T_like(), form=OUTPUT_FORMS,
       timesteps=TIMESTEPS, method=st.sampled_from(METHODS), seed=SEEDS)
def test_sample_boundary_fuzz_gives_result_or_clean_error(x_T, form, timesteps, method, seed):
    try:
        out = _core.sample(lambda x, t: make_output(form, x), SCHED, method, timesteps, x_T=x_T,
                           seed=seed)
    except (ValueError, TypeError):
        return
    assert form == "good" and isinstance(x_T, np.ndarray) and x_T.dtype == np.float32
    assert out.shape == x_T.shape and out.dtype == np.float32 and np.abs(out).max() <= 1
