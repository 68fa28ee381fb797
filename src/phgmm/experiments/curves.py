"""Learning curves of an experiment's runs, from each run's ``history.json``: validation mIoU
against epochs, training images seen and training seconds, and the latent-use measures along
training (the budget study's figure, ``learning_curves.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..report import new_figure, save_figure

__all__ = ["curve_points", "learning_curves_plot"]

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


def learning_curves_plot(runs: list[dict[str, Any]], path: Path) -> Path | None:
    """mIoU against epochs, images seen and seconds (top row) and the latent measures against
    epochs (bottom row) for every run with at least one validation; None if there is none."""
    have = [m for m in runs if curve_points(m.get("history") or [])]
    if not have:
        return None
    fig = new_figure(12.0, 6.8)
    axes = fig.subplots(2, 3)
    for col, (x, label) in enumerate(
        (("epoch", "epoch"), ("images", "training images seen"), ("seconds", "training seconds (one machine)"))
    ):
        ax = axes[0][col]
        for m in have:
            pts = curve_points(m["history"])
            ax.plot(
                [p[x] for p in pts],
                [100 * p["value"] for p in pts],
                marker="o",
                markersize=2.5,
                linewidth=1.2,
                label=m["run"],
            )
        ax.set_xlabel(label)
        ax.set_ylabel("val mIoU (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    for ax, (key, title, scale) in zip(axes[1], LATENT_PANELS, strict=True):
        for m in have:
            pts = curve_points(m["history"], key)
            if pts:
                ax.plot(
                    [p["epoch"] for p in pts],
                    [scale * p["value"] for p in pts],
                    marker="o",
                    markersize=2.5,
                    linewidth=1.2,
                    label=m["run"],
                )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle("Learning curves: validation mIoU and latent use along training", fontsize=10)
    return save_figure(fig, path)
