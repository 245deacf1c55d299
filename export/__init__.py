"""latentforge.export: PyTorch checkpoints → ONNX graphs with config and schedule metadata.

    from latentforge.export import export_checkpoint, verify
    manifest = export_checkpoint("runs/vae-conv/last.pt", "models/vae-conv")
    report = verify("models/vae-conv", "runs/vae-conv/last.pt")   # report.ok, report.table()
"""


def __getattr__(name):  # torch and onnx load only when the API is used (the CLI imports us)
    if name == "export_checkpoint":
        from .onnx_export import export_checkpoint
        return export_checkpoint
    if name == "verify":
        from .parity import verify
        return verify
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
