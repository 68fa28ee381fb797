import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from phgmm.engine.evaluation.score import score_folders
from phgmm.io import metrics_json_safe, write_json

ROAD, SKY, BUILDING, CAR = 3, 1, 2, 8


def _save(path: Path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, np.uint8)).save(path)


def _make_dataset(root: Path):
    """Two 8×10 images with a hand-computed answer."""
    gt_a = np.full((8, 10), ROAD)
    gt_a[:, 5:] = CAR
    pred_a = gt_a.copy()
    pred_a[0, 5] = ROAD  # one wrong pixel, on the road/car edge
    gt_b = np.full((8, 10), SKY)
    gt_b[0] = 255  # 10 ignored pixels
    pred_b = np.full((8, 10), SKY)
    pred_b[0] = CAR  # car on ignored pixels: not counted
    pred_b[5, :] = BUILDING  # 10 wrong pixels
    _save(root / "gt" / "city1" / "a.png", gt_a)
    _save(root / "pred" / "city1" / "a.png", pred_a)
    _save(root / "gt" / "b.png", gt_b)
    _save(root / "pred" / "b.png", pred_b)
    return root / "pred", root / "gt"


def test_score_folders_known_answer(tmp_path):
    pred_dir, gt_dir = _make_dataset(tmp_path)
    out = tmp_path / "out"
    m = score_folders(pred_dir, gt_dir, out, progress=False)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == m
    for key in (
        "miou",
        "iou",
        "precision",
        "recall",
        "pixel_accuracy",
        "confusion",
        "class_names",
        "trimap",
        "boundary_iou",
        "mean_boundary_iou",
        "num_images",
    ):
        assert key in m, key
    assert m["num_images"] == 2
    assert len(m["class_names"]) == 12 and m["class_names"][0] == "background"
    iou = m["iou"]
    assert iou["road"] == pytest.approx(40 / 41) and iou["car"] == pytest.approx(39 / 40)
    assert iou["sky"] == pytest.approx(60 / 70)
    assert iou["building"] == 0.0
    assert iou["background"] is None and iou["person"] is None
    assert m["miou"] == pytest.approx((40 / 41 + 39 / 40 + 60 / 70 + 0) / 4)
    assert m["pixel_accuracy"] == pytest.approx(139 / 150)
    assert m["precision"]["building"] == 0.0 and m["recall"]["building"] is None
    assert m["recall"]["sky"] == pytest.approx(60 / 70)
    assert sum(map(sum, m["confusion"])) == 150
    assert list(m["trimap"]) == [str(w) for w in range(1, 41)]
    # image a: boundary = columns 4, 5; band w=1 = columns 3..6 (32 px), w>=4 = whole image (80 px);
    # image b has no class-class edge in its ground truth (sky/ignore only) → no band
    assert m["trimap"]["1"] == pytest.approx(1 / 32)
    assert m["trimap"]["3"] == pytest.approx(1 / 64)  # columns 1..8
    assert m["trimap"]["4"] == pytest.approx(1 / 80)
    assert m["trimap"]["40"] == pytest.approx(1 / 80)
    assert 0 < m["boundary_iou"]["road"] < 1 and m["boundary_iou"]["sky"] < 1
    report = (out / "report.md").read_text()
    assert "figures/samples.png" in report and (out / "figures" / "samples.png").is_file()
    assert "figures/trimap.png" in report


def test_score_folders_errors(tmp_path):
    pred_dir, gt_dir = _make_dataset(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="nope"):
        score_folders(tmp_path / "nope", gt_dir, out, progress=False)
    with pytest.raises(FileNotFoundError, match="nope"):
        score_folders(pred_dir, tmp_path / "nope", out, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no PNG"):
        score_folders(tmp_path / "empty", gt_dir, out, progress=False)

    _save(pred_dir / "extra.png", np.zeros((8, 10)))
    with pytest.raises(FileNotFoundError, match="extra.png"):
        score_folders(pred_dir, gt_dir, out, progress=False)
    (pred_dir / "extra.png").unlink()

    _save(gt_dir / "only_gt.png", np.zeros((8, 10)))
    with pytest.raises(FileNotFoundError, match="only_gt.png"):
        score_folders(pred_dir, gt_dir, out, progress=False)
    (gt_dir / "only_gt.png").unlink()

    _save(pred_dir / "b.png", np.zeros((8, 11)))
    with pytest.raises(ValueError, match=r"size mismatch.*b\.png"):
        score_folders(pred_dir, gt_dir, out, progress=False)

    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(pred_dir / "b.png")
    with pytest.raises(ValueError, match=r"b\.png.*single-channel"):
        score_folders(pred_dir, gt_dir, out, progress=False)

    _save(pred_dir / "b.png", np.full((8, 10), 12))
    with pytest.raises(ValueError, match=r"b\.png.*12.*outside"):
        score_folders(pred_dir, gt_dir, out, progress=False)

    _save(pred_dir / "b.png", np.zeros((8, 10)))
    _save(gt_dir / "b.png", np.full((8, 10), 40))
    with pytest.raises(ValueError, match=r"b\.png.*40"):
        score_folders(pred_dir, gt_dir, out, progress=False)
    assert not (out / "metrics.json").exists()


def test_output_inside_prediction_folder_is_not_scored_on_rerun(tmp_path):
    pred_dir, gt_dir = _make_dataset(tmp_path)
    out = pred_dir / "scores"
    first = score_folders(pred_dir, gt_dir, out, progress=False, num_samples=1)
    second = score_folders(pred_dir, gt_dir, out, progress=False, num_samples=1)
    assert first == second


def test_metrics_json_safe_and_write_json(tmp_path):
    obj = {
        1: np.float32(0.5),
        "nan": float("nan"),
        "inf": np.float64("inf"),
        "arr": np.arange(3),
        "t": torch.tensor([[1, 2]]),
        "ts": torch.tensor(2.5),
        "tup": (np.int64(4), None),
        "p": Path("a/b"),
        "b": np.bool_(True),
        "nested": {"x": [np.nan, 1]},
    }
    safe = metrics_json_safe(obj)
    assert safe == {
        "1": 0.5,
        "nan": None,
        "inf": None,
        "arr": [0, 1, 2],
        "t": [[1, 2]],
        "ts": 2.5,
        "tup": [4, None],
        "p": "a/b",
        "b": True,
        "nested": {"x": [None, 1]},
    }
    path = write_json(tmp_path / "d" / "m.json", obj)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == safe
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]  # no temp file left behind
    with pytest.raises(TypeError):
        metrics_json_safe({"x": object()})


def _cityscapes_layout(root: Path) -> tuple[Path, Path]:
    """Predictions named after Cityscapes images; a gtFine folder with label ids (road 7, car 26)
    beside the colour and instance PNGs Cityscapes ships, which must not be scored."""
    gt = np.full((6, 8), 7)
    gt[:, 4:] = 26
    pred = np.full((6, 8), ROAD)
    pred[:, 6:] = CAR  # two car columns predicted road: 12 wrong
    for name in ("aachen_000000_000019", "aachen_000001_000019"):
        _save(root / "gtFine" / "val" / "aachen" / f"{name}_gtFine_labelIds.png", gt)
        _save(root / "gtFine" / "val" / "aachen" / f"{name}_gtFine_color.png", np.zeros((6, 8, 3), np.uint8))
        Image.fromarray(np.full((6, 8), 26000, np.uint16)).save(
            root / "gtFine" / "val" / "aachen" / f"{name}_gtFine_instanceIds.png"
        )
        _save(root / "pred" / "aachen" / f"{name}_leftImg8bit.png", pred)
    return root / "pred", root / "gtFine" / "val"


def test_cityscapes_names_pair_images_with_their_label_ids(tmp_path):
    pred_dir, gt_dir = _cityscapes_layout(tmp_path)
    m = score_folders(pred_dir, gt_dir, tmp_path / "out", gt_table="cityscapes", progress=False)
    assert m["pixel_accuracy"] == pytest.approx(72 / 96)
    assert m["iou"]["road"] == pytest.approx(48 / 72) and m["iou"]["car"] == pytest.approx(24 / 48)


def test_cityscapes_names_report_the_missing_file_by_its_real_name(tmp_path):
    pred_dir, gt_dir = _cityscapes_layout(tmp_path)
    (gt_dir / "aachen" / "aachen_000001_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(
        FileNotFoundError,
        match="aachen_000001_000019_leftImg8bit.png: expected .*aachen_000001_000019_gtFine_labelIds.png",
    ):
        score_folders(pred_dir, gt_dir, tmp_path / "out", gt_table="cityscapes", progress=False)
    _save(gt_dir / "aachen" / "aachen_000001_000019_gtFine_labelIds.png", np.full((6, 8), 7))
    (pred_dir / "aachen" / "aachen_000000_000019_leftImg8bit.png").unlink()
    with pytest.raises(
        FileNotFoundError,
        match="no prediction for ground truth .*aachen_000000_000019_gtFine_labelIds"
        ".png: expected .*aachen_000000_000019_leftImg8bit.png",
    ):
        score_folders(pred_dir, gt_dir, tmp_path / "out", gt_table="cityscapes", progress=False)


def test_evaluate_cli_summary_and_flags_the_chosen_mode_would_ignore(tmp_path, capsys):
    from phgmm.cli import main

    pred_dir, gt_dir = _make_dataset(tmp_path)
    base = ["evaluate", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir), "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "ok")]) == 0
    # four classes are scored here (road, car, sky, building), not the paper's eleven
    assert "mIoU 70.19 (4 classes, background excluded); pixel accuracy 92.67" in capsys.readouterr().out
    assert "| mIoU (4 classes, background excluded) | 70.19 % |" in (tmp_path / "ok" / "report.md").read_text()
    # inference options would be silently ignored on saved predictions: refused, naming each one
    with pytest.raises(SystemExit, match=r"--split, --uncertainty, --tta apply to evaluating a --checkpoint"):
        main([*base, "--out", str(tmp_path / "x"), "--uncertainty", "--tta", "flip", "--split", "train"])
    with pytest.raises(SystemExit, match=r"--classes, --gt-channel apply to scoring saved predictions"):
        main(
            [
                "evaluate",
                "--checkpoint",
                "best.pt",
                "--classes",
                "camvid",
                "--gt-channel",
                "red",
                "--out",
                str(tmp_path / "y"),
            ]
        )
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_evaluate_summary_reports_uncertainty():
    from phgmm.cli.evaluate import summary_lines

    metrics = {
        "class_names": ["background", "road", "car"],
        "iou": {"background": None, "road": 0.5, "car": None},
        "miou": 0.5,
        "pixel_accuracy": 0.9,
        "uncertainty": {
            "softmax_entropy": {"auroc": 0.8125},
            "mutual_information": {"auroc": None},
            "calibration": {"ece": 0.0164},
        },
    }
    assert summary_lines(metrics) == [
        "mIoU 50.00 (1 class, background excluded); pixel accuracy 90.00",
        "uncertainty, AUROC for wrong pixels: softmax entropy 0.812; calibration error (ECE) 1.64 %",
    ]
