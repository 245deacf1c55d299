"""latentforge.export: PyTorch checkpoints → ONNX graphs with config and schedule metadata."""
