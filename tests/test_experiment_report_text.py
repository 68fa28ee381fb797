"""The experiment report as a whole: every line of results.md and results.csv of a small fixture
written out by hand (headings, notes, tables, figure links), the figures' data (the curves, bars,
labels and layout the report draws, read off the matplotlib figure rather than its pixels), and
each edge of the cells' formatting and of the run loading, so that a changed word, key, bound or
format in experiments/report.py fails here."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.colors
import pytest
import yaml

import phgmm.experiments.report as report
from phgmm.experiments.report import load_results, write_experiment_report


def _run(root: Path, name: str, metrics: dict, cfg: dict | None = None, history=None, tsne: bool = False) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if cfg is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    if history is not None:
        (folder / "history.json").write_text(json.dumps(history))
    if tsne:
        (folder / "tsne.png").write_bytes(b"")


CLASSES = ["sky", "road|lane", "car"]

PHGMM = {
    "model": "phgmm",
    "overrides": ["seed=3"],
    "miou": 0.4125,
    "pixel_accuracy": 0.875,
    "mean_boundary_iou": 0.3,
    "class_names": CLASSES,
    "miou_excluded": ["car"],
    "iou": {"sky": 0.5, "road|lane": 0.325, "car": 0.1},
    "trimap": {"2": 0.6, "10": None, "40": 0.2},
    "timing": {"train_seconds_per_epoch": 123.4, "inference_seconds_per_image": 0.25, "train_seconds_per_image": 0.5},
    "parameters": 2_500_000,
    "latent": {
        "z_active_units": 5,
        "z_units": 8,
        "swap_z_adjacent_miou_drop": 0.02,
        "swap_z_pixels_changed": 0.125,
        "posterior_decode_gain": 0.015,
        "z_kl_to_posterior": 0.5,
        "g_kl": 1.25,
        "swap_z_far_pixels_changed": 0.0625,
        "mi_g": 0.75,
        "sensitivity_g": 12345.0,
    },
    "clustering": {"silhouette": 0.25},
    "clustering_active": {"silhouette": -0.125},
    "clustering_by_class": {"silhouette": 0.5},
}

FCN = {
    "run": "fcn8s-s3",
    "model": "fcn8s",
    "overrides": ["seed=3", "model.name=fcn8s"],
    "miou": 0.375,
    "class_names": CLASSES,
    "miou_excluded": ["car"],
    "iou": {"sky": 0.45, "road|lane": 0.3, "car": None},
    "trimap": {"2": 0.5, "40": 0.1},
}

MACHINE = {
    "phgmm": "0.1",
    "torch": "2.5",
    "python": "3.12",
    "gpu": None,
    "processor": "x86_64",
    "cpu_count": 2,
    "torch_threads": 1,
    "platform": "Linux",
}


@pytest.fixture
def golden_dir(tmp_path: Path) -> Path:
    """Two finished runs of three; phgmm-s3 ran 1 epoch where the file now sets 2."""
    cfg = {
        "seed": 3,
        "train": {"epochs": 1},
        "model": {"name": "phgmm"},
        "loss": {"kl": "variational", "kl_direction": "posterior_to_q"},
    }
    _run(tmp_path, "phgmm-s3", PHGMM, cfg, tsne=True)
    _run(tmp_path, "fcn8s-s3", FCN)
    info = {
        "kind": "compare",
        "title": "golden",
        "source": "experiments/golden.yaml",
        "base": "configs/camvid.yaml",
        "set": ["train.epochs=2"],
        "runs": [
            {"name": "phgmm-s3", "set": []},
            {"name": "fcn8s-s3", "set": ["model.name=fcn8s"]},
            {"name": "later", "set": []},
        ],
        "machines": [MACHINE],
    }
    (tmp_path / "experiment.json").write_text(json.dumps(info))
    return tmp_path


LATENT_NOTE = (
    "Active units: dimensions whose posterior mean varies across images with variance > 0.01 (Burda et al. "
    "2016). Swap: each image decoded with the previous image's z (or g); the mIoU drop is what the model "
    "loses, in points. Decode p(z|x,y): each image decoded with the means of PostNet's posterior, which sees "
    "the labels, instead of q(z|x)'s (empty where no PostNet was kept); a z the decoder can use gains here. "
    "KL(q‖p) of z: evaluated at the best epoch on the validation split as the matched-component upper bound "
    "KL(π‖π*) + Σ_k π_k KL(q_k‖p_k), whatever estimator trained the run; the next column names that one "
    "(`loss.kl`: matched, mc or variational) and its direction where it was KL(p(z|x,y)‖q(z|x)). Silhouette "
    "(paper) labels the per-image component means by their component index, which constant means win; the "
    "two others cannot be won by collapse."
)

FAIR_NOTE = (
    "Swap: each image decoded with a partner's code, everything else its own: *random*, a seeded random "
    "derangement of the evaluated set; *far*, the image whose label histogram differs most; *zeroed*, a code "
    "of zeros. Pixels changed in %, mIoU drops in points. I(x;z), I(x;g): mutual information between image "
    "and code under q, estimated against the aggregate posterior (Hoffman & Johnson 2016), in nats; at most "
    "log(number of images). Sensitivity: the decoder's mean Jacobian column norm for the code relative to "
    "the skips'. *untrained*: the same measure on a freshly initialised network of the same configuration."
)


def _expected_md(root: Path) -> list[str]:
    """results.md of ``golden_dir``, worked out by hand: phgmm-s3's trimap mean (60 + 20)/2 = 40 (the
    width-10 error is None), fcn8s-s3's (50 + 10)/2 = 30, the lowest; 123.4 s/epoch → "123",
    0.25 s/image → 250.0 ms; 2.5 M parameters; the swap z drop read from the adjacent key."""
    return [
        "# golden",
        "",
        "Command: `phgmm experiment compare --config experiments/golden.yaml` "
        f"(report: `phgmm experiment report {root}`).",
        "Base config `camvid.yaml` with `train.epochs=2`; 2 of 3 runs finished.",
        "",
        "- **phgmm-s3** ran with other settings than the experiment file now gives (its config.yaml): "
        "train.epochs: ran with 1, the file now says 2.",
        "",
        "- Measured with phgmm 0.1, torch 2.5, Python 3.12 on x86_64 (2 CPUs, 1 torch threads), Linux.",
        "",
        "## Summary (validation split, best epoch)",
        "",
        "| run | model | mIoU | pixel acc. | boundary IoU | trimap 2 | trimap 10 | trimap 40 | trimap mean "
        "| train s/epoch | infer ms/img | params (M) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| phgmm-s3 | phgmm | 41.25 | 87.50 | 30.00 | 60.00 | – | 20.00 | 40.00 | 123 | 250.0 | 2.50 |",
        "| fcn8s-s3 | fcn8s | 37.50 | – | – | 50.00 | – | 10.00 | 30.00 | – | – | – |",
        "",
        "Percentages; mIoU over 2 classes (car excluded; a class absent from both labels and predictions has "
        "no IoU); trimap = pixel error within w pixels of a label boundary (lower is better).",
        "",
        "## Orderings",
        "",
        "- mIoU order phgmm > fcn8s (the paper's): holds here; measured phgmm 41.25 > fcn8s 37.50.",
        "- Lowest mean trimap error (w = 1…40): fcn8s-s3 (30.00 %).",
        "",
        "## Per-class IoU (Tables 1–2 layout)",
        "",
        "| run | sky | road\\|lane | mIoU |",
        "|---|---:|---:|---:|",
        "| phgmm-s3 | 50.00 | 32.50 | 41.25 |",
        "| fcn8s-s3 | 45.00 | 30.00 | 37.50 |",
        "",
        "## Use of the latent spaces",
        "",
        "| run | mIoU | z active | g active | swap z: mIoU drop | swap z: pixels changed | swap g: mIoU drop "
        "| decode p(z\\|x,y): mIoU gain | KL(q‖p) of z, matched bound | training ℓ_z (loss.kl) | KL of g "
        "| silhouette (paper) | silhouette (active units) | silhouette (by class) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| phgmm-s3 | 41.25 | 5/8 | – | 2.00 | 12.50 | – | 1.50 | 0.500 | variational, KL(p‖q) | 1.250 | 0.250 "
        "| -0.125 | 0.500 |",
        "",
        LATENT_NOTE,
        "",
        "",
        "## Latent use: partners that are not neighbouring frames, information, sensitivity",
        "",
        "| run | mIoU | swap z random: px changed | swap z random: mIoU drop | swap z far: px changed "
        "| z zeroed: mIoU drop | swap g random: px changed | swap g far: px changed | g zeroed: mIoU drop "
        "| I(x;z) nats | I(x;z) untrained | I(x;g) nats | I(x;g) untrained | sensitivity z/skips "
        "| sensitivity g/skips | z active (untrained) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| phgmm-s3 | 41.25 | – | – | 6.250 | – | – | – | – | – | – | 0.750 | – | – | 1.23e+04 | 5/8 (–) |",
        "",
        FAIR_NOTE,
        "",
        "## Figures",
        "",
        "![trimap.png](trimap.png)",
        "![timing.png](timing.png)",
        "",
        "t-SNE of z at the best epoch: [phgmm-s3](phgmm-s3/tsne.png)",
        "",
    ]


def test_every_line_of_the_report(golden_dir):
    path = write_experiment_report(golden_dir)
    assert path == golden_dir / "results.md"
    assert path.read_text().split("\n") == _expected_md(golden_dir)
    # the two figures the runs have data for were drawn, the others not
    assert sorted(p.name for p in golden_dir.glob("*.png")) == ["timing.png", "trimap.png"]
    assert (golden_dir / "trimap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


#: results.csv's header: the run's keys, the five trimap widths, the scored classes, timing, latent
CSV_HEADER = (
    "run,model,group,miou,pixel_accuracy,mean_boundary_iou,trimap_mean,trimap_2,trimap_5,trimap_10,"
    "trimap_20,trimap_40,iou_sky,iou_road|lane,train_seconds_per_epoch,train_seconds_per_image,"
    "inference_seconds_per_image,z_active_units,g_active_units,swap_z_miou_drop,swap_g_miou_drop,"
    + ",".join(
        f"swap_{s}_{p}_{v}"
        for s in "zg"
        for p in ("random", "far", "zero", "mean")
        for v in ("pixels_changed", "miou_drop")
    )
    + ",partner_random_distance,partner_far_distance,mi_z,mi_z_stderr,mi_z_upper,mi_g,mi_g_stderr,"
    "mi_g_lower,mi_g_upper,mi_upper_bound,sensitivity_z,sensitivity_g,attribution_z,attribution_g,"
    "untrained_z_active_units,untrained_g_active_units,untrained_mi_z,untrained_mi_g,"
    "untrained_sensitivity_z,untrained_sensitivity_g,overrides"
)


def test_every_field_of_the_csv(golden_dir):
    write_experiment_report(golden_dir)
    lines = (golden_dir / "results.csv").read_text().splitlines()
    assert lines[0] == CSV_HEADER
    empty = lambda n: "," * n  # noqa: E731
    # 18 latent fields between swap z far and I(x;g); fcn8s-s3 has none of the 7 + 36 after its IoUs
    # phgmm-s3: no group; trimap mean 0.4 of 0.6 and 0.2; 5 active z units; of the latent measures
    # only swap z far (0.0625), I(x;g) (0.75) and the sensitivity of g (12345.0)
    assert lines[1] == (
        "phgmm-s3,phgmm,,0.4125,0.875,0.3,0.4,0.6,,,,0.2,0.5,0.325,123.4,0.5,0.25,5,,,,"
        + empty(2)
        + "0.0625"
        + empty(19)
        + "0.75"
        + empty(6)
        + "12345.0"
        + empty(9)
        + "seed=3"
    )
    assert lines[2] == "fcn8s-s3,fcn8s,,0.375,,,0.3,0.5,,,,0.1,0.45,0.3" + empty(44) + "seed=3 model.name=fcn8s"
    assert len(lines) == 3


class _Figures:
    """save_figure stand-in: keeps each figure by file name instead of rendering it."""

    def __init__(self) -> None:
        self.saved: dict[str, object] = {}

    def __call__(self, fig, path: Path) -> Path:
        self.saved[path.name] = fig
        return path


@pytest.fixture
def figures(monkeypatch) -> _Figures:
    """The figures kept, not rendered, drawn under a default font size of 5 points and a colour
    cycle of black alone (so that a size or colour left to the default shows: matplotlib's own
    defaults, 10 points and tab:blue first, are ones the report sets)."""
    import matplotlib
    from cycler import cycler

    import phgmm.experiments.curves as curves

    fake = _Figures()
    monkeypatch.setattr(report, "save_figure", fake)
    monkeypatch.setattr(curves, "save_figure", fake)
    with matplotlib.rc_context({"font.size": 5, "axes.prop_cycle": cycler(color=["k"])}):
        yield fake


def _curves(ax) -> list[tuple[str, list[float], list[float]]]:
    return [(ln.get_label(), list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.get_lines()]


def _grid_alpha(ax) -> float:
    lines = ax.xaxis.get_gridlines()
    assert lines and lines[0].get_visible()
    return lines[0].get_alpha()


def test_trimap_and_timing_figures(golden_dir, figures):
    write_experiment_report(golden_dir)
    fig = figures.saved["trimap.png"]
    assert list(fig.get_size_inches()) == [6.0, 3.8]
    (ax,) = fig.axes
    # widths as numbers, sorted, None left out; errors in percent
    assert _curves(ax) == [("phgmm-s3", [2.0, 40.0], [60.0, 20.0]), ("fcn8s-s3", [2.0, 40.0], [50.0, 10.0])]
    assert [ln.get_linewidth() for ln in ax.get_lines()] == [1.4, 1.4]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("trimap width (pixels)", "pixel error in band (%)")
    assert (ax.get_title(), ax.title.get_fontsize()) == ("Trimap error (Fig. 7)", 10)
    assert _grid_alpha(ax) == 0.3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["phgmm-s3", "fcn8s-s3"]
    assert ax.get_legend().get_texts()[0].get_fontsize() == 7
    fig = figures.saved["timing.png"]
    assert list(fig.get_size_inches()) == [6.5, 3.4]
    train, infer = fig.axes
    # only phgmm-s3 has a training time per image: 0.5 s → 500 ms, inference 0.25 s → 250 ms
    assert [p.get_width() for p in train.patches] == [500.0] and [p.get_width() for p in infer.patches] == [250.0]
    assert train.patches[0].get_facecolor() == matplotlib.colors.to_rgba("tab:blue")
    assert infer.patches[0].get_facecolor() == matplotlib.colors.to_rgba("tab:orange")
    assert [t.get_text() for t in train.get_yticklabels()] == ["phgmm-s3"]
    assert [t.get_text() for t in infer.get_yticklabels()] == [""]
    assert (train.get_xlabel(), infer.get_xlabel()) == ("training, ms per image", "inference, ms per image")
    # side by side: one row, two columns
    assert train.get_subplotspec().get_geometry()[:2] == (1, 2) and infer.get_subplotspec().colspan.start == 1
    assert (fig._suptitle.get_text(), fig._suptitle.get_fontsize()) == ("Time per image (Fig. 10)", 10)


def test_timing_figure_without_inference_time(tmp_path, figures):
    runs = [{"run": "a", "timing": {"train_seconds_per_image": 0.125}}, {"run": "b", "timing": {}}, {"run": "c"}]
    assert report._timing_plot(runs, tmp_path / "t.png") == tmp_path / "t.png"
    train, infer = figures.saved["t.png"].axes
    assert [p.get_width() for p in train.patches] == [125.0] and [p.get_width() for p in infer.patches] == [0.0]
    assert report._timing_plot(runs[1:], tmp_path / "u.png") is None and "u.png" not in figures.saved
    assert report._trimap_plot([{"run": "a", "trimap": {}}, {"run": "b"}], tmp_path / "v.png") is None


def _history_runs() -> list[dict]:
    """Three runs: one with a global step, one counted by epochs, one with no clustering at all."""
    h1 = [
        {"epoch": 1, "global_step": 10, "val_clustering_silhouette": 0.5, "val_z_active_units": 3},
        {"epoch": 2, "global_step": 20, "val_clustering_silhouette": None, "val_z_active_units": 4},
    ]
    h2 = [
        {"epoch": 1, "val_clustering_active_silhouette": 0.25},
        {"epoch": 3, "val_clustering_by_class_silhouette": -0.5},
    ]
    return [
        {"run": "r1", "history": h1},
        {"run": "r2", "history": h2},
        {"run": "r3", "history": [{"epoch": 1, "loss_total": 1.0}]},
    ]


def test_clustering_figure(tmp_path, figures):
    assert report._clustering_plot(_history_runs(), tmp_path / "c.png") == tmp_path / "c.png"
    fig = figures.saved["c.png"]
    assert list(fig.get_size_inches()) == [9.0, 5.5]
    axes = fig.axes
    assert [_curves(ax) for ax in axes] == [
        [("r1", [10], [0.5])],
        [("r2", [1], [0.25])],
        [("r2", [3], [-0.5])],
        [("r1", [10, 20], [3, 4])],
    ]
    assert [ax.get_title() for ax in axes] == [
        "silhouette (paper: μ_k by k)",
        "silhouette over active units",
        "silhouette by dominant class",
        "active units of z",
    ]
    assert {ax.title.get_fontsize() for ax in axes} == {9} and {ax.get_xlabel() for ax in axes} == {"iteration"}
    assert {_grid_alpha(ax) for ax in axes} == {0.3}
    line = axes[3].get_lines()[0]
    assert (line.get_marker(), line.get_markersize()) == ("o", 3)
    assert axes[0].get_legend().get_texts()[0].get_fontsize() == 6 and axes[1].get_legend() is None
    text = fig._suptitle
    assert (text.get_text(), text.get_fontsize()) == ("Clustering and use of z over training (Fig. 9)", 10)
    assert report._clustering_plot(_history_runs()[2:], tmp_path / "d.png") is None


def test_ablation_figure(tmp_path, figures):
    def run(k, use_g, miou, group="k"):
        overrides = [f"model.num_components={k}"] if k is not None else []
        overrides += [] if use_g is None else [f"model.use_global={str(use_g).lower()}"]
        return {"run": f"{k}-{use_g}", "group": group, "overrides": overrides, "miou": miou}

    runs = [
        run(8, None, 0.5),  # use_global unset: with g
        run(2, True, 0.25),
        run(4, False, 0.375),
        run(2, False, 0.125),
        run(None, True, 0.9),  # no K: left out
        run(16, True, 0.9, group="other"),  # not in the K grid
    ]
    assert report._ablation_plot(runs, tmp_path / "a.png") == tmp_path / "a.png"
    fig = figures.saved["a.png"]
    assert list(fig.get_size_inches()) == [5.5, 3.6]
    (ax,) = fig.axes
    assert _curves(ax) == [("with g", [2, 8], [25.0, 50.0]), ("without g", [2, 4], [12.5, 37.5])]
    assert {ln.get_marker() for ln in ax.get_lines()} == {"o"}
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("K (mixture components)", "val mIoU (%)")
    assert (ax.get_title(), ax.title.get_fontsize()) == ("Ablation of K and g (Fig. 6)", 10)
    assert _grid_alpha(ax) == 0.3 and ax.get_legend().get_texts()[0].get_fontsize() == 8
    only_without = [run(4, False, 0.375)]
    assert report._ablation_plot(only_without, tmp_path / "b.png") == tmp_path / "b.png"
    assert _curves(figures.saved["b.png"].axes[0]) == [("without g", [4], [37.5])]
    assert report._ablation_plot(runs[-1:], tmp_path / "n.png") is None


def test_ablation_and_learning_curve_links(tmp_path, figures):
    history = [{"epoch": 1, "val_miou": 0.5}]
    runs = [{"run": "r", "history": history, "group": "k", "miou": 0.5, "overrides": ["model.num_components=2"]}]
    assert report._figure_section(runs, tmp_path) == [
        "## Figures",
        "",
        "![ablation_k.png](ablation_k.png)",
        "![learning_curves.png](learning_curves.png)",
    ]
    assert sorted(figures.saved) == ["ablation_k.png", "learning_curves.png"]


def test_figure_links_follow_what_was_drawn(tmp_path, figures):
    runs = [{"run": "r1", "history": _history_runs()[0]["history"], "group": None}]
    lines = report._figure_section(runs, tmp_path)
    assert lines == ["## Figures", "", "![clustering_over_training.png](clustering_over_training.png)"]
    assert sorted(figures.saved) == ["clustering_over_training.png"]
    runs = [{"run": "r1", "history": [], "has_tsne": True}, {"run": "r2", "history": [], "has_tsne": True}]
    assert report._figure_section(runs, tmp_path)[-2:] == [
        "",
        "t-SNE of z at the best epoch: [r1](r1/tsne.png), [r2](r2/tsne.png)",
    ]


def test_load_results_order_defaults_and_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_results(tmp_path)
    assert str(err.value) == f"{tmp_path}: not an experiment results folder (no experiment.json)"
    (tmp_path / "experiment.json").write_text(json.dumps({"runs": [{"name": "b"}, {"name": "a"}]}))
    _run(tmp_path, "z-extra", {"run": "named"}, history=[{"epoch": 1}])
    _run(tmp_path, "y-extra", {})
    _run(tmp_path, "a", {}, cfg={"seed": 1}, tsne=True)
    _run(tmp_path, "b", {})
    (tmp_path / "b" / "config.yaml").write_text("")  # an empty config reads as {}
    (tmp_path / "not-a-run").mkdir()
    info, runs = load_results(str(tmp_path))
    assert info == {"runs": [{"name": "b"}, {"name": "a"}]}
    # the experiment's order first, then the others in folder order; "run" defaults to the folder
    assert [m["run"] for m in runs] == ["b", "a", "y-extra", "named"]
    assert [m["history"] for m in runs] == [[], [], [], [{"epoch": 1}]]
    assert [m["has_tsne"] for m in runs] == [False, True, False, False]
    assert [m["config"] for m in runs] == [{}, {"seed": 1}, {}, {}]


def test_cell_formats_at_their_edges():
    assert [report._num(x) for x in (None, 0.12345, "2")] == ["–", "0.123", "2.000"]
    assert report._num(1234.5, "{:.1f}") == "1234.5"
    # _pts: a rounding-size value is 0.000, not -0.000; 0.0005 % is the first that shows
    assert [report._pts(x) for x in (None, -0.000004, 0.000004, -0.000005, 0.01234)] == [
        "–",
        "0.000",
        "0.000",
        "-0.001",
        "1.234",
    ]
    assert [report._pts(x, 1) for x in (-0.0004, -0.0005, 0.5)] == ["0.0", "-0.1", "50.0"]
    assert report._seconds(99.94) == "99.9" and report._seconds(9.994) == "9.99" and report._seconds(100) == "100"


def test_scored_classes_and_names():
    iou = {"background": 0.1, "a": 0.2, "b": 0.3}
    assert report._scored_classes({"iou": iou}) == ["a", "b"]
    assert report._scored_classes({"class_names": ["background", "x"], "iou": iou}) == ["x"]
    assert report._scored_classes({"iou": iou, "miou_excluded": ["a"]}) == ["background", "b"]
    assert report._scored_classes({"iou": iou, "miou_excluded": None}) == ["background", "a", "b"]
    assert report.names_of({"iou": iou}) == ["background", "a", "b"] and report.names_of({"iou": None}) == []
    assert report.names_of({"class_names": ["x"], "iou": iou}) == ["x"]
    assert report._trimap_mean({"trimap": {"2": None}}) is None and report._trimap_mean({"trimap": None}) is None
    assert report._trimap_mean({"trimap": {"2": 0.25, "5": None, "10": 0.5}}) == 0.375


@pytest.mark.parametrize(
    "model, cfg, cell",
    [
        ("fcn8s", {"loss": {"kl": "mc"}}, "–"),
        ("phgmm", {"model": {"use_local": False}, "loss": {"kl": "mc"}}, "–"),
        ("phgmm", {"model": {"postnet": None}, "loss": {"kl": "mc"}}, "–"),
        ("phgmm", {"model": {"postnet": "light", "use_local": True}, "loss": {"kl": "mc"}}, "mc"),
        ("phgmm", {"model": {}}, "?"),
        ("phgmm", {}, "?"),
        ("phgmm", {"loss": {"kl_direction": "q_to_posterior"}}, "matched"),
        ("phgmm", {"loss": {"kl_direction": "posterior_to_q"}}, "matched, KL(p‖q)"),
        (None, {"model": {"name": "phgmm"}, "loss": {"kl": "mc"}}, "mc"),
        (None, {"model": {"name": "unet"}, "loss": {"kl": "mc"}}, "–"),
    ],
)
def test_training_kl_cell(model, cfg, cell):
    m = {"config": cfg} if model is None else {"model": model, "config": cfg}
    assert report._training_kl(m) == cell


def test_mean_classes_note():
    def note(*runs):
        return report._mean_classes(list(runs))

    tail = "; a class absent from both labels and predictions has no IoU)"
    bg = {"class_names": ["background", "a", "b"], "iou": {"background": 0.1, "a": 0.2, "b": 0.3}}
    assert note(bg) == "mIoU over 2 classes (background excluded" + tail
    other = {"class_names": ["sky", "a"], "iou": {"sky": 0.1, "a": None}}
    assert note(other) == "mIoU over 0 classes (class 0 (sky) excluded" + tail
    assert note({"iou": {}}) == "mIoU over 0 classes (class 0 excluded" + tail
    named = {**bg, "miou_excluded": ["a", "b"]}
    assert note(named) == "mIoU over 1 classes (a, b excluded" + tail
    assert note({**bg, "miou_excluded": []}, bg) == "mIoU over 2–3 (by run) classes (none excluded" + tail


def _seeded(name, model, seed, miou, group=None, extra=(), **latent):
    return {
        "run": name,
        "model": model,
        "group": group,
        "overrides": [f"seed={seed}", *extra],
        "miou": miou,
        "latent": latent,
    }


def test_mean_over_seeds_rows():
    runs = [
        _seeded("phgmm-s1", "phgmm", 1, 0.25, swap_z_random_pixels_changed=0.5, mi_z=1.0),
        _seeded("phgmm-s2", "phgmm", 2, 0.5, swap_z_random_pixels_changed=None, mi_z=2.0, mi_g=0.5),
        _seeded("x-7", "unet", 7, 0.5, group="unets"),
        _seeded("y-8", "unet", 8, 0.75),
        _seeded("lone", "fcn8s", 1, 0.5),
    ]
    rows = report._seed_rows(runs)
    # (25 + 50)/2 = 37.5 ± sd 17.68; one value has no ±; (1 + 2)/2 ± 0.707; none at all: "–"
    assert rows == [
        ["phgmm", "2", "1, 2", "37.50 ± 17.68", "50.000", "–", "1.500 ± 0.707", "0.500"],
        ["unets", "2", "7, 8", "62.50 ± 17.68", "–", "–", "–", "–"],
    ]
    header, kept = report._drop_empty_columns(["a", "b", "c", "d", "e", "f"], [["1", "–", "–", "–", "–", "2"]])
    assert (header, kept) == (["a", "b", "c", "d", "f"], [["1", "–", "–", "–", "2"]])
    assert report._drop_empty_columns(["a", "b"], [["–", "–"]], keep=1) == (["a"], [["–"]])
    # a run whose name does not end in its seed keeps its name as the recipe's label
    assert report._seed_rows([_seeded("p", "phgmm", 1, 0.5), _seeded("q", "phgmm", 2, 0.5)])[0][0] == "p"


def test_settings_recipes_and_seeds():
    m = {"overrides": [" model.num_components = 4", "model.use_global=false", "seed=5", "model.name=x"]}
    assert report._setting(m, "model.num_components") == 4 and report._setting(m, "model.use_global", True) is False
    assert report._setting(m, "missing", "d") == "d" and report._setting({}, "seed") is None
    assert report._recipe(m) == (" model.num_components = 4", "model.use_global=false")
    assert report._recipe({"overrides": [" seed =1", "a=1"]}) == ("a=1",)
    assert report._seed(m) == 5 and report._seed({"config": {"seed": 9}}) == 9 and report._seed({}) is None
    groups = report.seed_groups([{"model": "a"}, {"model": "a", "overrides": ["seed=2"]}, {"model": "b"}])
    assert {k: len(v) for k, v in groups.items()} == {("a", ()): 2, ("b", ()): 1}


def test_orderings_lines():
    one_seed = [_seeded("d", "deeplabv3", 1, 0.5), _seeded("f", "fcn8s", 1, 0.25)]
    assert report._orderings(one_seed) == [
        "- mIoU order deeplabv3 > fcn8s (the paper's): holds here; measured deeplabv3 50.00 > fcn8s 25.00."
    ]
    # several seeds: a seed that only one model ran has no per-seed line; no trimap, no trimap line
    runs = [
        _seeded("p1", "phgmm", 1, 0.25),
        _seeded("p2", "phgmm", 2, 0.5),
        _seeded("f1", "fcn8s", 1, 0.3125),
        _seeded("p3", "phgmm", 3, 0.125, extra=["loss.x=1"]),  # a longer recipe: not PHGMM's plain one
    ]
    assert report._orderings(runs) == [
        "- mIoU order phgmm > fcn8s (the paper's): holds here; measured phgmm 37.50 (mean of seeds 1, 2) > "
        "fcn8s 31.25 (seed 1).",
        "- Per seed: seed 1: fcn8s 31.25 > phgmm 25.00.",
    ]
    assert report._orderings([_seeded("p", "phgmm", 1, 0.5), _seeded("u", "unet", 1, 0.9)]) == []
    tri = [{**_seeded("p", "phgmm", 1, 0.5), "trimap": {"2": 0.5}}, _seeded("u", "unet", 1, 0.9)]
    assert report._orderings(tri) == []  # one run with a trimap error: nothing to compare


def test_headings_without_title_set_or_runs_and_other_kinds(tmp_path, figures):
    root = tmp_path / "exp-dir"
    root.mkdir()
    gpu = {**MACHINE, "gpu": "H100"}
    (root / "experiment.json").write_text(json.dumps({"kind": "latent", "runs": [{"name": "a"}], "machines": [gpu]}))
    assert write_experiment_report(root).read_text().split("\n") == [
        "# exp-dir",
        "",
        f"Command: `phgmm experiment latent --config None` (report: `phgmm experiment report {root}`).",
        "Base config `None` with `(no overrides)`; 0 of 1 runs finished.",
        "",
        "- Measured with phgmm 0.1, torch 2.5, Python 3.12 on H100 (2 CPUs, 1 torch threads), Linux.",
        "",
        "No run has finished yet.",
        "",
    ]
    assert (root / "results.csv").read_text().splitlines()[0] == CSV_HEADER.replace("iou_sky,iou_road|lane,", "")
    _run(root, "a", {**FCN, "run": "a"})
    md = write_experiment_report(root).read_text()
    assert "## Orderings" not in md and "1 of 1 runs finished" in md and "## Use of the latent" not in md
    (root / "experiment.json").write_text(json.dumps({"runs": [{"name": "a"}]}))
    md = write_experiment_report(root).read_text()
    assert "`phgmm experiment compare --config None`" in md and "## Orderings\n\n\n## Per-class" in md


def test_latent_rows_skip_runs_without_the_measures():
    runs = [
        {"run": "none", "miou": 0.5},
        {"run": "empty", "miou": 0.5, "latent": {}},
        {"run": "g", "miou": 0.5, "latent": {"g_active_units": 2, "g_units": 4, "swap_g_miou_drop": 0.5}},
        {"run": "fair", "miou": 0.5, "latent": {"mi_z": 0.5, "untrained_z_active_units": 3}},
    ]
    rows = report._latent_rows(runs)
    assert [r[:7] for r in rows] == [
        ["g", "50.00", "–", "2/4", "–", "–", "50.00"],
        ["fair", "50.00", "–", "–", "–", "–", "–"],
    ]
    assert [r[0] for r in report._fair_rows(runs)] == ["fair"] and report._fair_rows(runs)[0][-1] == "– (3)"
    assert report._fair_rows(runs)[0][9] == "0.500"


def test_edited_lines_apply_the_runs_own_settings():
    info = {"set": ["train.epochs=2"], "runs": [{"name": "a", "set": ["train.epochs=3"]}, {"name": "b"}]}
    runs = [
        {"run": "a", "config": {"train": {"epochs": 3}}},
        {"run": "b", "config": {"train": {"epochs": 3}}},
        {"run": "c|d", "config": {"train": {"epochs": 1}}},
        {"run": "e", "config": {}},
    ]
    assert report._edited_lines(info, runs) == [
        "- **b** ran with other settings than the experiment file now gives (its config.yaml): "
        "train.epochs: ran with 3, the file now says 2.",
        "- **c\\|d** ran with other settings than the experiment file now gives (its config.yaml): "
        "train.epochs: ran with 1, the file now says 2.",
        "",
    ]
    assert report._edited_lines({"runs": []}, runs[:1]) == []


def test_summary_row_defaults_and_rounding():
    # no model recorded: "?"; 2.375 M parameters is exactly halfway, so "{:.2f}" rounds it to even
    # (2.38): a divisor of 1 000 001 instead of 10⁶ would give 2.37
    row = report._summary_rows([{"run": "r", "parameters": 2_375_000, "timing": {"inference_seconds_per_image": 0.5}}])
    assert row == [["r", "?", "–", "–", "–", "–", "–", "–", "–", "–", "500.0", "2.38"]]


def test_setting_value_may_hold_an_equals_sign():
    assert report._setting({"overrides": ["data.root=/a=b"]}, "data.root") == "/a=b"


def test_base_config_line_joins_the_overrides_with_spaces():
    lines = report._heading_lines(Path("x"), {"set": ["a=1", "b=2"], "base": "c/d.yaml", "runs": [{"name": "r"}]}, [])
    assert lines[3] == "Base config `d.yaml` with `a=1 b=2`; 0 of 1 runs finished."


def test_mean_over_seeds_section_in_full():
    runs = [
        {**_seeded("phgmm-s1", "phgmm", 1, 0.25, swap_z_random_pixels_changed=0.5, mi_z=1.0), "iou": {"a": 0.25}},
        _seeded(
            "phgmm-s2",
            "phgmm",
            2,
            0.5,
            swap_z_random_pixels_changed=0.25,
            mi_z=2.0,
            swap_z_zero_miou_drop=0.01,
            mi_g=0.5,
        ),
    ]
    lines = report._score_sections(runs, "compare")
    start = lines.index("## Mean over seeds")
    assert lines[start : lines.index("## Orderings")] == [
        "## Mean over seeds",
        "",
        "| recipe | runs | seeds | mIoU | swap z random: px changed | z zeroed: mIoU drop | I(x;z) nats "
        "| I(x;g) nats |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        # sample standard deviations: of (25, 50) 17.68, of (0.5, 0.25) 17.678 points, of (1, 2) 0.707
        "| phgmm | 2 | 1, 2 | 37.50 ± 17.68 | 37.500 ± 17.678 | 1.000 | 1.500 ± 0.707 | 0.500 |",
        "",
        "Mean ± sample standard deviation over the seeds of runs that differ only by seed.",
        "",
    ]


def test_seconds_at_the_switches():
    assert report._seconds(99.95) == "100" and report._seconds(9.995) == "10.0"


def test_csv_group_latent_columns_and_no_overrides(tmp_path):
    lat = {"z_active_units": 1, "g_active_units": 2, "swap_z_miou_drop": 0.25, "swap_g_miou_drop": 0.5}
    _run(tmp_path, "r", {"model": "phgmm", "group": "k", "miou": 0.5, "latent": lat})
    (tmp_path / "experiment.json").write_text(json.dumps({"runs": [{"name": "r"}]}))
    write_experiment_report(tmp_path)
    header, row = (tmp_path / "results.csv").read_text().splitlines()
    cells = dict(zip(header.split(","), row.split(","), strict=True))
    assert (cells["group"], cells["z_active_units"], cells["g_active_units"]) == ("k", "1", "2")
    assert (cells["swap_z_miou_drop"], cells["swap_g_miou_drop"], cells["overrides"]) == ("0.25", "0.5", "")


def test_runs_and_classes_when_the_files_leave_them_out(tmp_path):
    (tmp_path / "experiment.json").write_text("{}")
    _run(tmp_path, "b", {})
    _run(tmp_path, "a", {})
    assert [m["run"] for m in load_results(tmp_path)[1]] == ["a", "b"]
    assert report._scored_classes({}) == [] and report._edited_lines({}, [{"run": "a", "config": {"seed": 1}}]) == []


def test_class_counts_by_run_name_the_least_and_the_most():
    runs = [{"iou": {"background": 0.1, **{c: 0.5 for c in "abc"[:n]}}} for n in (2, 1, 3)]
    assert report._mean_classes(runs).startswith("mIoU over 1–3 (by run) classes (background excluded;")


def test_seed_rows_go_on_past_a_single_seed_recipe():
    runs = [_seeded("lone", "fcn8s", 1, 0.5), _seeded("p-s1", "phgmm", 1, 0.25), _seeded("p-s2", "phgmm", 2, 0.5)]
    assert [r[0] for r in report._seed_rows(runs)] == ["p"]


def test_recipe_key_is_left_of_the_first_equals_sign():
    assert report._recipe({"overrides": ["model.name=a=b", "seed=1=2", "x=1"]}) == ("x=1",)


def test_orderings_take_the_first_of_equally_plain_recipes_and_order_seeds_as_text():
    runs = [
        _seeded("pa", "phgmm", 2, 0.25, extra=["a=1"]),
        _seeded("pb", "phgmm", 2, 0.75, extra=["b=1"]),
        _seeded("f2", "fcn8s", 2, 0.5),
        _seeded("f10", "fcn8s", 10, 0.375),
        _seeded("pa10", "phgmm", 10, 0.125, extra=["a=1"]),
    ]
    # PHGMM's plain recipe is the first of the two with one override: pa (25, 12.5), not pb (75)
    assert report._orderings(runs) == [
        "- mIoU order phgmm > fcn8s (the paper's): does not hold here; measured fcn8s 43.75 (mean of seeds 2, "
        "10) > phgmm 18.75 (mean of seeds 2, 10).",
        "- Per seed: seed 10: fcn8s 37.50 > phgmm 12.50; seed 2: fcn8s 50.00 > phgmm 25.00.",
    ]


def test_edited_lines_list_every_difference_and_skip_runs_without_config():
    info = {"set": ["train.epochs=2", "train.lr=0.5"], "runs": [{"name": "a"}]}
    runs = [{"run": "none", "config": {}}, {"run": "a", "config": {"train": {"epochs": 1, "lr": 0.25}}}]
    assert report._edited_lines(info, runs) == [
        "- **a** ran with other settings than the experiment file now gives (its config.yaml): "
        "train.epochs: ran with 1, the file now says 2; train.lr: ran with 0.25, the file now says 0.5.",
        "",
    ]
