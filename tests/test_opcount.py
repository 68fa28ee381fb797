"""The operators each model dispatches per training step and eval forward may not grow (docs/gpu.md).

An eager GPU step launches about one kernel per operator and PHGMM's GPU step is bound by those
launches, so an added operator is a slower GPU step that no CPU timing would show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from phgmm.benchmark.opcount import PHASES, count_ops, model_op_counts
from phgmm.models import MODEL_NAMES

FIXTURE = Path(__file__).parent / "fixtures" / "op_counts.json"
RECORD = json.loads(FIXTURE.read_text())
UPDATE = (
    "if the change lowers the count on purpose, record it with "
    "`python benchmarks/op_counts.py --write-fixture` and commit tests/fixtures/op_counts.json"
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_counter_counts_what_runs():
    x = torch.randn(2, 3)
    c = count_ops(lambda: (x.t() + 1).relu_().sum())
    assert dict(c.ops) == {"t": 1, "add": 1, "relu_": 1, "sum": 1}
    assert c.total == 4 and c.total_kernels == 3  # a view launches nothing


@pytest.mark.parametrize("name", sorted(RECORD["models"]))
def test_operator_counts_do_not_grow(name):
    setting = RECORD["setting"]
    counts = model_op_counts(name, **setting)
    recorded = RECORD["models"][name]
    grown = [
        f"{phase} {key}: {counts[phase][key]} > recorded {recorded[phase][key]}"
        for phase in PHASES
        for key in ("ops", "kernels")
        if counts[phase][key] > recorded[phase][key]
    ]
    assert not grown, (
        f"{name} dispatches more operators than recorded (torch {RECORD['torch']} recorded, "
        f"{torch.__version__} here): {'; '.join(grown)}. Find the new ones with "
        f"`python benchmarks/op_counts.py --models {name} --by-op 40`; {UPDATE}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n not in RECORD["models"]])
def test_every_registered_model_is_counted(name):
    """Networks added to the registry after the record are counted too (recorded once added to
    benchmarks/op_counts.py's RECORDED): the counter must run on each and find a backward pass."""
    counts = model_op_counts(name, **{**RECORD["setting"], "size_wh": [64, 64]}, phases=("train",))
    assert counts["train"]["ops"] >= counts["train"]["kernels"] > 0
    assert any(op.endswith("_backward") for op in counts["train"]["by_op"])


def test_op_counts_of_every_model_at_the_default_setting(monkeypatch):
    import phgmm.benchmark.opcount as opcount

    asked = []
    monkeypatch.setattr(opcount, "model_op_counts", lambda name, **s: asked.append((name, s)) or name.upper())
    default = {
        "backbone": "resnet18",
        "size_wh": [128, 64],
        "batch": 2,
        "num_classes": 12,
        "postnet": "full",
        "channels_last": True,
    }
    out = opcount.op_counts(["fcn8s", "unet"], batch=3)
    assert out == {
        "setting": {**default, "batch": 3},
        "torch": torch.__version__.split("+")[0],
        "models": {"fcn8s": "FCN8S", "unet": "UNET"},
    }
    assert asked == [("fcn8s", {**default, "batch": 3}), ("unet", {**default, "batch": 3})]
    assert "+" not in out["torch"]
    asked.clear()
    assert list(opcount.op_counts()["models"]) == list(MODEL_NAMES) and asked[0][1] == default
