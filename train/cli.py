"""`latentforge train | summary | evaluate`: argument set-up only; torch loads when one runs."""
from __future__ import annotations

import argparse

from latentforge.runtime.helpformat import HelpFormatter

from .registry import model_names

HELP = HelpFormatter


def int_tuple(text: str) -> tuple[int, ...]:
    """"512,256" → (512, 256)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 512,256, got {text!r}")
    return values


def digit_tuple(text: str) -> tuple[int, ...]:
    """"7" or "3,7" → (3, 7): distinct digits 0–9, not all ten."""
    from .data import check_digits

    try:
        digits = check_digits(int(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected digits 0-9 like 7 or 3,7, got {text!r} "
                                         f"({e})") from None
    if not digits:
        raise argparse.ArgumentTypeError(f"expected digits 0-9 like 7 or 3,7, got {text!r}")
    return digits


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """Config flags shared by `train` and `summary` (None = the model's default)."""
    p.add_argument("model", choices=model_names(), help="model name")
    p.add_argument("--latent-dim", type=int, default=None,
                   help="latent size K / dz (default: the model config's)")
    p.add_argument("--activation", default=None,
                   help="ae-dense1/ae-dense2 activation: none, relu, sigmoid, tanh")
    p.add_argument("--hidden", type=int_tuple, default=None,
                   help="dense encoder widths, e.g. 512,256 (ae-dense2, vae-dense; mirrored)")
    p.add_argument("--channels", type=int_tuple, default=None,
                   help="conv widths, e.g. 32,64,128 (ae-conv: 2, vae-conv: 2 to 5, "
                   "ddpm-unet: 3)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model on MNIST", formatter_class=HELP)
    add_model_flags(p)
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs (default: per model; ddpm-unet 8, others 10)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: 128)")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam (peak) learning rate (default: per model; ddpm-unet 5e-4)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, split and shuffling")
    p.add_argument("--beta", type=float, default=1.0, help="VAE: weight of the KL term")
    p.add_argument("--recon", choices=["bce", "mse"], default="bce",
                   help="reconstruction loss (summed per image)")
    p.add_argument("--noise", choices=["none", "gaussian", "uniform"], default="none",
                   help="input noise for a denoising autoencoder")
    p.add_argument("--noise-level", type=float, default=0.0,
                   help="gaussian std or uniform amplitude")
    p.add_argument("--data-dir", default=None,
                   help="directory of MNIST IDX files (default: $LATENTFORGE_DATA, else download)")
    p.add_argument("--out", default=None, help="output directory (default: runs/MODEL)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/last.pt (same model and flags; --epochs may grow)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run even though OUT already holds one (replaces it)")
    p.add_argument("--dry-run", action="store_true",
                   help="one training and one validation batch, nothing written")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--val-size", type=int, default=10_000,
                   help="validation images held out from the 60k training set")
    p.add_argument("--limit", type=int, default=None, help="cap every split (quick runs)")
    p.add_argument("--exclude-digits", type=digit_tuple, default=None, metavar="D[,D...]",
                   help="remove these classes from train and validation (e.g. 7: a "
                   "leave-one-digit-out anomaly detector); the test set keeps them")
    p.add_argument("--ema-decay", type=float, default=0.999, help="DDPM: EMA decay (0 = off)")
    p.add_argument("--num-timesteps", type=int, default=1000, help="DDPM: T")
    p.add_argument("--beta-start", type=float, default=1e-4, help="DDPM: β_1")
    p.add_argument("--beta-end", type=float, default=0.02, help="DDPM: β_T")
    p.add_argument("--schedule", choices=["linear", "cosine"], default="linear",
                   help="DDPM: β schedule")
    p.add_argument("--sample-every", type=int, default=1,
                   help="DDPM: sample grid every N epochs (0 = never)")
    p.add_argument("--time-embedding", choices=["course", "half"], default=None,
                   help="DDPM: sinusoidal frequencies exp(-ln(1e4)·i/(half-1)) as in the course,"
                   " or /half as latentforge 0.1 trained (default: course)")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default=None,
                   help="learning rate after warm-up: constant, or cosine decay to --min-lr "
                   "(default: per model; ddpm-unet cosine, others constant)")
    p.add_argument("--warmup-steps", type=int, default=None,
                   help="linear lr warm-up steps (default: per model; ddpm-unet 500, others 0)")
    p.add_argument("--min-lr", type=float, default=None,
                   help="final lr of the cosine schedule (default: per model; ddpm-unet 1e-6)")
    p.add_argument("--grad-clip", type=float, default=None,
                   help="clip the global gradient norm to this, 0 = off (default: per model; "
                   "ddpm-unet 1.0, others 0)")
    p.add_argument("--init-from", default=None, metavar="CKPT",
                   help="start from this checkpoint's weights (and EMA weights; a weights-only "
                   "one works) with a fresh optimizer and schedule")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="training arithmetic: fp32, or bf16 autocast with channels-last "
                   "tensors (about 3x faster on CPUs with AMX; weights, optimizer, loss and "
                   "validation stay fp32)")
    p.add_argument("--p2-gamma", type=float, default=0.0,
                   help="DDPM: weight the loss by 1/(k+SNR(t))^gamma (P2, Choi et al. 2022); "
                   "0 = Ho et al.'s unweighted L_simple")
    p.add_argument("--p2-k", type=float, default=1.0, help="DDPM: the k of P2 weighting")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)

    p = sub.add_parser("summary", help="print a model's layer table and parameter count",
                       formatter_class=HELP)
    add_model_flags(p)
    p.set_defaults(func=_run_summary)

    p = sub.add_parser("evaluate", help="test-set metrics, JSON and a grid PNG for an AE/VAE "
                       "checkpoint", formatter_class=HELP)
    p.add_argument("checkpoint", help="a checkpoint written by `latentforge train` (last.pt)")
    p.add_argument("--data-dir", default=None,
                   help="MNIST IDX directory (default: $LATENTFORGE_DATA, else the training one)")
    p.add_argument("--out", default=None,
                   help="directory for eval.json and eval.png (default: the checkpoint's)")
    p.add_argument("--noise", choices=["none", "gaussian", "uniform"], default=None,
                   help="input noise (default: as trained)")
    p.add_argument("--noise-level", type=float, default=None,
                   help="gaussian std or uniform amplitude (default: as trained)")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N test images")
    p.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.set_defaults(func=_run_evaluate)

    _register_report(sub)
    _register_bench(sub)


def _run_train(args) -> int:
    from .trainer import TrainArgs, train

    fields = TrainArgs.__dataclass_fields__
    train(TrainArgs(**{k: v for k, v in vars(args).items() if k in fields}))
    return 0


def _run_summary(args) -> int:
    from .summary import summarize

    print(summarize(args.model, {"latent_dim": args.latent_dim, "activation": args.activation,
                                 "hidden": args.hidden, "channels": args.channels}))
    return 0


def _run_evaluate(args) -> int:
    import json

    from .evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(args.checkpoint, data_dir=args.data_dir, out=args.out,
                                 noise=args.noise, noise_level=args.noise_level,
                                 limit=args.limit, device=args.device,
                                 batch_size=args.batch_size)
    print(json.dumps(report["metrics"], indent=2))
    return 0


def _register_report(sub) -> None:
    p = sub.add_parser("report", formatter_class=HELP,
                       help="the course's experiments as one Markdown report with figures",
                       description="Write DIR/report.md, DIR/figures/*.png and DIR/report.json: "
                       "model table, reconstructions and denoising, scored samples (classifier "
                       "FD), latent spaces, successive reconstructions, the vae-conv β and "
                       "latent-size sweeps, DDPM forward/reverse strips, the dense and conv VAE "
                       "architecture sweeps. Unset sizes come from "
                       "the --quick or full preset (latentforge.train.report QUICK / FULL).")
    p.add_argument("--out", default="report", metavar="DIR", help="output directory")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="shipped names or exported directories (default: every shipped model)")
    p.add_argument("--classifier", default=None,
                   help="classifier for the sample scores (default: one in --models, else the "
                   "shipped one)")
    p.add_argument("--ddpm", default=None,
                   help="DDPM (default: one in --models, else the shipped one)")
    p.add_argument("--denoiser", dest="denoisers", nargs="+", default=None, metavar="MODEL",
                   help="denoising autoencoders (default: --models whose test metrics include "
                   "noisy_psnr)")
    p.add_argument("--data-dir", default=None,
                   help="MNIST IDX directory (default: $LATENTFORGE_DATA, else the fixture of "
                   "a source checkout)")
    p.add_argument("--quick", action="store_true",
                   help="subsets, few samples, 1-epoch sweeps on a subset (< 10 min, 2 cores)")
    for flag, helptext in (("--n-test", "test images for metrics and plots"),
                           ("--reference-size", "test images of the FD reference"),
                           ("--n-samples", "samples per scored set"),
                           ("--n-ancestral", "samples of the 1000-step ancestral DDPM"),
                           ("--tsne-points", "digits in the latent scatter"),
                           ("--sweep-epochs", "epochs per sweep run"),
                           ("--sweep-limit", "cap on every split for the sweep runs"),
                           ("--sweep-val-size", "validation hold-out of the sweep runs"),
                           ("--sweep-batch-size", "batch size of the sweep runs"),
                           ("--max-steps", "cap on DDPM reverse steps (ancestral is skipped "
                            "when T exceeds it)")):
        p.add_argument(flag, type=int, default=None, help=f"{helptext} (default: preset)")
    p.add_argument("--arch-latents", type=int_tuple, default=None, metavar="K,K,...",
                   help="latent sizes of the architecture sweeps (default: preset; full "
                   "2,5,10,20,50,100, quick 2,10)")
    p.add_argument("--sections", nargs="+", default=None, metavar="SECTION",
                   help="only these: models reconstructions samples latent iterates sweeps "
                   "ddpm architectures anomaly conditional (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of samples, noise and sweeps")
    p.add_argument("--threads", type=int, default=None,
                   help="onnxruntime, torch and OpenMP threads (default: 1 with --quick, else "
                   "all cores)")
    p.add_argument("--device", default="auto", help="sweep training device: auto, cpu, cuda")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_run_report)


def _run_report(args) -> int:
    from .report import SECTIONS, ReportConfig, build_report

    fields = ReportConfig.__dataclass_fields__
    kwargs = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    kwargs.setdefault("sections", list(SECTIONS))
    print(build_report(ReportConfig(**kwargs)))
    return 0


def _register_bench(sub) -> None:
    p = sub.add_parser("bench", formatter_class=HELP,
                       help="PyTorch eager vs the runtime on the same weights (needs torch)",
                       description="U-Net step at batch 1/16/64, 64 digits by the course's eager "
                       "1000-step loop vs the runtime's ancestral-1000 and DDIM-50, encoder "
                       "throughput at batch 256 (float and uint8 input), load time; times, "
                       "speed-ups, GFLOP/s and the share of a measured SGEMM rate.")
    p.add_argument("--ddpm", default="ddpm", help="shipped DDPM name or exported directory")
    p.add_argument("--vae", default="vae-conv", help="shipped VAE name or exported directory")
    p.add_argument("--threads", type=int, default=None, help="threads for both (all cores)")
    p.add_argument("--quick", action="store_true",
                   help="100-step eager loop and no runtime ancestral-1000 (a smoke run)")
    p.add_argument("--quality", type=int, default=0, metavar="N",
                   help="also score every sampling setting on N digits (1000 for the README; "
                   "about 30 min on 2 cores, most of it ancestral-1000) and time the fastest "
                   "quality-matched one against the eager loop; 0 = skip")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="reuse/keep --quality rows here (the report's DIR/cache/samplers "
                   "shares them)")
    p.add_argument("--data-dir", default=None, help="MNIST IDX directory of the FD reference "
                   "(default: $LATENTFORGE_DATA, else the source checkout's fixture)")
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    p.add_argument("--default-malloc", action="store_true",
                   help="keep glibc's malloc thresholds, under which PyTorch eager page-faults "
                   "its activation buffers on every call (by default the bench raises them so "
                   "eager runs at its best)")
    p.set_defaults(func=_run_bench)


def _run_bench(args) -> int:
    import json

    from .bench import run

    rows = run(ddpm=args.ddpm, vae=args.vae, threads=args.threads, quick=args.quick,
               quality=args.quality, cache=args.cache, data_dir=args.data_dir,
               tune_malloc=not args.default_malloc)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0
