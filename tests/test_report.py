import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phgmm.metrics.calibration import CalibrationAccumulator
from phgmm.report import reliability_diagram, write_report
from phgmm.visualize import colorize, error_overlay, heatmap, overlay, save_png, to_rgb_uint8

NAMES = ["background", "sky", "road", "car"]
COLORS = [(0, 0, 0), (70, 130, 180), (128, 64, 128), (0, 0, 142)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_valid_png(path: Path):
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] > 10 and im.size[1] > 10


def _links(md: str):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def test_colorize_overlay_error_overlay_heatmap():
    lab = np.array([[0, 1], [3, 255]])
    rgb = colorize(lab, COLORS, ignore_color=(1, 2, 3))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[0, 1].tolist() == [70, 130, 180] and rgb[1, 0].tolist() == [0, 0, 142]
    assert rgb[1, 1].tolist() == [1, 2, 3]

    img = np.full((2, 2, 3), 100, np.uint8)
    assert overlay(img, np.full((2, 2, 3), 200, np.uint8), 0.5)[0, 0].tolist() == [150, 150, 150]
    err = error_overlay(img, np.array([[1, 2], [0, 0]]), np.array([[1, 1], [255, 0]]), alpha=1.0)
    assert err[0, 0, 1] > 150 and err[0, 0, 0] < 50  # right → green
    assert err[0, 1, 0] > 150 and err[0, 1, 1] < 50  # wrong → red
    assert err[1, 0].tolist() == [128, 128, 128]  # ignored → gray
    half = error_overlay(img, np.array([[1, 2], [0, 0]]), np.array([[1, 1], [255, 0]]))
    assert half[1, 0].tolist() == [114, 114, 114]  # blended over the image

    h = heatmap(np.array([[0.0, 1.0], [np.nan, 0.5]]))
    assert h.shape == (2, 2, 3) and h.dtype == np.uint8
    assert h[1, 0].tolist() == [0, 0, 0]
    assert h[0, 1].sum() > h[0, 0].sum()
    chw = np.random.rand(3, 4, 5).astype(np.float32)
    assert to_rgb_uint8(chw).shape == (4, 5, 3)


def test_save_png_roundtrip_atomic(tmp_path):
    lab = np.random.default_rng(0).integers(0, 12, (9, 7)).astype(np.uint8)
    p = save_png(tmp_path / "sub" / "lab.png", lab)
    assert np.array_equal(np.array(Image.open(p)), lab)
    rgb = colorize(lab, COLORS * 3)
    p2 = save_png(tmp_path / "rgb.png", rgb)
    assert np.array_equal(np.array(Image.open(p2)), rgb)
    assert sorted(x.name for x in tmp_path.rglob("*") if x.is_file()) == ["lab.png", "rgb.png"]
    with pytest.raises(ValueError):
        save_png(tmp_path / "bad.png", np.zeros((2, 2, 2)))


def _full_metrics():
    return {
        "miou": 0.5,
        "pixel_accuracy": 0.8,
        "mean_boundary_iou": 0.3,
        "num_images": 3,
        "iou": {"background": 0.9, "sky": 0.7, "road": 0.3, "car": None},
        "precision": {"background": 0.95, "sky": 0.8, "road": 0.5, "car": None},
        "recall": {"background": 0.9, "sky": 0.85, "road": 0.4, "car": None},
        "boundary_iou": {"background": 0.5, "sky": 0.4, "road": 0.2, "car": None},
        "confusion": [[90, 5, 5, 0], [2, 70, 28, 0], [10, 20, 30, 0], [0, 0, 0, 0]],
        "class_names": NAMES,
        "trimap": {str(w): 0.5 / w for w in range(1, 41)},
        "clustering": [
            {"epoch": 1, "silhouette": 0.1, "calinski_harabasz": 12.0, "davies_bouldin": 2.0},
            {
                "epoch": 2,
                "silhouette": None,
                "calinski_harabasz": None,
                "davies_bouldin": None,
                "reason": "need at least 2 distinct labels, got 1",
            },
        ],
        "epoch": 7,
    }


def test_write_report_full(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 4, (24, 32))
    gt[:3] = 255
    pred = rng.integers(0, 4, (24, 32))
    rgb = rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)
    samples = [(rgb, gt, pred), (None, gt, pred, rng.random((24, 32)))]
    tsne = (rng.normal(size=(30, 2)), np.repeat(np.arange(3), 10))
    path = write_report(tmp_path / "rep", _full_metrics(), NAMES, COLORS, samples=samples, tsne=tsne, title="my eval")
    assert path == tmp_path / "rep" / "report.md"
    md = path.read_text()
    assert md.startswith("# my eval")
    links = _links(md)
    assert {Path(link).name for link in links} == {"iou.png", "trimap.png", "confusion.png", "tsne.png", "samples.png"}
    for link in links:
        assert not Path(link).is_absolute()
        _assert_valid_png(path.parent / link)
    assert "| sky | 70.00 | 80.00 | 85.00 | 40.00 |" in md
    assert "| background * | 90.00 |" in md
    assert "| car | – | – | – | – |" in md
    assert "50.00 %" in md  # mIoU
    assert "silhouette" in md and "0.1" in md and "need at least 2 distinct" in md
    assert "| epoch | 7 |" in md


def test_write_report_minimal_leaves_out_missing_parts(tmp_path):
    m = {"miou": 0.25, "iou": {"bg": None, "a": 0.25}}
    path = write_report(tmp_path, m, ["bg", "a"], None)
    md = path.read_text()
    links = _links(md)
    assert [Path(link).name for link in links] == ["iou.png"]
    _assert_valid_png(path.parent / links[0])
    assert "Trimap" not in md and "Confusion" not in md and "Samples" not in md and "t-SNE" not in md


def test_reliability_diagram_writes_png(tmp_path):
    rng = np.random.default_rng(8)
    acc = CalibrationAccumulator()
    conf = rng.beta(4, 1.2, 5000)
    acc.update(conf, rng.random(5000) < conf**2)
    path = reliability_diagram(acc.compute(), tmp_path / "sub" / "reliability.png", title="val")
    assert path == tmp_path / "sub" / "reliability.png"
    _assert_valid_png(path)
    empty = reliability_diagram(CalibrationAccumulator().compute(), tmp_path / "empty.png", title="")
    _assert_valid_png(empty)
    with pytest.raises(ValueError, match="no 'bins'"):
        reliability_diagram({}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
