"""docs/results/budget_camvid/summarize.py: the budget table's numbers on hand-worked runs."""

from __future__ import annotations

import importlib.util
import json

import pytest
from support import REPO

SCRIPT = REPO / "docs" / "results" / "budget_camvid" / "summarize.py"


@pytest.fixture
def summary(tmp_path, monkeypatch):
    """The script as a module, reading its runs from ``tmp_path/budget_camvid``."""
    spec = importlib.util.spec_from_file_location("budget_summary_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    monkeypatch.setattr(module, "HERE", tmp_path / "budget_camvid")
    return module


def _run(root, name: str, miou: float, vals: list[tuple[int, float]]) -> None:
    folder = root / "budget_camvid" / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"miou": miou}))
    history = [{"epoch": e, "val_miou": v} for e, v in vals] + [{"epoch": 5, "train_loss": 1.0}]
    (folder / "history.json").write_text(json.dumps(history))


def test_spread_against_two_sd(summary):
    # sample sd of (61.69, 60.86) is 0.83 / sqrt(2) = 0.5869; mean 61.275; gap to 60.86 is +0.415
    assert summary.spread([61.69, 60.86], [60.86]) == "+0.41 (2 sd = 1.17): within the spread: more seeds"
    # the larger sd of the pair counts: sd(30, 34) = 2.83 -> 2 sd = 5.66 > |35 - 32| = 3
    assert summary.spread([35.0, 35.0], [30.0, 34.0]) == "+3.00 (2 sd = 5.66): within the spread: more seeds"
    assert summary.spread([35.0, 36.0], [40.0, 41.0]) == "−5.00 (2 sd = 1.41): ordered"
    assert summary.spread([35.0], [40.0]) == "−5.00 (one seed each): more seeds"


def test_section_orders_and_reads_the_last_two_validations(summary, tmp_path):
    _run(tmp_path, "phgmm-e100-s0", 0.60, [(10, 0.30), (90, 0.59), (100, 0.60)])
    _run(tmp_path, "phgmm-e100-s1", 0.62, [(90, 0.615), (100, 0.62)])
    _run(tmp_path, "deeplabv3-e100-s0", 0.64, [(100, 0.64)])
    _run(tmp_path, "deeplabv3-e25-s0", 0.50, [(25, 0.50)])  # another budget: not in the 100-epoch table
    lines = summary.section(100)
    assert lines[0] == "### 100 epochs"
    rows = [line for line in lines if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert rows == [
        "| 1 | deeplabv3 | 1 | 64.00 | does not hold | −3.00 (2 sd = 2.83): ordered | – |",
        "| 2 | phgmm | 2 | 61.00 ± 1.41 | – | – | +1.00 (epoch 90 → 100); +0.50 (epoch 90 → 100) |",
    ]
    assert "`budget_camvid/deeplabv3-e25-s0`" not in lines[-2]
    assert summary.section(25)[2] == "| rank | network | seeds | val mIoU | PHGMM above (paper's side) | PHGMM's gap |"
    assert summary.section(50) == ["### 50 epochs", "", "No run has finished yet.", ""]
