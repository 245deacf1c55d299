"""DPM-Solver++ through the runtime and the CLI on the shipped DDPM: the default sampler,
determinism, batch-split invariance, and clear errors."""
import json
from pathlib import Path

import numpy as np
import pytest

from latentforge.runtime.api import load
from latentforge.runtime.cli import main
from latentforge.runtime.sampling import (DEFAULT_ETA, DEFAULT_METHOD, DEFAULT_STEPS, METHODS,
                                          SOLVER_STEPS)
from latentforge.runtime.schedule import SOLVER_METHODS, linspace_timesteps


@pytest.fixture(scope="module")
def ddpm():
    return load("ddpm", threads=1)


def test_default_sampler_is_the_fastest_quality_matched_setting_measured(ddpm):
    from latentforge.runtime.sampler_table import mark_quality_matched

    bench = json.loads((Path(__file__).parents[1] / "docs" / "bench_quality_1000.json")
                       .read_text())
    table = next(r["table"] for r in bench if r["what"] == "sampler quality")
    best = mark_quality_matched(table)
    assert best["n"] == 1000
    assert (DEFAULT_METHOD, DEFAULT_STEPS, DEFAULT_ETA) == \
        (best["method"], best["steps"], best["eta"])
    kw = dict(seed=3, progress=False, batch_size=2)
    np.testing.assert_array_equal(
        ddpm.sample(2, **kw),
        ddpm.sample(2, method=DEFAULT_METHOD, steps=DEFAULT_STEPS, eta=DEFAULT_ETA, **kw))


def test_a_named_solver_without_steps_runs_solver_steps(ddpm):
    for method in SOLVER_METHODS:
        assert ddpm.timesteps(method, None).tolist() == \
            linspace_timesteps(1000, SOLVER_STEPS).tolist()


@pytest.mark.parametrize("method", SOLVER_METHODS)
def test_solvers_are_deterministic_and_batch_split_invariant(ddpm, method):
    kw = dict(method=method, steps=6, seed=7, progress=False)
    whole = ddpm.sample(5, batch_size=5, **kw)
    assert whole.shape == (5, 1, 28, 28) and whole.dtype == np.float32
    assert 0 <= whole.min() and whole.max() <= 1
    np.testing.assert_array_equal(whole, ddpm.sample(5, batch_size=5, **kw))
    np.testing.assert_allclose(ddpm.sample(5, batch_size=2, **kw), whole, atol=1e-6)
    assert not np.array_equal(whole, ddpm.sample(5, batch_size=5, **{**kw, "seed": 8}))


def test_solver_timesteps_follow_diffusers_linspace_spacing(ddpm):
    assert ddpm.timesteps("dpmpp-2m", 10).tolist() == \
        [999, 899, 799, 699, 599, 500, 400, 300, 200, 100]


@pytest.mark.parametrize("method", SOLVER_METHODS)
def test_solver_steps_out_of_range_are_clear_errors(ddpm, method):
    for steps in (0, 1, 1000):  # T − 1 at most: linspace would repeat a timestep
        with pytest.raises(ValueError, match=r"steps must be an integer in .* \[2, 999\]"):
            ddpm.sample(2, method=method, steps=steps, seed=0, progress=False)
    with pytest.raises(ValueError, match="steps must be an integer"):
        ddpm.sample(2, method=method, steps=2.5, seed=0, progress=False)


def test_unknown_method_lists_every_method(ddpm):
    with pytest.raises(ValueError, match="ancestral, ddpm, ddim, dpmpp-2m, sde-dpmpp-2m"):
        ddpm.sample(2, method="euler")


def test_cli_sample_and_quality_accept_the_solvers(tmp_path, capsys):
    npy = tmp_path / "d.npy"
    assert main(["sample", "ddpm", "-n", "3", "--method", "sde-dpmpp-2m", "--steps", "4",
                 "--seed", "1", "-o", str(tmp_path / "d.png"), "--npy", str(npy),
                 "--threads", "1"]) == 0
    assert np.load(npy).shape == (3, 1, 28, 28)
    assert main(["quality", "ddpm", "-n", "4", "--method", "dpmpp-2m", "--steps", "3",
                 "--reference-size", "50", "--threads", "1"]) == 0
    assert "FD" in capsys.readouterr().out
    assert main(["sample", "ddpm", "-n", "2", "--method", "dpmpp-2m", "--steps", "1",
                 "-o", str(tmp_path / "e.png")]) == 2
    assert "[2, 999]" in capsys.readouterr().err
