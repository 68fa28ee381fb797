"""Learning curves of the budget study: the points taken from a history, and the figure."""

from __future__ import annotations

from phgmm.experiments.curves import curve_points, learning_curves_plot


def _history():
    # 44 steps of 8 = 352 images trained per epoch (drop-last), epochs of 40, 50 and 30 s
    return [
        {"epoch": 1, "images_per_s": 352 / 40, "epoch_seconds": 40.0},
        {"epoch": 2, "images_per_s": 352 / 50, "epoch_seconds": 50.0, "val_miou": 0.25, "val_mi_z": 0.01},
        {"epoch": 3, "images_per_s": 352 / 30, "epoch_seconds": 30.0, "val_miou": 0.30},
    ]


def test_points_count_images_trained_and_training_seconds_up_to_each_validation():
    pts = curve_points(_history())
    assert [p["epoch"] for p in pts] == [2.0, 3.0]
    assert [round(p["images"], 6) for p in pts] == [704.0, 1056.0]
    assert [p["seconds"] for p in pts] == [90.0, 120.0]
    assert [p["value"] for p in pts] == [0.25, 0.30]
    assert [p["value"] for p in curve_points(_history(), "val_mi_z")] == [0.01]


def test_the_figure_is_written_only_when_a_run_validated(tmp_path):
    assert learning_curves_plot([{"run": "a", "history": [_history()[0]]}], tmp_path / "none.png") is None
    out = learning_curves_plot([{"run": "a", "history": _history()}], tmp_path / "curves.png")
    assert out is not None and out.stat().st_size > 10_000


def _run(name: str, model: str, epochs: int, seed: int) -> dict:
    return {"run": name, "model": model, "config": {"seed": seed, "train": {"epochs": epochs}}, "history": _history()}


def test_each_run_keeps_one_style_colour_by_network_line_by_budget_marker_by_seed():
    from phgmm.experiments.curves import run_styles

    runs = [
        _run("phgmm-e100-s0", "phgmm", 100, 0),
        _run("deeplabv3-e100-s0", "deeplabv3", 100, 0),
        _run("phgmm-e100-s1", "phgmm", 100, 1),
        _run("phgmm-e25-s0", "phgmm", 25, 0),
    ]
    s = run_styles(runs)
    assert s["phgmm-e100-s0"]["color"] == s["phgmm-e100-s1"]["color"] == s["phgmm-e25-s0"]["color"]
    assert s["deeplabv3-e100-s0"]["color"] != s["phgmm-e100-s0"]["color"]
    assert [s[r]["linestyle"] for r in ("phgmm-e100-s0", "deeplabv3-e100-s0", "phgmm-e25-s0")] == ["-", "-", "--"]
    assert s["phgmm-e100-s0"]["marker"] == s["phgmm-e25-s0"]["marker"] != s["phgmm-e100-s1"]["marker"]
    assert [s[r["run"]]["label"] for r in runs] == [r["run"] for r in runs]
    # without a config the schedule is the history's last epoch (3 here): the only run is the longest
    assert run_styles([{"run": "a", "model": "fcn8s", "history": _history()}])["a"]["linestyle"] == "-"
