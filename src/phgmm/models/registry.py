"""The model zoo: every network ``model.name`` can build, with the paper it comes from.

Each network module registers its classes with :func:`register`; ``phgmm.models`` imports every
network module, so the table is complete once the package is imported. Adding a comparison
network: a class on the baselines' base (``models/base.py``'s ``BaselineNetwork``: an ``encoder``, a ``head``,
``parameter_counts`` and :class:`~phgmm.models.shareable.Shareable`'s saving and loading),
decorated with :func:`register` (which writes its name once, for the registry and for the
``model_names`` that ``from_pretrained`` accepts), and an import line in ``models/__init__.py``;
``tests/test_contracts.py`` then checks it against the contract every network honours
(``models/contracts.py``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = ["register", "registered", "build_registered", "PHGMM_ONLY_KWARGS", "ModelEntry"]

#: Model keys that only PHGMM understands. The config system passes one set of model keys to
#: whichever network it builds, so the other networks accept and ignore these.
PHGMM_ONLY_KWARGS = frozenset(
    {
        "num_components",
        "use_global",
        "postnet",
        "latent_dim",
        "component_dim",
        "global_dim",
        "decoder_units",
        "decoder_channels",
        "sample_latent",
        "local_channels",
        "ignore_index",
        "decode_posterior",
        "use_local",
        "skip_dropout",
        "summary_norm",
    }
)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type
    note: str  # one line for `phgmm models`: what it is and its citation


_ENTRIES: dict[str, ModelEntry] = {}


def register(name: str, note: str) -> Callable[[type], type]:
    """Class decorator: make ``cls`` buildable as ``model.name = name``, and add ``name`` to the
    class's own ``model_names`` (the names its saved files may carry, checked on loading)."""

    def deco(cls: type) -> type:
        if name in _ENTRIES and _ENTRIES[name].cls is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        _ENTRIES[name] = ModelEntry(name, cls, note)
        cls.model_names = (*cls.__dict__.get("model_names", ()), name)
        return cls

    return deco


def registered() -> dict[str, ModelEntry]:
    """Every registered network, in registration order."""
    return dict(_ENTRIES)


def build_registered(name: str, num_classes: int = 12, backbone: str = "resnet101", **kwargs: Any) -> nn.Module:
    """Build a comparison network by name.

    PHGMM-only keys (:data:`PHGMM_ONLY_KWARGS`) are accepted and ignored, so one config section
    can build any model; any other key the network does not take raises ``TypeError``.
    """
    key = name.lower()
    others = [n for n in _ENTRIES if n != "phgmm"]
    if key not in _ENTRIES or key == "phgmm":
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(others)}")
    cls = _ENTRIES[key].cls
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    own = {k: v for k, v in kwargs.items() if k not in PHGMM_ONLY_KWARGS or k in accepted}
    unknown = sorted(set(own) - accepted)
    if unknown:
        raise TypeError(
            f"{cls.__name__} got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"it accepts {', '.join(sorted(accepted - {'num_classes', 'backbone'}))}"
        )
    return cls(num_classes=num_classes, backbone=backbone, **own)
