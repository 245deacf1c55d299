"""`latentforge report`: the course's experiments as one reproducible Markdown report.

    latentforge report --quick            # < 10 min on 2 cores: subsets, 1-epoch sweeps
    latentforge report --out report       # the full run (see config.FULL)

Writes DIR/report.md, DIR/figures/*.png and DIR/report.json (every number in the tables).
Models come from the shipped ones (``latentforge.runtime.load(name)``) or from exported
directories given with ``--models``; they run through the runtime (ONNX), so the report
measures what ships. The sweeps train with PyTorch under DIR/runs/ and reuse finished runs
when the report is generated again.

One module per job; a section never imports the builder:

    config.py           SECTIONS, the QUICK / FULL presets, ReportConfig
    context.py          Context: data, models, classifier reference, figure paths
    markdown.py         md_table, jsonable (shared by every section)
    figures.py          matplotlib figures (Agg)
    metrics.py          image metrics and KL through the runtime
    models.py           section 1   reconstructions.py  section 2
    samples.py          section 3   latent.py           section 4
    iterates.py         section 5   sweeps.py           section 6
    ddpm_strips.py      section 7   architectures.py    section 8
    sweep_runs.py       one sweep cell trained (or reused) and scored: sections 6 and 8
    conclusions.py      the course's architecture conclusions checked against section 8
    anomaly.py          section 9   conditional.py      section 10
    builder.py          build_report: runs the sections, writes report.md / report.json
"""
from .builder import build_report
from .config import FULL, QUICK, SECTIONS, ReportConfig
from .markdown import jsonable, md_table

__all__ = ["FULL", "QUICK", "SECTIONS", "ReportConfig", "build_report", "jsonable", "md_table"]
