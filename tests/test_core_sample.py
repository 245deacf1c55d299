"""`_core.sample`: the C++ reverse loop against the PyTorch reference samplers
(latentforge.train.samplers) fed the extension's own noise, and its loop semantics."""
import numpy as np
import pytest
import torch

from latentforge.runtime import _core
from latentforge.train import samplers
from latentforge.train.schedule import NoiseSchedule

SCHEDULE = NoiseSchedule()
SCHEDULE_DICT = {name: getattr(SCHEDULE, name) for name in NoiseSchedule.ARRAYS}
ALL_STEPS = np.arange(SCHEDULE.num_timesteps - 1, -1, -1)
TOY_TOL = 1e-4  # max |C++ − reference| over all pixels


def make_toy(schedule):
    """Deterministic stand-in for the U-Net: the Bayes-optimal ε̂ for data x_0 ~ N(0, 0.5²)
    plus a nonlinearity, so x_t stays at unit scale as with a trained model (|x_t| <= ~4)."""
    ac = schedule.alphas_cumprod.astype(np.float64)
    gain = (np.sqrt(1.0 - ac) / (0.25 * ac + 1.0 - ac)).astype(np.float32)

    def toy_numpy(x, t):
        return gain[int(t[0])] * x + np.float32(0.05) * np.tanh(3 * x)

    def toy_torch(x, t):
        return float(gain[int(t[0])]) * x + 0.05 * torch.tanh(3 * x)

    return toy_numpy, toy_torch


toy_numpy, toy_torch = make_toy(SCHEDULE)


def reference(seed, n, method, timesteps, schedule=SCHEDULE, denoiser=toy_torch, **kwargs):
    """The PyTorch sampler with the extension's noise keys (key k = randn step k)."""
    def noise(key, shape):
        return torch.from_numpy(_core.randn(seed, shape, step=key))
    x0, captured = samplers.sample(denoiser, schedule, n, method, timesteps=timesteps,
                                   noise=noise, **kwargs)
    return x0.numpy(), {t: v.numpy() for t, v in captured.items()}


COSINE = NoiseSchedule(kind="cosine")
CASES = {
    "ancestral": ("ancestral", ALL_STEPS, {}),
    "ddpm": ("ddpm", ALL_STEPS, {}),
    "ddpm-clip": ("ddpm", ALL_STEPS, {"clip_x0": True}),
    "ddim50-eta0": ("ddim", SCHEDULE.ddim_timesteps(50), {"eta": 0.0}),
    "ddim50-eta1": ("ddim", SCHEDULE.ddim_timesteps(50), {"eta": 1.0}),
    "ddim1000-eta0": ("ddim", SCHEDULE.ddim_timesteps(1000), {"eta": 0.0}),
    "ddim1000-eta1": ("ddim", SCHEDULE.ddim_timesteps(1000), {"eta": 1.0}),
    "ddim50-eta0-clip": ("ddim", SCHEDULE.ddim_timesteps(50), {"eta": 0.0, "clip_x0": True}),
    "ddim50-eta0.5-clip": ("ddim", SCHEDULE.ddim_timesteps(50), {"eta": 0.5, "clip_x0": True}),
    "cosine-ancestral": ("ancestral", ALL_STEPS, {"schedule": COSINE}),
    "cosine-ddpm-clip": ("ddpm", ALL_STEPS, {"clip_x0": True, "schedule": COSINE}),
    "cosine-ddim50-eta1": ("ddim", COSINE.ddim_timesteps(50), {"eta": 1.0, "schedule": COSINE}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sample_matches_reference_sampler_with_toy_denoiser(case):
    method, timesteps, kwargs = CASES[case]
    schedule = kwargs.get("schedule", SCHEDULE)
    kwargs = {k: v for k, v in kwargs.items() if k != "schedule"}
    den_numpy, den_torch = make_toy(schedule)
    seed, n = 1234, 3
    ours = _core.sample(den_numpy, schedule, method, timesteps, seed=seed, n=n, **kwargs)
    ref, _ = reference(seed, n, method, timesteps, schedule, den_torch, **kwargs)
    assert ours.shape == (n, 1, 28, 28) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= TOY_TOL
    assert 0.1 < np.abs(ours).mean() < 0.6  # a non-degenerate run: neither zeros nor all ±1


@pytest.mark.parametrize("steps", [50, 100])
def test_ddim_clip_x0_stays_bounded_when_the_denoiser_amplifies_its_input(steps):
    """Clipping x̂_0 but stepping with the raw ε diverged (x → inf → NaN) once ε grew with x; ε
    re-derived from the clipped x̂_0 keeps every x_t bounded whatever the denoiser returns."""
    timesteps = SCHEDULE.ddim_timesteps(steps)

    def amplify(x, t):
        return 50.0 * x

    ours, states = _core.sample(lambda x, t: np.float32(50.0) * x, SCHEDULE_DICT, "ddim",
                                timesteps, seed=5, n=2, clip_x0=True, capture=list(timesteps))
    ref, _ = reference(5, 2, "ddim", timesteps, denoiser=amplify, clip_x0=True)
    assert all(np.isfinite(v).all() and np.abs(v).max() < 10 for v in states.values())
    assert np.isfinite(ours).all() and np.abs(ours).max() <= 1.0
    assert np.abs(ours - ref).max() <= TOY_TOL


def test_sample_captures_intermediate_states_like_reference():
    timesteps, capture = SCHEDULE.ddim_timesteps(50), [999, 510, 0]
    ours, states = _core.sample(toy_numpy, SCHEDULE_DICT, "ddim", timesteps, seed=3, n=2,
                                eta=1.0, capture=capture)
    ref, ref_states = reference(3, 2, "ddim", timesteps, eta=1.0, capture=set(capture))
    assert sorted(states) == sorted(ref_states) == sorted(capture)
    for t in capture:
        assert np.abs(states[t] - ref_states[t]).max() <= TOY_TOL
    np.testing.assert_array_equal(states[999], _core.randn(3, (2, 1, 28, 28)))  # x_T itself


def test_sample_with_x_T_equals_sample_with_seed_drawing_that_x_T():
    x_T = _core.randn(8, (2, 1, 28, 28), step=0)
    a = _core.sample(toy_numpy, SCHEDULE_DICT, "ddpm", ALL_STEPS[:40], seed=8, n=2)
    b = _core.sample(toy_numpy, SCHEDULE_DICT, "ddpm", ALL_STEPS[:40], x_T=x_T, seed=8)
    np.testing.assert_array_equal(a, b)


def test_sample_does_not_modify_x_T():
    x_T = _core.randn(8, (2, 1, 28, 28))
    before = x_T.copy()
    _core.sample(toy_numpy, SCHEDULE_DICT, "ddim", [999, 500, 0], x_T=x_T)
    np.testing.assert_array_equal(x_T, before)


@pytest.mark.parametrize("method, timesteps", [("ancestral", [999, 998, 997, 0]),
                                               ("ddim", [999, 600, 300, 0])])
def test_sample_batch_split_by_sample_offset_gives_the_same_samples(method, timesteps):
    kw = dict(eta=1.0) if method == "ddim" else {}
    whole = _core.sample(toy_numpy, SCHEDULE_DICT, method, timesteps, seed=21, n=6, **kw)
    first = _core.sample(toy_numpy, SCHEDULE_DICT, method, timesteps, seed=21, n=3, **kw)
    second = _core.sample(toy_numpy, SCHEDULE_DICT, method, timesteps, seed=21, n=3,
                          sample_offset=3, **kw)
    np.testing.assert_array_equal(np.concatenate([first, second]), whole)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_sample_is_bitwise_identical_for_any_thread_count(threads):
    n = 180  # 180·784 elements: more than two parallel grains per step
    timesteps = [999, 700, 400, 100, 0]
    ref = _core.sample(toy_numpy, SCHEDULE_DICT, "ddpm", timesteps, seed=4, n=n, threads=1)
    out = _core.sample(toy_numpy, SCHEDULE_DICT, "ddpm", timesteps, seed=4, n=n,
                       threads=threads)
    np.testing.assert_array_equal(out, ref)


def test_sample_passes_the_same_x_and_t_buffers_every_step():
    seen = []

    def denoiser(x, t):
        seen.append((id(x), id(t), x.ctypes.data, t.ctypes.data, t.copy()))
        assert x.dtype == t.dtype == np.float32 and x.shape == (2, 1, 28, 28) and t.shape == (2,)
        return np.zeros_like(x)

    _core.sample(denoiser, SCHEDULE_DICT, "ddim", [999, 500, 3], seed=1, n=2)
    assert len({s[:4] for s in seen}) == 1
    assert [s[4].tolist() for s in seen] == [[999.0] * 2, [500.0] * 2, [3.0] * 2]


def test_sample_reads_a_reused_output_buffer_and_an_aliased_input():
    out = np.empty((2, 1, 28, 28), np.float32)

    def into_buffer(x, t):  # the IO-binding pattern: one output buffer, rewritten per call
        np.copyto(out, toy_numpy(x, t))
        return out

    timesteps = [999, 800, 600, 0]
    a = _core.sample(into_buffer, SCHEDULE_DICT, "ddpm", timesteps, seed=2, n=2)
    np.testing.assert_array_equal(a, _core.sample(toy_numpy, SCHEDULE_DICT, "ddpm", timesteps,
                                                  seed=2, n=2))
    same = _core.sample(lambda x, t: x, SCHEDULE_DICT, "ddim", [999, 0], seed=2, n=2)
    ref, _ = samplers.sample(lambda x, t: x.clone(), SCHEDULE, 2, "ddim", timesteps=[999, 0],
                             noise=lambda k, s: torch.from_numpy(_core.randn(2, s, step=k)))
    assert np.abs(same - ref.numpy()).max() <= TOY_TOL


@pytest.mark.parametrize("every, expected", [
    (1, [(i, 7) for i in range(1, 8)]), (3, [(3, 7), (6, 7), (7, 7)]), (10, [(7, 7)])])
def test_sample_reports_progress_every_k_updates_and_at_the_end(every, expected):
    calls = []
    _core.sample(toy_numpy, SCHEDULE_DICT, "ddim", [999, 900, 800, 500, 200, 100, 0], seed=0,
                 n=1, progress=lambda i, total: calls.append((i, total)), progress_every=every)
    assert calls == expected


def test_sample_accepts_a_schedule_object_and_list_or_array_timesteps():
    a = _core.sample(toy_numpy, SCHEDULE, "ancestral", np.array([999, 5, 0]), seed=1, n=1)
    b = _core.sample(toy_numpy, SCHEDULE_DICT, "ancestral", [999, 5, 0], seed=1, n=1)
    np.testing.assert_array_equal(a, b)


def test_sample_deterministic_methods_need_no_seed_with_x_T():
    x_T = _core.randn(0, (1, 1, 28, 28))
    out = _core.sample(toy_numpy, SCHEDULE_DICT, "ddim", [999, 500, 0], x_T=x_T, eta=0.0)
    ref, _ = samplers.sample(toy_torch, SCHEDULE, 1, "ddim", timesteps=[999, 500, 0],
                             x_T=torch.from_numpy(x_T))
    assert np.abs(out - ref.numpy()).max() <= TOY_TOL
    last_only = _core.sample(toy_numpy, SCHEDULE_DICT, "ancestral", [0], x_T=x_T)
    assert last_only.shape == x_T.shape  # t = 0 alone draws no noise
