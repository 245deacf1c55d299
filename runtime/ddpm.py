"""The DDPM: the reverse process run by the C++ loop (runtime/_core), chunk by chunk.

``sample`` fills one preallocated array under SAMPLE_MEMORY_BUDGET; ``iter_samples`` yields the
same digits batch by batch for any n. Cancellation (an Event or the progress callback returning
False) and the progress bar are served by one per-step callback.
"""
from __future__ import annotations

import numpy as np

from . import _core
from .checks import check_float, check_int
from .model import Model, _batch, _check_budget, _check_n, _seed
from .progress import Progress
from .sampling import DEFAULT_ETA, DEFAULT_METHOD, DEFAULT_STEPS, METHODS, SOLVER_STEPS
from .schedule import SOLVER_METHODS, ddim_timesteps, linspace_timesteps, schedule_arrays
from .session import BoundDenoiser, SplitDenoiser


class SamplingCancelled(RuntimeError):
    """Sampling stopped on request (``cancel`` set, or the progress callback returned False)."""


class DDPM(Model):
    # load() on a multi-core CPU sets these: chunks of ≥ unet_parts × SplitDenoiser.MIN_ROWS
    # digits then run as one single-threaded U-Net call per core (session made on first use)
    unet_parts: int = 1
    single_thread_unet = None  # () → a single-threaded session of the same graph

    def __init__(self, directory, manifest, sessions):
        super().__init__(directory, manifest, sessions)
        self.schedule = schedule_arrays(manifest["schedule"])
        self.num_timesteps = len(self.schedule["betas"])
        self.last_seed: int | None = None
        self._single = None

    def denoiser(self, rows: int):
        """The per-step ε̂ callable for chunks of up to ``rows`` digits."""
        whole = BoundDenoiser(self.sessions["unet"])
        if self.single_thread_unet is None or rows < self.unet_parts * SplitDenoiser.MIN_ROWS:
            return whole
        if self._single is None:
            self._single = self.single_thread_unet()
        return SplitDenoiser(self._single, whole, self.unet_parts)

    def timesteps(self, method: str, steps: int | None) -> np.ndarray:
        """The descending timesteps ``method`` visits: all T for ancestral/ddpm; ``steps``
        (default T) evenly spaced from T−1 for ddim; ``steps`` (default SOLVER_STEPS) as
        diffusers' timestep_spacing="linspace" for the DPM-Solver++ methods."""
        T = self.num_timesteps
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        steps = check_int(steps, "steps", optional=True)  # the range depends on the method
        if method in SOLVER_METHODS:
            return linspace_timesteps(T, SOLVER_STEPS if steps is None else steps)
        if method == "ddim":
            return ddim_timesteps(T, T if steps is None else steps)
        if steps not in (None, T):
            raise ValueError(f"{method} runs all {T} steps; use method='ddim', 'dpmpp-2m' or "
                             f"'sde-dpmpp-2m' for fewer (got steps={steps})")
        return np.arange(T - 1, -1, -1, dtype=np.int64)

    def iter_samples(self, n: int, steps: int | None = None, method: str | None = None,
                     eta: float | None = None, seed: int | None = None, batch_size: int = 64,
                     progress=True, clip_x0: bool = False, cancel=None, offset: int = 0):
        """sample() as a generator: yields float32 (≤ batch_size, 1, 28, 28) batches in
        [0, 1], each made when asked for, so any n runs in memory bounded by one batch. The
        batches joined are bitwise equal to ``sample(n, …)`` with the same arguments.
        ``offset`` starts at digit ``offset`` of the seed's stream: the digits are those of
        ``sample(offset + n, …)[offset:]`` (how a sample is split across processes).
        Arguments are checked (and ``last_seed`` set) at this call, before the first batch."""
        offset = check_int(offset, "offset", low=0)
        plan = self._plan(n, steps, method, eta, seed, batch_size, progress, clip_x0, cancel, ())
        return self._chunks({**plan, "offset": offset})

    def sample(self, n: int, steps: int | None = None, method: str | None = None,
               eta: float | None = None, seed: int | None = None, batch_size: int = 64,
               progress=True, capture=None, clip_x0: bool = False, cancel=None):
        """n digits by the reverse process, run in the C++ loop.

        method: "ancestral" (the course's 1000-step loop), "ddpm" (posterior variance, Ho et
        al.), "ddim" (Song et al.; ``steps`` evenly spaced, ``eta`` noise), "dpmpp-2m" or
        "sde-dpmpp-2m" (DPM-Solver++(2M), Lu et al. 2022, deterministic or stochastic, any
        ``steps`` >= 2, default SOLVER_STEPS). method=None: the measured default,
        DEFAULT_METHOD with DEFAULT_STEPS steps (runtime/sampling.py; today sde-dpmpp-2m, 20)
        unless ``steps`` is given; ``eta`` is DDIM's and a named ddim takes η = 0 unless given. The same seed gives the
        same digits whatever ``batch_size``. capture: timesteps whose x_t to return too, as
        {t: images}; then the result is (images, captured).

        progress: True (a bar on stderr), False, or a callable(done, total) called after
        every denoiser step; returning False from it cancels. cancel: an object with
        ``is_set()`` (a threading.Event) checked after every step. Either stops the loop
        within one step with SamplingCancelled; Ctrl-C raises KeyboardInterrupt as usual.
        The output (and captures) must fit in SAMPLE_MEMORY_BUDGET (1 GiB, ~342k digits):
        more raises ValueError; stream any n with iter_samples().
        """
        n = _check_n(n)
        capture = _check_capture(capture)
        _check_budget(n * (1 + len(capture)), "DDPM")
        plan = self._plan(n, steps, method, eta, seed, batch_size, progress, clip_x0, cancel,
                          capture)
        images = np.empty((n, 1, 28, 28), dtype=np.float32)
        captured = {t: np.empty_like(images) for t in capture}
        for start, x0, cap in self._chunks(plan, with_captures=True):
            images[start:start + len(x0)] = x0
            for t in capture:
                captured[t][start:start + len(x0)] = cap[t]
        return (images, captured) if capture else images

    def _plan(self, n, steps, method, eta, seed, batch_size, progress, clip_x0, cancel,
              capture) -> dict:
        n, batch_size = _check_n(n), _batch(batch_size)
        if method is None:  # the measured default setting; a given steps/eta overrides it
            method = DEFAULT_METHOD
            steps = DEFAULT_STEPS if steps is None else steps
            eta = DEFAULT_ETA if eta is None else eta
        timesteps = self.timesteps(method, steps)
        eta = check_float(0.0 if eta is None else eta, "eta", low=0.0)
        if cancel is not None and not callable(getattr(cancel, "is_set", None)):
            raise TypeError(f"cancel must have an is_set() method (a threading.Event), got "
                            f"{type(cancel).__name__}")
        if not isinstance(progress, bool) and not callable(progress):
            raise TypeError(f"progress must be True, False or a callable(done, total), got "
                            f"{type(progress).__name__}")
        seed = self.last_seed = _seed(seed)
        return dict(n=n, batch_size=batch_size, method=method, timesteps=timesteps, eta=eta,
                    seed=seed, progress=progress, clip_x0=bool(clip_x0), cancel=cancel,
                    capture=list(capture), offset=0)

    def _chunks(self, plan: dict, with_captures: bool = False):
        """Lazily, per chunk: (start, images, {t: images}) or just images."""
        n, size, timesteps = plan["n"], plan["batch_size"], plan["timesteps"]
        steps, total = len(timesteps), -(-plan["n"] // plan["batch_size"]) * len(timesteps)
        denoiser = self.denoiser(min(size, n))
        desc = f"{self.name} {plan['method']} {steps} steps"
        user = plan["progress"] if callable(plan["progress"]) else None
        with Progress(total, desc, enabled=plan["progress"] is True) as bar:
            for i, start in enumerate(range(0, n, size)):
                report = _step_report(bar, user, plan["cancel"], i * steps, total)
                res = _core.sample(denoiser, self.schedule, plan["method"], timesteps,
                                   seed=plan["seed"], n=min(size, n - start), eta=plan["eta"],
                                   clip_x0=plan["clip_x0"],
                                   sample_offset=plan["offset"] + start,
                                   capture=plan["capture"], progress=report, progress_every=1)
                x0, cap = res if plan["capture"] else (res, {})
                if with_captures:
                    yield start, self._out(x0), {t: self._out(v) for t, v in cap.items()}
                else:
                    yield self._out(x0)


def _step_report(bar: Progress, user, cancel, base: int, total: int):
    """The per-step callback of one chunk: the bar, the user's callback, cancellation."""
    def report(k: int, _steps: int) -> None:
        done = base + k
        bar.set(done)
        stop = user is not None and user(done, total) is False
        if stop or (cancel is not None and cancel.is_set()):
            raise SamplingCancelled(f"sampling cancelled after step {done} of {total}")
    return report


def _check_capture(capture) -> list[int]:
    if capture is None:
        return []
    if isinstance(capture, (str, bytes)) or not hasattr(capture, "__iter__"):
        raise TypeError(f"capture must be a collection of timesteps, got "
                        f"{type(capture).__name__}")
    return sorted({check_int(t, "capture timestep", low=0) for t in capture})
