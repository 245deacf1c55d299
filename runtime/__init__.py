"""latentforge.runtime: torch-free inference on exported ONNX models (onnxruntime + numpy).

    from latentforge.runtime import load
    ddpm = load("ddpm")                  # a shipped model, or a directory from `latentforge export`
    digits = ddpm.sample(16, method="ddim", steps=50, seed=0)   # (16, 1, 28, 28) in [0, 1]
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("latentforge")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"


def __getattr__(name):  # load onnxruntime only when a model is actually used
    if name in ("load", "shipped_models", "Autoencoder", "VAE", "DDPM", "Classifier",
                "ModelFileError", "SamplingCancelled"):
        from . import api
        return getattr(api, name)
    if name == "ConditionalVAE":
        from .cvae import ConditionalVAE
        return ConditionalVAE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
