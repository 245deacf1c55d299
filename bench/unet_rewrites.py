"""Experiment: the course U-Net rewritten for onnxruntime's CPU graph (the same function,
spelled so that onnxruntime's NCHWc layout pass keeps tensors in its blocked layout), timed
against the graph `latentforge export` writes. Negative result on this machine (README,
tuning record), so the exporter keeps the course's spelling; rerun it after an onnxruntime
upgrade:

    python bench/unet_rewrites.py [--batch 16 64] [--rounds 80]

What onnxruntime runs for the course's spelling (bench/ort_profile.py, README "tuning record"):
ConvTranspose is not handled by the NCHWc pass and has no blocked kernel (a quarter of the step
time), and the broadcast add of the time projection ``(B, C) → (B, C, 1, 1)`` and the skip
Concat fed by a ConvTranspose force Reorder nodes around every block. Four exact rewrites:

1. ConvTranspose(k=4, s=2, p=1) = sub-pixel convolution (Shi et al. 2016): a 3×3 convolution
   with 4·C_out outputs, one per output phase (a, b) ∈ {0,1}², then DepthToSpace(2). For
   output row 2m + a the transposed conv reads input rows m−1, m (a = 0: kernel taps 3, 1)
   and m, m+1 (a = 1: taps 2, 0); the unused tap of the 3×3 window is zero.
2. conv(cat(u, h)) = conv_u(u) + conv_h(h) with the weight split along input channels: no
   Concat, and onnxruntime fuses the Add into the NCHWc convolution ("Sum" input).
3. The time projection Linear(temb) as a 1×1 convolution on temb viewed as (B, td, 1, 1), so
   the broadcast add has two NCHWc inputs and stays blocked.
4. ConvTranspose as four 2×2 convolutions, one per output phase (PhaseUp): rewrite 1 without
   its zero taps, the transposed conv's FLOPs exactly; the phases interleave by a
   depth-to-space in DCR order (exported as Reshape/Transpose/Reshape).

Every rewrite changes only the order of float32 sums (checked below against the original
module, ≤ 1e-4). Each variant is exported with the project's exporter, and all variants run
interleaved, one call each per round, so load on a shared machine hits them alike; the script
prints median and best wall time per call, and the kernel time per op type from an
onnxruntime profile of the same calls.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# transposed-conv kernel tap used by output phase a for input offset u − 1 (u = 0, 1, 2)
_TAPS = {0: {0: 3, 1: 1}, 1: {1: 2, 2: 0}}


def subpixel_weights(deconv: nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """3×3 conv weight (4·C_out, C_in, 3, 3) and bias (4·C_out,) equal to ``deconv`` followed
    by PixelShuffle(2) (output channel c·4 + 2a + b holds phase (a, b) of channel c)."""
    if (deconv.kernel_size, deconv.stride, deconv.padding) != ((4, 4), (2, 2), (1, 1)) \
            or deconv.groups != 1 or deconv.dilation != (1, 1) or deconv.output_padding != (0, 0):
        raise ValueError(f"sub-pixel rewrite needs ConvTranspose2d(k=4, s=2, p=1), got {deconv}")
    w = deconv.weight.detach()  # (C_in, C_out, 4, 4)
    c_in, c_out = w.shape[:2]
    out = torch.zeros(c_out, 2, 2, c_in, 3, 3, dtype=w.dtype)
    for a in (0, 1):
        for b in (0, 1):
            for u, ku in _TAPS[a].items():
                for v, kv in _TAPS[b].items():
                    out[:, a, b, :, u, v] = w[:, :, ku, kv].T
    bias = deconv.bias.detach() if deconv.bias is not None else torch.zeros(c_out)
    return out.reshape(4 * c_out, c_in, 3, 3), bias.repeat_interleave(4)


def _conv(weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> nn.Conv2d:
    c_out, c_in, k, _ = weight.shape
    conv = nn.Conv2d(c_in, c_out, k, padding=padding, bias=bias is not None)
    conv.weight.data.copy_(weight)
    if bias is not None:
        conv.bias.data.copy_(bias)
    return conv


class SubPixelUp(nn.Module):
    """ConvTranspose2d(k=4, s=2, p=1) as conv3x3 → DepthToSpace (rewrite 1)."""

    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__()
        self.conv = _conv(*subpixel_weights(deconv), padding=1)

    def forward(self, x):
        return F.pixel_shuffle(self.conv(x), 2)  # (B, 4C, H, W) → (B, C, 2H, 2W)


class PhaseUp(nn.Module):
    """ConvTranspose2d(k=4, s=2, p=1) as four 2×2 convolutions, one per output phase (a, b),
    each on the input zero-padded so that its window is the transposed conv's (rows m−1, m
    for a = 0 with taps 3, 1; rows m, m+1 for a = 1 with taps 2, 0), interleaved by a
    depth-to-space in DCR order (rewrite 4): the transposed conv's FLOPs exactly, in plain
    convolutions the NCHWc pass handles."""

    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__()
        subpixel_weights(deconv)  # the same shape check
        w = deconv.weight.detach()  # (C_in, C_out, 4, 4)
        bias = deconv.bias.detach() if deconv.bias is not None else None
        self.c_out = w.shape[1]
        taps = {0: (3, 1), 1: (2, 0)}  # phase → kernel taps for window offsets 0, 1
        convs = []
        for a in (0, 1):
            for b in (0, 1):
                k = torch.stack([torch.stack([w[:, :, ku, kv].T for kv in taps[b]], -1)
                                 for ku in taps[a]], -2)  # (C_out, C_in, 2, 2)
                convs.append(_conv(k, bias, padding=0))
        self.convs = nn.ModuleList(convs)

    def forward(self, x):  # (B, C_in, H, W) → (B, C_out, 2H, 2W)
        B, _, H, W = x.shape
        phases = [conv(F.pad(x, (1 - b, b, 1 - a, a)))  # (left, right, top, bottom)
                  for conv, (a, b) in zip(self.convs, ((0, 0), (0, 1), (1, 0), (1, 1)))]
        y = torch.cat(phases, 1).view(B, 2, 2, self.c_out, H, W)  # channel (2a + b)·C + c
        return y.permute(0, 3, 4, 1, 5, 2).reshape(B, self.c_out, 2 * H, 2 * W)


class OnnxBlock(nn.Module):
    """train/unet.py Block with rewrites 2 (``skip`` channels split off conv1) and 3."""

    def __init__(self, block, skip: int = 0, time_conv: bool = True):
        super().__init__()
        w, b = block.conv1.weight.detach(), block.conv1.bias.detach()
        c_up = w.shape[1] - skip
        self.time_conv = time_conv
        self.conv1 = _conv(w[:, :c_up], None if skip else b, padding=1)
        self.conv1_skip = _conv(w[:, c_up:], b, padding=1) if skip else None
        lin = block.time
        self.time = _conv(lin.weight.detach()[:, :, None, None], lin.bias.detach(), padding=0)
        self.conv2 = block.conv2

    def forward(self, x, temb, skip=None):  # temb (B, td, 1, 1)
        h = self.conv1(x)
        if skip is not None:
            h = h + self.conv1_skip(skip)
        if self.time_conv:
            return F.silu(self.conv2(F.silu(h) + self.time(temb)))
        proj = F.linear(temb[:, :, 0, 0], self.time.weight[:, :, 0, 0], self.time.bias)
        h = F.silu(h) + proj[:, :, None, None]
        return F.silu(self.conv2(h))


class OnnxUNet(nn.Module):
    """Same inputs, outputs and weights as ``unet`` (x (B,1,28,28), t (B,) → ε̂)."""

    def __init__(self, unet, subpixel=True, split: bool = True, time_conv: bool = True):
        super().__init__()
        self.config, self.time_mlp = unet.config, unet.time_mlp
        c1, c2, c3 = unet.config.channels if split else (0, 0, 0)
        blk = lambda b, skip=0: OnnxBlock(b, skip, time_conv)  # noqa: E731
        self.down1, self.down2, self.down3, self.mid = (blk(unet.down1), blk(unet.down2),
                                                        blk(unet.down3), blk(unet.mid))
        up = {True: SubPixelUp, "phase": PhaseUp}.get(subpixel, lambda m: m)
        self.up3, self.up2, self.up1 = up(unet.up3), up(unet.up2), up(unet.up1)
        self.dec3, self.dec2, self.dec1 = (blk(unet.dec3, c3), blk(unet.dec2, c2),
                                           blk(unet.dec1, c1))
        self.split, self.out = split, unet.out

    def _dec(self, block, u, temb, skip):
        if self.split:
            return block(u, temb, skip)
        return block(torch.cat([u, skip], dim=1), temb)

    def forward(self, x, t):
        from latentforge.train.unet import timestep_embedding

        temb = self.time_mlp(timestep_embedding(t, self.config.time_dim,
                                                self.config.time_embedding))
        temb = temb[:, :, None, None]  # (B, 64, 1, 1)
        h1 = self.down1(x, temb)  # (B, 32, 28, 28)
        h2 = self.down2(F.max_pool2d(h1, 2), temb)  # (B, 64, 14, 14)
        h3 = self.down3(F.max_pool2d(h2, 2), temb)  # (B, 128, 7, 7)
        m = self.mid(F.max_pool2d(h3, 2), temb)  # (B, 256, 3, 3)
        u3 = F.interpolate(self.up3(m), size=h3.shape[-2:], mode="nearest")  # (B, 128, 7, 7)
        d3 = self._dec(self.dec3, u3, temb, h3)
        d2 = self._dec(self.dec2, self.up2(d3), temb, h2)  # (B, 64, 14, 14)
        d1 = self._dec(self.dec1, self.up1(d2), temb, h1)  # (B, 32, 28, 28)
        return self.out(d1)  # (B, 1, 28, 28)


VARIANTS = {"course": None, "subpixel": (True, False, False), "phase": ("phase", False, False),
            "split": (False, True, False),
            "time-conv": (False, False, True), "all three": (True, True, True)}


def export_variants(directory: Path) -> dict[str, Path]:
    import onnx

    from latentforge.export.graphs import graphs_for
    from latentforge.export.onnx_export import base_manifest, to_onnx
    from latentforge.runtime.api import resolve
    from latentforge.train.checkpoint import load_checkpoint
    from latentforge.train.registry import model_from_checkpoint

    ckpt = load_checkpoint(resolve("ddpm") / "checkpoint.pt")
    spec, config, model = model_from_checkpoint(ckpt)
    manifest, graph = base_manifest(ckpt, spec, config, model, None), graphs_for("ddpm")[0]
    x, t = torch.randn(8, 1, 28, 28), torch.randint(0, 1000, (8,)).float()
    paths = {}
    for name, flags in VARIANTS.items():
        module = model if flags is None else OnnxUNet(model, *flags).eval()
        with torch.no_grad():
            err = (module(x, t) - model(x, t)).abs().max().item()
        if err > 1e-4:
            raise AssertionError(f"{name}: rewrite differs from the course U-Net by {err:.2e}")
        paths[name] = directory / f"{name.replace(' ', '-')}.onnx"
        onnx.save(to_onnx(module, graph, manifest), str(paths[name]))
    return paths


def main(argv=None) -> int:
    import onnxruntime as ort
    from ort_profile import profile_times

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    p.add_argument("--rounds", type=int, default=80)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args(argv)
    print(f"cores: {os.cpu_count()}, threads: {a.threads}, onnxruntime {ort.__version__}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_variants(Path(tmp))
        for batch in a.batch:
            rng = np.random.default_rng(batch)
            feeds = {"x": rng.standard_normal((batch, 1, 28, 28), dtype=np.float32),
                     "t": np.full((batch,), 500.0, dtype=np.float32)}
            sessions, walls = {}, collections.defaultdict(list)
            for name, path in paths.items():
                so = ort.SessionOptions()
                so.intra_op_num_threads, so.inter_op_num_threads = a.threads, 1
                so.enable_profiling, so.profile_file_prefix = True, str(Path(tmp) / name)
                sessions[name] = ort.InferenceSession(str(path), so,
                                                      providers=["CPUExecutionProvider"])
            for _ in range(a.rounds):
                for name, s in sessions.items():
                    t0 = time.perf_counter()
                    s.run(None, feeds)
                    walls[name].append(time.perf_counter() - t0)
            print(f"\nbatch {batch}: {a.rounds} interleaved rounds\n"
                  "| graph | median ms | best ms | kernel ms (profile) | top op types (ms) |\n"
                  "|---|---|---|---|---|")
            for name, s in sessions.items():
                ops = profile_times(Path(s.end_profiling()), a.rounds)
                w = np.array(walls[name]) * 1e3
                top = ", ".join(f"{op} {ms:.1f}" for op, ms in list(ops.items())[:4])
                print(f"| {name} | {np.median(w):.2f} | {w.min():.2f} | "
                      f"{sum(ops.values()):.2f} | {top} |")
                results[f"{name} b{batch}"] = {"median_ms": float(np.median(w)),
                                               "best_ms": float(w.min()),
                                               "kernel_ms": sum(ops.values()), "ops": ops}
    print(json.dumps({"unet_rewrites": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
