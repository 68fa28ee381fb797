"""Experiments: a tiny comparison trains every listed model, writes well-formed tables, skips
finished runs when rerun and resumes an unfinished one from its checkpoint."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from phgmm.config import ConfigError
from phgmm.experiments import load_experiment, run_experiment, write_experiment_report
from phgmm.io import read_json

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "data.size=128x64",
    "data.num_workers=0",
    "train.epochs=1",
    "train.val_every=1",
    "train.max_steps_per_epoch=2",
    "'model.decoder_units=[1, 1, 1, 1]'",
    "model.latent_dim=16",
    "model.component_dim=8",
    "model.local_channels=32",
    "model.global_dim=8",
    "model.num_components=3",
    "train.batch_size=2",
    "eval.batch_size=2",
    "eval.tsne=false",
    "eval.trimap_max_width=5",
]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    from phgmm.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, num=8, size=(128, 64), seed=5, fmt="cityscapes", val_fraction=0.25, progress=False)
    return root


def write_experiment(path: Path, root: Path, runs: dict[str, list[str]], kind: str = "compare") -> Path:
    lines = [
        f"kind: {kind}",
        f"base: {REPO / 'configs' / 'demo.yaml'}",
        "set:",
        f"  - data.root={root}",
        *[f"  - {s}" for s in TINY],
        f"output_dir: {path.parent / 'out'}",
        f"results_dir: {path.parent / 'results'}",
        "runs:",
    ]
    for name, overrides in runs.items():
        lines += [f"  - name: {name}", f"    set: [{', '.join(overrides)}]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compare_trains_every_model_and_skips_finished_runs(synth_root, tmp_path):
    # every model through the engine is test_models_cli.py; here two kinds are enough for the table
    exp_file = write_experiment(tmp_path / "exp.yaml", synth_root, {"phgmm": [], "fcn8s": ["model.name=fcn8s"]})
    exp = load_experiment(exp_file, kind="compare")
    logs: list[str] = []
    run_experiment(exp, progress=False, log=logs.append)
    results = tmp_path / "results"
    for name in ("phgmm", "fcn8s"):
        m = read_json(results / name / "metrics.json")
        assert m["model"] == name and 0 <= m["miou"] <= 1 and len(m["trimap"]) == 5
        assert m["timing"]["train_seconds_per_epoch"] > 0 and m["timing"]["inference_seconds_per_image"] > 0
        assert (results / name / "history.json").is_file() and (results / name / "config.yaml").is_file()
    assert "latent" in read_json(results / "phgmm" / "metrics.json")
    md = (results / "results.md").read_text()
    for name in ("phgmm", "fcn8s"):
        assert f"| {name} |" in md
    assert "## Per-class IoU" in md and "## Use of the latent spaces" in md and "![trimap.png]" in md
    assert "decode p(z\\|x,y)" in md  # a "|" inside a cell is escaped, or the table loses its columns
    tables = [[line for line in block.splitlines() if line.startswith("|")] for block in md.split("\n\n")]
    for table in filter(None, tables):
        cells = [len(re.split(r"(?<!\\)\|", line)) for line in table]
        assert cells == [cells[0]] * len(table), table[0]
    rows = list(csv.DictReader((results / "results.csv").open()))
    assert [r["run"] for r in rows] == ["phgmm", "fcn8s"]
    assert all(len(r) == len(rows[0]) for r in rows) and "iou_sky" in rows[0]
    # a rerun trains nothing: every run is found finished
    before = {p: p.stat().st_mtime_ns for p in results.glob("*/metrics.json")}
    logs.clear()
    run_experiment(exp, progress=False, log=logs.append)
    assert sum("finished earlier" in line for line in logs) == 2
    assert before == {p: p.stat().st_mtime_ns for p in results.glob("*/metrics.json")}


def test_unfinished_run_resumes_and_only_picks_runs(synth_root, tmp_path):
    from phgmm.engine.training.trainer import train

    exp = load_experiment(
        write_experiment(
            tmp_path / "exp.yaml", synth_root, {"a": ["train.epochs=2"], "b": ["model.name=fcn8s"]}, kind="latent"
        )
    )
    # run "a" was stopped after its first epoch (another machine, a killed job …)
    train(exp.config(exp.runs[0]), stop_after_epochs=1, progress=False)
    logs: list[str] = []
    run_experiment(exp, only="a", progress=False, log=logs.append)
    assert any("resuming from" in line for line in logs)
    history = read_json(tmp_path / "results" / "a" / "history.json")
    assert [h["epoch"] for h in history] == [1, 2]
    assert not (tmp_path / "results" / "b").exists()
    assert "1 of 2 runs finished" in write_experiment_report(tmp_path / "results").read_text()
    with pytest.raises(ConfigError, match="no run named c"):
        run_experiment(exp, only="a,c", progress=False)


def test_bad_experiment_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: compare\nbase: demo\nruns:\n  - name: a\n    set: [train.epoch=3]\n")
    with pytest.raises(ConfigError, match="run 'a'.*did you mean train.epochs"):
        load_experiment(bad)
    bad.write_text("kind: compare\nbase: demo\nruns:\n  - name: a/b\n")
    with pytest.raises(ConfigError, match="plain folder name"):
        load_experiment(bad)
    bad.write_text("kind: ablation\nbase: demo\nruns:\n  - name: a\n")
    with pytest.raises(ConfigError, match="phgmm experiment ablation"):
        load_experiment(bad, kind="compare")


def test_every_shipped_experiment_resolves():
    from phgmm.configs import list_configs

    names = [n for n, _ in list_configs() if n.startswith("experiments/")]
    assert {
        "experiments/compare_camvid",
        "experiments/ablation_camvid",
        "experiments/latent_camvid",
        "experiments/compare_synth",
        "experiments/compare_cityscapes",
    } <= set(names)
    for name in names:
        exp = load_experiment(name)
        assert exp.runs and all(exp.config(r).output_dir.endswith(r.name) for r in exp.runs)
