"""Every registered network at odd input sizes: logits of the input's size in training and in
evaluation, finite, and in training the auxiliary heads each network is meant to have (their
weights, each at the input's size). Small widths where a network has them; the W48 HRNets, which
have none, are run once in evaluation."""

from __future__ import annotations

import pytest
import torch
from support import SMALL_PHGMM

from phgmm.models import MODEL_NAMES, build_model
from phgmm.models.auxiliary import AuxLogits, main_logits

pytestmark = pytest.mark.usefixtures("one_thread")

C = 5  # classes

#: constructor settings that keep a network small (its code paths unchanged)
SMALL = {
    "phgmm": {**SMALL_PHGMM, "postnet": "light"},
    "ccnet": {"channels": 32},
    "segnet": {"channels": (8, 8, 16, 16, 16)},
    "segnet_half": {"channels": (8, 8, 16, 16, 16)},
}

#: the auxiliary heads' loss weights in training (none: plain logits)
AUX = {
    "danet": [1.0, 1.0],
    "ocnet": [0.4],
    "ocnet_asp": [0.4],
    "ccnet": [0.4],  # the F3 deep-supervision head
    "hrnet_w18_ocr": [0.4],  # the soft object regions
    "bisenet": [1.0, 1.0],  # the two heads on the context path
}

#: full width only, minutes per training case on two cores: evaluation at one size
EVAL_ONLY = {"hrnet_w48", "hrnet_w48_ocr"}


def _labels(n: int, h: int, w: int) -> torch.Tensor:
    y = torch.randint(0, C, (n, h, w))
    y[:, :3, :3] = 255
    return y


def test_the_table_names_registered_networks():
    assert set(SMALL) | set(AUX) | EVAL_ONLY <= set(MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_logits_of_the_input_size_at_odd_sizes(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=C, **{"backbone": "resnet18", **SMALL.get(name, {})})
    if name == "ccnet":
        assert model.head.recurrence == 2  # its default: every position reaches every other one
    if name in EVAL_ONLY:
        with torch.no_grad():
            assert model.eval()(torch.randn(1, 3, 37, 45)).shape == (1, C, 37, 45)
        return
    model.eval()
    with torch.no_grad():
        for h, w in ((97, 61), (35, 53)):
            out = model(torch.randn(1, 3, h, w))
            assert isinstance(out, torch.Tensor) and out.shape == (1, C, h, w) and torch.isfinite(out).all()
    model.train()
    n, h, w = 2, 61, 97
    x = torch.randn(n, 3, h, w)
    out = model(x, _labels(n, h, w)) if name == "phgmm" else model(x)
    logits = out.logits if name == "phgmm" else main_logits(out)
    assert logits.shape == (n, C, h, w) and torch.isfinite(logits).all()
    if name != "phgmm":
        assert isinstance(out, AuxLogits) == (name in AUX)
        assert [weight for weight, _ in getattr(out, "aux", ())] == AUX.get(name, [])
        assert all(a.shape == (n, C, h, w) and torch.isfinite(a).all() for _, a in getattr(out, "aux", ()))
