"""`latentforge bench`: the same weights through PyTorch eager and through the runtime, in one
run, on this machine's cores. Prints times and ratios (runtime / eager as a speed-up), never
asserts on them.

    U-Net step at batch 1, 16, 64 · 64 digits: the course's eager 1000-step loop vs the
    runtime's ancestral-1000 and DDIM-50 · encoder throughput at batch 256 · GFLOP/s next to
    a measured SGEMM rate.
    --quality: every sampling setting of runtime/sampler_table.py on n digits (seconds and
    classifier scores), and the fastest quality-matched one (FD within 10% of ancestral-1000)
    on the same 64 digits as the eager loop, as a speed-up.
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch


def best_of(fn, repeat: int = 5, min_time: float = 0.2) -> float:
    """Best mean seconds per call over ``repeat`` rounds of ≥ ``min_time`` each."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        best = min(best, dt / n)
    return best


def eager_allocator() -> str:
    """Let PyTorch eager run at its best: raise glibc malloc's mmap and trim thresholds, so
    its per-call activation buffers (several MB at batch 256) are reused from the heap
    instead of being mmap'ed, page-faulted and unmapped on every call (vae-conv encoder at
    batch 256 on 2 cores: 15.0 → 8.8 ms; U-Net at batch 16: 23.9 → 20.5 ms). The runtime
    runs under the same setting. Returns what was done, for the bench's header."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "malloc thresholds unchanged (no glibc mallopt here)"
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    ok = mallopt(m_mmap_threshold, 32 << 20) and mallopt(m_trim_threshold, 1 << 30)
    return ("glibc malloc: mmap threshold 32 MiB, trim threshold 1 GiB (eager's buffers "
            "stay mapped)" if ok else "malloc thresholds unchanged (mallopt refused)")


def sgemm_gflops(n: int = 1024) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    return 2 * n ** 3 / best_of(lambda: a @ a, repeat=3) / 1e9


def conv_linear_flops(model: torch.nn.Module, *inputs) -> int:
    """Multiply-adds ×2 of every Conv2d / ConvTranspose2d / Linear in one forward pass."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Linear):
            total += 2 * inp[0].numel() // inp[0].shape[-1] * mod.in_features * mod.out_features
        elif isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += 2 * out.numel() * k
        elif isinstance(mod, torch.nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.out_channels // mod.groups
            total += 2 * inp[0].numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    with torch.no_grad():
        model(*inputs)
    for h in handles:
        h.remove()
    return total


class _Encode(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.encode(x)


def _eager(directory):
    from .checkpoint import load_checkpoint
    from .registry import model_from_checkpoint

    return model_from_checkpoint(load_checkpoint(os.path.join(directory, "checkpoint.pt")))[2]


def run(ddpm="ddpm", vae="vae-conv", loop_steps: int = 1000, n_digits: int = 64,
        threads: int | None = None, quick: bool = False, quality: int = 0,
        cache: str | None = None, data_dir: str | None = None,
        tune_malloc: bool = True) -> list[dict]:
    from latentforge.runtime.api import load, resolve

    from .samplers import sample
    from .schedule import NoiseSchedule, ScheduleConfig

    cores = os.cpu_count()
    threads = threads or cores
    torch.set_num_threads(threads)
    rows: list[dict] = []

    def report(what, eager_s, ours_s, flops=None):
        row = {"what": what, "eager_s": eager_s, "runtime_s": ours_s,
               "speedup": eager_s / ours_s}
        if flops:
            row["eager_gflops"], row["runtime_gflops"] = flops / eager_s / 1e9, flops / ours_s / 1e9
        rows.append(row)
        extra = (f"  GFLOP/s eager {row['eager_gflops']:.1f} runtime {row['runtime_gflops']:.1f}"
                 if flops else "")
        print(f"{what:<38} eager {eager_s * 1e3:10.2f} ms  runtime {ours_s * 1e3:10.2f} ms  "
              f"speed-up ×{row['speedup']:.2f}{extra}", flush=True)

    print(f"cores: {cores}, threads: {threads}, torch {torch.__version__}")
    print(eager_allocator() if tune_malloc else "glibc malloc: default thresholds")
    sgemm = sgemm_gflops()
    print(f"SGEMM 1024² (numpy BLAS): {sgemm:.1f} GFLOP/s")
    ddpm_dir = resolve(ddpm)
    unet = _eager(ddpm_dir)
    rt, load_s, first_s = timed_load(ddpm_dir, threads)
    rows.append({"what": "load DDPM", "load_s": load_s, "first_step_s": first_s})
    print(f"load({ddpm!r}): {load_s * 1e3:.0f} ms (sha256 check + session), first U-Net "
          f"step at batch 1: {first_s * 1e3:.1f} ms")
    rt8 = int8_variant(ddpm, threads)
    for b in (1, 16, 64):
        x = np.random.default_rng(b).standard_normal((b, 1, 28, 28), dtype=np.float32)
        t = np.full((b,), 500.0, dtype=np.float32)
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        den = rt.denoiser(b)  # what the sampling loop calls: split over cores from 16 rows
        with torch.no_grad():
            e = best_of(lambda: unet(xt, tt))
        o = best_of(lambda: den(x, t))
        report(f"U-Net step, batch {b}", e, o, conv_linear_flops(unet, xt, tt))
        rows[-1]["sgemm_share"] = rows[-1]["runtime_gflops"] / sgemm
        print(f"{'':<38} runtime at {100 * rows[-1]['sgemm_share']:.0f}% of SGEMM")
        if rt8 is not None:
            den8 = rt8.denoiser(b)
            report(f"{rt8.name} U-Net step, batch {b}", e, best_of(lambda: den8(x, t)))

    steps = 100 if quick else loop_steps
    sched = NoiseSchedule(ScheduleConfig(**{k: v for k, v in rt.manifest["schedule"]["config"]
                                            .items()}))
    g = torch.Generator().manual_seed(0)
    timesteps = np.arange(steps - 1, -1, -1) if steps < sched.num_timesteps else None
    t0 = time.perf_counter()
    with torch.no_grad():
        sample(lambda x_, t_: unet(x_, t_), sched, n_digits, "ancestral", timesteps=timesteps,
               generator=g)
    eager_loop = time.perf_counter() - t0
    print(f"eager course loop: {n_digits} digits × {steps} steps in {eager_loop:.1f} s")
    for method, k in (("ancestral", sched.num_timesteps), ("ddim", 50)):
        if quick and method == "ancestral":
            continue
        t0 = time.perf_counter()
        rt.sample(n_digits, steps=k if method == "ddim" else None, method=method, seed=0,
                  batch_size=n_digits, progress=False)
        report(f"{n_digits} digits: eager {steps} vs {method}-{k}", eager_loop,
               time.perf_counter() - t0)
    if quality:
        best = quality_rows(rt, quality, threads, cache, data_dir, rows)
        if best is not None:
            t0 = time.perf_counter()
            rt.sample(n_digits, steps=best["steps"], method=best["method"], eta=best["eta"],
                      seed=0, batch_size=n_digits, progress=False)
            report(f"{n_digits} digits: eager {steps} vs quality-matched {best['setting']}",
                   eager_loop, time.perf_counter() - t0)
    if rt8 is not None:  # the int8 U-Net with the default sampler (its FD: its manifest)
        t0 = time.perf_counter()
        rt8.sample(n_digits, seed=0, batch_size=n_digits, progress=False)
        report(f"{n_digits} digits: eager {steps} vs {rt8.name} default sampler", eager_loop,
               time.perf_counter() - t0)

    enc = _eager(resolve(vae))
    rt_vae = load(vae, providers="cpu", threads=threads)
    x = np.random.default_rng(1).random((256, 1, 28, 28), dtype=np.float32)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        e = best_of(lambda: enc.encode(xt))
    o = best_of(lambda: rt_vae.sessions["encoder"].run(None, {"x": x}))
    report(f"{rt_vae.name} encoder, batch 256", e, o, conv_linear_flops(_Encode(enc), xt))
    # what an app does: uint8 digits in, embeddings out (eager: the same uint8 → [0, 1] cast)
    u8 = np.random.default_rng(2).integers(0, 256, (256, 1, 28, 28), dtype=np.uint8)
    with torch.no_grad():
        e = best_of(lambda: enc.encode(torch.from_numpy(u8).float().div_(255.0)))
    o = best_of(lambda: rt_vae.embed(u8))
    report(f"{rt_vae.name} embed from uint8, batch 256", e, o)
    print(f"embed throughput from uint8: eager {256 / e:,.0f} img/s, runtime "
          f"{256 / o:,.0f} img/s")
    int8_row(vae, u8, e, threads, report)
    return rows


def int8_variant(name: str, threads: int):
    """The shipped `latentforge quantize` variant of model ``name``, loaded, or None."""
    from latentforge.runtime.api import load, resolve

    try:
        directory = resolve(f"{resolve(name).name}-int8")
    except ValueError:  # not shipped; a broken one still fails loudly in load()
        print(f"(no int8 variant of {name} shipped: `latentforge quantize {name} -o DIR` "
              f"makes one)")
        return None
    return load(directory, providers="cpu", threads=threads)


def int8_row(vae: str, u8: np.ndarray, eager_s: float, threads: int, report) -> None:
    """The shipped int8 variant's `embed` (`latentforge quantize`), against the same eager."""
    q = int8_variant(vae, threads)
    if q is None:
        return
    o = best_of(lambda: q.embed(u8))
    report(f"{q.name} embed from uint8, batch 256", eager_s, o)
    print(f"int8 embed throughput: {256 / o:,.0f} img/s ({type(q.sessions['encoder']).__name__}"
          f", {threads} threads)")


def timed_load(directory, threads: int):
    """(model, seconds for load(), seconds for the first U-Net call at batch 1)."""
    from latentforge.runtime.api import load

    t0 = time.perf_counter()
    rt = load(directory, providers="cpu", threads=threads)
    t1 = time.perf_counter()
    rt.sessions["unet"].run(None, {"x": np.zeros((1, 1, 28, 28), np.float32),
                                   "t": np.zeros(1, np.float32)})
    return rt, t1 - t0, time.perf_counter() - t1


def quality_rows(rt, n: int, threads: int, cache, data_dir, rows: list) -> dict | None:
    """Every sampler setting on n digits (seed 0), scored; returns the fastest quality-matched
    row and appends the table to ``rows``."""
    from latentforge.runtime.api import load
    from latentforge.runtime.quality import load_test_set, reference_stats
    from latentforge.runtime.sampler_table import (SETTINGS, mark_quality_matched, measure,
                                                   table_rows)

    from .report import md_table

    clf = load("classifier", providers="cpu", threads=threads)
    test_images, _, where = load_test_set(data_dir)
    reference = reference_stats(clf, test_images)
    table = []
    for setting in SETTINGS:
        row, _ = measure(rt, clf, reference, setting, n, seed=0, cache=cache, progress=False)
        table.append(row)
        print(f"{setting.label:<22} {n} digits {row['seconds']:8.1f} s  FD {row['fd']:7.2f}  "
              f"confident {100 * row['confident']:.1f}%" + ("  (cached)" if row.get("cached")
                                                            else ""), flush=True)
    best = mark_quality_matched(table)
    print(f"\nquality-matched = classifier FD within 10% of ancestral-1000's; n = {n}, seed 0, "
          f"reference {reference.n} test images from {where}")
    print(md_table(*table_rows(table)))
    rows.append({"what": "sampler quality", "table": table,
                 "fastest_matched": best["setting"] if best else None})
    return best
