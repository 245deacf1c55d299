"""The manifest schema, checked once at `load` before any graph file is opened.

Every failure is a ``ModelFileError`` naming the field and the file: a manifest must be a JSON
object with the keys its kind needs, of the right types; its graph roles, input and output
names are the ones `latentforge export` writes; the DDPM schedule arrays share one length T;
``latent_dim`` equals the latent size the graphs declare, and a conditional VAE's
``num_classes`` the width of its label input "y". Graph files are plain names inside
the model directory: no absolute paths, no ``..``, no symlinks that lead outside it.
Informational keys (metrics, training, epochs, init_from, …) are optional; when present their
type is checked so that no later reader trips over them.
"""
from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

SCALINGS = ("unit", "symmetric")
SCHEDULE_ARRAYS = ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev",
                   "posterior_variance")
B = "B"
IMAGE = [B, 1, 28, 28]
# kind → role → (inputs, outputs), each name → expected shape; "K" is the latent size, "C" a
# conditional model's number of classes (its one-hot label input "y"), and None a positive
# size the runtime does not fix (the classifier's classes and features)
ROLES = {
    "ae": {"encoder": ({"x": IMAGE}, {"z": [B, "K"]}),
           "decoder": ({"z": [B, "K"]}, {"x_hat": IMAGE})},
    "vae": {"encoder": ({"x": IMAGE}, {"mu": [B, "K"], "logvar": [B, "K"]}),
            "decoder": ({"z": [B, "K"]}, {"x_hat": IMAGE})},
    "cvae": {"encoder": ({"x": IMAGE, "y": [B, "C"]}, {"mu": [B, "K"], "logvar": [B, "K"]}),
             "decoder": ({"z": [B, "K"], "y": [B, "C"]}, {"x_hat": IMAGE})},
    "ddpm": {"unet": ({"x": IMAGE, "t": [B]}, {"eps": IMAGE})},
    "classifier": {"classifier": ({"x": IMAGE}, {"logits": [B, None], "features": [B, None]})},
}
SHA256 = re.compile(r"[0-9a-f]{64}")
# optional informational keys → the JSON types they may hold (None = null)
OPTIONAL = {"format": (int,), "config": (dict, type(None)), "ema": (bool,),
            "metrics": (dict,), "training": (dict, type(None)), "epochs": (int, type(None)),
            "init_from": (dict, type(None)), "checkpoint_sha256": (str, type(None)),
            "version": (str,), "parameters": (int,), "quantization": (dict, type(None))}


class ModelFileError(ValueError):
    """A model directory that is missing, incomplete, corrupted or unsafe."""


def _type_name(v) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(v), type(v).__name__)


class _Checker:
    def __init__(self, manifest, path: Path):
        self.m, self.path = manifest, path

    def fail(self, field: str, problem: str):
        raise ModelFileError(f"{self.path}: field {field!r} {problem}")

    def get(self, key: str, types: tuple, required: bool = True, obj=None, field=None):
        obj = self.m if obj is None else obj
        field = field or key
        if key not in obj:
            if required:
                self.fail(field, "is missing")
            return None
        v = obj[key]
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if not ok:
            wanted = " or ".join(_type_name(t()) for t in types)
            self.fail(field, f"must be {wanted}, got {_type_name(v)}")
        return v

    def positive_int(self, v, field: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            self.fail(field, f"must be a positive integer, got {v!r}")
        return v


def validate(manifest, path) -> dict:
    """Check ``manifest`` (parsed from ``path``); returns it unchanged when valid."""
    path = Path(path)
    if not isinstance(manifest, dict):
        raise ModelFileError(f"{path}: must hold a JSON object, got {_type_name(manifest)}")
    c = _Checker(manifest, path)
    name = c.get("name", (str,))
    if not name.strip():
        c.fail("name", "must not be empty")
    kind = c.get("kind", (str,))
    if kind not in ROLES:
        c.fail("kind", f"must be one of {', '.join(ROLES)}, got {kind!r}")
    scaling = c.get("scaling", (str,))
    if scaling not in SCALINGS:
        c.fail("scaling", f"must be one of {', '.join(SCALINGS)}, got {scaling!r}")
    for key, types in OPTIONAL.items():
        c.get(key, types, required=False)
    if manifest.get("format", 1) != 1:
        c.fail("format", f"must be 1 (this runtime's manifest format), got {manifest['format']!r}")
    _check_metrics(c)
    _check_roles(c, kind)
    sizes = {"K": _check_latent(c, kind), "C": _check_classes(c, kind)}
    _check_graphs(c, kind, sizes)
    _check_schedule(c, kind)
    _check_quantization(c, kind)
    return manifest


def quantized_roles(manifest: dict) -> list[str]:
    """The graph roles `latentforge quantize` made int8 (none for an fp32 export)."""
    q = manifest.get("quantization") if isinstance(manifest, dict) else None
    roles = q.get("graphs") if isinstance(q, dict) else None
    return [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []


def _check_quantization(c: _Checker, kind: str) -> None:
    q = c.m.get("quantization")
    if not q:
        return
    roles = c.get("graphs", (list,), obj=q, field="quantization.graphs")
    if not roles or any(not isinstance(r, str) or r not in ROLES[kind] for r in roles):
        c.fail("quantization.graphs", f"must list graph roles of a {kind} "
                                      f"({', '.join(ROLES[kind])}); got {roles!r}")


def _check_metrics(c: _Checker) -> None:
    metrics = c.m.get("metrics", {})
    for split, value in metrics.items():
        if split in ("test", "val", "train") and not isinstance(value, dict):
            c.fail(f"metrics.{split}", f"must be an object, got {_type_name(value)}")
        if not isinstance(value, (dict, int, float)) or isinstance(value, bool):
            c.fail(f"metrics.{split}", f"must be an object or a number, got {_type_name(value)}")


def _check_latent(c: _Checker, kind: str) -> int | None:
    if kind in ("ae", "vae", "cvae"):
        return c.positive_int(c.get("latent_dim", (int,)), "latent_dim")
    if c.get("latent_dim", (type(None),), required=False) is not None:
        c.fail("latent_dim", f"must be null for a {kind}")
    return None


def _check_classes(c: _Checker, kind: str) -> int | None:
    """A conditional VAE's number of classes (the width of its label input); null elsewhere."""
    if kind == "cvae":
        return c.positive_int(c.get("num_classes", (int,)), "num_classes")
    if c.get("num_classes", (type(None),), required=False) is not None:
        c.fail("num_classes", f"must be null for a {kind}")
    return None


def _check_roles(c: _Checker, kind: str) -> None:
    graphs, roles = c.get("graphs", (dict,)), ROLES[kind]
    if set(graphs) != set(roles):
        c.fail("graphs", f"must hold exactly the roles {', '.join(roles)} for kind {kind!r}; "
                         f"got {', '.join(map(str, graphs)) or 'none'}")


def _check_graphs(c: _Checker, kind: str, sizes: dict) -> None:
    graphs, roles = c.m["graphs"], ROLES[kind]
    for role, (inputs, outputs) in roles.items():
        field = f"graphs.{role}"
        info = c.get(role, (dict,), obj=graphs, field=field)
        c.get("file", (str,), obj=info, field=f"{field}.file")
        sha = c.get("sha256", (str,), obj=info, field=f"{field}.sha256")
        if not SHA256.fullmatch(sha):
            c.fail(f"{field}.sha256", "must be 64 lowercase hex digits")
        for io, expected in (("inputs", inputs), ("outputs", outputs)):
            declared = c.get(io, (dict,), obj=info, field=f"{field}.{io}")
            if set(declared) != set(expected):
                c.fail(f"{field}.{io}", f"must name exactly {', '.join(expected)}; "
                                        f"got {', '.join(map(str, declared)) or 'none'}")
            for n, shape in expected.items():
                _check_shape(c, declared[n], shape, sizes, f"{field}.{io}.{n}")


def _check_shape(c: _Checker, got, expected: list, sizes: dict, field: str) -> None:
    """``sizes``: the symbols' values, "K" = latent_dim and "C" = num_classes."""
    if not isinstance(got, list) or len(got) != len(expected):
        c.fail(field, f"must be a shape of {len(expected)} dimensions, got {got!r}")
    for g, e in zip(got, expected):
        if e == B:
            ok = isinstance(g, str) and g != ""
        elif e is None:
            ok = isinstance(g, int) and not isinstance(g, bool) and g > 0
        else:
            e = sizes.get(e) if isinstance(e, str) else e
            ok = isinstance(g, int) and not isinstance(g, bool) and g == e
        if not ok:
            names = {"K": "latent_dim", "C": "num_classes"}
            extra = "".join(f" with {k} = {names[k]} = {sizes.get(k)}" for k in names
                            if k in expected)
            c.fail(field, f"must be {expected}{extra}, got {got!r}")


def _check_schedule(c: _Checker, kind: str) -> None:
    if kind != "ddpm":
        if c.get("schedule", (type(None),), required=False) is not None:
            c.fail("schedule", f"must be null for a {kind}")
        return
    schedule = c.get("schedule", (dict,))
    lengths = set()
    for key in SCHEDULE_ARRAYS:
        arr = c.get(key, (list,), obj=schedule, field=f"schedule.{key}")
        if not arr or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                              and math.isfinite(v) for v in arr):
            c.fail(f"schedule.{key}", "must be a non-empty array of finite numbers")
        lengths.add(len(arr))
    if len(lengths) != 1:
        c.fail("schedule", f"arrays must share one length T, got lengths {sorted(lengths)}")
    config = c.get("config", (dict,), required=False, obj=schedule, field="schedule.config")
    T = (config or {}).get("num_timesteps")
    if T is not None and T != lengths.pop():
        c.fail("schedule.config.num_timesteps", f"is {T!r} but the arrays hold "
                                                f"{len(schedule['betas'])} steps")


def graph_path(directory: Path, file: str, field: str, manifest_path: Path) -> Path:
    """``file`` resolved inside ``directory``, or ModelFileError; opens nothing."""
    def refuse(why: str):
        raise ModelFileError(f"{manifest_path}: field {field!r} = {file!r} {why}; graph "
                             f"files must be plain names inside the model directory")

    if not file or "\x00" in file:
        refuse("is empty or holds a NUL byte")
    if PurePosixPath(file).is_absolute() or PureWindowsPath(file).is_absolute() \
            or PureWindowsPath(file).drive:
        refuse("is an absolute path")
    parts = re.split(r"[\\/]", file)
    if ".." in parts:
        refuse("climbs out with '..'")
    root = Path(directory).resolve()
    target = (Path(directory) / file).resolve()
    if target != root and root not in target.parents:
        refuse(f"leads outside {root} (a symlink to {target})")
    return Path(directory) / file
