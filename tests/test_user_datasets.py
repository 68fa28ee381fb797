"""A user's own folder data set (5 classes, their own class table), tried as a new user would:
the layouts that are easy to get wrong, palette, colour and JPEG masks, which classes the mIoU
averages, and evaluating from another folder. Every case goes through the CLI and checks for the
right answer, or a message that points the right way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import FOLDER_TABLE as TABLE
from support import ONE_STEP, folder_ids, make_folder, one_line_error, tiny_train_args
from support import TINY as BASE_TINY

from phgmm.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

#: a tiny PHGMM on the demo config: each training below is one step on a CPU
TINY = [*BASE_TINY, *ONE_STEP, "data.dataset=folder", "model.num_classes=5"]


def _train(root: Path, out: Path, *overrides: str, images: str = "images") -> int:
    table = f"data.class_table={root / 'classes.yaml'}"
    return main(tiny_train_args(out, f"data.root={root / images}", table, *overrides, tiny=TINY))


@pytest.fixture(scope="module")
def mydata(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("mydata"))


@pytest.fixture(scope="module")
def trained(mydata, tmp_path_factory) -> Path:
    """One step on the user's data, validated once: its run folder."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert _train(mydata, out) == 0
    return out


# -- validation on the training images -----------------------------------------------------------
def test_a_folder_without_split_sub_folders_is_not_validated_on_its_training_images(tmp_path, capsys):
    flat = make_folder(tmp_path / "flat", splits=())
    assert _train(flat, tmp_path / "run") == 2
    line = one_line_error(capsys, "train")
    assert "validation would use the same 4 images as training" in line
    assert "has no 'train' and 'val' sub-folders" in line and "train.val_every=0" in line
    assert not (tmp_path / "run" / "checkpoints").exists()
    # without validation it trains, and evaluating that checkpoint says what it scores
    assert _train(flat, tmp_path / "run", "train.val_every=0") == 0
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(tmp_path / "run" / "checkpoints" / "best.pt"),
                "--out",
                str(tmp_path / "ev"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "4 of the 4 images of split 'val' are images this checkpoint was trained on" in capsys.readouterr().out
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["training_images_scored"] == 4


def test_data_root_pointed_at_images_train_is_named(mydata, tmp_path, capsys):
    assert _train(mydata, tmp_path / "run", f"data.masks_root={mydata / 'masks' / 'train'}", images="images/train") == 2
    line = one_line_error(capsys, "train")
    assert "validation would use the same 4 images as training" in line
    assert "data.root names the 'train' split folder itself" in line and f"data.root={mydata / 'images'}" in line


# -- layout mistakes -----------------------------------------------------------------------------
def test_data_root_one_folder_too_high_says_where_to_point_it(mydata, tmp_path, capsys):
    assert _train(mydata, tmp_path / "run", images=".") == 2
    line = one_line_error(capsys, "train")
    assert "holds images/ and masks/" in line and f"--set data.root={mydata / 'images'}" in line


def test_a_missing_validation_split_is_named_as_such(tmp_path, capsys):
    root = make_folder(tmp_path / "d", splits=("train",))
    assert _train(root, tmp_path / "run") == 2
    line = one_line_error(capsys, "train")
    assert f"{root / 'images' / 'val'}: the 'val' split is missing" in line and "holds train/" in line
    assert "train.val_every=0" in line


def test_a_folder_data_set_without_a_table_names_the_key(mydata, tmp_path, capsys):
    assert main(tiny_train_args(tmp_path / "run", f"data.root={mydata / 'images'}", tiny=TINY)) == 2
    line = one_line_error(capsys, "train")
    assert "--set data.class_table=FILE" in line and "FolderDataset" not in line


# -- palette, colour and JPEG masks --------------------------------------------------------------
def _score_perfect_predictions(root: Path, tmp_path: Path) -> dict:
    """``evaluate --predictions`` of index masks equal to the val ground truth of ``root``, scored
    against ``root/masks/val`` read through its class table: the metrics.json (predictions in
    ``tmp_path/preds``)."""
    preds = tmp_path / "preds"
    preds.mkdir()
    for mask in sorted((root / "masks" / "val").glob("*.png")):
        cv2.imwrite(str(preds / mask.name), folder_ids(int(mask.stem[-2:])))
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(preds),
                "--ground-truth",
                str(root / "masks" / "val"),
                "--classes",
                str(root / "classes.yaml"),
                "--out",
                str(tmp_path / "score"),
                "--no-progress",
            ]
        )
        == 0
    )
    return json.loads((tmp_path / "score" / "metrics.json").read_text())


def test_palette_masks_are_read_as_their_indices(tmp_path, capsys):
    root = make_folder(tmp_path / "voc", kind="palette")
    from phgmm.data import build_dataset

    ds = build_dataset("folder", root / "images", "train", size=None, class_table=root / "classes.yaml")
    np.testing.assert_array_equal(ds.load_pair(1)[1], folder_ids(1))
    assert _train(root, tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert "epoch 1: val mIoU" in out
    # the same files as ground truth of saved predictions
    assert _score_perfect_predictions(root, tmp_path)["pixel_accuracy"] == 1.0


def test_colour_masks_score_as_ground_truth_as_they_train(tmp_path, capsys):
    root = make_folder(tmp_path / "col", kind="colour")
    m = _score_perfect_predictions(root, tmp_path)
    assert m["pixel_accuracy"] == 1.0 and m["miou"] == 1.0
    preds = tmp_path / "preds"
    # without the table, a colour mask is refused and the message says how to read it
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(preds),
                "--ground-truth",
                str(root / "masks" / "val"),
                "--out",
                str(tmp_path / "score2"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "--classes TABLE" in one_line_error(capsys, "evaluate")


def test_jpeg_masks_are_called_lossy(tmp_path, capsys):
    root = make_folder(tmp_path / "jpg", kind="jpeg")
    (root / "classes.yaml").write_text(
        TABLE.replace("ids: [1]", "ids: [50]")
        .replace("ids: [2]", "ids: [100]")
        .replace("ids: [3]", "ids: [150]")
        .replace("ids: [4]", "ids: [200]")
    )
    assert _train(root, tmp_path / "run") == 2
    line = one_line_error(capsys, "train")
    assert "a JPEG label map: lossy compression" in line and "Save the masks as PNG" in line


def test_unknown_ids_ignore_counts_what_it_ignores(tmp_path, capsys):
    root = make_folder(tmp_path / "unk")
    for mask in (root / "masks").rglob("*.png"):  # class 4's band gets an id the table lacks
        ids = cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)
        ids[ids == 4] = 9
        cv2.imwrite(str(mask), ids)
    share = np.mean([(cv2.imread(str(m), cv2.IMREAD_UNCHANGED) == 9).mean() for m in (root / "masks").rglob("*.png")])
    assert _train(root, tmp_path / "run", "data.unknown_ids=ignore") == 0
    out = capsys.readouterr().out
    assert (
        f"data.unknown_ids=ignore: {100 * share:.2f} % of the pixels of 8 sampled label maps hold ids or "
        f"colours the class table does not know (9)" in out
    )
    # a table that knows none of the ids: nothing would be learnt or scored
    (root / "classes.yaml").write_text(TABLE.replace("ids: [", "ids: [10"))
    assert _train(root, tmp_path / "run2", "data.unknown_ids=ignore") == 2
    assert "none of their pixels has a class" in one_line_error(capsys, "train")


# -- which classes the mIoU averages -------------------------------------------------------------
def test_class_0_of_a_users_table_counts_in_the_miou(trained, tmp_path, capsys):
    metrics = json.loads((trained / "history.json").read_text())[0]
    assert "val_miou" in metrics
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                "--out",
                str(tmp_path / "ev"),
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    ious = [v for v in m["iou"].values() if v is not None]
    assert m["miou_excluded"] == [] and m["miou"] == pytest.approx(np.mean(ious))
    assert "none excluded" in out and "road excluded" not in out
    assert "mIoU (5 classes)" in (tmp_path / "ev" / "report.md").read_text()
    # the key leaves one out, named
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                "--out",
                str(tmp_path / "ev2"),
                "--no-progress",
                "--set",
                "data.miou_exclude=[road]",
            ]
        )
        == 0
    )
    m2 = json.loads((tmp_path / "ev2" / "metrics.json").read_text())
    assert m2["miou_excluded"] == ["road"]
    assert m2["miou"] == pytest.approx(np.mean([v for k, v in m2["iou"].items() if k != "road" and v is not None]))


def test_the_start_summary_says_what_the_miou_averages(mydata, tmp_path, capsys):
    assert _train(mydata, tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert f"scores: mIoU over all 5 classes (class table {mydata / 'classes.yaml'}" in out
    (tmp_path / "t.yaml").write_text(TABLE + "miou_exclude: [road]\n")
    assert _train(mydata, tmp_path / "run2", f"data.class_table={tmp_path / 't.yaml'}") == 0
    assert "scores: mIoU over 4 classes, road left out" in capsys.readouterr().out
    (tmp_path / "typo.yaml").write_text(TABLE + "miou_exclud: [road]\n")
    assert _train(mydata, tmp_path / "run3", f"data.class_table={tmp_path / 'typo.yaml'}") == 2
    assert "did you mean miou_exclude?" in one_line_error(capsys, "train")


def test_the_shipped_tables_still_leave_background_out():
    from phgmm.data import load_class_table

    for name in ("phgmm12", "cityscapes", "synthia", "camvid"):
        table = load_class_table(name)
        assert table.miou_exclude == (0,) and table.names[0] == "background", name


# -- scoring a subset, evaluating from another folder --------------------------------------------
def test_predictions_for_a_subset_of_the_ground_truth_can_be_scored(mydata, tmp_path, capsys):
    preds = tmp_path / "preds"
    preds.mkdir()
    cv2.imwrite(str(preds / "val01.png"), folder_ids(1))
    args = [
        "evaluate",
        "--predictions",
        str(preds),
        "--ground-truth",
        str(mydata / "masks" / "val"),
        "--classes",
        str(mydata / "classes.yaml"),
        "--no-progress",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    line = one_line_error(capsys, "evaluate")
    assert "to score only the 1 image that have a prediction, add --predicted-only" in line
    assert main([*args, "--out", str(tmp_path / "b"), "--predicted-only"]) == 0
    assert "scored 1 of 4 ground-truth images" in capsys.readouterr().out
    m = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert m["num_images"] == 1 and m["ground_truth_not_scored"] == 3 and m["pixel_accuracy"] == 1.0


def test_evaluate_from_another_folder_finds_or_names_the_data(mydata, tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(mydata, work / "mydata")
    monkeypatch.chdir(work)
    assert (
        main(tiny_train_args("runs/x", "data.root=mydata/images", "data.class_table=mydata/classes.yaml", tiny=TINY))
        == 0
    )
    best = (work / "runs" / "x" / "checkpoints" / "best.pt").resolve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(best), "--out", "ev", "--no-progress"]) == 0
    shutil.move(work / "mydata", tmp_path / "moved")
    assert main(["evaluate", "--checkpoint", str(best), "--out", "ev2", "--no-progress"]) == 2
    line = one_line_error(capsys, "evaluate")
    assert f"mydata/images: data.root does not exist (from the config saved in {best})" in line
    assert "--set data.root=PATH" in line
