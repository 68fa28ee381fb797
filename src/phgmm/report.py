"""A self-contained evaluation report: ``report.md`` plus PNG figures beside it.

``write_report`` draws with matplotlib's object API on the Agg canvas (no ``pyplot``, no global
backend switch, safe in headless and threaded runs) and links every figure relatively
(``figures/iou.png``), so the folder can be moved or viewed in any Markdown viewer. Every part
whose data is missing is simply left out.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .conventions import IGNORE_INDEX
from .io import atomic_write_bytes
from .visualize import colorize, error_overlay, heatmap, to_numpy, to_rgb_uint8

__all__ = ["write_report", "FIGURE_DIR", "md_escape", "classes_in_mean", "latent_use_line", "reliability_diagram"]

FIGURE_DIR = "figures"

_KNOWN_KEYS = {
    "miou",
    "iou",
    "precision",
    "recall",
    "pixel_accuracy",
    "confusion",
    "class_names",
    "trimap",
    "boundary_iou",
    "mean_boundary_iou",
    "num_images",
    "clustering",
    "mean_precision",
    "mean_recall",
}


# --------------------------------------------------------------------------- helpers
def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def format_percent(x: Any) -> str:
    """A fraction as a percentage with two decimals; "–" for a missing or non-finite value."""
    v = _num(x)
    if v is None:
        return "–"
    v = 100.0 * v
    return f"{0.0 if abs(v) < 0.005 else v:.2f}"  # no "-0.00" for a rounding-size difference


def _fmt(x: Any, digits: int = 4) -> str:
    v = _num(x)
    return "–" if v is None else f"{v:.{digits}g}"


def classes_in_mean(metrics: dict, names: Sequence[str], excluded: Iterable[int] = (0,)) -> int:
    """How many classes the mIoU averages: those not excluded whose IoU is defined (present in the
    ground truth or the prediction), as :func:`phgmm.metrics.confusion.compute_scores` takes them."""
    iou = metrics.get("iou") or {}
    skip = set(excluded)
    return sum(i not in skip and (not iou or iou.get(n) is not None) for i, n in enumerate(names))


def excluded_indices(metrics: dict, names: Sequence[str]) -> tuple[int, ...]:
    """The class indices the mIoU of ``metrics`` left out: those ``miou_excluded`` names (recorded
    since the class tables say it), else class 0, as every metrics.json written before did."""
    if "miou_excluded" not in metrics:
        return (0,)
    return tuple(i for i, n in enumerate(names) if n in set(metrics["miou_excluded"] or []))


def md_escape(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def save_figure(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)  # constrained layout already fits the labels
    return atomic_write_bytes(path, buf.getvalue())


def new_figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def _palette(colors: Sequence[Sequence[int]] | None, n: int) -> np.ndarray:
    if colors is not None and len(colors) >= n:
        return np.asarray(colors, dtype=np.int64)[:n].clip(0, 255)
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return (np.asarray([cmap(i % 20)[:3] for i in range(n)]) * 255).round().astype(np.int64)


def _per_class(metrics: dict, key: str, names: Sequence[str]) -> list[float | None]:
    d = metrics.get(key)
    if d is None:
        return [None] * len(names)
    if isinstance(d, dict):
        return [_num(d.get(n)) for n in names]
    vals = list(d)
    return [_num(vals[i]) if i < len(vals) else None for i in range(len(names))]


# --------------------------------------------------------------------------- figures
def _iou_figure(path: Path, names, ious, colors, miou, excluded) -> Path:
    fig = new_figure(max(6.0, 0.6 * len(names) + 2), 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    vals = [100.0 * v if v is not None else 0.0 for v in ious]
    bar_colors = [tuple(c / 255.0) for c in colors]
    bars = ax.bar(x, vals, color=bar_colors, edgecolor="black", linewidth=0.6)
    for i, (b, v) in enumerate(zip(bars, ious, strict=True)):
        if i in excluded:
            b.set_hatch("//")
            b.set_alpha(0.5)
        ax.text(
            b.get_x() + b.get_width() / 2,
            b.get_height() + 1,
            "n/a" if v is None else f"{100 * v:.1f}",
            ha="center",
            va="bottom",
            fontsize=7,
            in_layout=False,
        )
    if miou is not None:
        ax.axhline(100.0 * miou, color="crimson", linestyle="--", linewidth=1.2, label=f"mIoU {100 * miou:.2f}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(
        [n + (" *" if i in excluded else "") for i, n in enumerate(names)], rotation=45, ha="right", fontsize=8
    )
    ax.set_ylim(0, 105)
    ax.set_ylabel("IoU (%)")
    ax.set_title("Per-class IoU (* = not in the mean)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def _trimap_figure(path: Path, trimap: dict) -> Path:
    items = sorted(((float(k), _num(v)) for k, v in trimap.items()), key=lambda kv: kv[0])
    xs = [k for k, v in items if v is not None]
    ys = [100.0 * v for k, v in items if v is not None]
    fig = new_figure(5.5, 3.6)
    ax = fig.add_subplot()
    ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.4)
    ax.set_xlabel("trimap width (pixels)")
    ax.set_ylabel("pixel error in band (%)")
    ax.set_title("Trimap error", fontsize=10)
    ax.grid(alpha=0.3)
    if ys:
        ax.set_ylim(0, max(ys) * 1.1 + 1e-6)
    return save_figure(fig, path)


def _confusion_figure(path: Path, confusion, names) -> Path:
    m = np.asarray(confusion, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(names)
    size = max(5.0, 0.5 * n + 2.5)
    fig = new_figure(size + 1.0, size)
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title("Confusion matrix (row-normalised: recall on the diagonal)", fontsize=10)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if norm[i, j] >= 0.005:
                    ax.text(
                        j,
                        i,
                        f"{100 * norm[i, j]:.0f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black",
                        in_layout=False,
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return save_figure(fig, path)


def tsne_figure(path: Path, embedding, labels) -> Path:
    from matplotlib import colormaps

    e = to_numpy(embedding).astype(np.float64)
    lab = to_numpy(labels).reshape(-1)
    if e.ndim != 2 or e.shape[1] != 2 or e.shape[0] != lab.shape[0]:
        raise ValueError(f"tsne must be (embedding (n, 2), labels (n,)), got {e.shape} and {lab.shape}")
    fig = new_figure(5.5, 4.8)
    ax = fig.add_subplot()
    uniq = np.unique(lab)
    cmap = colormaps["tab20"]
    for i, k in enumerate(uniq):
        sel = lab == k
        ax.scatter(e[sel, 0], e[sel, 1], s=8, color=cmap(i % 20), label=f"k={k}", alpha=0.8)
    if len(uniq) <= 20:
        ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of the component means of z (colour = component k)", fontsize=10)
    return save_figure(fig, path)


def reliability_diagram(calibration: dict, path: str | os.PathLike, title: str = "Reliability diagram") -> Path:
    """Accuracy per confidence bin against the diagonal, ECE in the title; writes a PNG
    (atomically) from a :meth:`phgmm.metrics.calibration.CalibrationAccumulator.compute` result
    and returns its path. The bars are :func:`phgmm.metrics.calibration.reliability_bins`."""
    from .metrics.calibration import reliability_bins

    r = reliability_bins(calibration)
    filled = r["filled"]
    fig = new_figure(5, 5)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(
        r["lower"],
        r["accuracy"],
        width=r["width"],
        align="edge",
        color="tab:blue",
        edgecolor="black",
        linewidth=0.6,
        label="accuracy",
    )
    ax.bar(
        r["lower"][filled],
        r["gap"][filled],
        bottom=r["gap_bottom"][filled],
        width=r["width"][filled],
        align="edge",
        color="tab:red",
        alpha=0.35,
        edgecolor="tab:red",
        hatch="//",
        linewidth=0.6,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1.0, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence (max softmax probability)")
    ax.set_ylabel("accuracy")
    ece = _num(calibration.get("ece"))
    ece_text = f"ECE = {ece:.4f}" if ece is not None else "ECE = n/a"
    ax.set_title(f"{title}\n{ece_text}" if title else ece_text)
    ax.legend(loc="upper left", fontsize="small")
    return save_figure(fig, Path(path))


def _samples_figure(path: Path, samples, names, colors, ignore_index: int) -> Path:
    from matplotlib.patches import Patch

    samples = list(samples)
    has_unc = any(len(s) > 3 and s[3] is not None for s in samples)
    has_rgb = any(s[0] is not None for s in samples)  # no input column if there is no image at all
    cols = (
        (["input"] if has_rgb else []) + ["ground truth", "prediction", "error"] + (["uncertainty"] if has_unc else [])
    )
    first_gt = to_numpy(samples[0][1])
    aspect = first_gt.shape[0] / max(1, first_gt.shape[1])
    cell_w = 3.0
    fig = new_figure(cell_w * len(cols), cell_w * aspect * len(samples) + 0.9)
    axes = fig.subplots(len(samples), len(cols), squeeze=False)
    for r, s in enumerate(samples):
        rgb, gt, pred = s[0], to_numpy(s[1]), to_numpy(s[2])
        if gt.shape != pred.shape or gt.ndim != 2:
            raise ValueError(f"sample {r}: gt and pred must be H×W of the same size, got {gt.shape} and {pred.shape}")
        img = np.full(gt.shape + (3,), 128, np.uint8) if rgb is None else to_rgb_uint8(rgb)
        panels = ([img] if has_rgb else []) + [
            colorize(gt, colors),
            colorize(pred, colors),
            error_overlay(img, pred, gt, ignore_index),
        ]
        if has_unc:
            u = s[3] if len(s) > 3 else None
            panels.append(heatmap(u) if u is not None else np.zeros_like(img))
        step = max(1, int(math.ceil(max(panels[0].shape[:2]) / 320)))  # ~300 px per panel is plenty
        for c, panel in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(panel[::step, ::step], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=9)
    handles = [
        Patch(facecolor=tuple(np.asarray(colors[i]) / 255.0), edgecolor="black", label=n) for i, n in enumerate(names)
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(names), 6), fontsize=7)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- report sections
# Each section returns its Markdown lines (empty when its data is missing) and draws its figure.
def _summary_section(metrics: dict, names: list[str], excluded: set[int]) -> list[str]:
    """The headline numbers, then every other scalar entry of ``metrics``."""
    rows = []
    n_mean = classes_in_mean(metrics, names, excluded)
    if "miou" in metrics:
        left = ", ".join(names[i] for i in sorted(excluded) if i < len(names))
        rows.append(
            (
                f"mIoU ({n_mean} classes{f', {left} excluded' if left else ''})" if names else "mIoU",
                format_percent(metrics["miou"]) + " %",
            )
        )
    for key, label in (
        ("pixel_accuracy", "pixel accuracy (all scored pixels)"),
        ("mean_precision", "mean precision"),
        ("mean_recall", "mean recall"),
        ("mean_boundary_iou", "mean Boundary IoU"),
    ):
        if key in metrics:
            rows.append((label, format_percent(metrics[key]) + " %"))
    if "num_images" in metrics:
        rows.append(("images", str(metrics["num_images"])))
    for k, v in metrics.items():
        if k in _KNOWN_KEYS or isinstance(v, (dict, list, tuple)) or v is None:
            continue
        if isinstance(v, (int, float, str, bool, np.generic)):
            rows.append((str(k), _fmt(v, 6) if isinstance(v, (float, np.floating)) else str(v)))
    if not rows:
        return []
    return ["| metric | value |", "|---|---:|"] + [f"| {md_escape(a)} | {b} |" for a, b in rows] + [""]


def _per_class_section(
    metrics: dict, names: list[str], excluded: set[int], pal: np.ndarray, fig_dir: Path
) -> list[str]:
    """A table of the per-class scores and a bar chart of the per-class IoU."""
    cols = [k for k in ("iou", "precision", "recall", "boundary_iou") if k in metrics]
    if not names or not cols:
        return []
    header = {"iou": "IoU", "precision": "precision", "recall": "recall", "boundary_iou": "Boundary IoU"}
    values = {k: _per_class(metrics, k, names) for k in cols}
    md = [
        "## Per-class scores",
        "",
        'Scores in %, from one confusion matrix over the whole split; "–" = undefined '
        "(class absent from ground truth and prediction). Classes marked * are scored "
        "but not in the mean.",
        "",
        "| class | " + " | ".join(header[k] for k in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for i, n in enumerate(names):
        mark = " *" if i in excluded else ""
        md.append(f"| {md_escape(n)}{mark} | " + " | ".join(format_percent(values[k][i]) for k in cols) + " |")
    md.append("")
    if "iou" in metrics:
        p = _iou_figure(fig_dir / "iou.png", names, values["iou"], pal, _num(metrics.get("miou")), excluded)
        md += [f"![Per-class IoU]({FIGURE_DIR}/{p.name})", ""]
    return md


def _trimap_section(metrics: dict, fig_dir: Path) -> list[str]:
    """The error near label boundaries: a few band widths in a table, all of them in a curve."""
    trimap = metrics.get("trimap")
    if not isinstance(trimap, dict) or all(_num(v) is None for v in trimap.values()):
        return []
    p = _trimap_figure(fig_dir / "trimap.png", trimap)
    items = sorted(((float(k), k, v) for k, v in trimap.items()))
    show = [(k, v) for f, k, v in items if f in (1, 2, 5, 10, 20, 30, 40)] or [(k, v) for _, k, v in items[:8]]
    return [
        "## Trimap",
        "",
        "Pixel error (%) inside a band of the given width (pixels) around ground-truth label boundaries.",
        "",
        "| width | " + " | ".join(str(k) for k, _ in show) + " |",
        "|---|" + "---:|" * len(show),
        "| error (%) | " + " | ".join(format_percent(v) for _, v in show) + " |",
        "",
        f"![Trimap error curve]({FIGURE_DIR}/{p.name})",
        "",
    ]


def _confusion_section(metrics: dict, names: list[str], fig_dir: Path) -> list[str]:
    conf = metrics.get("confusion")
    if conf is None or not names or np.asarray(conf).shape != (len(names), len(names)):
        return []
    p = _confusion_figure(fig_dir / "confusion.png", conf, names)
    return ["## Confusion matrix", "", f"![Confusion matrix]({FIGURE_DIR}/{p.name})", ""]


def _clustering_section(metrics: dict, tsne: tuple | None, fig_dir: Path) -> list[str]:
    """Cluster-quality indices of z (one row per entry, e.g. per epoch) and the t-SNE plot."""
    clustering = metrics.get("clustering")
    if not clustering and tsne is None:
        return []
    md = ["## Clustering of the local latent space z", ""]
    if clustering:
        md += _clustering_table(clustering if isinstance(clustering, (list, tuple)) else [clustering])
    if tsne is not None:
        p = tsne_figure(fig_dir / "tsne.png", tsne[0], tsne[1])
        md += [f"![t-SNE of z]({FIGURE_DIR}/{p.name})", ""]
    return md


def _clustering_table(entries: Sequence) -> list[str]:
    extra = [k for k in ("epoch", "step") if any(isinstance(e, dict) and k in e for e in entries)]
    md = [
        "Silhouette (higher is better), Calinski–Harabasz (higher is better), Davies–Bouldin (lower is better).",
        "",
        "| " + " | ".join(extra + ["silhouette", "Calinski–Harabasz", "Davies–Bouldin", "note"]) + " |",
        "|" + "---:|" * (len(extra) + 3) + "---|",
    ]
    for e in entries:
        if not isinstance(e, dict):
            continue
        cells = [str(e.get(k, "")) for k in extra]
        cells += [
            _fmt(e.get("silhouette")),
            _fmt(e.get("calinski_harabasz")),
            _fmt(e.get("davies_bouldin")),
            md_escape(e.get("reason") or ""),
        ]
        md.append("| " + " | ".join(cells) + " |")
    return md + [""]


#: swap partners in the order report.md lists them, with their row labels
_PARTNER_ROWS = (
    ("random", "a random other image", "a seeded derangement of the set"),
    ("far", "the most different image", "by label histogram"),
    ("zero", "the zero code", None),
    ("mean", "the mean code of the set", None),
    ("adjacent", "the previous image", "near-duplicates on video data"),
)


def _both(lat: dict, fmt) -> tuple[str, str]:
    """The z and g cells of a row: ``fmt(space)``, or – where that space was not measured."""
    return tuple(fmt(space) if fmt(space) is not None else "–" for space in ("z", "g"))


def _latent_use_rows(lat: dict) -> list[tuple[str, str, str]]:
    """Rows (measure, z, g) of the latent-use table: units, information, sensitivity, swaps."""

    def units(prefix: str = ""):
        return lambda sp: (
            f"{lat[f'{prefix}{sp}_active_units']}" + (f" of {lat[f'{sp}_units']}" if not prefix else "")
            if f"{prefix}{sp}_active_units" in lat
            else None
        )

    def info(prefix: str = ""):
        return lambda sp: (
            f"{_fmt(lat[f'{prefix}mi_{sp}'], 3)} ± {_fmt(lat.get(f'{prefix}mi_{sp}_stderr'), 2)}"
            if f"{prefix}mi_{sp}" in lat
            else None
        )

    def bounds():
        def cell(sp):
            up, low = lat.get(f"mi_{sp}_upper"), lat.get(f"mi_{sp}_lower")
            if up is None:
                return None
            return f"[{_fmt(low, 2)}, {_fmt(up, 2)}]" if low is not None else f"≤ {_fmt(up, 2)}"

        return cell

    def value(key: str):
        return lambda sp: _fmt(lat[key.format(sp)], 3) if key.format(sp) in lat else None

    bound = lat.get("mi_upper_bound")
    rows = [
        (f"active units (variance of the posterior mean > {lat.get('active_threshold')})", units()),
        ("active units of an untrained network (same config and seed)", units("untrained_")),
        (f"I(x; ·) under q, nats (at most log N = {_fmt(bound, 3)})", info()),
        ("I(x; ·), noise-free pairwise bounds (Bhattacharyya ≤ I ≤ KL)", bounds()),
        ("I(x; ·) of the untrained network, nats", info("untrained_")),
        ("decoder sensitivity: mean ‖∂logits/∂u‖ per code element ÷ per skip element", value("sensitivity_{}")),
        ("decoder sensitivity of the untrained network", value("untrained_sensitivity_{}")),
        ("share of the first-order attribution Σ|u·∂φ/∂u| (skips: the rest)", value("attribution_{}")),
    ]
    out = [(label, *_both(lat, fn)) for label, fn in rows]
    for kind, label, detail in _PARTNER_ROWS:

        def swap(sp, kind=kind):
            key = f"swap_{sp}_{kind}_miou_drop"
            if key not in lat:
                return None
            return (
                f"{format_percent(lat[key])} points, "
                f"{_fmt(100 * lat[f'swap_{sp}_{kind}_pixels_changed'], 3)} % of pixels"
            )

        distance = lat.get(f"partner_{kind}_distance")
        details = [d for d in (detail, distance is not None and f"label-histogram distance {_fmt(distance, 2)}") if d]
        note = f" ({'; '.join(details)})" if details else ""
        out.append((f"decoded with {label}{note}: mIoU lost, pixels changed", *_both(lat, swap)))
    return [r for r in out if r[1:] != ("–", "–")]


def _latent_section(metrics: dict) -> list[str]:
    """Use of the latent spaces (PHGMM): active units beside an untrained network's, I(x; z) and
    I(x; g), the decoder's sensitivity, the swap test with fair partners, KL, collapse-proof
    clustering (docs/latent.md, "How latent use is measured")."""
    lat = metrics.get("latent")
    if not lat:
        return []
    md = [
        "## Use of the latent spaces",
        "",
        "A latent space the decoder ignores costs nothing when swapped, carries no information about "
        "the image (I(x; ·) = 0; at most log N for N images) and has no active unit — but an untrained "
        "network may have none either, hence its row. Definitions and biases: docs/latent.md, "
        '"How latent use is measured".',
        "",
    ]
    if "measures_skipped" in lat:
        md += [f"Not measured: {lat['measures_skipped']}.", ""]
    use = _latent_use_rows(lat)
    if use:
        md += ["| measure | z | g |", "|---|---:|---:|"]
        md += [f"| {md_escape(a)} | {b} | {c} |" for a, b, c in use]
        if "decode_miou" in lat:
            md += [
                "",
                f"mIoU lost is against decoding each whole image from its own means "
                f"({format_percent(lat['decode_miou'])} mIoU); partner seed {lat.get('partner_seed')}, "
                f"{lat.get('images')} images, {lat.get('mi_samples')} Monte-Carlo draws per image, "
                f"sensitivity on {lat.get('sensitivity_images', 0)} images.",
            ]
        md.append("")
    rows = []
    if "posterior_decode_gain" in lat:
        rows.append(
            (
                "mIoU gained when decoded with PostNet's p(z|x,y), which sees the labels",
                f"{format_percent(lat['posterior_decode_gain'])} points "
                f"({format_percent(lat.get('posterior_decode_pixels_changed'))} % of pixels change)",
            )
        )
    if "z_kl_to_posterior" in lat:
        rows.append(("KL(q(z|x) ‖ p(z|x,y)) per image, nats (matched upper bound)", _fmt(lat["z_kl_to_posterior"])))
    if "g_kl" in lat:
        rows.append(("KL(q(g|x) ‖ N(0, I)) per image, nats", _fmt(lat["g_kl"])))
    for key, label in (
        ("clustering_active", "silhouette of μ_k by k over active units"),
        ("clustering_by_class", "silhouette of each image's z by its dominant class"),
    ):
        if isinstance(metrics.get(key), dict):
            rows.append((label, _fmt(metrics[key].get("silhouette"))))
    if rows:
        md += ["| measure | value |", "|---|---:|"] + [f"| {md_escape(a)} | {b} |" for a, b in rows] + [""]
    return md


def latent_use_line(lat: dict) -> str:
    """The one console line of PHGMM's latent use (``phgmm evaluate`` and each validation of
    ``phgmm train``), "z | g" side by side: the pixels a random and the most different partner's
    code change, I(x; ·) against its bound log N, the decoder's sensitivity relative to the skips
    (and an untrained network's); empty where nothing was measured."""

    def pair(key: str, fmt) -> str | None:
        cells = [lat.get(key.format(s)) for s in ("z", "g")]
        return None if all(c is None for c in cells) else " | ".join("–" if c is None else fmt(c) for c in cells)

    def pct(x):
        return f"{100 * x:.3g} %"

    info = pair("mi_{}", lambda v: f"{v:.3g}")
    upper = pair("mi_{}_upper", lambda v: f"{v:.3g}")
    info = info and upper and f"{info} (noise-free upper bounds {upper})" or info
    parts = [
        f"{name} {text}"
        for name, text in (
            ("a random partner's code changes", pair("swap_{}_random_pixels_changed", pct)),
            ("the most different image's", pair("swap_{}_far_pixels_changed", pct)),
            ("I(x; ·)", info and f"{info} of at most {lat.get('mi_upper_bound', float('nan')):.3g} nats"),
            ("sensitivity ÷ skips", pair("sensitivity_{}", lambda v: f"{v:.3g}")),
            ("untrained", pair("untrained_sensitivity_{}", lambda v: f"{v:.3g}")),
        )
        if text is not None
    ]
    return "latent use (z | g): " + "; ".join(parts) if parts else ""


def _uncertainty_section(metrics: dict, fig_dir: Path) -> list[str]:
    """AUROC / AUPR of the uncertainty maps for wrong pixels, ECE and a reliability diagram."""
    unc = metrics.get("uncertainty")
    if not unc:
        return []
    labels = {
        "softmax_entropy": "softmax entropy",
        "sampled_entropy": "predictive entropy of samples of z",
        "mutual_information": "mutual information of samples of z",
    }
    md = [
        "## Uncertainty",
        "",
        "How well each map tells wrong pixels from right ones: AUROC (0.5 = chance, 1 = every wrong pixel "
        "more uncertain than every right one) and AUPR (a useless map scores the error rate).",
        "",
        "| map | AUROC | AUPR | error rate |",
        "|---|---:|---:|---:|",
    ]
    for key, label in labels.items():
        if key in unc:
            m = unc[key]
            md.append(
                f"| {label} | {_fmt(m.get('auroc'))} | {_fmt(m.get('aupr'))} | "
                f"{format_percent(m.get('error_rate'))} % |"
            )
    cal = unc.get("calibration")
    if cal:
        p = reliability_diagram(cal, fig_dir / "reliability.png", title="Reliability of the softmax")
        md += [
            "",
            f"Expected calibration error of the softmax (15 bins): {format_percent(cal.get('ece'))} %.",
            "",
            f"![Reliability diagram]({FIGURE_DIR}/{p.name})",
        ]
    return md + [""]


def _samples_section(
    samples: Sequence[tuple] | None, names: list[str], pal: np.ndarray, ignore_index: int, fig_dir: Path
) -> list[str]:
    """A grid of sample images: input, ground truth, prediction, error (and uncertainty)."""
    if not samples:
        return []
    p = _samples_figure(
        fig_dir / "samples.png",
        samples,
        names or [f"class_{i}" for i in range(len(pal))],
        [tuple(int(v) for v in c) for c in pal],
        ignore_index,
    )
    has_rgb = any(s[0] is not None for s in samples)
    has_unc = any(len(s) > 3 and s[3] is not None for s in samples)
    cols = (
        ("input, " if has_rgb else "") + "ground truth, prediction, error (green = right, red = wrong, "
        "gray = ignored"
        + ("" if has_rgb else "; drawn over a gray canvas: no input image available")
        + ")"
        + (", predictive uncertainty" if has_unc else "")
    )
    return ["## Samples", "", f"Columns: {cols}.", "", f"![Samples]({FIGURE_DIR}/{p.name})", ""]


# --------------------------------------------------------------------------- report
def _class_names(metrics: dict, class_names: Sequence[str] | None) -> list[str]:
    """The given names, else ``metrics["class_names"]``, else the IoU keys, else ``class_i``."""
    names = list(class_names) if class_names is not None else list(metrics.get("class_names") or [])
    if not names and isinstance(metrics.get("iou"), dict):
        names = list(metrics["iou"].keys())
    if not names and metrics.get("confusion") is not None:
        names = [f"class_{i}" for i in range(len(metrics["confusion"]))]
    return names


def _num_colors(names: list[str], samples: Sequence[tuple] | None, ignore_index: int) -> int:
    if names or not samples:
        return len(names)
    # no class list at all: cover every label seen in the samples
    seen = [
        int(v)
        for smp in samples
        for a in (smp[1], smp[2])
        for v in np.unique(to_numpy(a))
        if int(v) != ignore_index and v >= 0
    ]
    return max(seen) + 1 if seen else 1


def write_report(
    out_dir: str | os.PathLike,
    metrics: dict,
    class_names: Sequence[str] | None = None,
    colors: Sequence[Sequence[int]] | None = None,
    samples: Sequence[tuple] | None = None,
    tsne: tuple | None = None,
    title: str = "phgmm evaluation",
    exclude_from_mean: Sequence[int] | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> Path:
    """Write ``out_dir/report.md`` and its figures under ``out_dir/figures/``; returns the path.

    ``metrics`` uses the ``metrics.json`` keys (``miou``, ``iou``, ``precision``, ``recall``,
    ``pixel_accuracy``, ``confusion``, ``trimap``, ``boundary_iou``, ``mean_boundary_iou``,
    ``num_images``; optionally ``clustering``: one dict of indices or a list of them, e.g. one per
    epoch). ``samples``: tuples ``(rgb or None, gt H×W, pred H×W[, uncertainty H×W])``.
    ``tsne``: ``(embedding (n, 2), labels (n,))``. Other scalar entries of ``metrics`` are listed
    in the summary table. ``exclude_from_mean``: the classes the mIoU leaves out; by default those
    ``metrics["miou_excluded"]`` names, or class 0 for metrics written before it was recorded.
    """
    out = Path(out_dir)
    fig_dir = out / FIGURE_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    names = _class_names(metrics, class_names)
    pal = _palette(colors, max(1, _num_colors(names, samples, ignore_index)))
    excluded = {
        int(i) for i in (exclude_from_mean if exclude_from_mean is not None else excluded_indices(metrics, names))
    }
    md: list[str] = [f"# {md_escape(title)}", ""]
    md += _summary_section(metrics, names, excluded)
    md += _per_class_section(metrics, names, excluded, pal, fig_dir)
    md += _trimap_section(metrics, fig_dir)
    md += _confusion_section(metrics, names, fig_dir)
    md += _clustering_section(metrics, tsne, fig_dir)
    md += _latent_section(metrics)
    md += _uncertainty_section(metrics, fig_dir)
    md += _samples_section(samples, names, pal, ignore_index, fig_dir)
    path = out / "report.md"
    atomic_write_bytes(path, "\n".join(md).encode("utf-8"))
    return path
