"""What the engine and the benchmark may ask of a network, written down (after smp's ``base/``).

:class:`SegmentationNetwork` is the contract every registered network honours;
:class:`LatentNetwork` is what a network with latent spaces (PHGMM) offers besides. Code that
treats networks differently asks ``isinstance(model, LatentNetwork)`` instead of probing for
methods one at a time or comparing model names; ``tests/test_contracts.py`` checks every
registered network against both.

The protocols name methods only: from Python 3.12 ``isinstance`` looks members up statically
(``inspect.getattr_static``), which cannot see the submodules an ``nn.Module`` keeps in
``_modules``, so attributes such as ``encoder`` are part of the contract in words, not in code.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["SegmentationNetwork", "LatentNetwork"]


@runtime_checkable
class SegmentationNetwork(Protocol):
    """Every registered network.

    ``net(x)`` on N×3×H×W images gives N×C×H×W logits in eval mode; in training mode it may give
    an :class:`~phgmm.models.auxiliary.AuxLogits` or PHGMM's output, which the loss reads.
    ``parameter_counts()`` gives the parameters per part, with ``inference_total`` and
    ``training_total``; the ``encoder`` attribute is the feature extractor (a ResNet, or the
    network's own).
    """

    def forward(self, x: torch.Tensor, *args: Any) -> Any: ...

    def parameter_counts(self) -> dict[str, int]: ...


@runtime_checkable
class LatentNetwork(Protocol):
    """A network with latent spaces (PHGMM), on top of :class:`SegmentationNetwork`.

    Its training forward is ``net(x, y)`` (``forward_latent(x, y)``, in either mode: the logits with the latent
    distributions they were decoded from): PostNet (``postnet``, None without it) reads the labels.
    ``encode(x)`` computes the codes once, ``decode(enc)`` the logits from their means (what
    evaluate runs, keeping the codes for the latent probes), ``sample_logits(x, n)`` n decodes of
    sampled local codes (the uncertainty maps). Its ``local_space`` / ``global_space`` attributes
    are None when the network has none.
    """

    def forward_latent(self, x: torch.Tensor, y: torch.Tensor | None = None, sample: bool | None = None) -> Any: ...

    def encode(self, x: torch.Tensor) -> Any: ...

    def decode(
        self,
        enc: Any,
        pi: torch.Tensor | None = None,
        mu_z: torch.Tensor | None = None,
        mu_g: torch.Tensor | None = None,
    ) -> torch.Tensor: ...

    def sample_logits(self, x: torch.Tensor, n: int) -> torch.Tensor: ...
