"""phgmm: semantic segmentation with global and local Gaussian-mixture latent spaces (PHGMM)."""

from __future__ import annotations

from .lazy import lazy_attributes
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


# Lazy so that `import phgmm` (e.g. for `phgmm synth`) does not pay for building torch modules.
__getattr__ = lazy_attributes(
    __name__, _SUBMODULES, {"PHGMM": "models.phgmm", "load": "pretrained", "PHGMMLoss": "losses"}
)
