"""Shared test fixtures: where the real sample media live, temporary folders, one torch thread."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Real sample clips: $EAPC_SHARED_DATA, else ../shared/data beside the checkout."""
    return Path(os.environ.get("EAPC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"real sample media not found at {root} (set EAPC_SHARED_DATA to the folder)")
    return root


@pytest.fixture
def single_thread():
    """One intra-op thread: tiny convolutions run faster so on a shared 2-core machine. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
