"""run_benchmark on tiny settings: every ratio present, positive and finite."""

from __future__ import annotations

import json
import math

import pytest
import torch

from phgmm.benchmark import RATIO_KEYS, format_table, measure_loader, run_benchmark
from phgmm.cli import build_parser

pytestmark = pytest.mark.usefixtures("one_thread")


def test_run_benchmark_tiny():
    # Tiny on purpose (2 shared CPU cores): resnet18, 64×32 (W×H), one timed iteration, slim heads.
    said: list[str] = []
    result = run_benchmark(
        ["phgmm", "fcn8s"],
        backbone="resnet18",
        size=(64, 32),
        batch=1,
        train_batch=2,
        warmup=1,
        iters=1,
        num_classes=4,
        count_flops=True,
        model_kwargs={
            "phgmm": {"decoder_units": (1, 1, 1, 1), "latent_dim": 16, "num_components": 2},
            "deeplabv3": {"aspp_channels": 32},
        },
        predict_images=2,
        predict_rounds=1,
        onnx=True,
        progress=said.append,
    )
    # the first line says what will be measured and how, before minutes of measuring
    assert said[0].startswith("measuring phgmm, deeplabv3, fcn8s, phgmm predict on 2 images, ONNX Runtime on cpu")
    assert "resnet18 at 64x32, inference batch 1 (20 timed), training batch 2 (1 timed after 1 warm-up)" in said[0]
    assert said[1] == "[1/3] phgmm" and "[3/3] fcn8s" in said
    ratios = result["ratios"]
    p = result["predict"]
    assert (
        ratios["predict_over_forward_images_per_s"]
        == p["predict_over_forward"]
        == pytest.approx(p["predict_images_per_s"] / p["forward_images_per_s"])
    )
    assert p["predict_images_per_s"] == pytest.approx(2 / p["predict_s"])
    assert p["forward_images_per_s"] == pytest.approx(2 / p["forward_s"])
    assert result["predict"]["images"] == 2 and result["predict"]["size_wh"] == [64, 32]
    try:
        import onnxruntime  # noqa: F401

        o = result["onnx"]
        assert ratios["onnx_over_pytorch_time"] == pytest.approx(o["onnx_s"] / o["pytorch_s"]) and o["onnx_s"] > 0
    except ImportError:
        assert result["onnx"]["skipped"]
    assert set(RATIO_KEYS) <= set(ratios)
    for key in RATIO_KEYS:
        assert math.isfinite(ratios[key]) and ratios[key] > 0, key
    # each ratio is the quotient its name says, numerator first, of the figures reported beside it
    # (a positive finite value would pass the loop above upside down)
    m, steps = result["models"], result["phgmm_train_step_s"]
    assert ratios["phgmm_infer_over_deeplabv3"] == pytest.approx(m["phgmm"]["infer_s"] / m["deeplabv3"]["infer_s"])
    assert ratios["phgmm_infer_over_encoder"] == pytest.approx(m["phgmm"]["infer_s"] / result["encoder_infer_s"])
    assert ratios["train_full_postnet_over_none"] == pytest.approx(steps["full"] / steps["none"])
    assert ratios["train_light_postnet_over_none"] == pytest.approx(steps["light"] / steps["none"])
    assert ratios["phgmm_train_images_per_s_over_deeplabv3"] == pytest.approx(
        m["phgmm"]["train_images_per_s"] / m["deeplabv3"]["train_images_per_s"]
    )
    assert m["phgmm"]["train_step_s"] == steps["full"]
    for name, entry in m.items():  # an inference launches fewer kernels than a step
        assert entry["train_kernels"] > entry["infer_kernels"] > 0, name
    assert "| kernels/train step |" in format_table(result)
    assert set(result["models"]) == {"phgmm", "deeplabv3", "fcn8s"}
    for name, entry in result["models"].items():
        assert entry["train_images_per_s"] > 0 and entry["infer_images_per_s"] > 0, name
        assert entry["infer_flops"] > 0 and entry["train_flops"] > entry["infer_flops"], name
        assert entry["memory_kind"] == "cpu_rss_highwater_delta"
    # the FLOP ratio is PHGMM's inference FLOPs over a ResNet-18's, counted here independently
    from torch.utils.flop_counter import FlopCounterMode

    from phgmm.models.backbone import resnet_encoder

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        resnet_encoder("resnet18").eval()(torch.zeros(1, 3, 32, 64))
    assert ratios["phgmm_infer_flops_over_encoder"] == pytest.approx(
        result["models"]["phgmm"]["infer_flops"] / counter.get_total_flops()
    )
    assert ratios["phgmm_infer_flops_over_encoder"] > 1
    params = result["models"]["phgmm"]["params"]
    assert params["postnet"] > 0 and params["inference_total"] > params["encoder"]
    assert set(result["phgmm_train_step_s"]) == {"none", "light", "full"}
    assert result["settings"]["infer_iters"] == 20  # default max(iters, 20)
    json.dumps(result)  # serialisable as is
    table = format_table(result)
    assert "phgmm_infer_over_encoder" in table and "deeplabv3" in table
    assert "predict_over_forward_images_per_s" in table and "predict: " in table and "onnx: " in table


def test_measure_loader():
    data = torch.utils.data.TensorDataset(torch.zeros(9, 3, 8, 8), torch.zeros(9, 8, 8, dtype=torch.long))
    info = measure_loader(data, batch_size=2, workers=0, batches=10)
    assert info["images"] == 7 and info["images_per_s"] > 0


@pytest.mark.parametrize("train_images_per_s, twice", [(1e-9, True), (1e12, False)])
def test_loader_ratio_is_loader_over_training_images_per_s(train_images_per_s, twice):
    from phgmm.benchmark.run import _loader_check

    data = torch.utils.data.TensorDataset(torch.zeros(9, 3, 8, 8), torch.zeros(9, 8, 8, dtype=torch.long))
    said: list[str] = []
    info = _loader_check(data, 2, 0, 10, train_images_per_s, said.append)
    assert info["over_phgmm_train_images_per_s"] == pytest.approx(info["images_per_s"] / train_images_per_s)
    assert info["at_least_2x_training"] is twice
    assert said == [f"loader: {info['images_per_s']:.1f} images/s"]


def test_cli_registers():
    args = build_parser().parse_args(["benchmark", "--models", "phgmm,unet", "--size", "128x64", "--json", "x.json"])
    assert args.models == "phgmm,unet" and args.size == (128, 64) and callable(args.func)


def test_cli_with_config_writes_json(tmp_path, capsys):
    pytest.importorskip("phgmm.config")
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    if not config.is_file():
        pytest.skip("configs/demo.yaml not present")
    parser = build_parser()
    out = tmp_path / "bench.json"
    # The config gives resnet18 and PHGMM's keys; the flags shrink size and batch (flags win).
    args = parser.parse_args(
        [
            "benchmark",
            "--config",
            str(config),
            "--models",
            "phgmm",
            "--size",
            "64x32",
            "--train-batch",
            "2",
            "--warmup",
            "1",
            "--iters",
            "1",
            "--device",
            "cpu",
            "--json",
            str(out),
        ]
    )
    assert args.func(args) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["backbone"] == "resnet18"
    assert result["settings"]["size_wh"] == [64, 32] and result["settings"]["train_batch"] == 2
    assert all(v > 0 for v in result["ratios"].values())
    assert "| ratio | value |" in capsys.readouterr().out


def _tiny_phgmm():
    from phgmm.models import build_model

    torch.manual_seed(0)
    return build_model(
        "phgmm",
        num_classes=4,
        backbone="resnet18",
        postnet=None,
        decoder_units=(1, 1, 1, 1),
        latent_dim=16,
        num_components=2,
    ).eval()


def test_measure_predict_tiny():
    from phgmm.benchmark import measure_predict

    info = measure_predict(_tiny_phgmm(), (64, 32), images=3, batch=2, rounds=1, workers=1)
    assert info["images"] == 3 and info["forward_images_per_s"] > 0 and info["predict_images_per_s"] > 0
    assert info["predict_over_forward"] == pytest.approx(info["predict_images_per_s"] / info["forward_images_per_s"])


def test_measure_onnx_without_onnxruntime_is_a_note(monkeypatch):
    import sys

    from phgmm.benchmark import measure_onnx

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    info = measure_onnx(_tiny_phgmm(), (64, 32))
    assert info["skipped"].startswith("skipped:") and "onnxruntime" in info["skipped"]


def test_cli_predict_and_onnx_flags():
    args = build_parser().parse_args(["benchmark", "--predict-images", "8", "--predict-workers", "2", "--onnx"])
    assert args.predict_images == 8 and args.predict_workers == 2 and args.onnx
    assert build_parser().parse_args(["benchmark"]).predict_images == 0


def test_every_ratio_is_the_quotient_its_name_says():
    """_ratios on figures that are all different (powers of two and three), so a ratio that reads
    the wrong figure, or divides the other way, gives another number."""
    from phgmm.benchmark.run import _ratios

    results = {
        "phgmm": {"infer_s": 3.0, "train_images_per_s": 5.0},
        "deeplabv3": {"infer_s": 7.0, "train_images_per_s": 11.0},
    }
    phgmm = {
        "encoder_s": 13.0,
        "folded_s": 17.0,
        "folded_encoder_s": 19.0,
        "flops_over_encoder": 1.25,
        "train_variants": {"full": 23.0, "light": 29.0, "none": 31.0},
    }
    assert _ratios(results, phgmm) == {
        "phgmm_infer_over_encoder": 3.0 / 13.0,
        "phgmm_infer_flops_over_encoder": 1.25,
        "phgmm_infer_over_deeplabv3": 3.0 / 7.0,
        "phgmm_folded_over_unfolded": 17.0 / 3.0,
        "phgmm_folded_infer_over_encoder": 17.0 / 19.0,
        "train_full_postnet_over_none": 23.0 / 31.0,
        "train_light_postnet_over_none": 29.0 / 31.0,
        "phgmm_train_images_per_s_over_deeplabv3": 5.0 / 11.0,
    }
    assert set(_ratios(results, phgmm)) == set(RATIO_KEYS)
