"""The DPM-Solver++(2M) methods 'dpmpp-2m' and 'sde-dpmpp-2m': the C++ loop against the
PyTorch reference (latentforge.train.samplers) fed the extension's own noise, the reference
against Hugging Face diffusers' DPMSolverMultistepScheduler, and the loop's invariances and
errors."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from latentforge.runtime import _core
from latentforge.runtime.schedule import SOLVER_METHODS, linspace_timesteps, schedule_arrays
from latentforge.train import samplers
from latentforge.train.schedule import NoiseSchedule
from test_core_sample import make_toy  # the same toy stand-in for the U-Net

SCHEDULE = NoiseSchedule()
SCHED = {name: getattr(SCHEDULE, name) for name in NoiseSchedule.ARRAYS}
TOL = 1e-4  # max |difference| after the whole loop, with the same denoiser on both sides
# (measured: toy <= 2.4e-5; the shipped U-Net through onnxruntime: 0, bitwise), and per step
# between the C++ loop on onnxruntime and the reference on PyTorch (measured <= 2.6e-6).
# Across a whole 20-step loop with PyTorch's U-Net in the reference, the stochastic solver
# amplifies that rounding-level network difference on a few trajectories (seeds 11, 21-25:
# 46 of 48 samples <= 1e-4, worst 1.2e-4; the previous weights: worst 3.7e-4), so that
# end-to-end test bounds the median sample by TOL and every sample by LOOP_TOL; a wrong
# coefficient, noise key or order moves every sample by > 1e-2.
LOOP_TOL = 5e-3
DDPM_DIR = Path(__file__).parents[1] / "runtime" / "models" / "ddpm-unet"
# diffusers' set_timesteps calls np.array() on a torch tensor, which NumPy 2 flags as deprecated.
NP_ARRAY_COPY = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"


toy_numpy, toy_torch = make_toy(SCHEDULE)


def core_noise(seed):
    """The extension's noise as the reference's source: key k = randn step k."""
    return lambda key, shape: torch.from_numpy(_core.randn(seed, shape, step=key))


def reference(seed, n, method, timesteps, denoiser=toy_torch, schedule=SCHEDULE):
    x0, _ = samplers.sample(denoiser, schedule, n, method, timesteps=timesteps,
                            noise=core_noise(seed))
    return x0.numpy()


@pytest.mark.parametrize("steps", [2, 3, 10, 20, 50])
@pytest.mark.parametrize("method", SOLVER_METHODS)
def test_solver_matches_reference_sampler_with_toy_denoiser(method, steps):
    timesteps = linspace_timesteps(1000, steps)
    ours = _core.sample(toy_numpy, SCHED, method, timesteps, seed=1234, n=3)
    ref = reference(1234, 3, method, timesteps)
    assert ours.shape == (3, 1, 28, 28) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= TOL
    assert 0.05 < np.abs(ours).mean() < 0.6  # a non-degenerate run: neither zeros nor all ±1


@pytest.mark.parametrize("method", SOLVER_METHODS)
def test_solver_matches_reference_on_cosine_schedule_and_uneven_timesteps(method):
    cosine = NoiseSchedule(kind="cosine")
    den_numpy, den_torch = make_toy(cosine)
    timesteps = [990, 900, 870, 600, 598, 300, 40, 39, 5]  # step ratios r far from 1
    ours = _core.sample(den_numpy, cosine, method, timesteps, seed=9, n=2)
    ref = reference(9, 2, method, timesteps, den_torch, cosine)
    assert np.abs(ours - ref).max() <= TOL


def test_sde_solver_draws_noise_keys_one_to_n_minus_one_and_ode_draws_none():
    keys = {m: [] for m in SOLVER_METHODS}
    for method in SOLVER_METHODS:
        def noise(key, shape, method=method):
            keys[method].append(key)
            return torch.zeros(shape)
        samplers.sample(toy_torch, SCHEDULE, 1, method, steps=5, noise=noise)
    assert keys == {"dpmpp-2m": [0], "sde-dpmpp-2m": [0, 1, 2, 3, 4]}  # none on the last step
    x_T = _core.randn(0, (1, 1, 28, 28))
    out = _core.sample(toy_numpy, SCHED, "dpmpp-2m", [999, 500, 0], x_T=x_T)  # no seed needed
    ref, _ = samplers.sample(toy_torch, SCHEDULE, 1, "dpmpp-2m", timesteps=[999, 500, 0],
                             x_T=torch.from_numpy(x_T))
    assert np.abs(out - ref.numpy()).max() <= TOL


# --- the reference against diffusers ---

def diffusers_loop(method, steps, seed, n, denoiser=toy_torch):
    """diffusers' scheduler on our float32 betas, stepping the same toy denoiser with the
    same noise as the reference (update i: key i + 1; the final step gets zeros, which it
    multiplies by σ = 0)."""
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=SCHEDULE.num_timesteps, trained_betas=SCHEDULE.betas,
        algorithm_type={"dpmpp-2m": "dpmsolver++", "sde-dpmpp-2m": "sde-dpmsolver++"}[method],
        solver_order=2, solver_type="midpoint", final_sigmas_type="zero",
        lower_order_final=True, timestep_spacing="linspace", prediction_type="epsilon",
        thresholding=False)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.numpy()
    noise = core_noise(seed)
    shape = (n, 1, 28, 28)
    x = noise(0, shape)
    for i, t in enumerate(timesteps):
        eps = denoiser(x, torch.full((n,), float(t)))
        z = noise(i + 1, shape) if i + 1 < len(timesteps) else torch.zeros(shape)
        x = scheduler.step(eps, int(t), x, variance_noise=z).prev_sample
    return timesteps, x.clamp(-1.0, 1.0).numpy()


@pytest.mark.filterwarnings(NP_ARRAY_COPY)
@pytest.mark.parametrize("steps", [2, 3, 10, 20, 50])
@pytest.mark.parametrize("method", SOLVER_METHODS)
def test_reference_matches_diffusers_dpm_solver_multistep_scheduler(method, steps):
    timesteps, theirs = diffusers_loop(method, steps, seed=77, n=3)
    np.testing.assert_array_equal(timesteps, linspace_timesteps(1000, steps))
    ref = reference(77, 3, method, timesteps)
    assert np.abs(ref - theirs).max() <= TOL


# --- the shipped U-Net through onnxruntime ---

@pytest.fixture(scope="module")
def shipped_unet():
    """(denoiser bound to the shipped ONNX U-Net, its schedule arrays, the PyTorch U-Net and
    schedule from the shipped checkpoint)."""
    from latentforge.runtime.session import BoundDenoiser, make_session
    from latentforge.train.checkpoint import load_checkpoint
    from latentforge.train.registry import model_from_checkpoint
    from latentforge.train.schedule import ScheduleConfig

    manifest = json.loads((DDPM_DIR / "manifest.json").read_text())
    session = make_session(DDPM_DIR / manifest["graphs"]["unet"]["file"], "cpu", threads=1)
    ckpt = load_checkpoint(DDPM_DIR / "checkpoint.pt")
    return (BoundDenoiser(session), schedule_arrays(manifest["schedule"]),
            model_from_checkpoint(ckpt)[2], NoiseSchedule(ScheduleConfig(**ckpt["schedule"])))


@pytest.mark.parametrize("method", SOLVER_METHODS)
def test_shipped_unet_through_onnxruntime_gives_the_reference_loop_at_20_steps(shipped_unet,
                                                                               method):
    denoiser, schedule_arrays_, _, schedule = shipped_unet
    timesteps = linspace_timesteps(schedule.num_timesteps, 20)
    ours = _core.sample(denoiser, schedule_arrays_, method, timesteps, seed=11, n=8)

    def onnx_unet(x, t):  # the same graph in the reference, called without IO binding
        return torch.from_numpy(denoiser.session.run(
            None, {"x": x.numpy(), "t": t.numpy().astype(np.float32)})[0])

    ref = reference(11, 8, method, timesteps, onnx_unet, schedule)
    assert np.abs(ours - ref).max() <= TOL


@pytest.mark.parametrize("method", SOLVER_METHODS)
def test_shipped_unet_in_cpp_loop_matches_pytorch_reference_at_20_steps(shipped_unet, method):
    denoiser, schedule_arrays_, unet, schedule = shipped_unet
    timesteps = linspace_timesteps(schedule.num_timesteps, 20)
    ours = _core.sample(denoiser, schedule_arrays_, method, timesteps, seed=11, n=8)
    with torch.no_grad():
        ref = reference(11, 8, method, timesteps, lambda x, t: unet(x, t), schedule)
    per_sample = np.abs(ours - ref).reshape(8, -1).max(axis=1)
    assert np.median(per_sample) <= TOL and per_sample.max() <= LOOP_TOL, per_sample
    assert 0.2 < np.abs(ours).mean() < 1.0  # digits: mostly ±1 background and strokes


@pytest.mark.parametrize("method", SOLVER_METHODS)
def test_every_update_of_the_cpp_loop_on_the_shipped_unet_is_one_reference_step(shipped_unet,
                                                                               method):
    """Each captured x_t of the C++ loop (onnxruntime U-Net), advanced by one step of the
    PyTorch reference (PyTorch U-Net, the same noise key), gives the loop's next x_t."""
    denoiser, schedule_arrays_, unet, schedule = shipped_unet
    timesteps = [int(t) for t in linspace_timesteps(schedule.num_timesteps, 20)]
    n, sde = 8, method == "sde-dpmpp-2m"
    x0, captured = _core.sample(denoiser, schedule_arrays_, method, timesteps, seed=11, n=n,
                                capture=timesteps)
    states = [captured[t] for t in timesteps] + [x0]  # x_t before each update, then x_0
    x0_prev, worst = None, []
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            last = i == len(timesteps) - 1
            x = torch.from_numpy(states[i])
            eps = unet(x, torch.full((n,), float(t)))
            z = core_noise(11)(i + 1, (n, 1, 28, 28)) if sde and not last else None
            out, x0_prev = samplers.dpmpp_2m_step(
                schedule, x, eps, t, -1 if last else timesteps[i + 1],
                timesteps[i - 1] if i > 0 else None, x0_prev, z, sde=sde)
            out = out.clamp(-1.0, 1.0) if last else out
            worst.append(float(np.abs(out.numpy() - states[i + 1]).max()))
    assert max(worst) <= TOL, worst


# --- invariances ---

@pytest.mark.parametrize("method", SOLVER_METHODS)
def test_solver_batch_split_by_sample_offset_gives_bitwise_the_same_samples(method):
    timesteps = linspace_timesteps(1000, 6)
    whole = _core.sample(toy_numpy, SCHED, method, timesteps, seed=21, n=5)
    first = _core.sample(toy_numpy, SCHED, method, timesteps, seed=21, n=2)
    rest = _core.sample(toy_numpy, SCHED, method, timesteps, seed=21, n=3, sample_offset=2)
    np.testing.assert_array_equal(np.concatenate([first, rest]), whole)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("method", SOLVER_METHODS)
def test_solver_is_bitwise_identical_for_any_thread_count(method, threads):
    n = 180  # 180·784 elements: more than two parallel grains per step
    timesteps = linspace_timesteps(1000, 5)
    one = _core.sample(toy_numpy, SCHED, method, timesteps, seed=4, n=n, threads=1)
    out = _core.sample(toy_numpy, SCHED, method, timesteps, seed=4, n=n, threads=threads)
    np.testing.assert_array_equal(out, one)


# --- bad input ---

def test_unknown_method_lists_all_five_methods():
    with pytest.raises(ValueError, match="method must be one of 'ancestral', 'ddpm', 'ddim', "
                                         "'dpmpp-2m', 'sde-dpmpp-2m', got 'euler'"):
        _core.sample(toy_numpy, SCHED, "euler", [999, 0], seed=1, n=1)
    with pytest.raises(ValueError, match="ancestral.*ddpm.*ddim.*dpmpp-2m.*sde-dpmpp-2m"):
        samplers.sample(toy_torch, SCHEDULE, 1, "euler")


@pytest.mark.parametrize("method", SOLVER_METHODS)
@pytest.mark.parametrize("kwargs, match", [
    (dict(timesteps=[999]), "steps must be >= 2 for {method}"),
    (dict(timesteps=[0]), "steps must be >= 2 for {method}"),
    (dict(eta=0.5), "eta applies to method='ddim' only"),
    (dict(clip_x0=True), "clip_x0 applies to methods 'ddpm' and 'ddim' only"),
    (dict(timesteps=[999, 999, 0]), "strictly descending"),
])
def test_solver_rejects_bad_input_with_clear_valueerror(method, kwargs, match):
    kw = dict(timesteps=[999, 500, 0], seed=1, n=1)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match.format(method=method)):
        _core.sample(toy_numpy, SCHED, method, **kw)


def test_sde_solver_needs_a_seed_even_with_x_T():
    x_T = np.zeros((1, 1, 28, 28), np.float32)
    with pytest.raises(ValueError, match="seed is required: method 'sde-dpmpp-2m'"):
        _core.sample(toy_numpy, SCHED, "sde-dpmpp-2m", [999, 500, 0], x_T=x_T)


@pytest.mark.parametrize("kwargs, match", [
    (dict(timesteps=[999]), "steps must be >= 2"),
    (dict(steps=1), r"steps must be an integer in \[2, T-1\]"),
    (dict(eta=1.0), "takes neither eta nor clip_x0"),
    (dict(clip_x0=True), "takes neither eta nor clip_x0"),
    (dict(), "pass steps or timesteps"),
])
def test_reference_solver_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        samplers.sample(toy_torch, SCHEDULE, 1, "dpmpp-2m", **kwargs)


def test_solver_rejects_a_schedule_whose_alphas_cumprod_does_not_fall_with_t():
    flat = {**SCHED, "alphas_cumprod": np.full(1000, 0.5, np.float32)}
    with pytest.raises(ValueError, match="alphas_cumprod must increase strictly as t falls"):
        _core.sample(toy_numpy, flat, "dpmpp-2m", [999, 500, 0], seed=1, n=1)


def test_linspace_timesteps_is_diffusers_linspace_spacing():
    np.testing.assert_array_equal(linspace_timesteps(1000, 10),
                                  [999, 899, 799, 699, 599, 500, 400, 300, 200, 100])
    np.testing.assert_array_equal(linspace_timesteps(1000, 2), [999, 500])
    np.testing.assert_array_equal(linspace_timesteps(1000, 999), np.arange(999, 0, -1))
    ts = linspace_timesteps(1000, 20)
    assert ts.dtype == np.int64 and ts[0] == 999 and np.all(np.diff(ts) < 0)


@pytest.mark.parametrize("steps", [1, 0, -3, 1000, 1001, 2.5, None, "20", True])
def test_linspace_timesteps_rejects_steps_outside_2_to_T_minus_1(steps):
    """steps = T would repeat a timestep (the grid spacing (T−1)/T < 1 rounds two points to
    the same integer), which no strictly descending schedule can hold."""
    with pytest.raises(ValueError, match=r"steps must be an integer in \[2, T-1\] = \[2, 999\]"):
        linspace_timesteps(1000, steps)
