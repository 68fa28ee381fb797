"""File reading, the data package's module layering, and the one RGB conversion / colour mask."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import phgmm.data as data
import phgmm.visualize as visualize
from phgmm.data import DatasetError, imageio

DATA_DIR = Path(data.__file__).resolve().parent


def _package_imports(module: str) -> set[str]:
    """Sibling modules of phgmm.data (and phgmm.* modules, as '..name') imported at module level."""
    tree = ast.parse((DATA_DIR / f"{module}.py").read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            if node.level == 1 and node.module:
                out.add(node.module.split(".")[0])
            elif node.level == 1:
                out |= {a.name for a in node.names}
            else:
                out.add(".." + (node.module or ""))
    return out


def test_module_layering_has_no_cycle():
    # errors -> imageio -> classes / transforms -> datasets; nothing imports back up. phgmm.conventions
    # (the ignore index, allowed values) imports nothing of phgmm and may be imported anywhere.
    assert _package_imports("errors") == set()
    assert _package_imports("imageio") <= {"errors", "..visualize", "..conventions"}
    assert _package_imports("classes") <= {"errors", "imageio", "..visualize", "..conventions"}
    assert _package_imports("transforms") <= {"errors", "imageio", "..visualize", "..conventions"}
    assert "datasets" not in _package_imports("classes") | _package_imports("transforms")
    src = (DATA_DIR / "datasets.py").read_text()
    assert "E402" not in src and "_imread" not in src


@pytest.mark.parametrize(
    "stmt",
    [
        "import phgmm.data.classes",
        "import phgmm.data.transforms",
        "import phgmm.data.imageio",
        "import phgmm.visualize, phgmm.data",
        "import phgmm.engine.evaluation.score",
        "from phgmm.data.datasets import DatasetError; from phgmm.data import DatasetError as D; "
        "assert D is DatasetError",
        "from phgmm.data.transforms import load_image, load_label, preprocess, resize_label",
    ],
)
def test_each_module_imports_first(stmt):
    subprocess.run([sys.executable, "-c", stmt], check=True, timeout=120)


def test_public_names_are_one_object():
    from phgmm.data import classes, datasets, transforms
    from phgmm.engine.evaluation import score

    assert datasets.DatasetError is classes.DatasetError is data.DatasetError is imageio.DatasetError
    assert issubclass(DatasetError, ValueError)
    assert datasets.IMAGE_EXTS is imageio.IMAGE_EXTENSIONS is data.IMAGE_EXTENSIONS
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp"} == set(data.IMAGE_EXTENSIONS)
    assert transforms.load_image is imageio.load_image and transforms.load_label is imageio.load_label
    assert score.read_label_png is imageio.read_label_png is data.read_label_png
    assert imageio.to_rgb_uint8 is visualize.to_rgb_uint8
    assert data.colorize is classes.colorize is visualize.colorize
    assert not hasattr(transforms, "to_rgb8")


def test_to_rgb_uint8_conversions():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    to = visualize.to_rgb_uint8
    np.testing.assert_array_equal(to(rgb), rgb)
    np.testing.assert_array_equal(to(rgb[:, :, ::-1], bgr=True), rgb)
    np.testing.assert_array_equal(to(np.dstack([rgb, np.full((4, 5), 9, np.uint8)])), rgb)  # RGBA
    np.testing.assert_array_equal(to(rgb.transpose(2, 0, 1)), rgb)  # torch layout
    gray = rgb[:, :, 0]
    np.testing.assert_array_equal(to(gray), np.dstack([gray] * 3))
    np.testing.assert_array_equal(to(np.dstack([gray, gray * 0 + 255])), np.dstack([gray] * 3))  # gray + alpha
    np.testing.assert_array_equal(to(rgb.astype(np.uint16) * 257), rgb)  # 16-bit keeps its high byte
    np.testing.assert_array_equal(to(rgb / 255.0), rgb)  # float in [0, 1]
    np.testing.assert_array_equal(to(rgb.astype(np.float32)), rgb)  # float in [0, 255]
    np.testing.assert_array_equal(to(rgb.astype(np.int64) + 300), np.full_like(rgb, 255))
    assert to(np.full((2, 2), np.nan)).tolist() == np.zeros((2, 2, 3), np.uint8).tolist()
    with pytest.raises(ValueError):
        to(np.zeros((2, 2, 5)))


def test_colorize_one_convention():
    colors = [(10, 20, 30), (40, 50, 60)]
    lab = np.array([[0, 1], [255, 7]])
    out = data.colorize(lab, colors)
    assert out[0, 0].tolist() == [10, 20, 30] and out[0, 1].tolist() == [40, 50, 60]
    assert out[1, 0].tolist() == [0, 0, 0] and out[1, 1].tolist() == [0, 0, 0]  # ignore / unknown: black
    table = data.load_class_table("camvid")
    np.testing.assert_array_equal(table.colorize(lab), visualize.colorize(lab, table.colors))


def test_load_image_and_label(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), rgb[:, :, ::-1])
    np.testing.assert_array_equal(data.load_image(tmp_path / "a.png"), rgb)
    lab = rng.integers(0, 30, (6, 7), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "l.png"), np.dstack([lab] * 3))  # equal channels are accepted
    np.testing.assert_array_equal(data.load_label(tmp_path / "l.png"), lab)
    cv2.imwrite(str(tmp_path / "l2.png"), rgb[:, :, ::-1])  # the file's red channel is rgb[..., 0]
    with pytest.raises(DatasetError, match=r"l2\.png: label map has 3 different channels"):
        data.load_label(tmp_path / "l2.png")
    np.testing.assert_array_equal(data.load_label(tmp_path / "l2.png", channel="red"), rgb[:, :, 0])
    with pytest.raises(DatasetError, match=r"nope\.png: image file not found"):
        data.load_image(tmp_path / "nope.png")
    assert imageio.list_images(tmp_path) == [tmp_path / "a.png", tmp_path / "l.png", tmp_path / "l2.png"]


def test_read_label_png(tmp_path):
    lab = np.random.default_rng(2).integers(0, 12, (5, 6), dtype=np.uint8)
    pal = Image.fromarray(lab, mode="P")
    pal.putpalette([v for i in range(256) for v in (i * 7 % 256, 0, 255 - i)])
    pal.save(tmp_path / "p.png")
    out = data.read_label_png(tmp_path / "p.png")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, lab)  # palette indices, not colours
    Image.fromarray(lab.astype(np.uint16) * 1000).save(tmp_path / "i16.png")
    np.testing.assert_array_equal(data.read_label_png(tmp_path / "i16.png"), lab.astype(np.int64) * 1000)
    Image.fromarray(np.dstack([lab] * 3)).save(tmp_path / "rgb.png")
    with pytest.raises(DatasetError, match=r"rgb\.png: expected a single-channel"):
        data.read_label_png(tmp_path / "rgb.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(DatasetError, match=r"bad\.png: cannot be read"):
        data.read_label_png(tmp_path / "bad.png")
