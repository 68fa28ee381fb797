"""Data layer: data sets, class tables, transforms and the synthetic street-scene generator.

See ``docs/data.md``. Public names::

    DatasetError, build_dataset, CityscapesDataset, SynthiaDataset, CamVidDataset, FolderDataset,
    ClassTable, load_class_table, PHGMM_CLASS_NAMES, PHGMM_COLORS,
    IMAGENET_MEAN, IMAGENET_STD, load_image, normalize, denormalize, preprocess,
    generate_dataset, render_scene
"""

from __future__ import annotations

# datasets must be imported first: it defines DatasetError, which classes/transforms import.
from .datasets import (
    DATASET_NAMES,
    CamVidDataset,
    CityscapesDataset,
    DatasetError,
    FolderDataset,
    SegmentationDataset,
    SynthiaDataset,
    build_dataset,
    synthia_split,
)
from .classes import (
    IGNORE_INDEX,
    PHGMM_CLASS_NAMES,
    PHGMM_COLORS,
    ClassTable,
    colorize,
    load_class_table,
)
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augment,
    denormalize,
    load_image,
    load_label,
    normalize,
    preprocess,
    resize_pair,
)
from . import transforms, classes, datasets  # noqa: F401


def __getattr__(name: str):
    # the generator is imported lazily (it is only needed by `phgmm synth` and the tests)
    if name in ("generate_dataset", "render_scene", "synthetic"):
        import importlib
        synthetic = importlib.import_module(".synthetic", __name__)
        return synthetic if name == "synthetic" else getattr(synthetic, name)
    raise AttributeError(f"module 'phgmm.data' has no attribute {name!r}")


__all__ = [
    "DatasetError", "build_dataset", "DATASET_NAMES", "SegmentationDataset", "CityscapesDataset",
    "SynthiaDataset", "CamVidDataset", "FolderDataset", "synthia_split",
    "ClassTable", "load_class_table", "PHGMM_CLASS_NAMES", "PHGMM_COLORS", "IGNORE_INDEX", "colorize",
    "IMAGENET_MEAN", "IMAGENET_STD", "Augment", "load_image", "load_label", "normalize", "denormalize",
    "preprocess", "resize_pair", "generate_dataset", "render_scene",
]
