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


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    """10 synthetic scenes of 128×64 in Cityscapes' layout (8 training, 2 validation), once per module."""
    from phgmm.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, num=10, size=(128, 64), seed=3, fmt="cityscapes", val_fraction=0.2, progress=False)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny PHGMM checkpoint at 128×64 (W×H), written directly (no training), once per module."""
    from support import tiny_config

    from phgmm.config import config_to_dict
    from phgmm.engine.builders import build_model_from_config
    from phgmm.engine.checkpoint import save_checkpoint

    cfg = tiny_config()
    torch.manual_seed(0)
    model = build_model_from_config(cfg, inference=True, pretrained=False).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(path, {"model": model.state_dict(), "config": config_to_dict(cfg)})
