"""`latentforge report --quick` on tiny random-init exports and the fixture-sized data: every
section is written, every figure exists, is a non-empty PNG and is linked from report.md,
and report.json holds the numbers of the tables (the architecture sweeps' conclusion logic
itself is tested in test_architectures.py)."""
import json
import re
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from latentforge.export import export_checkpoint
from latentforge.runtime import api
from latentforge.runtime.cli import main
from latentforge.train.registry import all_specs, build_model, make_config
from latentforge.train.report import ReportConfig, build_report
from latentforge.train.report.architectures import FAMILIES
from latentforge.train.report.conclusions import VERDICTS
from latentforge.train.report.config import QUICK
from latentforge.train.report.sweeps import BETAS, LATENTS
from latentforge.train.schedule import ScheduleConfig

TITLES = ("## Headline numbers", "## 1. Models", "## 2. Reconstructions", "## 3. Samples",
          "## 4. Latent spaces", "## 5. Successive reconstructions",
          "## 6. β and latent-size sweeps", "## 7. DDPM forward and reverse",
          "## 8. Architecture sweeps", "## Timings")


def export_random(name, out, **config):
    spec = all_specs()[name]
    torch.manual_seed(0)
    cfg = make_config(spec, config)
    ckpt = {"model": name, "kind": spec.kind, "config": asdict(cfg), "ema_state": None,
            "model_state": build_model(spec, cfg).state_dict(), "epoch": 0, "metrics": {}}
    if spec.kind == "ddpm":
        ckpt["schedule"] = asdict(ScheduleConfig())
    export_checkpoint(ckpt, out)
    return str(out)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-models")
    return {"ae": export_random("ae-dense1", root / "ae-dense1", latent_dim=8),
            "dae": export_random("ae-conv", root / "dae-conv", latent_dim=16),
            "vae2": export_random("vae-dense", root / "vae-dense", latent_dim=2,
                                  hidden=(64,)),
            "vae": export_random("vae-conv", root / "vae-conv"),
            "ddpm": export_random("ddpm-unet", root / "ddpm-unet"),
            "classifier": export_random("classifier", root / "classifier")}


@pytest.fixture(scope="module")
def report(models, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    argv = ["report", "--quick", "--quiet", "--out", str(out), "--data-dir", str(data_dir),
            "--models", models["ae"], models["dae"], models["vae2"], models["vae"],
            models["ddpm"], "--classifier", models["classifier"], "--n-test", "200",
            "--reference-size", "300", "--n-samples", "40", "--tsne-points", "120",
            "--sweep-limit", "150", "--max-steps", "3", "--threads", "1"]
    assert main(argv) == 0
    return out


def test_quick_report_has_every_section_and_its_figures_resolve(report):
    text = (report / "report.md").read_text()
    positions = [text.find(t) for t in TITLES]
    assert -1 not in positions and positions == sorted(positions), positions
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    figures = sorted(p.relative_to(report).as_posix() for p in (report / "figures").glob("*"))
    assert sorted(set(links)) == figures  # every link resolves, no figure is left unlinked
    latent = ("ae-dense1", "dae-conv", "vae-dense", "vae-conv")
    expected = {"reconstructions", "denoise_dae-conv", "samples", "class_histograms",
                "latent_scatter", "iterate_norms", "sweep_curves", "sweep_beta", "sweep_latent",
                "ddpm_forward", "ddpm_reverse", *(f"interpolation_{m}" for m in latent),
                *(f"arch_{kind}_{family}" for kind in ("curves", "best") for family in FAMILIES),
                *(f"iterates_{m}" for m in latent)}
    assert {f"figures/{name}.png" for name in expected} == set(links)
    for link in links:
        with Image.open(report / link) as im:
            im.load()
            assert im.format == "PNG" and min(im.size) >= 50, link
            assert np.asarray(im.convert("L")).std() > 5, f"{link} is blank"


def test_quick_report_tables_hold_the_scores(report, models):
    results = json.loads((report / "report.json").read_text())
    assert set(results["models"]) == {"ae-dense1", "dae-conv", "vae-dense", "vae-conv",
                                      "ddpm-unet", "classifier"}
    assert results["models"]["vae-conv"]["kl"] >= 0
    assert "gaussian" in " ".join(results["denoising"]) and all(
        k.startswith("dae-conv") for k in results["denoising"])  # found by its name
    samples = {(r["samples"], r["method"], r["steps"]) for r in results["samples"]}
    # --max-steps 3: the 1000-step ancestral run is skipped, every other setting becomes 3
    assert samples == {("real training digits", "—", None), ("vae-dense", "prior", None),
                       ("vae-conv", "prior", None), ("ddpm-unet", "ddim", 3),
                       ("ddpm-unet", "ddim η=1", 3), ("ddpm-unet", "dpmpp-2m", 3),
                       ("ddpm-unet", "sde-dpmpp-2m", 3)}
    for r in results["samples"]:
        assert r["n"] == 40 and r["reference_n"] == 300 and np.isfinite(r["fd"])
    assert results["latent"]["projection"] == {"ae-dense1": "t-SNE of 8-d",
                                               "dae-conv": "t-SNE of 16-d",
                                               "vae-dense": "direct",
                                               "vae-conv": "t-SNE of 10-d"}
    for curve in results["iterates"].values():
        assert len(curve["d"]) == 10 and min(curve["d"]) >= 0
    sweeps = results["sweeps"]
    assert [r["value"] for r in sweeps["beta"]] == list(BETAS)
    assert [r["value"] for r in sweeps["latent"]] == list(LATENTS)
    assert all(r["epochs"] == 1 and np.isfinite(r["fd"]) for r in sweeps["beta"])
    assert all(r["train_s"] > 0 for r in sweeps["beta"] + sweeps["latent"])
    text = (report / "report.md").read_text()
    assert "ancestral sampling (1000 steps) skipped" in text


def test_quick_report_architecture_sweeps_hold_every_cell_and_reuse_the_latent_sweep(report):
    arch = json.loads((report / "report.json").read_text())["architectures"]
    latents = list(QUICK["arch_latents"])
    assert arch["latents"] == latents
    for family, archs in FAMILIES.items():
        cells = arch["cells"][family]
        assert [(c["architecture"], c["latent"]) for c in cells] == \
            [(a, k) for a, _ in archs for k in latents]
        for c in cells:
            assert c["epochs"] == 1 and c["train_s"] > 0 and c["parameters"] > 0
            assert all(np.isfinite(c[k]) for k in ("bce", "kl", "mse", "fd", "confident"))
        assert set(arch["best"][family]) == {a for a, _ in archs}
    by = {(c["architecture"], c["latent"]): c["parameters"] for c in arch["cells"]["vae-conv"]}
    assert by[("1→32→64→128", 10)] == 313_557  # the course's conv choice
    assert [c["verdict"] for c in arch["conclusions"]][1] == "not tested"  # no d_z ≥ 50
    assert all(c["verdict"] in VERDICTS for c in arch["conclusions"])
    runs = {p.name for p in (report / "runs" / "limit150-batch32").iterdir()}
    assert {"vae-conv-beta1-z10", "vae-dense-beta1-z2-h1024-512",
            "vae-conv-beta1-z2-c16-32-64"} <= runs
    assert not any(r.endswith("-c32-64-128") or r.endswith("-h512-256") for r in runs)
    text = (report / "report.md").read_text()
    section = text[text.index("## 8. Architecture sweeps"):text.index("## Timings")]
    for c in arch["conclusions"]:
        assert f"— **{c['verdict']}**. {c['text']}" in section
    assert "--sections architectures" in section and "best cell (lowest FD)" in text


def test_partial_report_updates_its_sections_and_keeps_the_others(report, models, data_dir,
                                                                  tmp_path):
    import shutil

    out = tmp_path / "r"
    shutil.copytree(report, out)
    before = json.loads((out / "report.json").read_text())
    assert main(["report", "--quick", "--quiet", "--out", str(out), "--data-dir", str(data_dir),
                 "--models", models["vae"], "--classifier", models["classifier"],
                 "--n-test", "200", "--reference-size", "300", "--sections", "models",
                 "--threads", "1"]) == 0
    text = (out / "report.md").read_text()
    positions = [text.find(t) for t in TITLES]
    assert -1 not in positions and positions == sorted(positions), positions
    after = json.loads((out / "report.json").read_text())
    assert "ae-dense1" in before["models"] and "ae-dense1" not in after["models"]  # regenerated
    assert after["sweeps"] == before["sweeps"] and after["samples"] == before["samples"]
    assert after["architectures"] == before["architectures"]
    assert "kept from the previous run in this directory: reconstructions, samples" in text


def test_report_without_a_classifier_says_how_to_get_one(models, data_dir, tmp_path,
                                                         monkeypatch):
    monkeypatch.setattr(api, "SHIPPED", tmp_path / "no-shipped-models")
    cfg = ReportConfig(out=str(tmp_path / "r"), models=[models["vae"]], data_dir=str(data_dir),
                       quick=True, n_test=50, sections=["models"], quiet=True)
    with pytest.raises(ValueError, match="--classifier"):
        build_report(cfg)


def test_report_config_rejects_unknown_sections_and_single_samples():
    with pytest.raises(ValueError, match="unknown report sections"):
        ReportConfig(sections=["models", "nope"]).resolved()
    with pytest.raises(ValueError, match="n_samples must be >= 2"):
        ReportConfig(quick=True, n_samples=1).resolved()
    assert ReportConfig(quick=True).resolved().threads == 1
    assert ReportConfig().resolved().n_ancestral == 1000


def test_report_sampler_settings_come_from_the_table_and_quick_keeps_a_subset():
    from latentforge.runtime.sampler_table import SETTINGS

    full = ReportConfig().resolved().samplers
    assert full == tuple(s.label for s in SETTINGS)
    quick = ReportConfig(quick=True).resolved().samplers
    assert "ancestral" in quick and "ddim-100 η=1" in quick and set(quick) < set(full)
    with pytest.raises(ValueError, match="unknown sampler settings.*valid: ancestral"):
        ReportConfig(samplers=("ancestral", "euler-3")).resolved()
