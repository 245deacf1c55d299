"""`_core.randn`: the counter-based generator behind every noise draw of the runtime.

Pins the noise-key contract (README "Noise keys"): element j of randn(seed, shape, step, offset)
is a pure function of (seed, step, offset + j), so threads and chunking never change a bit.
"""
import math

import numpy as np
import pytest
from scipy import stats

from latentforge.runtime import _core

N_STATS = 10**6
MASK32 = np.uint64(0xFFFFFFFF)


# --- an independent numpy model of the generator (Random123 Philox-4x32-10 + Box-Muller) ---

def philox_numpy(counter_words, seed):
    """Philox-4x32-10 on arrays of counters; uint64 arrays holding 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(w, dtype=np.uint64) for w in counter_words)
    k0, k1 = np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)
    for rnd in range(10):
        if rnd:
            k0 = (k0 + np.uint64(0x9E3779B9)) & MASK32
            k1 = (k1 + np.uint64(0xBB67AE85)) & MASK32
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & MASK32,
                          (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & MASK32)
    return c0, c1, c2, c3


def box_muller_numpy(radius_word, angle_word):
    """The documented transform, uniforms rounded to float32 as in C++, the rest in float64."""
    u = ((radius_word >> np.uint64(1)).astype(np.int32).astype(np.float32) * np.float32(2.0**-31)
         + np.float32(2.0**-32))
    r = np.sqrt(-2.0 * np.log(u.astype(np.float64)))
    q = (angle_word >> np.uint64(30)).astype(np.int64)
    frac = (angle_word & np.uint64(0x3FFFFFFF)).astype(np.int32).astype(np.float32)
    phi = ((frac * np.float32(2.0**-30) - np.float32(0.5))
           * np.float32(math.pi / 2)).astype(np.float64)
    theta = phi + q * (math.pi / 2)
    return r * np.cos(theta), r * np.sin(theta)


def randn_numpy(seed, n, step=0, offset=0):
    g = np.arange(offset, offset + n, dtype=np.uint64)
    block = g >> np.uint64(2)
    words = philox_numpy((block & MASK32, block >> np.uint64(32),
                          np.full_like(g, step & 0xFFFFFFFF), np.full_like(g, step >> 32)), seed)
    cos01, sin01 = box_muller_numpy(words[0], words[1])
    cos23, sin23 = box_muller_numpy(words[2], words[3])
    lane = (g & np.uint64(3)).astype(np.int64)
    return np.choose(lane, [cos01, sin01, cos23, sin23])


# --- known answers and the exact definition ---

@pytest.mark.parametrize("counter, key, expected", [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_matches_random123_known_answers(counter, key, expected):
    assert _core.philox4x32_10(counter, key) == expected
    words = philox_numpy([[w] for w in counter], key[0] | (key[1] << 32))
    assert tuple(int(w[0]) for w in words) == expected


@pytest.mark.parametrize("seed, step, offset", [
    (0, 0, 0), (12345, 7, 3), (2**64 - 1, 2**40 + 5, 2**36 + 1), (99, 2**63, 2**64 - 5000)])
def test_randn_equals_documented_philox_box_muller(seed, step, offset):
    ours = _core.randn(seed, (4999,), step=step, offset=offset).astype(np.float64)
    ref = randn_numpy(seed, 4999, step, offset)
    # float32 log/sqrt/sin/cos polynomials: a few ulp of the result
    np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=2e-6)


# --- statistics on 10^6 draws ---

def test_randn_is_standard_normal_mean_variance_ks():
    raw = _core.randn(2024, (N_STATS,))
    assert raw.dtype == np.float32 and np.isfinite(raw).all()
    x = raw.astype(np.float64)
    se_mean, se_var = 1 / math.sqrt(N_STATS), math.sqrt(2 / N_STATS)
    assert abs(x.mean()) < 5 * se_mean
    assert abs(x.var() - 1.0) < 5 * se_var
    assert stats.kstest(x, "norm").pvalue > 1e-3
    # each of the four Philox output lanes separately (catches a broken lane)
    for lane in x.reshape(-1, 4).T:
        assert stats.kstest(lane, "norm").pvalue > 1e-3
    assert abs(stats.skew(x)) < 5 * math.sqrt(6 / N_STATS)
    assert abs(stats.kurtosis(x)) < 5 * math.sqrt(24 / N_STATS)


def test_randn_streams_for_other_steps_seeds_and_offsets_are_uncorrelated():
    n = 200_000
    base = _core.randn(5, (n,))
    others = [_core.randn(5, (n,), step=1), _core.randn(6, (n,)), _core.randn(5, (n,), offset=n),
              _core.randn(2**32 + 5, (n,))]
    for other in others:
        assert abs(np.corrcoef(base, other)[0, 1]) < 5 / math.sqrt(n)
    pairs = base.reshape(-1, 2)  # the two normals of one Box-Muller pair
    assert abs(np.corrcoef(pairs[:, 0] ** 2, pairs[:, 1] ** 2)[0, 1]) < 5 / math.sqrt(n / 2)


# --- reproducibility ---

@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_randn_is_bitwise_identical_for_any_thread_count(threads):
    n = 600_003  # several parallel grains, an unaligned tail
    ref = _core.randn(11, (n,), step=4, offset=13, threads=1)
    np.testing.assert_array_equal(_core.randn(11, (n,), step=4, offset=13, threads=threads), ref)


def test_randn_is_bitwise_identical_for_any_chunking():
    n, offset = 100_000, 77
    whole = _core.randn(3, (n,), step=2, offset=offset)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, n), size=40, replace=False))
    parts = [_core.randn(3, (b - a,), step=2, offset=offset + a)
             for a, b in zip(np.r_[0, cuts], np.r_[cuts, n])]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_randn_sample_s_of_a_batch_starts_at_offset_s_times_784():
    batch = _core.randn(9, (6, 1, 28, 28), step=3)
    assert batch.shape == (6, 1, 28, 28) and batch.dtype == np.float32
    for s in range(6):
        one = _core.randn(9, (1, 28, 28), step=3, offset=s * 784)
        np.testing.assert_array_equal(batch[s], one)


def test_randn_depends_on_seed_step_and_offset():
    a = _core.randn(1, (64,))
    assert not np.array_equal(a, _core.randn(2, (64,)))
    assert not np.array_equal(a, _core.randn(1, (64,), step=1))
    assert not np.array_equal(a, _core.randn(1, (64,), offset=1))
    np.testing.assert_array_equal(a[1:], _core.randn(1, (63,), offset=1))


@pytest.mark.parametrize("shape, expected", [(5, (5,)), ((), ()), ((2, 0, 3), (2, 0, 3)),
                                             ([2, 3], (2, 3)), (np.int64(4), (4,))])
def test_randn_shape_forms(shape, expected):
    out = _core.randn(0, shape)
    assert out.shape == expected and out.dtype == np.float32


@pytest.mark.parametrize("kwargs, error", [
    (dict(seed=-1, shape=3), ValueError),
    (dict(seed=2**64, shape=3), ValueError),
    (dict(seed=1.5, shape=3), TypeError),
    (dict(seed=None, shape=3), TypeError),
    (dict(seed=0, shape=3, step=-1), ValueError),
    (dict(seed=0, shape=3, offset=2**64 - 2), ValueError),
    (dict(seed=0, shape=(-1, 3)), ValueError),
    (dict(seed=0, shape=(2.0, 3)), TypeError),
    (dict(seed=0, shape="abc"), TypeError),
    (dict(seed=0, shape=(2**31, 2**31)), ValueError),
    (dict(seed=0, shape=3, threads=-1), ValueError),
])
def test_randn_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        _core.randn(**kwargs)
