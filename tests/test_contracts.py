"""Every registered network honours the contract the engine and the benchmark rely on
(models/contracts.py): eval-mode logits of the input's size, parameter counts that add up, and the
latent-space methods on PHGMM alone."""

from __future__ import annotations

import pytest
import torch

from phgmm.engine.checkpoint import unwrap
from phgmm.engine.training.step import takes_labels
from phgmm.models import MODEL_NAMES, build_model
from phgmm.models.contracts import LatentNetwork, SegmentationNetwork

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_registered_network_honours_the_contract(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, backbone="resnet18", decoder_units=(1, 1, 1, 1))
    assert isinstance(model, SegmentationNetwork)
    assert isinstance(model, LatentNetwork) == (name == "phgmm")  # the engine's latent branches
    assert takes_labels(model) == (name == "phgmm")  # only PostNet reads the labels
    counts = model.parameter_counts()
    assert counts["training_total"] == sum(p.numel() for p in model.parameters())
    assert 0 < counts["inference_total"] <= counts["training_total"]
    with torch.no_grad():
        logits = model.eval()(torch.randn(1, 3, 64, 64))
    assert isinstance(logits, torch.Tensor) and logits.shape == (1, 3, 64, 64)


def test_the_contracts_are_not_met_by_any_module():
    conv = torch.nn.Conv2d(3, 3, 1)
    assert not isinstance(conv, SegmentationNetwork) and not isinstance(conv, LatentNetwork)
    assert not takes_labels(conv)


def test_wrappers_are_looked_through():
    model = build_model("phgmm", num_classes=3, backbone="resnet18", decoder_units=(1, 1, 1, 1), postnet=None)
    wrapped = torch.nn.DataParallel(model)  # DDP's kind of wrapper, on a CPU
    assert unwrap(wrapped) is model and takes_labels(wrapped)
    assert unwrap(torch.compile(model)) is model  # wrapping only: nothing is compiled


def test_a_network_s_name_is_written_once_and_its_saved_files_carry_it():
    from phgmm.models.registry import registered

    entries = registered()
    for name, entry in entries.items():
        # the names a class's files may carry are exactly the names it was registered under
        assert entry.cls.model_names == tuple(n for n, e in entries.items() if e.cls is entry.cls), name
    assert entries["hrnet_w18_ocr"].cls.model_names == ("hrnet_w18_ocr",)  # not its parent's
    assert entries["phgmm"].cls.model_names == ("phgmm",)


def test_a_saved_network_loads_only_as_its_own_class(tmp_path):
    from phgmm.models.registry import registered

    model = build_model("fcn8s", num_classes=3, backbone="resnet18")
    model.save_pretrained(tmp_path / "fcn8s")
    assert type(registered()["fcn8s"].cls.from_pretrained(tmp_path / "fcn8s")) is type(model)
    with pytest.raises(TypeError, match="holds a fcn8s model, not a DeepLabV3"):
        registered()["deeplabv3"].cls.from_pretrained(tmp_path / "fcn8s")
