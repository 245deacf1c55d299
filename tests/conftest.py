"""Shared fixtures."""
import os
import signal
from pathlib import Path

import pytest
from hypothesis import settings

# property tests draw the same examples on every run (CI included): a failure reproduces
settings.register_profile("latentforge", derandomize=True, print_blob=True)
settings.load_profile("latentforge")

FIXTURE_DATA = Path(__file__).parent / "data"

# A non-interactive shell starts background jobs (`bash .ci/run &`) with SIGINT ignored, and an
# ignored signal stays ignored in every child: Python then installs no KeyboardInterrupt
# handler and the Ctrl-C tests would test the launcher, not the program. Restore what a
# terminal gives (children exec'd from here get SIG_DFL, so Python installs its handler).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """MNIST IDX directory: $LATENTFORGE_DATA when set (CI: the full data set), else the
    2,000-image fixture. Tests pass val_size=200 and small limits so either works."""
    return Path(os.environ.get("LATENTFORGE_DATA") or FIXTURE_DATA).resolve()


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tests' tensors are tiny; on a small shared machine torch's thread pool
    oversubscribes the cores (measured: 88 s → 13 s for test_training.py on 2 busy cores)."""
    try:
        import torch
    except ImportError:  # a runtime-only install
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
