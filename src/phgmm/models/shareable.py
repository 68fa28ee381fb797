"""``save_pretrained`` / ``from_pretrained`` on every phgmm network (see :mod:`phgmm.pretrained`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["Shareable"]


class Shareable:
    """Mixin: a network that records how it was built (``build_args``) can be saved as a
    safetensors + JSON folder and loaded back without unpickling anything."""

    build_args: dict[str, Any]
    metadata: dict[str, Any]

    def save_pretrained(self, out_dir: str | Path, overwrite: bool = False) -> Path:
        """Write ``model.safetensors`` + ``config.json`` (no PostNet, no optimiser) to ``out_dir``.
        Class names, colours, working size and run config come from ``self.metadata`` when the
        model was loaded with :func:`phgmm.load`."""
        from ..pretrained import save_pretrained

        meta = getattr(self, "metadata", None) or {}
        classes = {"names": meta.get("class_names"), "colors": meta.get("colors")}
        return save_pretrained(self, out_dir, config=meta.get("config"), classes=classes, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu"):
        """The eval-mode network saved in ``path`` (a folder, or a training checkpoint)."""
        from ..pretrained import load

        model = load(path, map_location)
        if not isinstance(model, cls):
            raise TypeError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}; use phgmm.load")
        return model
