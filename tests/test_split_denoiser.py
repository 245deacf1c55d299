"""runtime/session.SplitDenoiser: on a multi-core CPU, DDPM chunks of ≥ parts × MIN_ROWS digits
run as one single-threaded U-Net call per core; the digits are bitwise those of one call."""
from __future__ import annotations

import numpy as np
import pytest

from latentforge.runtime.api import load
from latentforge.runtime.session import BoundDenoiser, SplitDenoiser


@pytest.fixture(scope="module")
def ddpms():
    split = load("ddpm", providers="cpu", threads=2)
    whole = load("ddpm", providers="cpu", threads=2)
    whole.single_thread_unet = None  # one session on 2 threads, as before the split
    return split, whole


def test_large_chunks_split_over_cores_and_small_ones_do_not(ddpms):
    split, _ = ddpms
    assert split.unet_parts == 2
    assert isinstance(split.denoiser(2 * SplitDenoiser.MIN_ROWS), SplitDenoiser)
    assert isinstance(split.denoiser(2 * SplitDenoiser.MIN_ROWS - 1), BoundDenoiser)
    assert load("ddpm", providers="cpu", threads=1).single_thread_unet is None


@pytest.mark.parametrize("method,steps", [("sde-dpmpp-2m", 4), ("ddim", 3)])
def test_split_sampling_gives_the_single_session_digits_bitwise(ddpms, method, steps):
    split, whole = ddpms
    kw = dict(method=method, steps=steps, seed=3, progress=False)
    for n, batch_size in ((21, 21), (40, 17)):  # odd splits; a last chunk below the threshold
        np.testing.assert_array_equal(split.sample(n, batch_size=batch_size, **kw),
                                      whole.sample(n, batch_size=batch_size, **kw))


def test_split_denoiser_rebinds_for_each_new_chunk(ddpms):
    split, _ = ddpms
    den = split.denoiser(32)
    ref = BoundDenoiser(split.sessions["unet"])
    rng = np.random.default_rng(0)
    for n in (32, 16, 32):
        x = rng.standard_normal((n, 1, 28, 28), dtype=np.float32)
        t = np.full(n, 500.0, np.float32)
        np.testing.assert_array_equal(den(x, t), ref(x, t).copy())
    assert den.calls == 3
