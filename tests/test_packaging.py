"""Install layout: one import name, a torch-free runtime, a working extension."""
import subprocess
import sys
import textwrap
from pathlib import Path

def import_blocker(package: str) -> str:
    """Python source that makes every later import of ``package`` (and its submodules) raise
    ImportError: prepend it to a subprocess's code to test life without an optional engine."""
    return textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == {package!r} or name.startswith({package + "."!r}):
                    raise ImportError({package + " is blocked in this test"!r})
        sys.meta_path.insert(0, Block())
    """)


BLOCK_TORCH = import_blocker("torch")


def run_python(code: str, tmp_path) -> subprocess.CompletedProcess:
    # cwd=tmp_path: the source checkout must not be on sys.path, only the installed package
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_runtime_imports_without_torch(tmp_path):
    r = run_python(BLOCK_TORCH + textwrap.dedent("""
        import pkgutil, importlib
        import latentforge.runtime as rt
        for m in pkgutil.iter_modules(rt.__path__):
            importlib.import_module("latentforge.runtime." + m.name)
        assert "torch" not in sys.modules, sorted(k for k in sys.modules if "torch" in k)
        print("ok")
    """), tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_cli_help_needs_no_torch(tmp_path):
    r = run_python(BLOCK_TORCH + textwrap.dedent("""
        from latentforge.runtime.cli import main
        try:
            main(["--help"])
        except SystemExit as e:
            assert e.code == 0
        assert "torch" not in sys.modules
    """), tmp_path)
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout


def test_no_bare_top_level_packages_after_install(tmp_path):
    for name in ("runtime", "train", "export"):
        r = run_python(f"import {name}", tmp_path)
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, name


def test_extension_is_built_optimized():
    from latentforge.runtime import _core

    info = _core.build_info()
    assert info["optimized"] is True
    assert info["cplusplus"] >= 201703
    assert info["hardware_threads"] >= 1


def test_console_script_is_installed(tmp_path):
    script = Path(sys.executable).parent / "latentforge"
    assert script.exists(), f"no console script at {script}"
    r = subprocess.run([str(script), "--version"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()[0].isdigit()
