"""Data layer: data sets, class tables, file reading, transforms and the synthetic street-scene
generator.

See ``docs/data.md``. Public names::

    DatasetError, build_dataset, CityscapesDataset, SynthiaDataset, CamVidDataset, FolderDataset,
    ClassTable, load_class_table, PHGMM_CLASS_NAMES, PHGMM_COLORS, IGNORE_INDEX, colorize,
    IMAGE_EXTENSIONS, load_image, load_label, read_label_png,
    IMAGENET_MEAN, IMAGENET_STD, normalize, denormalize, preprocess, resize_label, resize_image,
    resize_pair, Augment, generate_dataset, render_scene

Modules, each importing only those above it: ``errors`` (DatasetError) → ``imageio`` (reading
files) → ``classes`` (class tables) and ``transforms`` (resizing, augmentation) → ``datasets``.
"""

from __future__ import annotations

from . import classes, datasets, errors, imageio, transforms  # noqa: F401
from .classes import (
    IGNORE_INDEX,
    PHGMM_CLASS_NAMES,
    PHGMM_COLORS,
    ClassTable,
    colorize,
    load_class_table,
)
from .datasets import (
    DATASET_NAMES,
    CamVidDataset,
    CityscapesDataset,
    FolderDataset,
    SegmentationDataset,
    SynthiaDataset,
    build_dataset,
    synthia_split,
)
from .errors import DatasetError
from .imageio import IMAGE_EXTENSIONS, load_image, load_label, read_label_png
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augment,
    denormalize,
    normalize,
    preprocess,
    resize_image,
    resize_label,
    resize_pair,
)


def __getattr__(name: str):
    # the generator is imported lazily (it is only needed by `phgmm synth` and the tests)
    if name in ("generate_dataset", "render_scene", "synthetic"):
        import importlib

        synthetic = importlib.import_module(".synthetic", __name__)
        return synthetic if name == "synthetic" else getattr(synthetic, name)
    raise AttributeError(f"module 'phgmm.data' has no attribute {name!r}")


__all__ = [
    "DatasetError",
    "build_dataset",
    "DATASET_NAMES",
    "SegmentationDataset",
    "CityscapesDataset",
    "SynthiaDataset",
    "CamVidDataset",
    "FolderDataset",
    "synthia_split",
    "ClassTable",
    "load_class_table",
    "PHGMM_CLASS_NAMES",
    "PHGMM_COLORS",
    "IGNORE_INDEX",
    "colorize",
    "IMAGE_EXTENSIONS",
    "load_image",
    "load_label",
    "read_label_png",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Augment",
    "normalize",
    "denormalize",
    "preprocess",
    "resize_label",
    "resize_image",
    "resize_pair",
    "generate_dataset",
    "render_scene",
]
