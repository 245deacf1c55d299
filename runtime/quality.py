"""Sample quality from an MNIST classifier, torch-free (numpy + onnxruntime):
`latentforge quality MODEL -n N`.

* classifier Fréchet distance (FD): FID's recipe (Heusel et al. 2017) with the shipped MNIST
  classifier's penultimate features (B, 128) in place of Inception's. Each feature set is
  summarised by a Gaussian (mean μ, covariance Σ) and
      FD = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½).
  Tr((Σ₁Σ₂)^½) = Tr((Σ₁^½ Σ₂ Σ₁^½)^½): Σ₁Σ₂ is similar to the symmetric PSD matrix
  Σ₁^½ Σ₂ Σ₁^½, so both square roots come from ``numpy.linalg.eigh`` (no scipy).
  The reference is the MNIST test set (all 10,000 images unless ``reference_size`` says
  otherwise). FD shrinks as the sample count grows, so compare FDs at equal n only.
* confident share: the fraction of samples whose top class probability is ≥ 0.9.
* class histogram: the share of samples per predicted class (a good sampler: ~10% each).
* requested-digit accuracy (conditional VAEs): per requested digit, the share of its samples
  the classifier assigns to that digit.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .sampling import METHODS, SOLVER_STEPS

CONFIDENCE = 0.9
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data"  # source checkouts only


@dataclass
class GaussianStats:
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64
    n: int


def gaussian_stats(features) -> GaussianStats:
    """Mean and (unbiased) covariance of features (N, D), N ≥ 2, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got shape {f.shape}")
    return GaussianStats(f.mean(axis=0), np.cov(f, rowvar=False), len(f))


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative
    eigenvalues from rounding are clipped to 0)."""
    a = (np.asarray(a, dtype=np.float64) + np.asarray(a, dtype=np.float64).T) / 2
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """‖μa − μb‖² + Tr(Σa) + Tr(Σb) − 2 Tr((Σa Σb)^½), ≥ 0 up to rounding."""
    diff = a.mu - b.mu
    root_a = sqrtm_psd(a.sigma)
    m = root_a @ b.sigma @ root_a
    tr_cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * tr_cross)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Quality:
    fd: float
    confident: float  # share of samples with max probability ≥ threshold
    histogram: list[float]  # share per predicted class 0…9
    n: int
    reference_n: int
    threshold: float = CONFIDENCE
    extra: dict = field(default_factory=dict)

    @property
    def max_deviation_pp(self) -> float:
        """The largest |share − 10%| over the classes, in percentage points."""
        return float(100 * np.max(np.abs(np.asarray(self.histogram) - 0.1)))

    def to_dict(self) -> dict:
        return {**asdict(self), "max_deviation_pp": self.max_deviation_pp}

    def lines(self) -> list[str]:
        hist = "  ".join(f"{c}:{100 * s:.1f}%" for c, s in enumerate(self.histogram))
        return [f"classifier FD     {self.fd:.3f}  (n={self.n} samples vs "
                f"{self.reference_n} test images)",
                f"confident share   {100 * self.confident:.1f}%  (max p >= {self.threshold})",
                f"class histogram   {hist}",
                f"max deviation     {self.max_deviation_pp:.1f} pp from 10%"]


def features_and_probs(classifier, images, batch_size: int = 256):
    logits, feats = classifier.logits_and_features(images, batch_size)
    return feats, softmax(logits.astype(np.float64))


def score(classifier, images, reference: GaussianStats, threshold: float = CONFIDENCE,
          batch_size: int = 256) -> Quality:
    """FD, confident share and class histogram of ``images`` (B, 1, 28, 28) in [0, 1]."""
    feats, probs = features_and_probs(classifier, images, batch_size)
    counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
    return Quality(fd=frechet_distance(gaussian_stats(feats), reference),
                   confident=float((probs.max(axis=1) >= threshold).mean()),
                   histogram=(counts / len(probs)).tolist(), n=len(probs),
                   reference_n=reference.n, threshold=threshold)


def requested_digit_accuracy(classifier, images, digits, batch_size: int = 256) -> dict:
    """{digit: share of the samples requested as that digit classified as it} (digits (N,))."""
    predicted = features_and_probs(classifier, images, batch_size)[1].argmax(axis=1)
    digits = np.asarray(digits)
    return {int(d): float((predicted[digits == d] == d).mean()) for d in np.unique(digits)}


def reference_stats(classifier, images, batch_size: int = 256) -> GaussianStats:
    return gaussian_stats(classifier.logits_and_features(images, batch_size)[1])


def load_test_set(data_dir=None, limit: int | None = None):
    """(uint8 images (N, 28, 28), labels (N,), where): the MNIST test split, as load_split."""
    return load_split("test", data_dir, limit)


def load_split(split: str, data_dir=None, limit: int | None = None):
    """(uint8 images (N, 28, 28), labels (N,), where): MNIST ``split`` ("train" or "test")
    from ``data_dir``, else $LATENTFORGE_DATA, else the test fixture of a source checkout.
    Never downloads."""
    from latentforge.train.data import (FILES, HOW_TO_FIX, MAGIC_IMAGES, MAGIC_LABELS,
                                        DataError, _find, read_idx, resolve_data_dir)

    where = resolve_data_dir(data_dir) or FIXTURE
    if not where.is_dir():
        raise DataError(f"this needs the MNIST {split} images and {where} is not a "
                        f"directory: {HOW_TO_FIX}")
    images = read_idx(_find(where, FILES[f"{split}_images"]), MAGIC_IMAGES)
    labels = read_idx(_find(where, FILES[f"{split}_labels"]), MAGIC_LABELS)
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} {split} images but {len(labels)} labels")
    n = len(images) if limit is None else min(int(limit), len(images))
    return images[:n], labels[:n], where


# ---------------------------------------------------------------- `latentforge quality`
def register(sub) -> None:
    from .helpformat import HelpFormatter

    p = sub.add_parser("quality", formatter_class=HelpFormatter,
                       help="classifier FD, confident share and class histogram of samples",
                       description="Sample N digits from a DDPM or VAE (or read them from an "
                       ".npy file) and score them with the MNIST classifier: Fréchet distance "
                       "of its penultimate features to the MNIST test set, share of samples "
                       "classified with confidence >= 0.9, and the class histogram.")
    p.add_argument("model", help="DDPM or VAE (shipped name or exported directory), or an .npy "
                                 "file of images (N, 1, 28, 28) in [0, 1]")
    p.add_argument("-n", type=int, default=1000, help="number of samples")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="DDPM reverse process (default: ancestral, the course's loop)")
    p.add_argument("--steps", type=int, default=None,
                   help="steps of ddim (default: all T), dpmpp-2m and sde-dpmpp-2m (default: "
                   f"{SOLVER_STEPS}); ancestral and ddpm run all T")
    p.add_argument("--eta", type=float, default=None, help="DDIM η (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--batch-size", type=int, default=64, help="digits per denoiser call")
    p.add_argument("--classifier", default="classifier",
                   help="classifier: shipped name or exported directory")
    p.add_argument("--data-dir", default=None, help="MNIST IDX directory for the test-set "
                   "reference (default: $LATENTFORGE_DATA, else the source checkout's fixture)")
    p.add_argument("--reference-size", type=int, default=None,
                   help="use the first N test images as the reference (default: all)")
    p.add_argument("--threshold", type=float, default=CONFIDENCE, help="confidence threshold")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    p.add_argument("--least-confident", default=None, metavar="PNG",
                   help="also save the 64 samples the classifier is least sure of as a grid "
                   "(least sure first): what the confident share misses")
    p.add_argument("--providers", default="auto", help="auto, cpu, cuda")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (all cores)")
    from .commands import add_digit_flag
    add_digit_flag(p)
    p.set_defaults(func=cmd_quality)


def sample_images(model, n: int, method: str = "ancestral", steps: int | None = None,
                  eta: float = 0.0, seed: int = 0, batch_size: int = 64,
                  progress: bool = True, digit=None) -> np.ndarray:
    """n digits from a DDPM or a VAE's prior (a conditional VAE's: as ``digit``, default
    0, 1, …, 9 in turn)."""
    if model.kind == "ddpm":
        return model.sample(n, steps=steps, method=method, eta=eta, seed=seed,
                            batch_size=batch_size, progress=progress)
    if model.kind in ("vae", "cvae"):
        return model.sample(n, seed=seed, **({"digit": digit} if model.kind == "cvae" else {}))
    raise ValueError(f"{model.name} is a {model.kind}: only DDPMs and VAEs sample")


def cmd_quality(args) -> int:
    from .api import load
    from .commands import refuse_ddpm_options, refuse_digit
    from .inputs import as_images
    from .outputs import atomic_output, output_path

    json_path = output_path(args.json, (".json",), "quality.json", "--json") \
        if args.json else None
    worst_path = output_path(args.least_confident, (".png",), "least_confident.png",
                             "--least-confident") if args.least_confident else None
    if args.n < 2:
        raise ValueError(f"-n must be >= 2 (a covariance needs two samples), got {args.n}")
    clf = load(args.classifier, providers=args.providers, threads=args.threads)
    if clf.kind != "classifier":
        raise ValueError(f"--classifier {args.classifier} is a {clf.kind}, not a classifier")
    test_images, _, where = load_test_set(args.data_dir, args.reference_size)
    reference = reference_stats(clf, test_images)
    requested = None
    if str(args.model).endswith(".npy") and Path(args.model).is_file():
        refuse_ddpm_options(args, f"{args.model} holds images")
        if args.digit is not None:
            raise ValueError(f"--digit applies to conditional VAEs only; {args.model} holds "
                             f"images")
        images, what = as_images(args.model)[:args.n], f"{args.model}"
    else:
        model = load(args.model, providers=args.providers, threads=args.threads)
        conditional = refuse_digit(args, model)
        if model.kind != "ddpm":
            refuse_ddpm_options(args, f"{model.name} is a {model.kind}")
        if conditional:
            requested = model.sample_digits(args.n, args.digit)
        method = args.method or "ancestral"
        images = sample_images(model, args.n, method, args.steps, args.eta or 0.0, args.seed,
                               args.batch_size, **conditional)
        how = "prior" if model.kind in ("vae", "cvae") else \
            f"{method} {len(model.timesteps(method, args.steps))} steps"
        what = f"{model.name} {how}, seed {args.seed}"
    q = score(clf, images, reference, threshold=args.threshold)
    q.extra = {"samples": what, "reference": str(where)}
    print(f"{what}: {q.n} samples; reference: {q.reference_n} test images from {where}",
          file=sys.stderr)
    print("\n".join(q.lines()))
    if requested is not None:
        acc = requested_digit_accuracy(clf, images, requested)
        q.extra["requested_digit_accuracy"] = acc
        print("requested digit   " + "  ".join(f"{d}:{100 * a:.1f}%" for d, a in acc.items()) +
              f"  (lowest {100 * min(acc.values()):.1f}%, overall "
              f"{100 * float(np.mean([acc[int(d)] for d in requested])):.1f}%)")
    if json_path:
        with atomic_output(json_path) as tmp:
            tmp.write_text(json.dumps(q.to_dict(), indent=2) + "\n")
    if worst_path:
        from .images import save_grid

        confidence = features_and_probs(clf, images)[1].max(axis=1)
        order = np.argsort(confidence, kind="stable")[:64]  # least sure first
        save_grid(np.asarray(images)[order], worst_path, nrow=8)
        print(f"wrote {worst_path}: the {len(order)} least confident samples (max p "
              f"{confidence[order[0]]:.2f} to {confidence[order[-1]]:.2f})", file=sys.stderr)
    return 0
