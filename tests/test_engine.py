"""Training, resuming, checkpoints and evaluation on a tiny synthetic set (CPU)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from support import tiny_cfg

from phgmm.engine.checkpoint import CheckpointError, load_checkpoint, load_inference_model, save_checkpoint
from phgmm.engine.training.optimizer import poly_lambda
from phgmm.engine.training.trainer import RunExistsError, TrainingError, train

REPO = Path(__file__).resolve().parents[1]


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def test_resumed_run_equals_uninterrupted_run(synth_root, tmp_path):
    full = train(tiny_cfg(synth_root, tmp_path / "full"), progress=False)
    part = tiny_cfg(synth_root, tmp_path / "part")
    train(part, stop_after_epochs=1, progress=False)
    state = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and state["step_in_epoch"] == 0
    resumed = train(part, resume=tmp_path / "part" / "checkpoints" / "last.pt", progress=False)
    a, b = _weights(Path(full["last"])), _weights(Path(resumed["last"]))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert [h["val_miou"] for h in full["history"]] == [h["val_miou"] for h in resumed["history"]]
    assert len(resumed["history"]) == 3
    # the resolved config sits next to the run, TensorBoard logs are there
    assert (tmp_path / "full" / "config.yaml").is_file()
    assert any((tmp_path / "full" / "tb").iterdir())


def test_existing_run_is_not_overwritten(synth_root, tmp_path):
    cfg = tiny_cfg(synth_root, tmp_path / "run", "train.epochs=1", "train.max_steps_per_epoch=1", "train.val_every=0")
    train(cfg, progress=False)
    before = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(RunExistsError, match="--resume"):
        train(cfg, progress=False)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == before
    train(cfg, overwrite=True, progress=False)
    # the command line resumes from the checkpoint alone (its own config), extended by --set
    from phgmm.cli import main

    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert main(["train", "--resume", str(last), "--set", "train.epochs=2", "--no-progress"]) == 0
    state = load_checkpoint(last)
    assert state["epoch"] == 2 and state["config"]["train"]["epochs"] == 2


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(synth_root, tmp_path, monkeypatch):
    cfg = tiny_cfg(synth_root, tmp_path / "nan", "train.epochs=2", "train.max_steps_per_epoch=2", "train.val_every=0")
    train(cfg, stop_after_epochs=1, progress=False)
    last = tmp_path / "nan" / "checkpoints" / "last.pt"
    good = last.read_bytes()
    import phgmm.losses as losses

    real = losses.gmm_kl
    monkeypatch.setattr(losses, "gmm_kl", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(TrainingError, match=r"non-finite loss at epoch 2, step 1 .*ℓ_z = nan"):
        train(cfg, resume=last, progress=False)
    assert last.read_bytes() == good
    fresh = tiny_cfg(synth_root, tmp_path / "nan2", "train.epochs=1", "train.val_every=0")
    with pytest.raises(TrainingError, match="no checkpoint had been written yet"):
        train(fresh, progress=False)
    assert not (tmp_path / "nan2" / "checkpoints" / "last.pt").exists()


def test_sigint_mid_epoch_finishes_the_step_and_resumes_bit_identically(synth_root, tmp_path, monkeypatch):
    import os
    import signal

    from phgmm.engine.training import trainer as train_mod
    from phgmm.engine.training.trainer import TrainingInterrupted

    # dropout-free PHGMM, but decoding samples makes every step draw random numbers
    extra = ("train.epochs=1", "train.val_every=0", "model.sample_latent=true")
    full = train(tiny_cfg(synth_root, tmp_path / "full", *extra), progress=False)
    calls = {"n": 0}
    real = train_mod.build_loss

    def interrupting_loss(c):
        loss = real(c)
        forward = loss.forward

        def wrapped(out, y, step=None):
            calls["n"] += 1
            if calls["n"] == 2:
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C in the middle of step 2
            return forward(out, y, step=step)

        loss.forward = wrapped  # still the configured loss, with its state
        return loss

    monkeypatch.setattr(train_mod, "build_loss", interrupting_loss)
    cfg = tiny_cfg(synth_root, tmp_path / "int", *extra)
    with pytest.raises(TrainingInterrupted):
        train(cfg, progress=False)
    last = tmp_path / "int" / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    assert (state["epoch"], state["step_in_epoch"]) == (0, 2)  # step 2 was completed, then saved
    monkeypatch.setattr(train_mod, "build_loss", real)
    resumed = train(cfg, resume=last, progress=False)
    a, b = _weights(Path(full["last"])), _weights(Path(resumed["last"]))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


KILL_SCRIPT = """
import os, signal, sys
from phgmm.config import load_config
from phgmm.engine.training import trainer as t
real = t.Trainer.save_checkpoints
def save_then_die(self, best=False):
    real(self, best)
    if self.state.global_step == 3:
        os.kill(os.getpid(), signal.SIGKILL)
t.Trainer.save_checkpoints = save_then_die
t.train(load_config(sys.argv[1]), progress=False)
"""


def test_sigkill_after_checkpoint_every_resumes_bit_identically(synth_root, tmp_path):
    import subprocess
    import sys

    from phgmm.config import save_config

    extra = ("train.epochs=2", "train.val_every=0", "train.checkpoint_every=3", "model.sample_latent=true")
    full = train(tiny_cfg(synth_root, tmp_path / "full", *extra), progress=False)
    cfg = tiny_cfg(synth_root, tmp_path / "killed", *extra)
    save_config(cfg, tmp_path / "killed.yaml")
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "killed.yaml")], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    assert state["global_step"] == 3 and state["step_in_epoch"] in (1, 3)  # mid-epoch or early epoch 2
    resumed = train(cfg, resume=last, progress=False)
    a, b = _weights(Path(full["last"])), _weights(Path(resumed["last"]))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_poly_schedule():
    f = poly_lambda(100, 0.9)
    assert f(0) == 1.0 and f(100) == 0.0 and f(150) == 0.0
    assert f(50) == pytest.approx(0.5**0.9)


def test_checkpoint_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path)
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CheckpointError, match="trunc.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "trunc.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.ones(2)}, "config": {}})
    good = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, {"model": {"w": torch.zeros(2)}, "config": {}})
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_evaluate_and_predict_cli(synth_root, tmp_path):
    from phgmm.cli import main

    cfg = tiny_cfg(synth_root, tmp_path / "run", "train.epochs=1", "train.val_every=1")
    summary = train(cfg, progress=False)
    out = tmp_path / "eval"
    assert (
        main(
            ["evaluate", "--checkpoint", summary["best"], "--out", str(out), "--no-progress", "--set", "eval.tsne=true"]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("miou", "iou", "precision", "recall", "pixel_accuracy", "confusion", "trimap", "clustering"):
        assert key in metrics, key
    assert len(metrics["iou"]) == 12 and len(metrics["trimap"]) == 40
    assert set(metrics["clustering"]) >= {"silhouette", "calinski_harabasz", "davies_bouldin"}
    report = (out / "report.md").read_text()
    assert "IoU" in report and ".png" in report
    # the latent-use measures that can tell, in metrics.json and report.md
    lat = metrics["latent"]
    for key in (
        "swap_z_random_pixels_changed",
        "swap_z_far_miou_drop",
        "swap_g_random_miou_drop",
        "swap_g_far_pixels_changed",
        "mi_z",
        "mi_g",
        "sensitivity_z",
        "sensitivity_g",
        "untrained_z_active_units",
        "untrained_mi_z",
    ):
        assert key in lat, key
    assert "a random other image" in report and "the most different image" in report and "I(x; ·)" in report
    model = load_inference_model(summary["best"])
    names, colors = model.metadata["class_names"], model.metadata["colors"]
    assert model.postnet is None and names[0] == "background" and len(colors) == 12

    images = synth_root / "leftImg8bit" / "val"
    pred_out = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                summary["best"],
                str(images / "synth"),
                "--out",
                str(pred_out),
                "--uncertainty",
                "--samples",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    labels = sorted((pred_out / "labels").glob("*.png"))
    assert labels and len(list((pred_out / "mi").glob("*.png"))) == len(labels)
    assert len(list((pred_out / "overlay").glob("*.jpg"))) == len(labels)
    ent = np.load(next((pred_out / "entropy").glob("*.npy")))
    assert ent.shape == (64, 128) and (ent >= 0).all() and (ent <= np.log(12) + 1e-4).all()
    # refuses to overwrite, then scores its own predictions against ground truth by folder
    assert (
        main(
            ["predict", "--checkpoint", summary["best"], str(images / "synth"), "--out", str(pred_out), "--no-progress"]
        )
        == 2
    )
    from phgmm.engine.builders import build_dataset_from_config
    from phgmm.visualize import save_png

    val = build_dataset_from_config(cfg, "val", train=False)
    gt_dir = tmp_path / "gt"
    for i, (img, _) in enumerate(val.files):
        save_png(gt_dir / f"{Path(img).stem}.png", val.load_raw(i)[1])
    scores = tmp_path / "scores"
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(pred_out / "labels"),
                "--ground-truth",
                str(gt_dir),
                "--out",
                str(scores),
                "--no-progress",
            ]
        )
        == 0
    )
    by_folder = json.loads((scores / "metrics.json").read_text())
    # same model, same images, same resolution: the folder score equals the checkpoint evaluation
    assert by_folder["confusion"] == metrics["confusion"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    from phgmm.cli import main

    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "missing.yaml: config file not found" in err and "Traceback" not in err
    assert main(["train", "--config", str(REPO / "configs" / "demo.yaml"), "--set", "train.epoch=3"]) == 2
    assert "did you mean train.epochs" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "x.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_resume_into_another_model_is_a_clear_error(synth_root, tmp_path, capsys):
    from phgmm.cli import main

    cfg = tiny_cfg(synth_root, tmp_path / "run", "train.epochs=1", "train.max_steps_per_epoch=1", "train.val_every=0")
    train(cfg, progress=False)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert main(["train", "--resume", str(last), "--set", "model.num_components=5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{last}: its weights do not fit the model of this config" in err and "Traceback" not in err
    assert "model.num_components: checkpoint 3, here 5" in err
    # settings the optimiser and schedule carry cannot change on resume; the record stays true
    assert main(["train", "--resume", str(last), "--set", "train.lr=0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "train.lr: checkpoint 0.001, here 0.5" in err and "Traceback" not in err
    assert load_checkpoint(last)["config"]["train"]["lr"] == 0.001
    assert "lr: 0.001" in (tmp_path / "run" / "config.yaml").read_text()
    # evaluating with a config whose model differs names the setting and both values
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(last),
                "--out",
                str(tmp_path / "ev"),
                "--no-progress",
                "--set",
                "model.num_components=5",
            ]
        )
        == 2
    )
    assert "model.num_components: checkpoint 3, here 5" in capsys.readouterr().err


def test_broken_validation_image_leaves_a_loadable_last_checkpoint(synth_root, tmp_path):
    import shutil

    from phgmm.data import DatasetError

    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    victim = sorted((root / "leftImg8bit" / "val").rglob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:200])  # a truncated PNG
    cfg = tiny_cfg(root, tmp_path / "run", "train.epochs=2", "train.max_steps_per_epoch=2")
    with pytest.raises(DatasetError, match=victim.name):
        train(cfg, progress=False)
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (1, 0)  # the trained epoch was kept


def test_a_run_stopped_inside_a_validation_validates_that_epoch_first_when_resumed(
    synth_root, tmp_path, monkeypatch, capsys
):
    from phgmm.engine.training.trainer import Trainer

    extra = ("train.epochs=2", "train.max_steps_per_epoch=2")
    full = train(tiny_cfg(synth_root, tmp_path / "full", *extra), progress=False)
    real = Trainer.validate

    def killed_in_second_validation(self):
        if self.state.epoch == 2:
            raise RuntimeError("the session ended")  # as a killed process: last.pt was written before
        return real(self)

    monkeypatch.setattr(Trainer, "validate", killed_in_second_validation)
    cfg = tiny_cfg(synth_root, tmp_path / "cut", *extra)
    with pytest.raises(RuntimeError, match="session ended"):
        train(cfg, progress=False)
    last = tmp_path / "cut" / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    assert (state["epoch"], state["step_in_epoch"]) == (2, 0)
    assert "val_miou" not in state["history"][-1] and "val_miou" in state["history"][0]
    monkeypatch.setattr(Trainer, "validate", real)
    capsys.readouterr()
    resumed = train(cfg, resume=last, progress=False)
    assert "epoch 2 was saved but its validation did not finish: validating it first" in capsys.readouterr().out
    assert [h["val_miou"] for h in resumed["history"]] == [h["val_miou"] for h in full["history"]]
    assert resumed["best_miou"] == full["best_miou"]
    a, b = _weights(Path(full["best"])), _weights(Path(resumed["best"]))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    # a finished run resumed again owes nothing and trains nothing
    again = train(cfg, resume=last, progress=False)
    assert "validating it first" not in capsys.readouterr().out
    assert again["history"] == resumed["history"]


def test_weight_decay_spares_norms_and_biases_and_best_holds_no_optimiser(synth_root, tmp_path):
    from phgmm import PHGMM
    from phgmm.engine.training.optimizer import parameter_groups

    model = PHGMM(backbone="resnet18", postnet="light", decoder_units=(1, 1, 1, 1))
    decay, no_decay = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("bias") or p.ndim <= 1 for p in no_decay["params"])
    assert any(names[id(p)] == "encoder.bn1.weight" for p in no_decay["params"])
    assert any(names[id(p)] == "local_space.component_bias" for p in no_decay["params"])
    assert all(p.ndim > 1 and not names[id(p)].endswith("bias") for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    summary = train(
        tiny_cfg(synth_root, tmp_path / "run", "train.epochs=1", "train.max_steps_per_epoch=1"), progress=False
    )
    best = load_checkpoint(summary["best"])
    assert "optimizer" not in best and "model" in best and "classes" in best
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert [g["fused"] for g in last["optimizer"]["param_groups"]] == [True, True]  # build_optimizer
    assert Path(summary["best"]).stat().st_size < 0.6 * Path(summary["last"]).stat().st_size


def test_partial_repeat_of_an_epoch_is_a_seeded_permutation():
    from phgmm.engine.loaders import EpochDataset

    class Ids(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return i

    ds = EpochDataset(Ids(), samples_per_epoch=25, seed=3)
    ds.set_epoch(0)
    first = [ds[i] for i in range(25)]
    assert sorted(first[:20]) == sorted(list(range(10)) * 2)  # full repeats: every image once
    extra = first[20:]
    assert len(set(extra)) == 5 and extra != [0, 1, 2, 3, 4]  # not always the first files
    ds.set_epoch(1)
    assert [ds[i] for i in range(20, 25)] != extra  # another draw each epoch
    again = EpochDataset(Ids(), samples_per_epoch=25, seed=3)
    again.set_epoch(0)
    assert [again[i] for i in range(25)] == first  # reproducible from the seed
    with pytest.raises(IndexError):
        ds[25]


def test_skip_bad_samples_logs_skips_and_still_stops_when_too_many(synth_root, tmp_path, capsys):
    import shutil

    from phgmm.engine.loaders import TooManyBadSamples

    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    images = sorted((root / "leftImg8bit" / "train").rglob("*.png"))
    images[0].write_bytes(images[0].read_bytes()[:100])
    cfg = tiny_cfg(
        root,
        tmp_path / "run",
        "train.epochs=1",
        "train.val_every=0",
        "data.skip_bad_samples=true",
        "data.max_bad_fraction=0.2",
    )
    summary = train(cfg, progress=False)
    assert len(summary["skipped_samples"]) == 1 and images[0].name in summary["skipped_samples"][0]
    assert "skipped a bad sample" in capsys.readouterr().err
    images[1].write_bytes(b"")
    images[2].write_bytes(b"")
    cfg = tiny_cfg(
        root,
        tmp_path / "run2",
        "train.epochs=1",
        "train.val_every=0",
        "data.skip_bad_samples=true",
        "data.max_bad_fraction=0.2",
    )  # 8 images: 1 bad allowed, 3 are
    with pytest.raises(TooManyBadSamples, match="3 unreadable samples, more than data.max_bad_fraction"):
        train(cfg, progress=False)


def test_output_locations_are_checked_before_any_work(synth_root, tmp_path, capsys):
    from phgmm.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = tiny_cfg(synth_root, tmp_path / "run", "train.epochs=1", "train.max_steps_per_epoch=1", "train.val_every=0")
    summary = train(cfg, progress=False)
    for argv in (
        ["train", "--config", "demo", "--set", f"output_dir={blocker}/run", "--no-progress"],
        ["evaluate", "--checkpoint", summary["best"], "--out", f"{blocker}/ev", "--no-progress"],
        ["predict", "--checkpoint", summary["best"], str(synth_root), "--out", f"{blocker}/p", "--no-progress"],
        ["synth", "--out", f"{blocker}/s", "--num", "2", "--size", "64x32", "--no-progress"],
        ["benchmark", "--models", "fcn8s", "--backbone", "resnet18", "--size", "64x32", "--json", f"{blocker}/b.json"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"{blocker} is a file, not a folder" in err and "Traceback" not in err, (argv, err)
    out = tmp_path / "ev"
    assert main(["evaluate", "--checkpoint", summary["best"], "--out", str(out), "--no-progress"]) == 0
    before = (out / "metrics.json").read_bytes()
    assert main(["evaluate", "--checkpoint", summary["best"], "--out", str(out), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "metrics.json").read_bytes() == before
    assert main(["evaluate", "--checkpoint", summary["best"], "--out", str(out), "--no-progress", "--overwrite"]) == 0


def test_an_optimiser_state_with_one_group_resumes_into_the_split_groups():
    """Checkpoints written before weight decay was split (one AdamW group) keep every moment."""
    from phgmm.engine.training.optimizer import parameter_groups
    from phgmm.engine.training.state import _regroup

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    old = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    old.step()
    new = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-3)
    new.load_state_dict(_regroup(old.state_dict(), model, new))
    for p in model.parameters():
        torch.testing.assert_close(new.state[p]["exp_avg"], old.state[p]["exp_avg"], rtol=0, atol=0)
    assert [g["weight_decay"] for g in new.param_groups] == [0.01, 0.0]


def test_start_summary_names_device_data_schedule_and_how_the_step_runs(synth_root, tmp_path, capsys):
    train(
        tiny_cfg(
            synth_root,
            tmp_path / "run",
            "train.epochs=1",
            "train.max_steps_per_epoch=1",
            "train.val_every=0",
            "train.channels_last=false",
        ),
        progress=False,
    )
    out = capsys.readouterr().out
    assert "phgmm train: phgmm (resnet18" in out and "on cpu" in out
    assert "training images" in out and "schedule: 1 epoch × 1 step of 4" in out
    # the precision train.amp=auto runs in on this CPU and why, no compile; the thread count
    # phgmm.threads chose
    from phgmm.engine.precision import precision_note

    note = re.escape(precision_note("auto", torch.device("cpu")))
    assert re.search(rf"  run: {note}, contiguous, fused AdamW, \d+ CPU threads?\n", out)
