"""Scoring saved predictions against ground truth in a data set's native ids (SPEC section 5).

Predictions are the model's class indices. The ground truth is class indices by default, or a
data set's native ids with that data set's class table, which maps it exactly as the data sets
do. Values that cannot be what the caller said are refused (naming the file), never scored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from phgmm.data import DatasetError, load_class_table
from phgmm.engine.evaluation.score import score_folders

# CamVid native id -> PHGMM class index, written out by hand from SPEC section 1 (not from the table):
# 0 Sky, 1 Building, 2 Pole, 3 Road, 4 Pavement, 5 Tree, 6 SignSymbol, 7 Fence, 8 Car,
# 9 Pedestrian, 10 Bicyclist, 11 Unlabelled (ignored)
CAMVID_BY_HAND = {0: 1, 1: 2, 2: 7, 3: 3, 4: 4, 5: 6, 6: 9, 7: 5, 8: 8, 9: 10, 10: 11, 11: 255}
H, W = 24, 32


def _save(path: Path, arr) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, np.uint8)).save(path)


def _camvid_fixture(root: Path, n: int = 4):
    """CamVid-style native-id ground truth (blocky, every id 0..11 present) and noisy predictions."""
    rng = np.random.default_rng(11)
    natives, preds = {}, {}
    for i in range(n):
        gt = np.repeat(np.repeat(rng.integers(0, 12, (H // 4, W // 4)), 4, 0), 4, 1).astype(np.uint8)
        gt.ravel()[:12] = np.arange(12)  # every native id occurs
        mapped = np.vectorize(CAMVID_BY_HAND.get)(gt)
        pred = np.where(mapped == 255, rng.integers(0, 12, gt.shape), mapped)
        noise = rng.random(gt.shape) < 0.2
        pred[noise] = rng.integers(0, 12, int(noise.sum()))
        name = f"seq{i % 2}/0016E5_{i:05d}.png"
        _save(root / "gt_native" / name, gt)
        _save(root / "pred" / name, pred)
        natives[name], preds[name] = gt, pred
    return root / "pred", root / "gt_native", natives, preds


def test_native_ids_with_table_score_as_hand_mapped_labels(tmp_path):
    pred_dir, native_dir, natives, preds = _camvid_fixture(tmp_path)
    mapped_dir = tmp_path / "gt_mapped"
    confusion = np.zeros((12, 12), np.int64)
    for name, gt in natives.items():
        mapped = np.vectorize(CAMVID_BY_HAND.get)(gt)
        _save(mapped_dir / name, mapped)
        keep = mapped != 255
        np.add.at(confusion, (mapped[keep], preds[name][keep]), 1)

    with_table = score_folders(
        pred_dir, native_dir, tmp_path / "out_a", gt_table=load_class_table("camvid"), progress=False, num_samples=1
    )
    by_hand = score_folders(pred_dir, mapped_dir, tmp_path / "out_b", progress=False, num_samples=1)
    assert with_table == by_hand
    assert with_table["confusion"] == confusion.tolist()
    assert with_table["num_images"] == len(natives)
    assert json.loads((tmp_path / "out_a" / "metrics.json").read_text()) == with_table
    # the table may also be named (built-in name or file), as the CLI passes it
    by_name = score_folders(pred_dir, native_dir, tmp_path / "out_c", gt_table="camvid", progress=False, num_samples=1)
    assert by_name == by_hand


def test_native_ids_read_as_class_indices_would_differ(tmp_path):
    """The silent mistake this guards against: CamVid ids 0..11 all look like valid indices."""
    pred_dir, native_dir, _, _ = _camvid_fixture(tmp_path)
    wrong = score_folders(pred_dir, native_dir, tmp_path / "o1", progress=False, num_samples=0)
    right = score_folders(pred_dir, native_dir, tmp_path / "o2", gt_table="camvid", progress=False, num_samples=0)
    assert wrong["confusion"] != right["confusion"]


def test_class_index_ground_truth_out_of_range_is_refused(tmp_path):
    pred_dir, _, natives, preds = _camvid_fixture(tmp_path)
    gt_dir = tmp_path / "gt_idx"
    for name, gt in natives.items():
        _save(gt_dir / name, np.vectorize(CAMVID_BY_HAND.get)(gt))
    bad_name = sorted(natives)[-1]
    bad = np.vectorize(CAMVID_BY_HAND.get)(natives[bad_name]).astype(np.uint8)
    bad[0, :3] = (12, 40, 254)  # neither a class index of 12 classes nor 255
    _save(gt_dir / bad_name, bad)
    out = tmp_path / "out"
    with pytest.raises(DatasetError) as e:
        score_folders(pred_dir, gt_dir, out, progress=False)
    msg = str(e.value)
    assert str(gt_dir / bad_name) in msg
    assert "12, 40, 254" in msg and "class table" in msg
    assert not (out / "metrics.json").exists()
    # 255 and 11 are fine: ignore and the last class
    bad[0, :3] = (255, 11, 0)
    _save(gt_dir / bad_name, bad)
    assert score_folders(pred_dir, gt_dir, out, progress=False, num_samples=0)["num_images"] == len(natives)


def test_prediction_out_of_range_is_refused(tmp_path):
    pred_dir, native_dir, _, preds = _camvid_fixture(tmp_path)
    name = sorted(preds)[0]
    p = preds[name].copy()
    p[3, 3], p[4, 4] = 12, 255
    _save(pred_dir / name, p)
    for table in (None, "camvid"):
        with pytest.raises(
            DatasetError, match=re.escape(f"{pred_dir / name}: prediction values [12, 255] are outside")
        ):
            score_folders(pred_dir, native_dir, tmp_path / "out", gt_table=table, progress=False)


def test_native_id_unknown_to_the_table(tmp_path):
    pred_dir, native_dir, natives, _ = _camvid_fixture(tmp_path)
    name = sorted(natives)[1]
    gt = natives[name].copy()
    gt[0, 0] = 40
    _save(native_dir / name, gt)
    with pytest.raises(DatasetError, match=re.escape(f"{native_dir / name}: label ids [40] are not in class table")):
        score_folders(pred_dir, native_dir, tmp_path / "out", gt_table="camvid", progress=False)
    m = score_folders(
        pred_dir, native_dir, tmp_path / "out", gt_table="camvid", unknown_ids="ignore", progress=False, num_samples=0
    )
    assert (
        sum(map(sum, m["confusion"]))
        == sum(int((np.vectorize(CAMVID_BY_HAND.get)(g) != 255).sum()) for g in natives.values()) - 1
    )


def test_table_classes_and_bad_arguments(tmp_path):
    pred_dir, native_dir, _, _ = _camvid_fixture(tmp_path, n=1)
    m = score_folders(pred_dir, native_dir, tmp_path / "o", gt_table="camvid", progress=False, num_samples=0)
    assert m["class_names"] == load_class_table("camvid").names
    with pytest.raises(ValueError, match="3 class names"):
        score_folders(
            pred_dir, native_dir, tmp_path / "o", gt_table="camvid", class_names=["a", "b", "c"], progress=False
        )
    with pytest.raises(ValueError, match="ignore_index"):
        score_folders(pred_dir, native_dir, tmp_path / "o", gt_table="camvid", ignore_index=0, progress=False)
    with pytest.raises(ValueError, match="unknown_ids"):
        score_folders(pred_dir, native_dir, tmp_path / "o", gt_table="camvid", unknown_ids="drop", progress=False)
    with pytest.raises(DatasetError, match="file not found"):
        score_folders(pred_dir, native_dir, tmp_path / "o", gt_table=tmp_path / "nope.yaml", progress=False)


def test_synthia_multichannel_16bit_ground_truth(tmp_path):
    """SYNTHIA's GT/LABELS: 16-bit, 3 channels, class id in red — read as the data set reads it."""
    rng = np.random.default_rng(3)
    ids = rng.choice([0, 1, 3, 11, 17, 18, 22], (H, W)).astype(np.uint16)
    lab = np.zeros((H, W, 3), np.uint16)
    lab[:, :, 2] = ids  # red (OpenCV's BGR order)
    lab[:, :, 1] = rng.integers(0, 3000, (H, W))  # instance ids: not the class
    (tmp_path / "gt").mkdir()
    cv2.imwrite(str(tmp_path / "gt" / "0000001.png"), lab)
    by_hand = {0: 0, 1: 1, 3: 3, 11: 11, 17: 11, 18: 8, 22: 3}
    mapped = np.vectorize(by_hand.get)(ids)
    _save(tmp_path / "pred" / "0000001.png", mapped)
    with pytest.raises(DatasetError, match="different channels"):
        score_folders(tmp_path / "pred", tmp_path / "gt", tmp_path / "o", gt_table="synthia", progress=False)
    m = score_folders(
        tmp_path / "pred",
        tmp_path / "gt",
        tmp_path / "o",
        gt_table="synthia",
        gt_channel="red",
        progress=False,
        num_samples=0,
    )
    assert m["pixel_accuracy"] == 1.0
    assert np.trace(np.array(m["confusion"])) == H * W
