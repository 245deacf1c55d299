"""The report package (issue 18): every module imports on its own in a fresh interpreter, and
the package's own imports form no cycle (sections never import the builder)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import latentforge.train.report as report

PACKAGE = Path(report.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def package_imports(module: str) -> set[str]:
    """Modules of this package that ``module`` imports (relative or absolute), anywhere in it."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1:  # from . import x / from .x import y
                found |= {a.name for a in node.names} if not base else {base.split(".")[0]}
            elif base.startswith("latentforge.train.report"):
                rest = base.split(".")[3:]
                found |= {rest[0]} if rest else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            for a in node.names:
                rest = a.name.split(".")[3:] if a.name.startswith("latentforge.train.report") \
                    else []
                found |= set(rest[:1])
    return found & set(MODULES)


def test_the_package_imports_form_no_cycle_and_sections_never_import_the_builder():
    graph = {m: package_imports(m) for m in MODULES}
    assert graph["builder"] >= {"models", "samples", "sweeps", "architectures"}
    assert not any("builder" in deps for m, deps in graph.items() if m != "builder")
    state: dict[str, str] = {}

    def visit(m, path):
        assert state.get(m) != "open", f"import cycle: {' → '.join(path + [m])}"
        if state.get(m) == "done":
            return
        state[m] = "open"
        for d in sorted(graph[m]):
            visit(d, path + [m])
        state[m] = "done"

    for m in MODULES:
        visit(m, [])


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_alone_in_a_fresh_interpreter(module, tmp_path):
    name = f"latentforge.train.report.{module}"
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_public_names_stay_where_importers_find_them():
    from latentforge.train.report import FULL, QUICK, SECTIONS, ReportConfig, build_report, \
        md_table  # noqa: F401  (train/bench.py and train/cli.py import these)

    assert "architectures" in SECTIONS and callable(build_report)
