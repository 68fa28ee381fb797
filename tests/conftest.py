from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Tests share two cores with everything else on CI's machine; one intra-op thread per process
# keeps timings predictable and avoids oversubscription when DataLoader workers run.
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present (only development checkouts have it)")
    return REALDATA


@pytest.fixture
def one_thread():
    """Tiny models on a small shared CPU: one intra-op thread is faster and steadier
    (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
