"""Issue 14, items 3–4: bounded memory (iter_samples, sample's budget), cancellation, Ctrl-C,
non-finite values in the C++ loop and in reparameterize."""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from latentforge.runtime import _core
from latentforge.runtime import ddpm as ddpm_module
from latentforge.runtime import model as model_module
from latentforge.runtime.api import SamplingCancelled, load
from latentforge.runtime.schedule import schedule_arrays


@pytest.fixture(scope="module")
def ddpm():
    return load("ddpm", threads=1)


@pytest.fixture(scope="module")
def vae():
    return load("vae-conv", threads=1)


ORIGINAL = ddpm_module.BoundDenoiser


class Counting:
    """Wraps the runtime's BoundDenoiser to count denoiser calls (and optionally poison)."""
    calls = 0
    poison_at = None

    def __init__(self, session):
        self.inner = ORIGINAL(session)

    def __call__(self, x, t):
        type(self).calls += 1
        out = self.inner(x, t)
        if type(self).poison_at == type(self).calls:
            out = np.full_like(out, np.nan)
        return out


@pytest.fixture
def counting(monkeypatch):
    Counting.calls, Counting.poison_at = 0, None
    monkeypatch.setattr(ddpm_module, "BoundDenoiser", Counting)
    return Counting


def test_event_cancels_a_1000_step_sample_within_one_step(ddpm, counting):
    stop = threading.Event()

    def progress(done, total):
        assert total == 1000
        if done == 3:
            stop.set()

    with pytest.raises(SamplingCancelled, match="after step 3 of 1000"):
        ddpm.sample(2, method="ancestral", seed=0, progress=progress, cancel=stop)
    assert counting.calls == 3


def test_progress_callback_returning_false_cancels(ddpm, counting):
    with pytest.raises(SamplingCancelled, match="step 2 of"):
        ddpm.sample(1, method="ddim", steps=50, seed=0, progress=lambda d, t: d < 2)
    assert counting.calls == 2


def test_cancel_from_another_thread_stops_iter_samples(ddpm, counting):
    stop = threading.Event()
    gen = ddpm.iter_samples(4, method="ddim", steps=20, seed=0, batch_size=2, progress=False,
                            cancel=stop)
    first = next(gen)
    assert first.shape == (2, 1, 28, 28)
    stop.set()
    with pytest.raises(SamplingCancelled):
        next(gen)
    assert counting.calls == 21  # the 20 steps of batch 1, then one of batch 2


def test_bad_cancel_and_progress_objects_are_type_errors(ddpm):
    with pytest.raises(TypeError, match="cancel"):
        ddpm.sample(1, cancel=True)
    with pytest.raises(TypeError, match="progress"):
        ddpm.sample(1, progress="yes")


def test_ctrl_c_during_sampling_raises_keyboard_interrupt_promptly(ddpm):
    timer = threading.Timer(0.5, os.kill, (os.getpid(), 2))  # SIGINT to ourselves
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            ddpm.sample(8, method="ancestral", seed=0, progress=False)
    finally:
        timer.cancel()
    assert time.perf_counter() - start < 5.0  # 1000 steps would take far longer


def test_nan_from_the_denoiser_raises_naming_the_step(ddpm, counting):
    counting.poison_at = 4
    with pytest.raises(FloatingPointError, match=r"step 4 of 10 \(t = 666\)"):
        ddpm.sample(2, method="ddim", steps=10, seed=0, progress=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_core_loop_refuses_non_finite_denoiser_output(ddpm, bad):
    schedule = schedule_arrays(ddpm.manifest["schedule"])
    calls = []

    def denoiser(x, t):
        calls.append(1)
        return np.full(x.shape, bad if len(calls) == 2 else 0.1, dtype=np.float32)

    with pytest.raises(FloatingPointError, match="step 2 of 3"):
        _core.sample(denoiser, schedule, "ddpm", [999, 500, 0], seed=0, n=1)
    assert len(calls) == 2


def test_sample_of_a_billion_digits_fails_fast_with_the_streaming_hint(ddpm, vae):
    start = time.perf_counter()
    for model in (ddpm, vae):
        with pytest.raises(ValueError, match=r"iter_samples.*--npy"):
            model.sample(10**9, seed=0)
    assert time.perf_counter() - start < 1.0


def test_captures_count_towards_the_budget(ddpm, monkeypatch):
    monkeypatch.setattr(model_module, "SAMPLE_MEMORY_BUDGET", 10 * model_module.DIGIT_BYTES)
    ddpm.sample(5, method="ddim", steps=2, seed=0, progress=False)  # 5 images fit
    with pytest.raises(ValueError, match="15 images"):
        ddpm.sample(5, method="ddim", steps=2, seed=0, progress=False, capture=[999, 0])


def test_iter_samples_equals_sample_bitwise_for_every_chunking(ddpm):
    kw = dict(method="sde-dpmpp-2m", steps=4, seed=7, progress=False)
    whole = ddpm.sample(5, batch_size=5, **kw)
    for bs in (1, 2, 3, 64):
        joined = np.concatenate(list(ddpm.iter_samples(5, batch_size=bs, **kw)))
        np.testing.assert_array_equal(joined, whole)


def test_iter_samples_checks_arguments_at_the_call(ddpm):
    with pytest.raises(ValueError, match="batch_size"):
        ddpm.iter_samples(5, batch_size=0)  # no next() needed
    ddpm.iter_samples(5, seed=11)
    assert ddpm.last_seed == 11


def test_vae_sample_streams_in_chunks_bitwise_equal_to_one_draw(vae):
    zeros = np.zeros((600, vae.latent_dim), dtype=np.float32)
    z = _core.reparameterize(zeros, zeros, seed=3)  # the former one-call draw
    expected = vae.decode(z)
    np.testing.assert_array_equal(vae.sample(600, seed=3), expected)
    joined = np.concatenate(list(vae.iter_samples(600, seed=3, batch_size=7)))
    np.testing.assert_array_equal(joined, expected)


def test_reparameterize_refuses_logvar_that_overflows_float32(vae):
    mu = np.zeros((2, vae.latent_dim), dtype=np.float32)
    with pytest.raises(ValueError, match="logvar.*overflows float32"):
        vae.reparameterize(mu, np.full_like(mu, 200.0), seed=0)
    with pytest.raises(ValueError, match="overflows"):
        vae.reparameterize(np.full_like(mu, 3.4e38), np.full_like(mu, 176.0), seed=0)
    z = vae.reparameterize(mu, np.zeros_like(mu), seed=0)
    np.testing.assert_array_equal(z, _core.reparameterize(mu, np.zeros_like(mu), seed=0))


RSS_SCRIPT = r"""
import hashlib, json, re, sys
import numpy as np
from latentforge.runtime import load
m = load("ddpm", threads=1)
kw = dict(method="ddim", steps=1, seed=0, batch_size=64, progress=False)
h, count = hashlib.sha256(), 0
for batch in m.iter_samples(10_000, **kw):
    h.update(batch.tobytes())
    count += len(batch)
# VmHWM, not ru_maxrss: the latter keeps the forking parent's (pytest's) peak across exec
status = open("/proc/self/status").read()
peak_iter = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
same = hashlib.sha256(m.sample(10_000, **kw).tobytes()).hexdigest() == h.hexdigest()
print(json.dumps({"count": count, "rss_mb": peak_iter, "same": same}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM (Linux)")
def test_iter_samples_streams_10000_digits_under_300_mb_equal_to_sample():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", RSS_SCRIPT], capture_output=True, text=True,
                       env=env, timeout=600, cwd="/")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    print(result)
    assert result["count"] == 10_000 and result["same"]
    assert result["rss_mb"] < 300, result
