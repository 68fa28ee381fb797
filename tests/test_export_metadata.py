"""The exported ONNX file carries what ``predict`` needs (working size, classes, normalisation), so
``predict --onnx`` gives the labels of ``predict --checkpoint``; files without metadata still run."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from phgmm.cli import main  # noqa: E402
from phgmm.config import apply_overrides, config_to_dict, load_config  # noqa: E402
from phgmm.data.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from phgmm.engine.builders import build_model_from_config  # noqa: E402
from phgmm.engine.checkpoint import save_checkpoint  # noqa: E402
from phgmm.engine.inference.export import OnnxModelInfo, OnnxPredictor  # noqa: E402
from phgmm.engine.inference.predictor import DEFAULT_SIZE, Predictor  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAINED_SIZE = (128, 64)  # (W, H): neither the default 768×384 nor the images' size
NAMES = [f"class_{i}" for i in range(12)]
COLORS = [(20 * i, 255 - 20 * i, (70 * i) % 256) for i in range(12)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny PHGMM checkpoint written directly (no training): only its weights, config and
    class table matter here."""
    cfg = apply_overrides(
        load_config(REPO / "configs" / "demo.yaml"),
        [
            f"data.size=[{TRAINED_SIZE[0]}, {TRAINED_SIZE[1]}]",
            "model.decoder_units=[1, 1, 1, 1]",
            "model.latent_dim=16",
            "model.component_dim=8",
            "model.local_channels=32",
            "model.global_dim=8",
            "model.num_components=3",
        ],
    )
    torch.manual_seed(0)
    model = build_model_from_config(cfg, inference=True)
    model.train()  # non-trivial batch-norm statistics, as after training
    with torch.no_grad():
        for _ in range(3):
            model.forward_latent(torch.randn(2, 3, 64, 128) * 2)
        model.head.classifier.bias.zero_()  # else the untrained biases decide: one class everywhere
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "config": config_to_dict(cfg),
            "classes": {"names": NAMES, "colors": [list(c) for c in COLORS]},
        },
    )


@pytest.fixture(scope="module")
def onnx_file(checkpoint) -> Path:
    out = checkpoint.parent / "tiny.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from phgmm.data.synthetic import render_scene
    from phgmm.visualize import save_png

    folder = tmp_path_factory.mktemp("images")
    for i, size in enumerate([(200, 120), (160, 96), (131, 77)]):  # (W, H)
        save_png(folder / f"scene{i}.png", render_scene(np.random.default_rng(10 + i), size)[0])
    return folder


def _labels(folder: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    return {p.name: np.asarray(Image.open(p)) for p in sorted((folder / "labels").glob("*.png"))}


def _predict(tmp_path: Path, name: str, *argv: str) -> dict[str, np.ndarray]:
    out = tmp_path / name
    assert main(["predict", *argv, "--out", str(out), "--no-progress"]) == 0
    return _labels(out)


def _assert_same_labels(got: dict[str, np.ndarray], ref: dict[str, np.ndarray], checkpoint: Path, images: Path) -> None:
    """Equal labels, except where the checkpoint's own top-2 logits tie to float rounding (an
    untrained model has a few such pixels where bilinear upsampling crosses over; onnxruntime and
    PyTorch differ by ~1e-7) — and those must be rare. At the default 768×384 instead of the
    trained size, only about 40 % of these pixels agree."""
    from phgmm.data.imageio import load_image

    predictor = Predictor(checkpoint=checkpoint, device="cpu", precision="fp32")  # as onnxruntime runs
    assert got.keys() == ref.keys() and len(ref) == 3
    for name in ref:
        assert len(np.unique(ref[name])) > 1, "a degenerate model would make the comparison vacuous"
        top2 = predictor.logits(load_image(images / name)).topk(2, dim=1).values[0]
        tie = (top2[0] - top2[1]).numpy() < 1e-5
        differ = got[name] != ref[name]
        assert not (differ & ~tie).any(), f"{name}: {int((differ & ~tie).sum())} labels differ"
        assert differ.mean() < 1e-3, name


def test_metadata_is_written(onnx_file):
    info = OnnxPredictor(onnx_file).info
    assert info == OnnxModelInfo(
        size=TRAINED_SIZE,
        class_names=tuple(NAMES),
        colors=tuple(COLORS),
        mean=tuple(IMAGENET_MEAN),
        std=tuple(IMAGENET_STD),
        model="phgmm",
        num_classes=12,
        backbone="resnet18",
    )
    import onnx

    props = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    assert props["phgmm.size"] == "128x64" and props["phgmm.num_classes"] == "12"


def test_predict_onnx_equals_checkpoint_at_trained_size(checkpoint, onnx_file, images, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        by_onnx = _predict(tmp_path, "onnx", "--onnx", str(onnx_file), str(images))
    assert not caplog.records
    by_ckpt = _predict(
        tmp_path, "ckpt", "--checkpoint", str(checkpoint), str(images), "--device", "cpu", "--precision", "fp32"
    )
    _assert_same_labels(by_onnx, by_ckpt, checkpoint, images)
    # the colour masks use the checkpoint's class colours, carried by the metadata
    from PIL import Image

    for name in by_onnx:
        color = np.asarray(Image.open(tmp_path / "onnx" / "color" / name)).reshape(-1, 3)
        expected = np.asarray(COLORS, np.uint8)[by_onnx[name].reshape(-1)]
        np.testing.assert_array_equal(color, expected, err_msg=name)


def test_explicit_size_wins(onnx_file, checkpoint):
    assert Predictor(onnx=onnx_file).size == TRAINED_SIZE
    assert Predictor(onnx=onnx_file, size=(96, 48)).size == (96, 48)
    assert Predictor(checkpoint=checkpoint, size=(96, 48)).size == (96, 48)


def test_file_without_metadata_runs_at_default_size_with_a_warning(checkpoint, onnx_file, images, tmp_path, caplog):
    import onnx

    proto = onnx.load(str(onnx_file))
    del proto.metadata_props[:]  # what an export before the metadata looked like
    old = tmp_path / "old.onnx"
    onnx.save(proto, str(old))
    with caplog.at_level(logging.WARNING, logger="phgmm"):
        predictor = Predictor(onnx=old)
    assert predictor.size == DEFAULT_SIZE and predictor.onnx.info is None
    [record] = caplog.records
    assert "default size 768x384" in record.getMessage() and "\n" not in record.getMessage()
    # it still runs (at the default size), and with the trained size it matches the checkpoint
    assert len(_predict(tmp_path, "old-default", "--onnx", str(old), str(images))) == 3
    by_old = _predict(tmp_path, "old", "--onnx", str(old), str(images), "--size", "[128, 64]")
    by_ckpt = _predict(
        tmp_path, "ckpt", "--checkpoint", str(checkpoint), str(images), "--device", "cpu", "--precision", "fp32"
    )
    _assert_same_labels(by_old, by_ckpt, checkpoint, images)


def test_normalisation_comes_from_the_metadata(onnx_file, tmp_path):
    import onnx

    proto = onnx.load(str(onnx_file))
    for prop in proto.metadata_props:
        if prop.key in ("phgmm.mean", "phgmm.std"):
            prop.value = "[0.5, 0.5, 0.5]" if prop.key == "phgmm.mean" else "[0.25, 0.25, 0.25]"
    path = tmp_path / "norm.onnx"
    onnx.save(proto, str(path))
    predictor = Predictor(onnx=path)
    assert predictor.onnx.info.mean == (0.5, 0.5, 0.5) and predictor.onnx.info.std == (0.25, 0.25, 0.25)
    rgb = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)  # already the working size
    expected = (rgb.astype(np.float32) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(predictor.prepare(rgb).permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_export_says_what_it_does_and_refuses_an_existing_file_before_any_work(checkpoint, onnx_file, capsys, caplog):
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(onnx_file)]) == 2
    out, err = capsys.readouterr()
    assert "exists; pass --overwrite" in err and "exporting" not in out
    with caplog.at_level("WARNING"):
        assert main(["export", "--checkpoint", str(checkpoint), "--out", str(onnx_file), "--overwrite"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"exporting {checkpoint} to {onnx_file}") and "wrote" in out
    assert not [r.getMessage() for r in caplog.records if "constant folding" in r.getMessage()]
