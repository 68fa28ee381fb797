"""Learning curves of an experiment's runs, from each run's ``history.json``: validation mIoU
against epochs, training images seen and training seconds, and the latent-use measures along
training (the budget study's figure, ``learning_curves.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..report import new_figure, save_figure

__all__ = ["curve_points", "learning_curves_plot", "run_styles"]

#: (history key, panel title, scale) of the latent-use panels
LATENT_PANELS = (
    ("val_mi_z", "I(x; z), nats", 1.0),
    ("val_mi_g", "I(x; g), nats", 1.0),
    ("val_swap_z_random_pixels_changed", "random partner's z: pixels changed (%)", 100.0),
)


def curve_points(history: list[dict[str, Any]], key: str = "val_miou") -> list[dict[str, float]]:
    """One point per validated epoch: the epoch, training images seen so far, training seconds so
    far (validation excluded) and ``key``'s value. Images seen add up each epoch's images/s × its
    seconds, which counts the images trained (drop-last), not the data set's size."""
    points, images, seconds = [], 0.0, 0.0
    for h in sorted(history, key=lambda r: r["epoch"]):
        seconds += float(h.get("epoch_seconds") or 0.0)
        images += float(h.get("images_per_s") or 0.0) * float(h.get("epoch_seconds") or 0.0)
        if h.get(key) is not None:
            points.append({"epoch": float(h["epoch"]), "images": images, "seconds": seconds, "value": float(h[key])})
    return points


def run_styles(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One line style per run, the same in every panel: a colour per network (in order of first
    appearance), a solid line for the longest schedule and dashed for shorter ones, a marker per seed."""
    from matplotlib import colormaps

    colours = colormaps["tab10"]
    models = list(dict.fromkeys(str(m.get("model")) for m in runs))
    longest = max(_epochs(m) for m in runs)
    markers = "osD^v<>ph*"
    return {
        m["run"]: {
            "color": colours(models.index(str(m.get("model"))) % 10),
            "linestyle": "-" if _epochs(m) == longest else "--",
            "marker": markers[int((m.get("config") or {}).get("seed", 0)) % len(markers)],
            "markersize": 3,
            "linewidth": 1.2,
            "label": m["run"],
        }
        for m in runs
    }


def _epochs(run: dict[str, Any]) -> int:
    """The run's schedule length: train.epochs of its config, else its last epoch in the history."""
    epochs = ((run.get("config") or {}).get("train") or {}).get("epochs")
    return int(epochs) if epochs else int(max((h["epoch"] for h in run.get("history") or []), default=0))


def learning_curves_plot(runs: list[dict[str, Any]], path: Path) -> Path | None:
    """mIoU against epochs, images seen and seconds (top row) and the latent measures against
    epochs (bottom row) for every run with at least one validation, each run in one style
    (``run_styles``) with one legend for the figure; None if there is none."""
    have = [m for m in runs if curve_points(m.get("history") or [])]
    if not have:
        return None
    styles = run_styles(have)
    fig = new_figure(12.0, 7.6)
    axes = fig.subplots(2, 3)
    for col, (x, label) in enumerate(
        (("epoch", "epoch"), ("images", "training images seen"), ("seconds", "training seconds (one machine)"))
    ):
        ax = axes[0][col]
        for m in have:
            pts = curve_points(m["history"])
            ax.plot([p[x] for p in pts], [100 * p["value"] for p in pts], **styles[m["run"]])
        ax.set_xlabel(label)
        ax.set_ylabel("val mIoU (%)")
        ax.grid(alpha=0.3)
    for ax, (key, title, scale) in zip(axes[1], LATENT_PANELS, strict=True):
        for m in have:
            pts = curve_points(m["history"], key)
            if pts:
                ax.plot([p["epoch"] for p in pts], [scale * p["value"] for p in pts], **styles[m["run"]])
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=7)
    fig.suptitle("Learning curves: validation mIoU and latent use along training", fontsize=10)
    return save_figure(fig, path)
