"""`latentforge quantize`: an opt-in int8 variant of an exported AE/VAE or DDPM (issue 15).

onnxruntime's static QDQ recipe: Conv and Gemm weights int8 per output channel, activations
uint8, calibrated on real training digits. Per graph (RECIPES): an encoder is quantized whole
with MinMax ranges on the digits; the DDPM's U-Net with 99.99th-percentile ranges on x_t of the
digits with t uniform, and its full-resolution (28×28) convolutions stay fp32 — quantized, they
doubled the default sampler's classifier FD (22.6 → 46.0; kept fp32: 22.8). ConvTranspose and
the decoders stay fp32. The new directory is a normal model directory whose manifest adds a
``quantization`` record (recipe, calibration, the fp32 layers, and the accuracy measured here
against the source); `load` runs quantized graphs as one single-threaded call per core on
slices of the batch (runtime/session.py), which is where int8 pays on this CPU.

    latentforge quantize vae-conv -o vae-conv-int8 --data-dir DATA     (or --ship)
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

RECIPE = {"format": "QDQ", "weights": "int8, per output channel", "activations": "uint8",
          "reduce_range": True, "op_types": ["Conv", "Gemm"]}
# graph role → calibration method and which convolutions stay fp32 (output size)
RECIPES = {"encoder": {"calibration_method": "MinMax", "fp32_resolution": None},
           "unet": {"calibration_method": "Percentile 99.99", "fp32_resolution": 28}}
QUANTIZABLE = {"ae": ["encoder"], "vae": ["encoder"], "ddpm": ["unet"]}
CALIBRATION_DIGITS = 1024  # `latentforge quantize --calibration`'s default


def quantize_graph(src: Path, dst: Path, batches, method: str = "MinMax",
                   fp32_resolution: int | None = None) -> list[str]:
    """Static QDQ int8 of the graph at ``src`` into ``dst``, calibrated on ``batches`` (an
    iterable of input-name → array feeds); convolutions whose output is fp32_resolution²
    stay fp32. Returns those nodes' names. bench/int8_unet.py uses it too."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    kind, _, pct = method.partition(" ")
    calibrate = {"MinMax": CalibrationMethod.MinMax, "Percentile": CalibrationMethod.Percentile}
    extra = {"CalibPercentile": float(pct)} if pct else {}
    src, dst = Path(src), Path(dst)
    with tempfile.TemporaryDirectory(prefix="lf-quantize-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        fp32 = []
        if fp32_resolution:
            graph = onnx.load(str(pre)).graph
            shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                      for v in list(graph.value_info) + list(graph.output)}
            fp32 = [n.name for n in graph.node if n.op_type == "Conv"
                    and shapes.get(n.output[0], [])[-2:] == [fp32_resolution] * 2]
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=RECIPE["op_types"], nodes_to_exclude=fp32,
                        calibrate_method=calibrate[kind], extra_options=extra)
    return fp32


def noised_digits(abar: np.ndarray, x0: np.ndarray, batch: int, seed: int = 0):
    """Calibration feeds for a U-Net: x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε of digits x_0 (network
    range), t uniform over 0…T−1 — the inputs the sampling loop feeds."""
    rng = np.random.default_rng(seed)
    for i in range(0, len(x0), batch):
        x = x0[i:i + batch]
        t = rng.integers(0, len(abar), len(x))
        a = abar[t][:, None, None, None]
        xt = np.sqrt(a) * x + np.sqrt(1 - a) * rng.standard_normal(x.shape)
        yield {"x": xt.astype(np.float32), "t": t.astype(np.float32)}


def digits(data_dir, split: str, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Up to n uint8 digits (N, 1, 28, 28) and int64 labels of MNIST ``split`` (runtime
    quality.load_split: data_dir / $LATENTFORGE_DATA / the source checkout's fixture)."""
    from latentforge.runtime.quality import load_split

    images, labels, where = load_split(split, data_dir, n)
    return np.ascontiguousarray(images[:, None]), labels.astype(np.int64), str(where)


def classifier_and_reference(data_dir=None):
    """The shipped classifier and its feature statistics of the whole MNIST test split."""
    from latentforge.runtime.api import load
    from latentforge.runtime.quality import load_test_set, reference_stats

    classifier = load("classifier", providers="cpu")
    return classifier, reference_stats(classifier, load_test_set(data_dir)[0][:, None])


def nearest_neighbour_accuracy(z: np.ndarray, labels: np.ndarray) -> float:
    """Share of codes whose nearest other code (Euclidean) has the same digit."""
    sq = (z.astype(np.float64) ** 2).sum(1)
    dist = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)  # (N, N)
    np.fill_diagonal(dist, np.inf)
    return float((labels[dist.argmin(1)] == labels).mean())


def accuracy(fp32, int8, test_u8: np.ndarray, labels: np.ndarray, data_dir=None) -> dict:
    """The int8 model's codes and reconstructions against the fp32 model's, same digits; the
    reconstructions of the first 1,000 also scored by the project's classifier (FD against the
    whole test split, confident share, and the share classified as the input's digit)."""
    from latentforge.runtime.quality import score

    z32, z8 = fp32.embed(test_u8), int8.embed(test_u8)  # (N, K) each
    x = test_u8.astype(np.float32) / 255.0
    recon = [fp32.decode(z) for z in (z32, z8)]  # the fp32 decoder for both
    d = np.abs(z8 - z32)
    out = {"test_digits": int(len(test_u8)), "code_std": round(float(z32.std()), 4),
           "mean_abs_diff": round(float(d.mean()), 5), "max_abs_diff": round(float(d.max()), 4)}
    for tag, z, r in (("fp32", z32, recon[0]), ("int8", z8, recon[1])):
        out[f"recon_mse_{tag}"] = round(float(np.mean((r - x) ** 2)), 6)
        out[f"nn_accuracy_{tag}"] = round(nearest_neighbour_accuracy(z, labels), 4)
    classifier, reference = classifier_and_reference(data_dir)
    n = min(1000, len(test_u8))
    for tag, r in (("fp32", recon[0]), ("int8", recon[1])):
        q = score(classifier, r[:n], reference)
        probs = classifier.predict_proba(r[:n])
        out[f"recon_fd_{tag}"] = round(q.fd, 3)
        out[f"recon_confident_{tag}"] = round(q.confident, 4)
        out[f"recon_digit_accuracy_{tag}"] = round(float((probs.argmax(1) == labels[:n]).mean()), 4)
    out["recon_scored"] = n
    return out


def sample_accuracy(fp32, int8, n: int, data_dir=None, seed: int = 0) -> dict:
    """Both DDPMs' digits by the default sampler (same seed), scored by the classifier."""
    from latentforge.runtime.quality import score
    from latentforge.runtime.sampling import DEFAULT_METHOD, DEFAULT_STEPS

    classifier, reference = classifier_and_reference(data_dir)
    out = {"sampler": f"{DEFAULT_METHOD}-{DEFAULT_STEPS}", "samples": int(n), "seed": seed}
    for tag, model in (("fp32", fp32), ("int8", int8)):
        q = score(classifier, model.sample(n, seed=seed, progress=False), reference)
        out[f"fd_{tag}"] = round(q.fd, 3)
        out[f"confident_{tag}"] = round(q.confident, 4)
        out[f"max_class_deviation_{tag}"] = round(max(abs(h - 0.1) for h in q.histogram), 4)
    return out


def calibration_feeds(role: str, model, calib_u8: np.ndarray):
    """What ``role`` sees while sampling or embedding, made from real training digits."""
    x0 = model._in(calib_u8.astype(np.float32) / 255.0)  # (N, 1, 28, 28), network range
    if role == "unet":
        return noised_digits(np.asarray(model.schedule["alphas_cumprod"]), x0, 32)
    return ({"x": x0[i:i + 128]} for i in range(0, len(x0), 128))


def quantize_model(model, out, data_dir=None, calibration: int = CALIBRATION_DIGITS,
                   test_digits: int = 2048, log=print) -> dict:
    """Write DIR ``out``: ``model`` (a shipped name or a directory) with its encoder or U-Net
    in int8. Returns the new manifest. Raises ValueError for kinds with nothing to quantize.
    ``test_digits``: test digits for an encoder's accuracy (up to 1,000 of them scored by the
    classifier), samples for a DDPM's."""
    from latentforge.runtime.api import load, read_manifest, resolve
    from latentforge.runtime.hashing import sha256_file

    from .atomic import check_replaceable, staged_directory, write_file

    src = resolve(model)
    manifest = read_manifest(src)
    if manifest.get("quantization"):
        raise ValueError(f"{src} is already quantized")
    roles = QUANTIZABLE.get(manifest["kind"])
    if roles is None or manifest.get("num_classes"):
        raise ValueError(f"{manifest['name']} is a {manifest['kind']!r} model; quantize "
                         f"handles kinds {', '.join(QUANTIZABLE)} (not conditional models)")
    calib_u8, _, where = digits(data_dir, "train", calibration)
    test_u8, labels, _ = digits(data_dir, "test", test_digits)  # (N, 1, 28, 28) uint8
    fp32 = load(src, providers="cpu")
    out = Path(out)
    check_replaceable(out)
    with staged_directory(out) as tmp:
        for info in manifest["graphs"].values():
            shutil.copyfile(src / info["file"], tmp / info["file"])
        fp32_nodes = []
        for role in roles:
            file, recipe = manifest["graphs"][role]["file"], RECIPES[role]
            log(f"quantizing {role} ({file}) on {len(calib_u8)} training digits from {where}")
            fp32_nodes += quantize_graph(src / file, tmp / file,
                                         calibration_feeds(role, fp32, calib_u8),
                                         recipe["calibration_method"], recipe["fp32_resolution"])
            manifest["graphs"][role]["sha256"] = sha256_file(tmp / file)
        manifest["quantization"] = {**RECIPE, **RECIPES[roles[0]], "fp32_nodes": fp32_nodes,
                                    "graphs": roles, "source": manifest["name"],
                                    "calibration_digits": int(len(calib_u8)),
                                    "calibration": f"{len(calib_u8)} MNIST training digits"
                                    + (", noised to x_t with t uniform" if "unet" in roles
                                       else "")}
        manifest["name"] = f"{manifest['name']}-int8"
        write_file(tmp / "manifest.json", json.dumps(manifest, indent=1).encode())
        int8 = load(tmp, providers="cpu")
        manifest["quantization"]["accuracy"] = (
            sample_accuracy(fp32, int8, min(1000, test_digits), data_dir) if "unet" in roles
            else accuracy(fp32, int8, test_u8, labels, data_dir))
        write_file(tmp / "manifest.json", json.dumps(manifest, indent=1).encode())
    return manifest
