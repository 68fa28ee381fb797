"""Checks of a run's data before work starts, shared by training and evaluation: data paths
relative to the folder a training started in, and what ``data.unknown_ids=ignore`` ignores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Config
from ..conventions import IGNORE_INDEX

__all__ = ["find_relative_data_root", "find_relative_data_paths", "unknown_ids_note"]


def unknown_ids_note(datasets: list, per_set: int = 16) -> str:
    """``data.unknown_ids=ignore``: one line on the share of label pixels (of up to ``per_set``
    label maps per data set, evenly spread) whose ids or colours the class table does not know and
    that become 255; a :class:`~phgmm.data.DatasetError` when none of those pixels has a class."""
    from ..data import DatasetError

    unknown = total = known_class = files = 0
    found: set = set()
    for ds in datasets:
        while hasattr(ds, "base"):  # the loaders' wrappers
            ds = ds.base
        table, channel = getattr(ds, "table", None), getattr(ds, "label_channel", "single")
        folder = type(ds).__name__ == "FolderDataset"  # reads 16-bit colour masks too
        if table is None or not ds.files:
            continue
        for i in np.unique(np.linspace(0, len(ds.files) - 1, min(per_set, len(ds.files))).round().astype(int)):
            n_unknown, n, ids = table.unknown_fraction(ds.files[int(i)][1], channel, colour_16bit=folder)
            unknown, total, files = unknown + n_unknown, total + n, files + 1
            found.update(ids)
            known_class += int((ds.load_pair(int(i))[1] != IGNORE_INDEX).sum())
    if not files:
        return ""
    shown = sorted(found, key=lambda k: (k.startswith("#"), len(k), k))[:8]
    what = ", ".join(shown) + (" …" if len(found) > 8 else "")
    line = (
        f"data.unknown_ids=ignore: {100 * unknown / max(1, total):.2f} % of the pixels of {files} sampled label "
        f"maps hold ids or colours the class table does not know{f' ({what})' if found else ''}; they are "
        f"ignored ({IGNORE_INDEX}) in the loss and the scores"
    )
    if known_class == 0:
        raise DatasetError(
            f"{line.split(';')[0]}, and none of their pixels has a class: the run would learn and "
            f"score nothing. Check data.class_table against the label files"
        )
    return line


def find_relative_data_root(cfg: Config, run: Path) -> None:
    """A relative ``data.root`` (and ``data.masks_root``, ``data.class_table``) was relative to the
    folder training started in. When the command runs elsewhere and the path is not there, that
    folder is the run folder less the saved relative ``output_dir`` (``/home/u/runs/x`` less
    ``runs/x``); the path is looked for there."""
    from ..data.classes import BUILTIN_TABLES

    saved = Path(cfg.output_dir)
    if saved.is_absolute() or ".." in saved.parts:
        return
    n = len(saved.parts)
    if n == 0 or run.parts[-n:] != saved.parts:
        return
    launch = Path(*run.parts[:-n])
    for key in ("root", "masks_root", "class_table"):
        value = getattr(cfg.data, key)
        if value is None or (key == "class_table" and value in BUILTIN_TABLES):
            continue
        path = Path(value)
        if not path.is_absolute() and not path.exists() and (launch / path).exists():
            setattr(cfg.data, key, str(launch / path))


def find_relative_data_paths(cfg: Config, checkpoint: str | Path) -> None:
    """For a checkpoint in its run folder (``<run>/checkpoints/x.pt`` beside ``<run>/config.yaml``):
    relative data paths of its config found from the folder its training started in."""
    where = Path(checkpoint).resolve().parent
    if where.name == "checkpoints" and (where.parent / "config.yaml").is_file():
        find_relative_data_root(cfg, run=where.parent)
