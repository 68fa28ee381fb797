"""phgmm: semantic segmentation with global and local Gaussian-mixture latent spaces (PHGMM)."""

from __future__ import annotations

from .version import __version__

__all__ = ["__version__", "PHGMM", "PHGMMLoss", "load", "config"]

#: sub-packages reachable as attributes after a plain ``import phgmm`` (``phgmm.config.load_config(…)``,
#: ``phgmm.models.fold_batchnorm(…)`` as the README writes them), each imported on first use
_SUBMODULES = (
    "config",
    "data",
    "engine",
    "experiments",
    "losses",
    "metrics",
    "models",
    "pretrained",
    "report",
    "visualize",
    "benchmark",
)


def __getattr__(name: str):
    # Lazy so that `import phgmm` (e.g. for `phgmm synth`) does not pay for building torch modules.
    if name == "PHGMM":
        from .models.phgmm import PHGMM

        return PHGMM
    if name == "load":
        from .pretrained import load

        return load
    if name == "PHGMMLoss":
        from .losses import PHGMMLoss

        return PHGMMLoss
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'phgmm' has no attribute {name!r}")
