"""The DDPM reverse-process methods the runtime and the reference samplers offer, and the one
the runtime runs by default."""
from .schedule import SOLVER_METHODS

METHODS = ("ancestral", "ddpm", "ddim", *SOLVER_METHODS)
# What `DDPM.sample()` and `latentforge sample` run when no method is named: the fastest
# setting whose classifier FD was within 10% of ancestral-1000's (README, "Fast sampling").
DEFAULT_METHOD, DEFAULT_STEPS = "sde-dpmpp-2m", 50
