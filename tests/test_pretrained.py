"""Loading and sharing: save_pretrained / from_pretrained / phgmm.load / publish."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

import phgmm
from phgmm import PHGMM
from phgmm.engine.checkpoint import CheckpointError, load_checkpoint
from phgmm.models import build_model
from phgmm.pretrained import publish

SMALL = dict(
    backbone="resnet18",
    decoder_units=(1, 1, 1, 1),
    latent_dim=16,
    component_dim=8,
    local_channels=32,
    global_dim=8,
    num_components=3,
)


@pytest.mark.parametrize("name", ["phgmm", "deeplabv3", "fcn8s", "pspnet", "unet"])
def test_from_pretrained_of_save_pretrained_gives_identical_logits_without_pickle(name, tmp_path, monkeypatch):
    torch.manual_seed(0)
    kwargs = SMALL if name == "phgmm" else {"backbone": "resnet18"}
    model = build_model(name, postnet="light", **kwargs) if name == "phgmm" else build_model(name, **kwargs)
    model.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        before = model(x)
    out = model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    with pytest.raises(FileExistsError, match="overwrite"):
        model.save_pretrained(tmp_path / "m")

    def no_pickle(*a, **k):
        raise AssertionError("loading a published model must not unpickle")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = type(model).from_pretrained(tmp_path / "m")
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), before, rtol=0, atol=0)
    assert getattr(loaded, "postnet", None) is None and not loaded.training
    if name == "phgmm":
        with pytest.raises(TypeError, match="not a DeepLabV3"):
            type(build_model("deeplabv3", backbone="resnet18")).from_pretrained(tmp_path / "m")


def test_publish_a_checkpoint_then_load_it_anywhere_a_checkpoint_goes(tmp_path):
    from phgmm.config import Config, config_to_dict
    from phgmm.engine.checkpoint import save_checkpoint

    cfg = Config()
    cfg.model.backbone = "resnet18"
    cfg.model.decoder_units = (1, 1, 1, 1)
    cfg.model.postnet = "light"
    cfg.data.size = (96, 64)
    model = PHGMM(postnet="light", backbone="resnet18", decoder_units=(1, 1, 1, 1))
    names = [f"c{i}" for i in range(12)]
    ckpt = save_checkpoint(
        tmp_path / "best.pt",
        {
            "model": model.state_dict(),
            "config": config_to_dict(cfg),
            "classes": {"names": names, "colors": [[i, i, i] for i in range(12)]},
        },
    )
    folder = publish(ckpt, tmp_path / "pub")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["class_names"] == names and meta["size"] == [96, 64] and meta["normalization"]["mean"][0] == 0.485
    assert meta["config"]["model"]["postnet"] is None
    assert (folder / "model.safetensors").stat().st_size < 0.8 * ckpt.stat().st_size  # no PostNet
    a, b = phgmm.load(ckpt), phgmm.load(folder)
    assert b.metadata["class_names"] == names and b.metadata["size"] == [96, 64]
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    state = load_checkpoint(folder)  # what evaluate / predict / export read
    assert set(state["model"]) == set(b.state_dict())
    b.save_pretrained(tmp_path / "again")  # metadata survives a second save
    assert json.loads((tmp_path / "again" / "config.json").read_text())["class_names"] == names


def test_bad_model_files_are_named_and_explained(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt: the file is empty"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "rand.pt").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match="rand.pt: not a readable checkpoint: the file is corrupt") as err:
        load_checkpoint(tmp_path / "rand.pt")
    assert "weights_only" not in str(err.value) and "code" not in str(err.value)
    (tmp_path / "folder").mkdir()
    with pytest.raises(CheckpointError, match="without model.safetensors and config.json, so not a published model"):
        load_checkpoint(tmp_path / "folder")
    # what a user may pass by mistake is named for what it is
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "best.pt").write_bytes(b"x")
    with pytest.raises(
        CheckpointError,
        match=r"run: a training run, not a model folder: give its checkpoint, .*run/checkpoints/best.pt",
    ):
        load_checkpoint(tmp_path / "run")
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    with pytest.raises(CheckpointError, match=r"model.onnx: an ONNX model, not a checkpoint: .*phgmm predict --onnx"):
        load_checkpoint(tmp_path / "model.onnx")
    model = PHGMM(postnet=None, **SMALL)
    model.save_pretrained(tmp_path / "m")
    with pytest.raises(CheckpointError, match=r"config.json: one file of a published model: give its folder"):
        phgmm.load(tmp_path / "m" / "config.json")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="model.safetensors: not readable"):
        phgmm.load(tmp_path / "m")
