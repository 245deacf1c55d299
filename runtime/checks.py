"""One rule for every public numeric argument (n, batch_size, steps, threads, seed, …):
an integer (Python or numpy; ``bool`` refused) within a stated range, else a ``TypeError``
(not a number) or a ``ValueError`` (a non-integral number, or out of range) naming it."""
from __future__ import annotations

import numbers

import numpy as np


def _wanted(low: int | None, high: int | None) -> str:
    if high is not None and low is not None:
        return f"an integer in [{low}, {high}]"
    if low == 1:
        return "a positive integer (>= 1)"
    if low == 0:
        return "a non-negative integer (>= 0)"
    if low is not None:
        return f"an integer >= {low}"
    return "an integer"


def check_int(value, name: str, low: int | None = None, high: int | None = None,
              optional: bool = False) -> int | None:
    """``value`` as an int, checked: ``optional`` lets None through (returned as None)."""
    if value is None and optional:
        return None
    wanted = _wanted(low, high)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Number):
        raise TypeError(f"{name} must be {wanted}, got {type(value).__name__} {value!r}")
    if not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name} must be {wanted}, got {v}")
    return v


def check_float(value, name: str, low: float | None = None) -> float:
    """A finite real number (bool refused), optionally >= low."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not np.isfinite(v) or (low is not None and v < low):
        bound = f" >= {low}" if low is not None else ""
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return v
