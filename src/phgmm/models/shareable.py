"""``save_pretrained`` / ``from_pretrained`` on every phgmm network (:mod:`.serialization`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["Shareable"]


class Shareable:
    """Mixin: a network that records how it was built (``build_args``) saves as a safetensors +
    JSON folder and loads back without unpickling anything."""

    build_args: dict[str, Any]
    metadata: dict[str, Any]

    def save_pretrained(self, out_dir: str | Path, overwrite: bool = False) -> Path:
        """Write ``model.safetensors`` + ``config.json`` (no PostNet, no optimiser) to ``out_dir``.
        Class names, colours, working size and run config come from ``self.metadata`` when the
        model was loaded with ``phgmm.load``."""
        from .serialization import save_folder

        meta = getattr(self, "metadata", None) or {}
        classes = {"names": meta.get("class_names"), "colors": meta.get("colors")}
        return save_folder(self, out_dir, config=meta.get("config"), classes=classes, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu"):
        """The eval-mode network saved in the folder ``path`` (``save_pretrained`` / ``phgmm publish``)."""
        from .serialization import ModelFileError, is_saved_model_dir, model_from_folder, read_folder

        if not is_saved_model_dir(path):
            raise ModelFileError(
                f"{path}: not a saved model folder (model.safetensors + config.json); "
                f"for a training checkpoint use phgmm.load"
            )
        state = read_folder(path)
        if state["build"].get("name") not in cls.model_names:
            raise TypeError(f"{path}: holds a {state['build'].get('name')} model, not a {cls.__name__}; use phgmm.load")
        return model_from_folder(state, cls.from_build_args).to(map_location)

    #: the ``model.name`` values this class builds
    model_names: tuple[str, ...] = ()

    @classmethod
    def from_build_args(cls, name: str, **kwargs: Any):
        """Construct the network from its saved build arguments."""
        raise NotImplementedError
