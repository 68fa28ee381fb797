"""Every model trains, resumes, evaluates, predicts and publishes through the command line, on the
same engine, data, augmentation and loss."""

from __future__ import annotations

import json

import pytest
from support import TINY_MODEL

from phgmm.cli import main
from phgmm.engine.checkpoint import load_checkpoint

TINY = [
    "data.size=128x64",
    "data.num_workers=0",
    "train.batch_size=2",
    "train.max_steps_per_epoch=2",
    "train.val_every=1",
    "eval.batch_size=2",
    "eval.tsne=false",
    "eval.trimap_max_width=3",
    *TINY_MODEL,
]


# HRNet and HRNet + OCR run here at their small width (W18-Small-v2): the same code as W48, which
# costs minutes per case on two cores
@pytest.mark.parametrize(
    "name",
    [
        "phgmm",
        "deeplabv3",
        "fcn8s",
        "pspnet",
        "unet",
        "hrnet_w18",
        "hrnet_w18_ocr",
        "danet",
        "ocnet",
        "ocnet_asp",
        "ccnet",
        "deeplabv2",
        "segnet",
        "enet",
        "bisenet",
    ],
)
def test_model_trains_resumes_evaluates_predicts_through_the_cli(name, synth_root, tmp_path):
    out = tmp_path / "run"
    sets = [
        f"--set={s}"
        for s in [*TINY, f"data.root={synth_root}", f"output_dir={out}", f"model.name={name}", "train.epochs=1"]
    ]
    assert main(["train", "--config", "demo", *sets, "--no-progress"]) == 0
    last = out / "checkpoints" / "last.pt"
    assert load_checkpoint(last)["global_step"] == 2
    assert main(["train", "--resume", str(last), "--set", "train.epochs=2", "--no-progress"]) == 0
    state = load_checkpoint(last)
    assert state["global_step"] == 4 and state["config"]["model"]["name"] == name
    ev = tmp_path / "eval"
    assert (
        main(["evaluate", "--checkpoint", str(out / "checkpoints" / "best.pt"), "--out", str(ev), "--no-progress"]) == 0
    )
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["model"] == name and 0 <= metrics["miou"] <= 1 and ("latent" in metrics) == (name == "phgmm")
    pub = tmp_path / "published"
    assert main(["publish", "--checkpoint", str(out / "checkpoints" / "best.pt"), "--out", str(pub)]) == 0
    images = synth_root / "leftImg8bit" / "val"
    assert (
        main(["predict", "--checkpoint", str(pub), str(images), "--out", str(tmp_path / "pred"), "--no-progress"]) == 0
    )
    assert len(list((tmp_path / "pred" / "labels").rglob("*.png"))) == len(list(images.rglob("*.png")))
