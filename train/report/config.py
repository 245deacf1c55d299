"""What `latentforge report` runs: the section keys, the quick and full presets and
ReportConfig (every size unset here comes from the preset)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from latentforge.runtime.sampler_table import SETTINGS

# sample counts, test subset, t-SNE points, sweep epochs/subset: quick and full presets
# threads: 1 for --quick, where a small shared machine is the target: there torch's,
# onnxruntime's and OpenMP's thread pools oversubscribe the cores (measured on 2 busy cores:
# a 1-epoch sweep run 25 s → 5 s, t-SNE of 500 points 34 s → 1.6 s, U-Net 3.2 → 2.1 ms per
# image and step). None = every library's default (all cores).
# arch_latents: the latent sizes d_z at which section 8 trains every architecture.
# samplers: labels of the sampler table's settings (runtime/sampler_table.SETTINGS) that
# section 3 measures; --quick keeps the reference, the default and one of each solver at few
# steps (the whole table at 200 digits took 285 of a 714-second quick report on 1 thread).
QUICK = dict(n_test=1000, reference_size=2000, n_samples=200, n_ancestral=24, tsne_points=500,
             sweep_epochs=1, sweep_limit=6000, sweep_val_size=500, sweep_batch_size=32,
             threads=1, arch_latents=(2, 10),
             samplers=("ancestral", "ddim-50", "ddim-100 η=1", "dpmpp-2m-20",
                       "sde-dpmpp-2m-20"))
FULL = dict(n_test=10_000, reference_size=10_000, n_samples=1000, n_ancestral=1000,
            tsne_points=2000, sweep_epochs=5, sweep_limit=None, sweep_val_size=10_000,
            sweep_batch_size=128, threads=None, arch_latents=(2, 5, 10, 20, 50, 100),
            samplers=tuple(s.label for s in SETTINGS))
SECTIONS = ("models", "reconstructions", "samples", "latent", "iterates", "sweeps", "ddpm",
            "architectures", "anomaly", "conditional")


@dataclass
class ReportConfig:
    out: str = "report"
    models: list[str] | None = None  # shipped names or exported directories (default: shipped)
    classifier: str | None = None  # default: a classifier among models, else shipped
    ddpm: str | None = None  # default: a DDPM among models, else the shipped "ddpm"
    denoisers: list[str] | None = None  # default: models whose metrics show input noise
    data_dir: str | None = None
    quick: bool = False
    n_test: int | None = None
    reference_size: int | None = None
    n_samples: int | None = None
    n_ancestral: int | None = None
    tsne_points: int | None = None
    sweep_epochs: int | None = None
    sweep_limit: int | None = None
    sweep_val_size: int | None = None
    sweep_batch_size: int | None = None
    arch_latents: tuple[int, ...] | None = None  # d_z of the architecture sweeps
    samplers: tuple[str, ...] | None = None  # sampler table settings, by label
    max_steps: int | None = None  # cap on DDPM reverse steps (tests); ancestral needs all T
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    seed: int = 0
    threads: int | None = None  # onnxruntime, torch and OpenMP/BLAS threads
    device: str = "auto"
    quiet: bool = False

    def resolved(self) -> "ReportConfig":
        preset = QUICK if self.quick else FULL
        unknown = sorted(set(self.sections) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown report sections {unknown}; valid: {', '.join(SECTIONS)}")
        cfg = dataclasses.replace(self, **{k: v for k, v in preset.items()
                                           if getattr(self, k) is None})
        for name in ("n_samples", "n_ancestral", "reference_size", "n_test"):
            if getattr(cfg, name) < 2:  # a covariance needs two samples
                raise ValueError(f"{name} must be >= 2, got {getattr(cfg, name)}")
        labels = [s.label for s in SETTINGS]
        unknown = sorted(set(cfg.samplers) - set(labels))
        if unknown:
            raise ValueError(f"unknown sampler settings {unknown}; valid: {', '.join(labels)}")
        if not cfg.arch_latents or min(cfg.arch_latents) < 1:
            raise ValueError(f"arch_latents must be positive latent sizes, got "
                             f"{cfg.arch_latents}")
        return cfg
