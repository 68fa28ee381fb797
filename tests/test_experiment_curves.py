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
