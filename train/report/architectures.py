"""Report section 8: the course's architecture comparison — three dense and three conv VAE
architectures, each at every latent size of the preset (config.QUICK/FULL arch_latents),
trained or reused and scored by sweep_runs.run_cell, and the course's conclusions checked
against the numbers (conclusions.py).

The course names the dense VAEs by their decoder widths (128→256, 256→512, 512→1024); the
labels here give the encoder, whose widths are vae-dense's ``hidden`` (the decoder mirrors
them). Its choices: vae-dense hidden (512, 256) at d_z = 5 (1,071,130 parameters) and
vae-conv channels (32, 64, 128) at d_z = 10 (313,557 parameters), the shipped defaults."""
from __future__ import annotations

from . import conclusions
from . import figures as figs
from .markdown import md_table
from .sweep_runs import run_cell, run_name, subset_name

# family (model name) → [(label, config overrides)], smallest first
FAMILIES = {
    "vae-dense": (("784→256→128", {"hidden": (256, 128)}),
                  ("784→512→256", {"hidden": (512, 256)}),
                  ("784→1024→512", {"hidden": (1024, 512)})),
    "vae-conv": (("1→32→64", {"channels": (32, 64)}),
                 ("1→16→32→64", {"channels": (16, 32, 64)}),
                 ("1→32→64→128", {"channels": (32, 64, 128)})),
}
CHOSEN = {"vae-dense": ("784→512→256", 5), "vae-conv": ("1→32→64→128", 10)}  # the course's
WIDEST, MIDDLE = "784→1024→512", "784→512→256"
BETA = 1.0


def plain_overrides(family: str, arch: dict) -> dict:
    """``arch`` without the values the model's config has by default, so the default
    architecture trains under the same run name as the β/latent sweeps (and reuses them)."""
    from latentforge.train.registry import get_spec, make_config

    default = make_config(get_spec(family))
    return {k: v for k, v in arch.items() if tuple(getattr(default, k)) != tuple(v)}


def sweep_family(ctx, family: str) -> list[dict]:
    """Every (architecture, d_z) cell of one family, trained or reused, with its scores."""
    from latentforge.train.registry import count_parameters

    cells = []
    for label, arch in FAMILIES[family]:
        for latent in ctx.cfg.arch_latents:
            ctx.log(f"  {family} {label} latent={latent}")
            r, model = run_cell(ctx, family, BETA, latent, plain_overrides(family, arch))
            cells.append({"family": family, "architecture": label, "latent": latent,
                          "parameters": count_parameters(model),
                          "chosen": CHOSEN[family] == (label, latent), **r})
    return cells


def best_cells(cells: list[dict]) -> dict[str, dict]:
    """{architecture: its cell of lowest classifier FD of prior samples}."""
    best: dict[str, dict] = {}
    for c in cells:
        if c["architecture"] not in best or c["fd"] < best[c["architecture"]]["fd"]:
            best[c["architecture"]] = c
    return best


def family_table(cells: list[dict]) -> str:
    return md_table(["architecture", "d_z", "parameters", "train s", "recon BCE", "KL",
                     "BCE + KL", "MSE", "classifier FD", "confident %", "epochs"],
                    [[c["architecture"] + (" (course's choice)" if c["chosen"] else ""),
                      c["latent"], c["parameters"], c["train_s"], c["bce"], c["kl"],
                      c["neg_elbo_mu"], c["mse"], c["fd"], 100 * c["confident"], c["epochs"]]
                     for c in cells])


def commands(ctx) -> str:
    """The command of the section and the `latentforge train` command of one cell."""
    cfg = ctx.cfg
    limit = f" --limit {cfg.sweep_limit}" if cfg.sweep_limit else ""
    val_size = min(cfg.sweep_val_size, len(ctx.u8_real) // 3)  # as sweep_runs.train_run
    name = run_name("vae-dense", BETA, 20, {"hidden": (1024, 512)})
    return (f"Made by `latentforge report{' --quick' if cfg.quick else ''} --sections "
            f"architectures --arch-latents {','.join(map(str, cfg.arch_latents))} --out DIR "
            f"--data-dir DATA`; each cell is the run "
            f"`latentforge train MODEL --hidden H|--channels C --latent-dim K --beta {BETA:g} "
            f"--epochs {cfg.sweep_epochs} --batch-size {cfg.sweep_batch_size} --val-size "
            f"{val_size} --seed {cfg.seed}{limit} --data-dir DATA --out "
            f"DIR/runs/{subset_name(cfg)}/NAME`, e.g. NAME = `{name}` for vae-dense "
            f"--hidden 1024,512 --latent-dim 20 (the default architectures drop the -h/-c "
            f"suffix and share the latent sweep's runs).")


def architectures(ctx) -> str:
    cfg = ctx.cfg
    cells = {family: sweep_family(ctx, family) for family in FAMILIES}
    everything = [c for cs in cells.values() for c in cs]
    checks = conclusions.check_all(everything, WIDEST, MIDDLE, CHOSEN)
    parts = [
        f"Three dense and three conv VAE architectures at d_z ∈ "
        f"{{{', '.join(map(str, cfg.arch_latents))}}}, β = {BETA:g}, each trained for "
        f"{cfg.sweep_epochs} epoch(s) on "
        + (f"the first {cfg.sweep_limit:,} images of each split" if cfg.sweep_limit else
           "the full training split")
        + f" (batch {cfg.sweep_batch_size}, seed {cfg.seed}) and scored as in section 6: test "
        f"BCE/KL/MSE from decode(μ), classifier FD and confident share of {cfg.n_samples:,} "
        f"prior samples. Dense labels give the encoder (the course names them by the decoder: "
        f"128→256, 256→512, 512→1024); conv labels give the encoder's channels. *Best d_z* "
        f"of an architecture = its lowest classifier FD.",
        commands(ctx)]
    best = {}
    for family, cs in cells.items():
        best[family] = best_cells(cs)
        curves = figs.architecture_curves(
            family, [(label, [c for c in cs if c["architecture"] == label])
                     for label, _ in FAMILIES[family]], ctx.fig(f"arch_curves_{family}.png"))
        grid = figs.labelled_rows(
            [(f"{a}, d_z={c['latent']}", c["_grid"]) for a, c in best[family].items()],
            ["test digits / reconstructions", "prior samples"],
            ctx.fig(f"arch_best_{family}.png"), nrow=8)
        parts += [f"### {family}", family_table(cs), ctx.image(curves, f"{family} curves"),
                  "Each architecture at its best d_z:", ctx.image(grid, f"{family} best cells")]
    parts.append("### The course's conclusions against these numbers")
    parts += [f"**{c['claim']}** — **{c['verdict']}**. {c['text']}" for c in checks]
    strip = lambda c: {k: v for k, v in c.items() if k != "_grid"}  # noqa: E731
    family_best = {f: strip(min(cs, key=lambda c: c["fd"])) for f, cs in cells.items()}
    ctx.results["architectures"] = {
        "latents": list(cfg.arch_latents), "cells": {f: [strip(c) for c in cs]
                                                     for f, cs in cells.items()},
        "best": {f: {a: c["latent"] for a, c in b.items()} for f, b in best.items()},
        "family_best": family_best, "chosen": {f: list(v) for f, v in CHOSEN.items()},
        "conclusions": checks}
    return "\n\n".join(parts)
