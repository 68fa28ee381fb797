"""Tables and plots of an experiment from its finished runs' small files (``phgmm experiment report``).

Reads ``<results_dir>/experiment.json`` and every ``<results_dir>/<run>/metrics.json`` (+
``history.json``) and writes ``results.md``, ``results.csv`` and the figures beside them:

* per-class IoU and mIoU of every run, laid out as the paper's Tables 1–2;
* trimap error curves of all runs in one plot (Fig. 7) and Boundary IoU;
* timing: seconds per epoch and per image, training and inference (Fig. 10);
* latent use of every PHGMM run (active units, swap test, KL) and the clustering of z over
  training (Fig. 9);
* for ablations, mIoU against K with and without g (Fig. 6).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_bytes, read_json
from ..report import format_percent as _pct
from ..report import md_escape, new_figure, save_figure

__all__ = ["load_results", "write_experiment_report"]

TRIMAP_WIDTHS = ("2", "5", "10", "20", "40")


def load_results(results_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The experiment's description and its finished runs (in the experiment's run order)."""
    results_dir = Path(results_dir)
    info_path = results_dir / "experiment.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{results_dir}: not an experiment results folder (no experiment.json)")
    info = read_json(info_path)
    order = [r["name"] for r in info.get("runs", [])]
    runs = []
    for folder in sorted(p for p in results_dir.iterdir() if (p / "metrics.json").is_file()):
        m = read_json(folder / "metrics.json")
        m.setdefault("run", folder.name)
        hist = folder / "history.json"
        m["history"] = read_json(hist) if hist.is_file() else []
        m["has_tsne"] = (folder / "tsne.png").is_file()
        runs.append(m)
    runs.sort(key=lambda m: order.index(m["run"]) if m["run"] in order else len(order))
    return info, runs


def _num(x: Any, fmt: str = "{:.3f}") -> str:
    return "–" if x is None else fmt.format(float(x))


def _scored_classes(m: dict[str, Any]) -> list[str]:
    names = m.get("class_names") or list(m.get("iou", {}))
    return [n for n in names if n != "background"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(map(md_escape, header)) + " |",
           "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(map(md_escape, r)) + " |" for r in rows]
    return out


def _trimap_mean(m: dict[str, Any]) -> float | None:
    vals = [v for v in (m.get("trimap") or {}).values() if v is not None]
    return float(np.mean(vals)) if vals else None


def _summary_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for m in runs:
        t = m.get("timing", {})
        tri = m.get("trimap") or {}
        rows.append([m["run"], m.get("model", "?"), _pct(m.get("miou")), _pct(m.get("pixel_accuracy")),
                     _pct(m.get("mean_boundary_iou")), *[_pct(tri.get(w)) for w in ("2", "10", "40")],
                     _pct(_trimap_mean(m)),
                     _num(t.get("train_seconds_per_epoch"), "{:.0f}"),
                     _num(None if t.get("inference_seconds_per_image") is None else 1000 * t["inference_seconds_per_image"], "{:.1f}"),
                     _num(None if m.get("parameters") is None else m["parameters"] / 1e6, "{:.2f}")])
    return rows


def _latent_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for m in runs:
        lat = m.get("latent")
        if not lat:
            continue
        z = f"{lat['z_active_units']}/{lat['z_units']}" if "z_units" in lat else "–"
        g = f"{lat['g_active_units']}/{lat['g_units']}" if "g_units" in lat else "–"
        rows.append([m["run"], _pct(m.get("miou")), z, g, _pct(lat.get("swap_z_miou_drop")),
                     _pct(lat.get("swap_z_pixels_changed")), _pct(lat.get("swap_g_miou_drop")),
                     _pct(lat.get("posterior_decode_gain")),
                     _num(lat.get("z_kl_to_posterior")), _num(lat.get("g_kl")),
                     _num((m.get("clustering") or {}).get("silhouette")),
                     _num((m.get("clustering_active") or {}).get("silhouette")),
                     _num((m.get("clustering_by_class") or {}).get("silhouette"))])
    return rows


def _trimap_plot(runs, path: Path) -> Path | None:
    curves = [(m["run"], m.get("trimap") or {}) for m in runs if m.get("trimap")]
    if not curves:
        return None
    fig = new_figure(6.0, 3.8)
    ax = fig.add_subplot()
    for name, tri in curves:
        items = sorted((float(k), v) for k, v in tri.items() if v is not None)
        ax.plot([k for k, _ in items], [100 * v for _, v in items], linewidth=1.4, label=name)
    ax.set_xlabel("trimap width (pixels)")
    ax.set_ylabel("pixel error in band (%)")
    ax.set_title("Trimap error (Fig. 7)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _timing_plot(runs, path: Path) -> Path | None:
    have = [m for m in runs if (m.get("timing") or {}).get("train_seconds_per_image")]
    if not have:
        return None
    fig = new_figure(6.5, 3.4)
    axes = fig.subplots(1, 2)
    names = [m["run"] for m in have]
    axes[0].barh(names, [1000 * m["timing"]["train_seconds_per_image"] for m in have], color="tab:blue")
    axes[0].set_xlabel("training, ms per image")
    axes[1].barh(names, [1000 * m["timing"].get("inference_seconds_per_image", 0.0) for m in have], color="tab:orange")
    axes[1].set_xlabel("inference, ms per image")
    axes[1].set_yticklabels([])
    fig.suptitle("Time per image (Fig. 10)", fontsize=10)
    return save_figure(fig, path)


def _clustering_plot(runs, path: Path) -> Path | None:
    keys = [("val_clustering_silhouette", "silhouette (paper: μ_k by k)"),
            ("val_clustering_active_silhouette", "silhouette over active units"),
            ("val_clustering_by_class_silhouette", "silhouette by dominant class"),
            ("val_z_active_units", "active units of z")]
    have = [m for m in runs if any(k in h for h in m["history"] for k, _ in keys)]
    if not have:
        return None
    fig = new_figure(9.0, 5.5)
    axes = fig.subplots(2, 2).ravel()
    for ax, (key, label) in zip(axes, keys):
        for m in have:
            pts = [(h.get("global_step", h["epoch"]), h[key]) for h in m["history"] if h.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=m["run"])
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.suptitle("Clustering and use of z over training (Fig. 9)", fontsize=10)
    return save_figure(fig, path)


def _ablation_plot(runs, path: Path) -> Path | None:
    grid = [m for m in runs if m.get("group") == "k"]
    if not grid:
        return None
    fig = new_figure(5.5, 3.6)
    ax = fig.add_subplot()
    for use_g, label in ((True, "with g"), (False, "without g")):
        pts = sorted((_setting(m, "model.num_components"), 100 * m["miou"]) for m in grid
                     if _setting(m, "model.use_global", True) == use_g and _setting(m, "model.num_components") is not None)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xlabel("K (mixture components)")
    ax.set_ylabel("val mIoU (%)")
    ax.set_title("Ablation of K and g (Fig. 6)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _setting(m: dict[str, Any], key: str, default: Any = None) -> Any:
    import yaml

    for item in m.get("overrides", []):
        k, _, v = item.partition("=")
        if k.strip() == key:
            return yaml.safe_load(v)
    return default


def _orderings(runs: list[dict[str, Any]]) -> list[str]:
    by_model = {}
    for m in runs:
        by_model.setdefault(m.get("model"), m)
    lines = []
    want = [n for n in ("phgmm", "deeplabv3", "fcn8s") if n in by_model]
    if len(want) >= 2:
        order = sorted(want, key=lambda n: -by_model[n]["miou"])
        holds = order == want
        lines.append(f"- mIoU order {' > '.join(want)} (the paper's): "
                     f"{'holds' if holds else 'does not hold'} here; measured "
                     + " > ".join(f"{n} {_pct(by_model[n]['miou'])}" for n in order) + ".")
    tri = [(m["run"], _trimap_mean(m)) for m in runs if _trimap_mean(m) is not None]
    if len(tri) >= 2:
        best = min(tri, key=lambda t: t[1])
        lines.append(f"- Lowest mean trimap error (w = 1…40): {best[0]} ({_pct(best[1])} %).")
    return lines


def write_experiment_report(results_dir: str | Path) -> Path:
    """Write results.md, results.csv and the figures of the runs finished so far."""
    results_dir = Path(results_dir)
    info, runs = load_results(results_dir)
    kind = info.get("kind", "compare")
    lines = [f"# {info.get('title', results_dir.name)}", ""]
    lines += [f"Command: `phgmm experiment {kind} --config {info.get('source')}` "
              f"(report: `phgmm experiment report {results_dir}`).",
              f"Base config `{Path(str(info.get('base'))).name}` with `{' '.join(info.get('set', [])) or '(no overrides)'}`; "
              f"{len(runs)} of {len(info.get('runs', []))} runs finished.", ""]
    for mach in info.get("machines", []):
        lines.append(f"- Measured with phgmm {mach.get('phgmm')}, torch {mach.get('torch')}, Python {mach.get('python')} "
                     f"on {mach.get('gpu') or mach.get('processor')} ({mach.get('cpu_count')} CPUs, "
                     f"{mach.get('torch_threads')} torch threads), {mach.get('platform')}.")
    lines.append("")
    if not runs:
        lines.append("No run has finished yet.")
    else:
        lines += ["## Summary (validation split, best epoch)", ""]
        lines += _table(["run", "model", "mIoU", "pixel acc.", "boundary IoU", "trimap 2", "trimap 10", "trimap 40",
                         "trimap mean", "train s/epoch", "infer ms/img", "params (M)"], _summary_rows(runs))
        lines += ["", "Percentages; mIoU over the 11 named classes (background excluded); trimap = pixel error "
                  "within w pixels of a label boundary (lower is better).", ""]
        if kind == "compare":
            lines += ["## Orderings", "", *_orderings(runs), ""]
        classes = _scored_classes(runs[0])
        lines += ["## Per-class IoU (Tables 1–2 layout)", ""]
        lines += _table(["run", *classes, "mIoU"],
                        [[m["run"], *[_pct((m.get("iou") or {}).get(c)) for c in classes], _pct(m.get("miou"))] for m in runs])
        latent = _latent_rows(runs)
        if latent:
            lines += ["", "## Use of the latent spaces", ""]
            lines += _table(["run", "mIoU", "z active", "g active", "swap z: mIoU drop", "swap z: pixels changed",
                             "swap g: mIoU drop", "decode p(z|x,y): mIoU gain", "KL(q‖p) of z", "KL of g",
                             "silhouette (paper)",
                             "silhouette (active units)", "silhouette (by class)"], latent)
            lines += ["", "Active units: dimensions whose posterior mean varies across images with variance > 0.01 "
                      "(Burda et al. 2016). Swap: each image decoded with the previous image's z (or g); the mIoU drop "
                      "is what the model loses, in points. Decode p(z|x,y): each image decoded with the means of "
                      "PostNet's posterior, which sees the labels, instead of q(z|x)'s (empty where no PostNet was "
                      "kept); a z the decoder can use gains here. Silhouette (paper) labels the per-image component means by "
                      "their component index, which constant means win; the two others cannot be won by collapse.", ""]
        figures = [("trimap.png", _trimap_plot), ("timing.png", _timing_plot),
                   ("clustering_over_training.png", _clustering_plot), ("ablation_k.png", _ablation_plot)]
        lines += ["## Figures", ""]
        for name, fn in figures:
            if fn(runs, results_dir / name) is not None:
                lines.append(f"![{name}]({name})")
        tsne = [m["run"] for m in runs if m.get("has_tsne")]
        if tsne:
            lines += ["", "t-SNE of z at the best epoch: " + ", ".join(f"[{r}]({r}/tsne.png)" for r in tsne)]
    lines.append("")
    report = results_dir / "results.md"
    atomic_write_bytes(report, "\n".join(lines).encode())
    _write_csv(runs, results_dir / "results.csv")
    return report


def _write_csv(runs: list[dict[str, Any]], path: Path) -> None:
    classes = _scored_classes(runs[0]) if runs else []
    header = ["run", "model", "group", "miou", "pixel_accuracy", "mean_boundary_iou", "trimap_mean",
              *[f"trimap_{w}" for w in TRIMAP_WIDTHS], *[f"iou_{c}" for c in classes],
              "train_seconds_per_epoch", "train_seconds_per_image", "inference_seconds_per_image",
              "z_active_units", "g_active_units", "swap_z_miou_drop", "swap_g_miou_drop", "overrides"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for m in runs:
        t, lat, tri = m.get("timing") or {}, m.get("latent") or {}, m.get("trimap") or {}
        w.writerow([m["run"], m.get("model"), m.get("group"), m.get("miou"), m.get("pixel_accuracy"),
                    m.get("mean_boundary_iou"), _trimap_mean(m), *[tri.get(x) for x in TRIMAP_WIDTHS],
                    *[(m.get("iou") or {}).get(c) for c in classes], t.get("train_seconds_per_epoch"),
                    t.get("train_seconds_per_image"), t.get("inference_seconds_per_image"),
                    lat.get("z_active_units"), lat.get("g_active_units"), lat.get("swap_z_miou_drop"),
                    lat.get("swap_g_miou_drop"), " ".join(m.get("overrides", []))])
    atomic_write_bytes(path, buf.getvalue().encode())
