"""An experiment file edited after some of its runs finished: the finished runs are kept as they
ran, and neither the command nor results.md describes them with settings they never used
(before: "finished earlier", and results.md said train.epochs=2 while the run's config.yaml said 1).
experiment.json records the thread count the runs use, after --threads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from phgmm.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = [
    "data.size=128x64",
    "data.num_workers=0",
    "train.val_every=1",
    "train.max_steps_per_epoch=1",
    "'model.decoder_units=[1, 1, 1, 1]'",
    "model.latent_dim=16",
    "model.component_dim=8",
    "model.local_channels=32",
    "model.global_dim=8",
    "model.num_components=3",
    "train.batch_size=2",
    "eval.batch_size=2",
    "eval.tsne=false",
    "eval.trimap_max_width=2",
    "eval.latent=false",
]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from phgmm.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, num=4, size=(128, 64), seed=5, fmt="cityscapes", val_fraction=0.25, progress=False)
    return root


def _write(path: Path, root: Path, epochs: int) -> Path:
    lines = [
        "kind: compare",
        "base: demo",
        "set:",
        f"  - data.root={root}",
        *[f"  - {s}" for s in TINY],
        f"  - train.epochs={epochs}",
        f"output_dir: {path.parent / 'out'}",
        f"results_dir: {path.parent / 'results'}",
        "runs:",
        "  - name: phgmm",
        "    set: []",
        "  - name: fcn8s",
        "    set: [model.name=fcn8s]",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def finished(synth, tmp_path_factory) -> Path:
    """The experiment file (train.epochs=1) after its run phgmm finished under --threads 1, started
    from a process running 2 threads."""
    exp = _write(tmp_path_factory.mktemp("exp") / "exp.yaml", synth, epochs=1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert (
            main(["experiment", "compare", "--config", str(exp), "--only", "phgmm", "--no-progress", "--threads", "1"])
            == 0
        )
    finally:
        torch.set_num_threads(before)
    return exp


def test_experiment_json_records_the_threads_the_runs_used(finished):
    # the count the runs used (--threads 1), not this process's count before it applied (2)
    info = json.loads((finished.parent / "results" / "experiment.json").read_text())
    assert info["machines"][-1]["torch_threads"] == 1


def test_an_edited_experiment_does_not_misdescribe_its_finished_runs(finished, synth, capsys):
    results = finished.parent / "results"
    capsys.readouterr()
    _write(finished, synth, epochs=2)
    assert main(["experiment", "compare", "--config", str(finished), "--only", "phgmm", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "[phgmm] finished earlier" in out
    assert "it ran with other settings than the file now gives (train.epochs: ran with 1, the file now says 2)" in out
    assert f"remove {results / 'phgmm'}" in out
    md = (results / "results.md").read_text()
    assert (
        "**phgmm** ran with other settings than the experiment file now gives (its config.yaml): "
        "train.epochs: ran with 1, the file now says 2." in md
    )
    # the run's own files are as it ran
    assert "epochs: 1" in (results / "phgmm" / "config.yaml").read_text()
