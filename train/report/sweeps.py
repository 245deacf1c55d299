"""Report section 6: the β sweep and the latent-size sweep of vae-conv. Each run is trained
or reused and scored by sweep_runs.run_cell."""
from __future__ import annotations

from . import figures as figs
from .markdown import md_table
from .sweep_runs import run_cell

BETAS = (0.2, 0.5, 1.0, 2.0, 5.0)  # at latent size BASE_LATENT
LATENTS = (2, 5, 10, 20, 50, 100)  # at β = BASE_BETA
BASE_LATENT, BASE_BETA = 10, 1.0
MODEL = "vae-conv"


def sweeps(ctx) -> str:
    cfg = ctx.cfg
    runs: dict[tuple[float, int], dict] = {}

    def run(beta, latent):
        if (beta, latent) not in runs:
            ctx.log(f"  {MODEL} β={beta:g} latent={latent}")
            runs[(beta, latent)] = run_cell(ctx, MODEL, beta, latent)[0]
        return runs[(beta, latent)]

    beta_rows = [{"value": b, **run(b, BASE_LATENT)} for b in BETAS]
    latent_rows = [{"value": k, **run(BASE_BETA, k)} for k in LATENTS]
    header = ["recon BCE", "KL", "BCE + β·KL", "MSE", "classifier FD", "confident %",
              "max dev. (pp)", "epochs", "train s"]

    def table(name, rows):
        return md_table([name, *header], [[r["value"], r["bce"], r["kl"], r["neg_elbo_mu"],
                                           r["mse"], r["fd"], 100 * r["confident"],
                                           r["max_deviation_pp"], r["epochs"], r["train_s"]]
                                          for r in rows])

    images = []
    for name, rows, fmt in (("beta", beta_rows, "β = {:g}"), ("latent", latent_rows,
                                                              "latent {}")):
        path = figs.labelled_rows([(fmt.format(r["value"]), r["_grid"]) for r in rows],
                                  ["test digits / reconstructions", "prior samples"],
                                  ctx.fig(f"sweep_{name}.png"), nrow=8)
        images.append(ctx.image(path, f"{name} sweep"))
    curves = figs.sweep_curves([("β", beta_rows), ("latent", latent_rows)],
                               ctx.fig("sweep_curves.png"))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "_grid"} for r in rows]  # noqa
    ctx.results["sweeps"] = {"beta": strip(beta_rows), "latent": strip(latent_rows)}
    subset = (f"the first {cfg.sweep_limit:,} images of each split" if cfg.sweep_limit
              else "the full training split")
    n_test = min(cfg.sweep_limit or 10_000, 10_000)
    epochs = sorted({r["epochs"] for r in beta_rows + latent_rows})
    return "\n\n".join([
        f"`{MODEL}` trained for {', '.join(map(str, epochs))} epoch(s) on {subset} "
        f"(BCE reconstruction, Adam, batch {cfg.sweep_batch_size}, seed {cfg.seed}); scored "
        f"on up to {n_test:,} test images (decode(μ)) and {cfg.n_samples:,} prior samples; "
        f"*train s* is each run's training time from its metrics.jsonl (a run reused from "
        f"DIR/runs keeps the time it took when trained). β sweep at latent size {BASE_LATENT}:",
        table("β", beta_rows),
        f"Latent-size sweep at β = {BASE_BETA:g}:",
        table("latent", latent_rows),
        ctx.image(curves, "sweep curves"), *images])
