"""Hints that pointed the wrong way, or not far enough: the config path the docs write, the way
to change a resumed run's optimiser settings, and why fine-tuning 12 → 5 classes leaves a third
of the network fresh."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import ONE_STEP, make_folder, one_line_error, tiny_train_args

from phgmm.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def twelve(tmp_path_factory) -> Path:
    """A one-step 12-class run on synthetic scenes: its run folder."""
    from phgmm.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, num=4, size=(128, 64), seed=2, fmt="cityscapes", progress=False)
    out = root.parent / "run12"
    assert main(tiny_train_args(out, *ONE_STEP, f"data.root={root}", "train.val_every=0")) == 0
    return out


def test_configs_demo_yaml_as_the_docs_write_it_works_outside_a_clone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    assert main(["train", "--config", "configs/demo.yaml", "--print-config"]) == 0
    assert "output_dir: runs/demo" in capsys.readouterr().out
    assert main(["experiment", "compare", "--config", "configs/experiments/compare_camvid.yaml", "--list"]) == 0


def test_a_resume_that_changes_the_learning_rate_names_init_from(twelve, capsys):
    last = twelve / "checkpoints" / "last.pt"
    capsys.readouterr()
    assert main(["train", "--resume", str(last), "--set", "train.lr=0.5", "--no-progress"]) == 2
    line = one_line_error(capsys, "train")
    assert "train.lr: checkpoint 0.001, here 0.5" in line
    assert f"--set model.init_from={last}" in line and "pretrained_backbone" not in line


def test_fine_tuning_to_another_class_count_says_why_the_decoder_is_fresh(twelve, tmp_path, capsys):
    mine = make_folder(tmp_path / "mine")
    best = twelve / "checkpoints" / "best.pt"
    args = tiny_train_args(
        None,
        *ONE_STEP,
        f"data.root={mine / 'images'}",
        f"data.class_table={mine / 'classes.yaml'}",
        "data.dataset=folder",
        "model.num_classes=5",
        f"model.init_from={best}",
        "train.val_every=0",
    )
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("model.init_from"))
    assert (
        "The decoder's width follows the class count (model.decoder_channels unset: 3·C, 36 in the file, 15 here)"
        in line
    )
    assert "--set model.decoder_channels=36 keeps them" in line
    would = int(line.split("keeps them (")[1].split(" of ")[0])
    # and it does: with that width, every tensor but the classifier's loads
    assert main([*args, "--out", str(tmp_path / "b"), "--set", "model.decoder_channels=36"]) == 0
    kept = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("model.init_from"))
    assert f"loaded {would} of" in kept and "decoder's width" not in kept
