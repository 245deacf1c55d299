"""The DDPM reverse-process methods the runtime and the reference samplers offer, and the one
the runtime runs by default."""
from .schedule import SOLVER_METHODS

METHODS = ("ancestral", "ddpm", "ddim", *SOLVER_METHODS)
# What `DDPM.sample()` and `latentforge sample` run when no method is named: the fastest
# setting whose classifier FD was within 10% of ancestral-1000's on n = 1,000 (README, "Fast
# sampling"; the measurement is docs/bench_quality_1000.json, and a test pins this to it).
DEFAULT_METHOD, DEFAULT_STEPS, DEFAULT_ETA = "sde-dpmpp-2m", 20, 0.0
# steps of dpmpp-2m / sde-dpmpp-2m when a solver is named without --steps
SOLVER_STEPS = 20
