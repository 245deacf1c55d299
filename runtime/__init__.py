"""latentforge.runtime: torch-free inference on exported ONNX models (onnxruntime + numpy)."""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("latentforge")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
