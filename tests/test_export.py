"""ONNX export: one file, two input sizes, parity with PyTorch; refusal to overwrite; exported and
published files readable by others."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from phgmm.cli import main  # noqa: E402
from phgmm.engine.inference.export import OnnxPredictor, export_onnx  # noqa: E402
from phgmm.io import SizeError, parse_wxh  # noqa: E402
from phgmm.models import PHGMM, build_model  # noqa: E402

TOL = 1e-3


@pytest.fixture(scope="module")
def phgmm_model():
    torch.manual_seed(0)
    model = PHGMM(
        num_classes=5, num_components=3, backbone="resnet18", decoder_units=(1, 1, 1, 1), latent_dim=16, postnet="light"
    )
    # Non-trivial batch-norm statistics so that eval mode differs from train mode.
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model.forward_latent(torch.randn(2, 3, 64, 96))
    return model.eval()


@pytest.fixture(scope="module")
def phgmm_onnx(phgmm_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "phgmm.onnx"
    return export_onnx(phgmm_model, path, example_size=(128, 64))  # (W, H)


def _torch_logits(model, x):
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


def test_phgmm_parity_two_sizes(phgmm_model, phgmm_onnx):
    assert phgmm_onnx.is_file()
    assert phgmm_model.postnet is not None  # the caller's model is untouched
    predictor = OnnxPredictor(phgmm_onnx)
    assert (predictor.input_name, predictor.output_name) == ("image", "logits")
    rng = np.random.default_rng(0)
    for shape in [(2, 3, 128, 256), (1, 3, 96, 160)]:
        x = rng.standard_normal(shape, dtype=np.float32)
        got = predictor(x)
        ref = _torch_logits(phgmm_model, x)
        assert got.shape == ref.shape == (shape[0], 5, shape[2], shape[3])
        assert np.abs(got - ref).max() <= TOL
    assert predictor.predict(x).shape == (1, 96, 160)


def test_graph_has_no_postnet(phgmm_onnx):
    import onnx

    graph = onnx.load(str(phgmm_onnx)).graph
    assert not any("postnet" in init.name for init in graph.initializer)
    assert [i.name for i in graph.input] == ["image"]
    assert [o.name for o in graph.output] == ["logits"]


def test_refuses_to_overwrite(phgmm_model, phgmm_onnx):
    before = phgmm_onnx.read_bytes()
    with pytest.raises(FileExistsError):
        export_onnx(phgmm_model, phgmm_onnx, example_size=(64, 64))
    assert phgmm_onnx.read_bytes() == before
    # No temporary files left next to it.
    assert [p.name for p in phgmm_onnx.parent.iterdir()] == [phgmm_onnx.name]


def test_deeplabv3_parity_and_overwrite(tmp_path):
    torch.manual_seed(1)
    model = build_model("deeplabv3", num_classes=4, backbone="resnet18").eval()
    path = tmp_path / "dl.onnx"
    path.write_bytes(b"stale")
    out = export_onnx(model, path, example_size=(96, 64), overwrite=True)
    assert out == path and path.stat().st_size > 1000
    x = np.random.default_rng(1).standard_normal((1, 3, 72, 104), dtype=np.float32)
    got = OnnxPredictor(path)(x)
    assert np.abs(got - _torch_logits(model, x)).max() <= TOL


def test_parse_size_and_missing_file(tmp_path, capsys):
    assert parse_wxh("768x384") == (768, 384)
    with pytest.raises(SizeError, match="WIDTHxHEIGHT"):
        parse_wxh("384")
    with pytest.raises(FileNotFoundError):
        OnnxPredictor(tmp_path / "missing.onnx")
    # a checkpoint given as --onnx: one line naming the file and what it probably is, no traceback
    (tmp_path / "best.pt").write_bytes(b"PK\x03\x04 not a protobuf")
    from phgmm.cli import main

    assert main(["predict", "--onnx", str(tmp_path / "best.pt"), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "best.pt: not a model onnxruntime can load" in capsys.readouterr().err
    with pytest.raises(
        ValueError,
        match=r"best.pt: not a model onnxruntime can load \(a PyTorch checkpoint: "
        r"predict with it through --checkpoint\)",
    ):
        OnnxPredictor(tmp_path / "best.pt")


def test_torchscript_fallback_exporter(tmp_path):
    """The fallback path (TorchScript exporter + dynamic_axes) also gives one file for all sizes."""
    torch.manual_seed(2)
    model = build_model("fcn8s", num_classes=3, backbone="resnet18").eval()
    path = export_onnx(model, tmp_path / "fcn.onnx", example_size=(96, 64), exporter="torchscript")
    predictor = OnnxPredictor(path)
    rng = np.random.default_rng(2)
    for shape in [(2, 3, 64, 96), (1, 3, 101, 203)]:
        x = rng.standard_normal(shape, dtype=np.float32)
        assert np.abs(predictor(x) - _torch_logits(model, x)).max() <= TOL
    with pytest.raises(ValueError):
        export_onnx(model, tmp_path / "x.onnx", exporter="tflite")


def test_parity_on_synthetic_street_scenes_and_odd_size(phgmm_model, phgmm_onnx):
    from phgmm.data.synthetic import render_scene
    from phgmm.data.transforms import preprocess

    predictor = OnnxPredictor(phgmm_onnx)
    for seed, size in [(1, (256, 128)), (2, (203, 101))]:  # (W, H)
        rgb, _ = render_scene(np.random.default_rng(seed), size)
        x = preprocess(rgb, None).unsqueeze(0).numpy()
        got, ref = predictor(x), _torch_logits(phgmm_model, x)
        assert got.shape == (1, 5, size[1], size[0])
        assert np.abs(got - ref).max() <= TOL


def test_predict_cli_runs_the_onnx_file(phgmm_onnx, tmp_path):
    from phgmm.cli import main
    from phgmm.data.synthetic import render_scene
    from phgmm.visualize import save_png

    images = tmp_path / "images"
    for i in range(2):
        save_png(images / f"scene{i}.png", render_scene(np.random.default_rng(i), (160, 96))[0])
    out = tmp_path / "pred"
    assert (
        main(
            ["predict", "--onnx", str(phgmm_onnx), str(images), "--out", str(out), "--size", "128x64", "--no-progress"]
        )
        == 0
    )
    from PIL import Image

    labels = sorted((out / "labels").glob("*.png"))
    assert [p.name for p in labels] == ["scene0.png", "scene1.png"]
    assert np.asarray(Image.open(labels[0])).shape == (96, 160)
    # an ONNX graph carries no q(z|x): its uncertainty map is the softmax entropy, without mi/
    assert (
        main(
            [
                "predict",
                "--onnx",
                str(phgmm_onnx),
                str(images),
                "--out",
                str(tmp_path / "u"),
                "--size",
                "128x64",
                "--uncertainty",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (tmp_path / "u" / "entropy" / "scene0.npy").is_file() and not (tmp_path / "u" / "mi").exists()


def test_published_and_exported_files_are_readable_by_others(checkpoint, tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    expected = 0o666 & ~mask
    assert main(["publish", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "pub")]) == 0
    assert (
        main(
            ["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx"), "--exporter", "torchscript"]
        )
        == 0
    )
    for path in (tmp_path / "pub" / "model.safetensors", tmp_path / "pub" / "config.json", tmp_path / "m.onnx"):
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
