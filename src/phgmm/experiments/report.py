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
from ..report import classes_in_mean, excluded_indices, md_escape, new_figure, save_figure
from ..report import format_percent as _pct
from .curves import learning_curves_plot

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
        cfg = folder / "config.yaml"
        m["config"] = _read_yaml(cfg) if cfg.is_file() else {}
        runs.append(m)
    runs.sort(key=lambda m: order.index(m["run"]) if m["run"] in order else len(order))
    return info, runs


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def _num(x: Any, fmt: str = "{:.3f}") -> str:
    return "–" if x is None else fmt.format(float(x))


def _seconds(x: Any) -> str:
    """Seconds to three significant figures at most (399, 25.4, 3.86): a GPU epoch of 3.86 s is not 4."""
    if x is None:
        return "–"
    x = float(x)
    return f"{x:.0f}" if x >= 99.95 else f"{x:.1f}" if x >= 9.995 else f"{x:.2f}"


def _scored_classes(m: dict[str, Any]) -> list[str]:
    names = m.get("class_names") or list(m.get("iou", {}))
    if "miou_excluded" in m:  # recorded since the class tables say which classes the mIoU leaves out
        return [n for n in names if n not in set(m["miou_excluded"] or [])]
    return [n for n in names if n != "background"]


def names_of(m: dict[str, Any]) -> list[str]:
    """A run's class names, as its metrics.json records them."""
    return m.get("class_names") or list(m.get("iou") or {})


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = [
        "| " + " | ".join(map(md_escape, header)) + " |",
        "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|",
    ]
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
        rows.append(
            [
                m["run"],
                m.get("model", "?"),
                _pct(m.get("miou")),
                _pct(m.get("pixel_accuracy")),
                _pct(m.get("mean_boundary_iou")),
                *[_pct(tri.get(w)) for w in ("2", "10", "40")],
                _pct(_trimap_mean(m)),
                _seconds(t.get("train_seconds_per_epoch")),
                _num(
                    None if t.get("inference_seconds_per_image") is None else 1000 * t["inference_seconds_per_image"],
                    "{:.1f}",
                ),
                _num(None if m.get("parameters") is None else m["parameters"] / 1e6, "{:.2f}"),
            ]
        )
    return rows


def _latent_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for m in runs:
        lat = m.get("latent")
        if not lat:
            continue
        z = f"{lat['z_active_units']}/{lat['z_units']}" if "z_units" in lat else "–"
        g = f"{lat['g_active_units']}/{lat['g_units']}" if "g_units" in lat else "–"
        # this table's swap is the previous image's code: the early key, or the adjacent partner's
        adj = {
            k: lat.get(f"swap_{k}", lat.get(f"swap_{k.replace('_', '_adjacent_', 1)}"))
            for k in ("z_miou_drop", "z_pixels_changed", "g_miou_drop")
        }
        rows.append(
            [
                m["run"],
                _pct(m.get("miou")),
                z,
                g,
                _pct(adj["z_miou_drop"]),
                _pct(adj["z_pixels_changed"]),
                _pct(adj["g_miou_drop"]),
                _pct(lat.get("posterior_decode_gain")),
                _num(lat.get("z_kl_to_posterior")),
                _training_kl(m),
                _num(lat.get("g_kl")),
                _num((m.get("clustering") or {}).get("silhouette")),
                _num((m.get("clustering_active") or {}).get("silhouette")),
                _num((m.get("clustering_by_class") or {}).get("silhouette")),
            ]
        )
    return rows


def _pts(x: Any, digits: int = 3) -> str:
    """A fraction as a percentage (or a mIoU difference in points) with ``digits`` decimals."""
    if x is None:
        return "–"
    v = 100 * float(x)
    return f"{0.0 if abs(v) < 0.5 * 10**-digits else v:.{digits}f}"  # no "-0.000" for a rounding-size value


#: the fair latent-use measures (random derangement and far partner, zero code, I(x; ·), the
#: decoder's sensitivity, the untrained network's baseline) as the evaluation writes them
FAIR_COLUMNS = (
    ("swap z random: px changed", "swap_z_random_pixels_changed", _pts),
    ("swap z random: mIoU drop", "swap_z_random_miou_drop", _pts),
    ("swap z far: px changed", "swap_z_far_pixels_changed", _pts),
    ("z zeroed: mIoU drop", "swap_z_zero_miou_drop", _pts),
    ("swap g random: px changed", "swap_g_random_pixels_changed", _pts),
    ("swap g far: px changed", "swap_g_far_pixels_changed", _pts),
    ("g zeroed: mIoU drop", "swap_g_zero_miou_drop", _pts),
    ("I(x;z) nats", "mi_z", _num),
    ("I(x;z) untrained", "untrained_mi_z", _num),
    ("I(x;g) nats", "mi_g", _num),
    ("I(x;g) untrained", "untrained_mi_g", _num),
    ("sensitivity z/skips", "sensitivity_z", lambda x: _num(x, "{:.2e}")),
    ("sensitivity g/skips", "sensitivity_g", lambda x: _num(x, "{:.2e}")),
)


#: the latent-use measures results.csv carries, as metrics.json's ``latent`` names them
CSV_LATENT = (
    *[
        f"swap_{s}_{p}_{v}"
        for s in ("z", "g")
        for p in ("random", "far", "zero", "mean")
        for v in ("pixels_changed", "miou_drop")
    ],
    "partner_random_distance",
    "partner_far_distance",
    "mi_z",
    "mi_z_stderr",
    "mi_z_upper",
    "mi_g",
    "mi_g_stderr",
    "mi_g_lower",
    "mi_g_upper",
    "mi_upper_bound",
    "sensitivity_z",
    "sensitivity_g",
    "attribution_z",
    "attribution_g",
    "untrained_z_active_units",
    "untrained_g_active_units",
    "untrained_mi_z",
    "untrained_mi_g",
    "untrained_sensitivity_z",
    "untrained_sensitivity_g",
)


def _fair_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for m in runs:
        lat = m.get("latent") or {}
        if not any(key in lat for _, key, _ in FAIR_COLUMNS):
            continue
        z = f"{lat['z_active_units']}/{lat['z_units']}" if "z_units" in lat else "–"
        zu = str(lat["untrained_z_active_units"]) if "untrained_z_active_units" in lat else "–"
        rows.append(
            [m["run"], _pct(m.get("miou")), *[fmt(lat.get(key)) for _, key, fmt in FAIR_COLUMNS], f"{z} ({zu})"]
        )
    return rows


def _seed_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    """One row per recipe run with several seeds: the mean ± standard deviation over its seeds."""
    rows = []
    for (_, _), ms in seed_groups(runs).items():
        if len(ms) < 2:
            continue
        seed = _seed(ms[0])
        name = ms[0]["run"]
        label = ms[0].get("group") or (name[: -len(f"-s{seed}")] if name.endswith(f"-s{seed}") else name)

        def stat(values: list[Any], fmt) -> str:
            vals = [float(v) for v in values if v is not None]
            if not vals:
                return "–"
            return fmt(np.mean(vals)) + (f" ± {fmt(np.std(vals, ddof=1))}" if len(vals) > 1 else "")

        lats = [m.get("latent") or {} for m in ms]
        rows.append(
            [
                label,
                str(len(ms)),
                ", ".join(str(_seed(m)) for m in ms),
                stat([m.get("miou") for m in ms], _pct),
                stat([lat.get("swap_z_random_pixels_changed") for lat in lats], _pts),
                stat([lat.get("swap_z_zero_miou_drop") for lat in lats], _pts),
                stat([lat.get("mi_z") for lat in lats], _num),
                stat([lat.get("mi_g") for lat in lats], _num),
            ]
        )
    return rows


def _drop_empty_columns(header: list[str], rows: list[list[str]], keep: int = 4) -> tuple[list[str], list[list[str]]]:
    """The table without the columns (after the first ``keep``) that are "–" in every row."""
    cols = [i for i in range(len(header)) if i < keep or any(r[i] != "–" for r in rows)]
    return [header[i] for i in cols], [[r[i] for i in cols] for r in rows]


def _training_kl(m: dict[str, Any]) -> str:
    """How the run's training ℓ_z was estimated (``loss.kl``) and which way it ran
    (``loss.kl_direction``), from the run's saved config; "–" when the run has no ℓ_z."""
    cfg = m.get("config") or {}
    model, loss = cfg.get("model") or {}, cfg.get("loss") or {}
    if (
        m.get("model", model.get("name")) != "phgmm"
        or model.get("use_local") is False
        or ("postnet" in model and model.get("postnet") is None)
    ):
        return "–"
    if not loss:
        return "?"
    direction = loss.get("kl_direction", "q_to_posterior")
    return f"{loss.get('kl', 'matched')}" + (", KL(p‖q)" if direction == "posterior_to_q" else "")


def _mean_classes(runs: list[dict[str, Any]]) -> str:
    """The summary's note on what the mIoU averages: the count of classes each run's mean took
    (:func:`phgmm.report.classes_in_mean`), one number when all runs agree."""
    counts = sorted({classes_in_mean(m, names_of(m), excluded_indices(m, names_of(m))) for m in runs})
    names = names_of(runs[0])
    left = excluded_indices(runs[0], names)
    first = names[0] if names else None
    if "miou_excluded" in runs[0]:
        excluded = f"{', '.join(names[i] for i in left)} excluded" if left else "none excluded"
    else:
        excluded = (
            "background excluded" if first == "background" else f"class 0{f' ({first})' if first else ''} excluded"
        )
    count = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]} (by run)"
    return f"mIoU over {count} classes ({excluded}; a class absent from both labels and predictions has no IoU)"


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
    keys = [
        ("val_clustering_silhouette", "silhouette (paper: μ_k by k)"),
        ("val_clustering_active_silhouette", "silhouette over active units"),
        ("val_clustering_by_class_silhouette", "silhouette by dominant class"),
        ("val_z_active_units", "active units of z"),
    ]
    have = [m for m in runs if any(k in h for h in m["history"] for k, _ in keys)]
    if not have:
        return None
    fig = new_figure(9.0, 5.5)
    axes = fig.subplots(2, 2).ravel()
    for ax, (key, label) in zip(axes, keys, strict=True):
        for m in have:
            pts = [(h.get("global_step", h["epoch"]), h[key]) for h in m["history"] if h.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, label=m["run"])
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
        pts = sorted(
            (_setting(m, "model.num_components"), 100 * m["miou"])
            for m in grid
            if _setting(m, "model.use_global", True) == use_g and _setting(m, "model.num_components") is not None
        )
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
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


def _recipe(m: dict[str, Any]) -> tuple[str, ...]:
    """A run's overrides less its seed and model name: runs that share it differ only by seed."""
    return tuple(o for o in m.get("overrides", []) if o.partition("=")[0].strip() not in ("seed", "model.name"))


def _seed(m: dict[str, Any]) -> Any:
    seed = _setting(m, "seed")
    return seed if seed is not None else (m.get("config") or {}).get("seed")


def seed_groups(runs: list[dict[str, Any]]) -> dict[tuple[Any, tuple[str, ...]], list[dict[str, Any]]]:
    """Runs grouped by (model, overrides other than the seed): each group is one recipe's seeds."""
    groups: dict[tuple[Any, tuple[str, ...]], list[dict[str, Any]]] = {}
    for m in runs:
        groups.setdefault((m.get("model"), _recipe(m)), []).append(m)
    return groups


def _orderings(runs: list[dict[str, Any]]) -> list[str]:
    # each model's plain recipe (fewest overrides besides seed and model), all of its seeds
    by_model: dict[Any, list[dict[str, Any]]] = {}
    for (model, recipe), members in seed_groups(runs).items():
        if model not in by_model or len(recipe) < len(_recipe(by_model[model][0])):
            by_model[model] = members
    mean = {n: float(np.mean([m["miou"] for m in ms])) for n, ms in by_model.items()}
    lines = []
    want = [n for n in ("phgmm", "deeplabv3", "fcn8s") if n in by_model]
    if len(want) >= 2:
        order = sorted(want, key=lambda n: -mean[n])
        holds = order == want
        several = any(len(by_model[n]) > 1 for n in want)

        def which(n: str) -> str:
            ms = by_model[n]
            if not several:
                return f"{n} {_pct(mean[n])}"
            seeds = ", ".join(str(_seed(m)) for m in ms)
            return f"{n} {_pct(mean[n])} ({'mean of seeds ' if len(ms) > 1 else 'seed '}{seeds})"

        lines.append(
            f"- mIoU order {' > '.join(want)} (the paper's): "
            f"{'holds' if holds else 'does not hold'} here; measured " + " > ".join(which(n) for n in order) + "."
        )
        if several:
            per_seed = []
            seeds = sorted({_seed(m) for n in want for m in by_model[n]}, key=str)
            for seed in seeds:
                have = {n: m["miou"] for n in want for m in by_model[n] if _seed(m) == seed}
                if len(have) >= 2:
                    per_seed.append(
                        f"seed {seed}: "
                        + " > ".join(f"{n} {_pct(v)}" for n, v in sorted(have.items(), key=lambda kv: -kv[1]))
                    )
            if per_seed:
                lines.append("- Per seed: " + "; ".join(per_seed) + ".")
    tri = [(m["run"], _trimap_mean(m)) for m in runs if _trimap_mean(m) is not None]
    if len(tri) >= 2:
        best = min(tri, key=lambda t: t[1])
        lines.append(f"- Lowest mean trimap error (w = 1…40): {best[0]} ({_pct(best[1])} %).")
    return lines


def _edited_lines(info: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    """Finished runs whose config.yaml does not hold what the experiment file now sets (the file was
    edited after they ran): what each ran with, so that no run is described by settings it never used."""
    from .plan import settings_differences

    own = {r["name"]: r.get("set", []) for r in info.get("runs", [])}
    notes = []
    for m in runs:
        if not m.get("config"):
            continue
        diffs = settings_differences(m["config"], [*info.get("set", []), *own.get(m["run"], [])])
        if diffs:
            notes.append(
                f"- **{md_escape(m['run'])}** ran with other settings than the experiment file now gives "
                f"(its config.yaml): {md_escape('; '.join(diffs))}."
            )
    return [*notes, ""] if notes else []


def write_experiment_report(results_dir: str | Path) -> Path:
    """Write results.md, results.csv and the figures of the runs finished so far."""
    results_dir = Path(results_dir)
    info, runs = load_results(results_dir)
    lines = _heading_lines(results_dir, info, runs)
    if not runs:
        lines.append("No run has finished yet.")
    else:
        lines += _score_sections(runs, info.get("kind", "compare"))
        lines += _latent_sections(runs)
        lines += _figure_section(runs, results_dir)
    lines.append("")
    report = results_dir / "results.md"
    atomic_write_bytes(report, "\n".join(lines).encode())
    _write_csv(runs, results_dir / "results.csv")
    return report


def _heading_lines(results_dir: Path, info: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    """The title, the command that made the results, the base config, edited runs and the machines."""
    kind = info.get("kind", "compare")
    lines = [f"# {info.get('title', results_dir.name)}", ""]
    lines += [
        f"Command: `phgmm experiment {kind} --config {info.get('source')}` "
        f"(report: `phgmm experiment report {results_dir}`).",
        f"Base config `{Path(str(info.get('base'))).name}` with `{' '.join(info.get('set', [])) or '(no overrides)'}`; "
        f"{len(runs)} of {len(info.get('runs', []))} runs finished.",
        "",
    ]
    lines += _edited_lines(info, runs)
    for mach in info.get("machines", []):
        lines.append(
            f"- Measured with phgmm {mach.get('phgmm')}, torch {mach.get('torch')}, Python {mach.get('python')} "
            f"on {mach.get('gpu') or mach.get('processor')} ({mach.get('cpu_count')} CPUs, "
            f"{mach.get('torch_threads')} torch threads), {mach.get('platform')}."
        )
    lines.append("")
    return lines


def _score_sections(runs: list[dict[str, Any]], kind: str) -> list[str]:
    """The summary table, the mean over seeds, the orderings (a comparison) and the per-class IoU."""
    lines = ["## Summary (validation split, best epoch)", ""]
    lines += _table(
        [
            "run",
            "model",
            "mIoU",
            "pixel acc.",
            "boundary IoU",
            "trimap 2",
            "trimap 10",
            "trimap 40",
            "trimap mean",
            "train s/epoch",
            "infer ms/img",
            "params (M)",
        ],
        _summary_rows(runs),
    )
    lines += [
        "",
        f"Percentages; {_mean_classes(runs)}; trimap = pixel error "
        "within w pixels of a label boundary (lower is better).",
        "",
    ]
    seeds = _seed_rows(runs)
    if seeds:
        header, seeds = _drop_empty_columns(
            [
                "recipe",
                "runs",
                "seeds",
                "mIoU",
                "swap z random: px changed",
                "z zeroed: mIoU drop",
                "I(x;z) nats",
                "I(x;g) nats",
            ],
            seeds,
        )
        lines += ["## Mean over seeds", ""]
        lines += _table(header, seeds)
        lines += ["", "Mean ± sample standard deviation over the seeds of runs that differ only by seed.", ""]
    if kind == "compare":
        lines += ["## Orderings", "", *_orderings(runs), ""]
    classes = _scored_classes(runs[0])
    lines += ["## Per-class IoU (Tables 1–2 layout)", ""]
    lines += _table(
        ["run", *classes, "mIoU"],
        [[m["run"], *[_pct((m.get("iou") or {}).get(c)) for c in classes], _pct(m.get("miou"))] for m in runs],
    )
    return lines


def _latent_sections(runs: list[dict[str, Any]]) -> list[str]:
    """The latent-use tables of the runs that measured them: the early measures, then the fair ones."""
    lines = []
    latent = _latent_rows(runs)
    if latent:
        lines += ["", "## Use of the latent spaces", ""]
        lines += _table(
            [
                "run",
                "mIoU",
                "z active",
                "g active",
                "swap z: mIoU drop",
                "swap z: pixels changed",
                "swap g: mIoU drop",
                "decode p(z|x,y): mIoU gain",
                "KL(q‖p) of z, matched bound",
                "training ℓ_z (loss.kl)",
                "KL of g",
                "silhouette (paper)",
                "silhouette (active units)",
                "silhouette (by class)",
            ],
            latent,
        )
        lines += [
            "",
            "Active units: dimensions whose posterior mean varies across images with variance > 0.01 "
            "(Burda et al. 2016). Swap: each image decoded with the previous image's z (or g); the mIoU drop "
            "is what the model loses, in points. Decode p(z|x,y): each image decoded with the means of "
            "PostNet's posterior, which sees the labels, instead of q(z|x)'s (empty where no PostNet was "
            "kept); a z the decoder can use gains here. KL(q‖p) of z: evaluated at the best epoch on the validation "
            "split as the matched-component upper bound KL(π‖π*) + Σ_k π_k KL(q_k‖p_k), whatever estimator "
            "trained the run; the next column names that one (`loss.kl`: matched, mc or variational) and "
            "its direction where it was KL(p(z|x,y)‖q(z|x)). Silhouette (paper) labels the per-image "
            "component means by their component index, which constant means win; the two others cannot be won "
            "by collapse.",
            "",
        ]
    fair = _fair_rows(runs)
    if fair:
        lines += ["", "## Latent use: partners that are not neighbouring frames, information, sensitivity", ""]
        lines += _table(["run", "mIoU", *[h for h, _, _ in FAIR_COLUMNS], "z active (untrained)"], fair)
        lines += [
            "",
            "Swap: each image decoded with a partner's code, everything else its own: *random*, a seeded "
            "random derangement of the evaluated set; *far*, the image whose label histogram differs most; "
            "*zeroed*, a code of zeros. Pixels changed in %, mIoU drops in points. I(x;z), I(x;g): mutual "
            "information between image and code under q, estimated against the aggregate posterior "
            "(Hoffman & Johnson 2016), in nats; at most log(number of images). Sensitivity: the decoder's "
            "mean Jacobian column norm for the code relative to the skips'. *untrained*: the same measure "
            "on a freshly initialised network of the same configuration.",
            "",
        ]
    return lines


def _figure_section(runs: list[dict[str, Any]], results_dir: Path) -> list[str]:
    """Draw the figures the runs have data for into ``results_dir``; their links and the t-SNE links."""
    figures = [
        ("trimap.png", _trimap_plot),
        ("timing.png", _timing_plot),
        ("clustering_over_training.png", _clustering_plot),
        ("ablation_k.png", _ablation_plot),
        ("learning_curves.png", learning_curves_plot),
    ]
    lines = ["## Figures", ""]
    for name, fn in figures:
        if fn(runs, results_dir / name) is not None:
            lines.append(f"![{name}]({name})")
    tsne = [m["run"] for m in runs if m.get("has_tsne")]
    if tsne:
        lines += ["", "t-SNE of z at the best epoch: " + ", ".join(f"[{r}]({r}/tsne.png)" for r in tsne)]
    return lines


def _write_csv(runs: list[dict[str, Any]], path: Path) -> None:
    classes = _scored_classes(runs[0]) if runs else []
    header = [
        "run",
        "model",
        "group",
        "miou",
        "pixel_accuracy",
        "mean_boundary_iou",
        "trimap_mean",
        *[f"trimap_{w}" for w in TRIMAP_WIDTHS],
        *[f"iou_{c}" for c in classes],
        "train_seconds_per_epoch",
        "train_seconds_per_image",
        "inference_seconds_per_image",
        "z_active_units",
        "g_active_units",
        "swap_z_miou_drop",
        "swap_g_miou_drop",
        *CSV_LATENT,
        "overrides",
    ]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for m in runs:
        t, lat, tri = m.get("timing") or {}, m.get("latent") or {}, m.get("trimap") or {}
        w.writerow(
            [
                m["run"],
                m.get("model"),
                m.get("group"),
                m.get("miou"),
                m.get("pixel_accuracy"),
                m.get("mean_boundary_iou"),
                _trimap_mean(m),
                *[tri.get(x) for x in TRIMAP_WIDTHS],
                *[(m.get("iou") or {}).get(c) for c in classes],
                t.get("train_seconds_per_epoch"),
                t.get("train_seconds_per_image"),
                t.get("inference_seconds_per_image"),
                lat.get("z_active_units"),
                lat.get("g_active_units"),
                lat.get("swap_z_miou_drop"),
                lat.get("swap_g_miou_drop"),
                *[lat.get(k) for k in CSV_LATENT],
                " ".join(m.get("overrides", [])),
            ]
        )
    atomic_write_bytes(path, buf.getvalue().encode())
