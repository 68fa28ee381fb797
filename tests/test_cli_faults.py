"""Faults met through the command line, each a case a new user can hit: crashes (a one-image
validation split), data faults in loader workers, edited published configs, a full disk, NaN
weights, resuming from elsewhere, EXIF-turned photos, unwritable videos, and the messages for
them: one line naming the file and the way on, never a worker traceback, a silent wrong answer
or a message that misleads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from support import TINY, one_line_error, tiny_train_args

from phgmm.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """6 scenes of 128x64 in Cityscapes' layout: 5 training images, 1 validation image."""
    from phgmm.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, num=6, size=(128, 64), seed=3, fmt="cityscapes", progress=False)
    return root


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(root, dst)
    return dst


def _train(root: Path, out: Path, *overrides: str) -> int:
    return main(tiny_train_args(out, f"data.root={root}", *overrides))


@pytest.fixture(scope="module")
def trained(synth, tmp_path_factory) -> Path:
    """A one-step run of the tiny model (its best.pt and last.pt), trained once for the module."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert (
        _train(synth, out, "train.epochs=1", "train.max_steps_per_epoch=1", "train.val_every=0", "data.num_workers=0")
        == 0
    )
    return out


# -- crashes -------------------------------------------------------------------------------------
def test_a_validation_split_of_one_image_trains_to_the_end(synth, tmp_path, capsys):
    assert (
        _train(
            synth,
            tmp_path / "run",
            "train.epochs=1",
            "train.max_steps_per_epoch=1",
            "train.val_every=1",
            "data.num_workers=0",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "epoch 1: val mIoU" in out and "done: best val mIoU" in out
    assert "val_miou" in json.loads((tmp_path / "run" / "history.json").read_text())[0]


@pytest.mark.parametrize("fault", ["unknown id", "other size", "corrupt image"])
def test_a_data_fault_in_a_loader_worker_is_one_line(synth, tmp_path, capsys, fault):
    root = _copy(synth, tmp_path)
    labels = sorted((root / "gtFine" / "train").rglob("*_labelIds.png"))
    images = sorted((root / "leftImg8bit" / "train").rglob("*.png"))
    from PIL import Image

    for lab, img in zip(labels, images, strict=True):  # every file: whichever the sampler draws first
        if fault == "unknown id":
            a = np.array(Image.open(lab))
            a[0, 0] = 200
            Image.fromarray(a).save(lab)
        elif fault == "other size":
            Image.fromarray(np.array(Image.open(lab))[:32]).save(lab)
        else:
            img.write_bytes(img.read_bytes()[:300])
    # the demo config's own data.num_workers (1): the error comes back from a worker process
    assert _train(root, tmp_path / "run", "train.epochs=1", "train.max_steps_per_epoch=1") == 2
    line = one_line_error(capsys, "train")
    assert {
        "unknown id": "label ids [200] are not in class table",
        "other size": "label map is 128x32",
        "corrupt image": "cannot decode image",
    }[fault] in line
    assert str(root) in line and "DataLoader worker" not in line


def test_a_corrupt_image_in_evaluate_with_a_worker_is_one_line(synth, trained, tmp_path, capsys):
    root = _copy(synth, tmp_path)
    victim = sorted((root / "leftImg8bit" / "val").rglob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:300])
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                "--out",
                str(tmp_path / "ev"),
                "--no-progress",
                "--set",
                f"data.root={root}",
                "--set",
                "data.num_workers=1",
            ]
        )
        == 2
    )
    line = one_line_error(capsys, "evaluate")
    assert f"{victim}: cannot decode image" in line


# -- a published folder whose config.json was edited, a full disk -------------------------------
@pytest.fixture(scope="module")
def published(trained) -> Path:
    out = trained.parent / "published"
    assert main(["publish", "--checkpoint", str(trained / "checkpoints" / "best.pt"), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    "edit, says",
    [
        (
            lambda m: m["build"].update(num_components=5),
            "model.safetensors does not fit the model described in config.json",
        ),
        (lambda m: m["build"].update(foo=1), "'build' holds a setting the phgmm network does not take (foo)"),
        (
            lambda m: m.update(class_names=m["class_names"][:11]),
            "'class_names' lists 11 entries but the network predicts 12",
        ),
    ],
)
def test_an_edited_published_config_is_one_line(synth, published, tmp_path, capsys, edit, says):
    folder = tmp_path / "model"
    shutil.copytree(published, folder)
    meta = json.loads((folder / "config.json").read_text())
    edit(meta)
    (folder / "config.json").write_text(json.dumps(meta))
    capsys.readouterr()
    images = sorted((synth / "leftImg8bit" / "val").rglob("*.png"))
    assert (
        main(["predict", "--checkpoint", str(folder), str(images[0]), "--out", str(tmp_path / "p"), "--no-progress"])
        == 2
    )
    line = one_line_error(capsys, "predict")
    assert says in line and str(folder) in line


def _no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_a_full_disk_while_saving_last_pt_is_one_line_and_keeps_the_checkpoint(
    synth, trained, tmp_path, capsys, monkeypatch
):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(torch, "save", _no_space)
    assert main(["train", "--resume", str(last), "--out", str(run), "--no-progress", "--set", "train.epochs=2"]) == 2
    line = one_line_error(capsys, "train")
    assert f"{last}: no space left on device" in line and "Nothing was lost" in line
    assert f"--resume {last}" in line
    assert last.read_bytes() == before and not [p for p in last.parent.iterdir() if p.name.startswith(".")]


def test_a_full_disk_during_predict_is_one_line(synth, trained, tmp_path, capsys, monkeypatch):
    import os

    images = sorted((synth / "leftImg8bit" / "val").rglob("*.png"))
    capsys.readouterr()
    monkeypatch.setattr(os, "fsync", _no_space)
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                str(images[0]),
                "--out",
                str(tmp_path / "p"),
                "--no-progress",
            ]
        )
        == 2
    )
    line = one_line_error(capsys, "predict")
    assert "no space left on device" in line and "Nothing was lost" in line
    assert not [p for p in (tmp_path / "p").rglob("*") if p.is_file()]


# -- silent wrong answers ------------------------------------------------------------------------
def test_resuming_into_a_new_out_keeps_best_pt_the_best(synth, tmp_path, capsys, monkeypatch):
    from phgmm.engine.checkpoint import load_checkpoint
    from phgmm.engine.training import trainer as train_mod

    first = tmp_path / "first"
    assert (
        _train(
            synth,
            first,
            "train.epochs=1",
            "train.max_steps_per_epoch=1",
            "train.val_every=1",
            "data.num_workers=0",
            "eval.latent=false",
        )
        == 0
    )
    best_first = load_checkpoint(first / "checkpoints" / "best.pt")
    real = train_mod.Trainer.validate

    def worse(self):  # every later validation scores below the first one
        record = real(self)
        record["val_miou"] = best_first["best_miou"] - 1.0
        return record

    monkeypatch.setattr(train_mod.Trainer, "validate", worse)
    second = tmp_path / "second"
    assert (
        main(
            [
                "train",
                "--resume",
                str(first / "checkpoints" / "last.pt"),
                "--out",
                str(second),
                "--no-progress",
                "--set",
                "train.epochs=2",
            ]
        )
        == 0
    )
    best = load_checkpoint(second / "checkpoints" / "best.pt")
    assert best["best_miou"] == best_first["best_miou"]
    for k, v in best_first["model"].items():
        torch.testing.assert_close(best["model"][k], v, rtol=0, atol=0, msg=k)
    assert f"copied {first / 'checkpoints' / 'best.pt'}" in capsys.readouterr().out


def test_an_experiment_run_with_an_unknown_key_is_refused(tmp_path, capsys):
    for key, says in (
        ("sets: [model.name=fcn8s]", "unknown run key 'sets'; a run takes name, set, group: did you mean set:?"),
        ("seeds: 3", "unknown run key 'seeds'"),
    ):
        (tmp_path / "e.yaml").write_text(f"kind: compare\nbase: demo\nruns:\n  - name: fcn8s\n    {key}\n")
        assert main(["experiment", "compare", "--config", str(tmp_path / "e.yaml")]) == 2
        assert says in one_line_error(capsys, "experiment")


def test_nan_weights_are_named_by_predict_and_evaluate(synth, trained, tmp_path, capsys):
    from phgmm.engine.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(trained / "checkpoints" / "best.pt")
    state.pop("source")
    state["model"]["encoder.conv1.weight"][0, 0, 0, 0] = float("nan")
    nan = save_checkpoint(tmp_path / "nan.pt", state)
    images = sorted((synth / "leftImg8bit" / "val").rglob("*.png"))
    capsys.readouterr()
    assert (
        main(["predict", "--checkpoint", str(nan), str(images[0]), "--out", str(tmp_path / "p"), "--no-progress"]) == 2
    )
    assert f"{nan}: 1 of its" in one_line_error(capsys, "predict")
    assert not (tmp_path / "p" / "labels").exists()
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(nan),
                "--out",
                str(tmp_path / "e"),
                "--no-progress",
                "--set",
                "data.num_workers=0",
            ]
        )
        == 2
    )
    assert "hold NaN or infinite values (first: encoder.conv1.weight)" in one_line_error(capsys, "evaluate")


def test_history_after_an_interrupted_epoch_averages_the_whole_epoch(synth, tmp_path):
    from phgmm.config import apply_overrides, load_config
    from phgmm.engine.training import trainer as train_mod
    from phgmm.engine.training.trainer import TrainingInterrupted, train

    sets = [
        *TINY,
        f"data.root={synth}",
        "data.num_workers=0",
        "train.epochs=1",
        "train.max_steps_per_epoch=2",
        "train.val_every=0",
    ]
    full = train(apply_overrides(load_config("demo"), [*sets, f"output_dir={tmp_path / 'full'}"]), progress=False)
    cfg = apply_overrides(load_config("demo"), [*sets, f"output_dir={tmp_path / 'int'}"])
    trainer = train_mod.Trainer(cfg, progress=False)
    real = trainer.run_step

    def stop_after_one(x, y):
        out = real(x, y)
        trainer._stop["stop"] = True  # Ctrl-C during step 1: it completes, then the run stops
        return out

    trainer.run_step = stop_after_one
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    resumed = train(cfg, resume=tmp_path / "int" / "checkpoints" / "last.pt", progress=False)
    a, b = full["history"][0], resumed["history"][0]
    for term in ("loss_total", "loss_s", "loss_z", "loss_g"):
        assert b[term] == pytest.approx(a[term], rel=1e-6), term


def test_resuming_from_another_working_folder_continues_the_original_run(synth, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    assert (
        _train(
            synth,
            Path("runs/x"),
            "train.epochs=1",
            "train.max_steps_per_epoch=1",
            "train.val_every=0",
            "data.num_workers=0",
        )
        == 0
    )
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["train", "--resume", "../runs/x/checkpoints/last.pt", "--no-progress", "--set", "train.epochs=2"]) == 0
    assert len(json.loads((tmp_path / "runs" / "x" / "history.json").read_text())) == 2
    assert not (tmp_path / "elsewhere" / "runs").exists()


def test_resuming_from_another_working_folder_finds_a_relative_data_root(synth, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(synth, tmp_path / "data")
    (tmp_path / "elsewhere").mkdir()
    assert (
        _train(
            Path("data"),
            Path("runs/x"),
            "train.epochs=1",
            "train.max_steps_per_epoch=1",
            "train.val_every=0",
            "data.num_workers=0",
        )
        == 0
    )
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["train", "--resume", "../runs/x/checkpoints/last.pt", "--no-progress", "--set", "train.epochs=2"]) == 0
    assert len(json.loads((tmp_path / "runs" / "x" / "history.json").read_text())) == 2


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_to_images(tmp_path, orientation):
    from PIL import Image, ImageOps

    from phgmm.data.imageio import load_image

    pixels = (np.random.RandomState(0).rand(6, 10, 3) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    for suffix in (".jpg", ".png"):
        path = tmp_path / f"photo{suffix}"
        image.save(path, exif=exif.tobytes(), **({"quality": 100} if suffix == ".jpg" else {}))
        seen = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))  # what a viewer shows
        got = load_image(path)
        assert got.shape == seen.shape and np.abs(got.astype(int) - seen).max() <= 2


def test_predict_reads_a_turned_photo_as_a_viewer_shows_it(trained, tmp_path):
    from PIL import Image

    image = Image.fromarray(np.zeros((64, 128, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    image.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                str(tmp_path / "phone.jpg"),
                "--out",
                str(tmp_path / "p"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "p" / "labels" / "phone.png").size == (64, 128)


def test_a_key_given_twice_in_a_config_is_refused(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 3\n  lr: 0.01\n  epochs: 1\n")
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--print-config"]) == 2
    line = one_line_error(capsys, "train")
    assert "c.yaml: line 4: 'epochs' is given twice in the same section (first on line 2)" in line


def test_amp_off_is_stored_as_off_and_fp16_on_a_cpu_records_what_runs(synth, tmp_path, capsys):
    import yaml

    assert main(["train", "--config", "demo", "--set", "train.amp=off", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["amp"] == "off"
    assert (
        _train(
            synth,
            tmp_path / "run",
            "train.epochs=1",
            "train.max_steps_per_epoch=1",
            "train.val_every=0",
            "data.num_workers=0",
            "train.amp=fp16",
            "device=cpu",
        )
        == 0
    )
    assert "train.amp=fp16: a CPU has no fast fp16" in capsys.readouterr().out
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["amp"] == "off"
    assert main(["train", "--config", "demo", "--set", "train.amp=fp8", "--print-config"]) == 2
    assert "train.amp must be auto, bf16, fp16 or off, got 'fp8'" in one_line_error(capsys, "train")


# -- misleading messages -------------------------------------------------------------------------
def _evil(path: Path) -> Path:
    import os

    class RunsAShell:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model": {}, "config": {}, "x": RunsAShell()}, path)
    return path


def test_a_pickle_that_runs_code_is_called_what_it_is(synth, tmp_path, capsys):
    evil = _evil(tmp_path / "evil.pt")
    assert main(["predict", "--checkpoint", str(evil), str(tmp_path), "--out", str(tmp_path / "p")]) == 2
    line = one_line_error(capsys, "predict")
    assert "refused to load: the file asks to run code (posix.system)" in line or "(nt.system)" in line
    assert "corrupt" not in line and "weights_only" not in line
    assert _train(synth, tmp_path / "run", f"model.pretrained_backbone={evil}", "data.num_workers=0") == 2
    line = one_line_error(capsys, "train")
    assert f"{evil}: refused to load: the file asks to run code" in line and "weights_only" not in line


def test_pretrained_backbone_given_a_phgmm_checkpoint_says_how_to_use_it(synth, trained, tmp_path, capsys):
    best = trained / "checkpoints" / "best.pt"
    assert _train(synth, tmp_path / "run", f"model.pretrained_backbone={best}", "data.num_workers=0") == 2
    line = one_line_error(capsys, "train")
    assert f"{best}: a phgmm training checkpoint, not a torchvision ResNet state dict" in line
    assert f"model.init_from={best}" in line
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "sd.pth")
    assert (
        _train(
            synth,
            tmp_path / "run2",
            f"model.pretrained_backbone={tmp_path / 'sd.pth'}",
            "data.num_workers=0",
            "model.backbone=resnet18",
        )
        == 2
    )
    line = one_line_error(capsys, "train")
    assert (
        "does not fit the encoder of model.backbone=resnet18: 119 missing keys (e.g. bn1.weight); "
        "1 tensors of another shape (e.g. conv1.weight [3] instead of [64, 3, 7, 7])" in line
    )


@pytest.mark.parametrize(
    "name, encoder", [("hrnet_w18", "HRNetBackbone"), ("enet", "_ENetEncoder"), ("segnet_half", "ModuleList")]
)
def test_pretrained_backbone_on_a_network_without_a_resnet_says_so(synth, tmp_path, capsys, name, encoder):
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "sd.pth")
    assert (
        _train(
            synth,
            tmp_path / "run",
            f"model.pretrained_backbone={tmp_path / 'sd.pth'}",
            "data.num_workers=0",
            f"model.name={name}",
        )
        == 2
    )
    line = one_line_error(capsys, "train")
    assert f"has none (its encoder is {encoder}): train it from scratch" in line and "model.init_from" in line


def test_an_unknown_backbone_names_the_key(capsys):
    assert main(["train", "--config", "demo", "--set", "model.backbone=resnet19", "--print-config"]) == 2
    assert (
        "model.backbone must be one of resnet18, resnet34, resnet50, resnet101, resnet152, got 'resnet19'"
        in one_line_error(capsys, "train")
    )


def test_a_published_size_that_is_no_size_is_not_called_a_tile(synth, published, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(published, folder)
    meta = json.loads((folder / "config.json").read_text())
    meta["size"] = [0, -5]
    (folder / "config.json").write_text(json.dumps(meta))
    images = sorted((synth / "leftImg8bit" / "val").rglob("*.png"))
    assert main(["predict", "--checkpoint", str(folder), str(images[0]), "--out", str(tmp_path / "p")]) == 2
    line = one_line_error(capsys, "predict")
    assert "'size', the working size the model was trained at, must be two positive integers" in line
    assert "tile" not in line


def test_a_negative_looking_option_value_reaches_its_own_check(trained, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "predict",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                str(tmp_path),
                "--out",
                str(tmp_path / "p"),
                "--scales",
                "-1,1",
            ]
        )
    err = capsys.readouterr().err
    assert "scales must be positive numbers, got '-1,1'" in err and "expected one argument" not in err


def test_a_negative_looking_value_of_a_nested_subcommand_reaches_its_own_check(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "compare", "--config", "experiments/compare_camvid", "--threads", "-two"])
    err = capsys.readouterr().err
    assert "expected a whole number of threads, got '-two'" in err and "expected one argument" not in err


def test_skip_bad_samples_stops_at_one_bad_file_in_four(synth, trained, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for src in sorted((synth / "leftImg8bit" / "train").rglob("*.png"))[:4]:
        shutil.copy(src, folder / src.name)
    bad = sorted(folder.iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:200])
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                str(folder),
                "--out",
                str(tmp_path / "p"),
                "--skip-bad-samples",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "1 unreadable images, more than 1% of 4 allows (0)" in capsys.readouterr().err
    # a small folder can allow its one bad file, and the three good ones are written
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                str(folder),
                "--out",
                str(tmp_path / "q"),
                "--skip-bad-samples",
                "--max-bad-fraction",
                "0.25",
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "q" / "labels").rglob("*.png")) == sorted(
        p.name for p in folder.iterdir() if p != bad
    )
    assert "skipped 1 unreadable images" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="add --skip-bad-samples"):
        main(
            [
                "predict",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                str(folder),
                "--out",
                str(tmp_path / "r"),
                "--max-bad-fraction",
                "0.25",
            ]
        )
    from phgmm.engine.loaders import bad_sample_limit

    assert bad_sample_limit(0.01, 4) == 0 and bad_sample_limit(0.01, 100) == 1 and bad_sample_limit(0.2, 10) == 2


@pytest.mark.parametrize("free, says", [(0, "no space left on device"), (1 << 30, "OpenCV wrote 1 of its 3 frames")])
def test_a_video_that_cannot_be_written_whole_is_one_line_and_leaves_no_mp4(
    trained, tmp_path, capsys, monkeypatch, free, says
):
    import types

    import cv2

    from phgmm.engine.inference import outputs

    clip = tmp_path / "in" / "clip.avi"
    clip.parent.mkdir()
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 32))
    for i in range(3):
        writer.write(np.full((32, 64, 3), 60 * i, np.uint8))
    writer.release()
    write = outputs.VideoOut._write

    def lossy(self, rgb, pred):  # what OpenCV does when the disk fills: frames vanish, no error
        if self.frames == 0:
            return write(self, rgb, pred)
        self.frames += 1
        return []

    monkeypatch.setattr(outputs.VideoOut, "_write", lossy)
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda path: types.SimpleNamespace(free=free))
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                str(clip),
                "--out",
                str(tmp_path / "p"),
                "--no-progress",
            ]
        )
        == 2
    )
    line = one_line_error(capsys, "predict")
    assert f"{tmp_path / 'p' / 'overlay' / 'clip.mp4'}: {says}" in line and "Nothing was lost" in line
    assert not list((tmp_path / "p" / "overlay").iterdir())


def test_a_video_name_clash_names_the_file_both_would_write(trained, tmp_path, capsys):
    import cv2

    for suffix, codec in ((".mp4", "mp4v"), (".avi", "MJPG")):
        writer = cv2.VideoWriter(str(tmp_path / f"clip{suffix}"), cv2.VideoWriter_fourcc(*codec), 5, (64, 32))
        for i in range(2):
            writer.write(np.full((32, 64, 3), 60 * i, np.uint8))
        writer.release()
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                str(tmp_path),
                "--out",
                str(tmp_path / "p"),
                "--no-progress",
            ]
        )
        == 2
    )
    line = one_line_error(capsys, "predict")
    assert "would both write overlay/clip.mp4" in line and "labels/clip.png" not in line
