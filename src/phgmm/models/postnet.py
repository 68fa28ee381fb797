"""PostNet: the label-conditioned posterior p(z|x, y) of Eq. (5), used only in training.

A second encoder reads ``concat(x, one_hot(y))`` (ignore pixels one-hot to all zeros), with its own
multi-level summary and mixture heads giving π*, μ*_k, σ*_k. Two variants:

* ``"full"`` — the same ResNet depth as the main encoder (the paper's choice);
* ``"light"`` — a ResNet-18 reading the input at half resolution: about a twentieth of a
  ResNet-101's cost, for when the training step's time matters more than the posterior's capacity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import MixtureSameFamily

from ..conventions import IGNORE_INDEX, POSTNET_VARIANTS
from .backbone import resnet_encoder
from .latent import MixtureHeads, MultiLevelSummary, gaussian_mixture

__all__ = ["PostNet", "one_hot_labels"]


def one_hot_labels(y: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """N×H×W class ids → N×C×H×W float one-hot; ignored (or out-of-range) pixels are all zeros."""
    # A comparison rather than F.one_hot, which reads the labels' range back to the host: the
    # training step stays free of host synchronisations (docs/design.md §8).
    classes = torch.arange(num_classes, device=y.device).view(1, -1, 1, 1)
    return (y.unsqueeze(1) == classes).to(torch.float32)


class PostNet(nn.Module):
    """Predicts the posterior mixture p(z|x, y) from the image and its labels."""

    def __init__(
        self,
        num_classes: int,
        num_components: int,
        latent_dim: int,
        backbone: str = "resnet101",
        variant: str = "full",
        ignore_index: int = IGNORE_INDEX,
        summary_norm: str = "none",
    ) -> None:
        super().__init__()
        if variant not in POSTNET_VARIANTS:
            raise ValueError(f"postnet must be 'full', 'light' or None, got {variant!r}")
        self.variant = variant
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.encoder = resnet_encoder("resnet18" if variant == "light" else backbone, in_channels=3 + num_classes)
        self.summary = MultiLevelSummary(self.encoder.channels, num_classes, summary_norm)
        self.heads = MixtureHeads(self.summary.out_features, num_components, latent_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[MixtureSameFamily, tuple]:
        inp = torch.cat([x, one_hot_labels(y, self.num_classes, self.ignore_index).to(x.dtype)], dim=1)
        if self.variant == "light":
            # Nearest keeps the one-hot channels exact; the image loses detail PostNet can spare.
            inp = F.interpolate(inp, scale_factor=0.5, mode="nearest")
        logits, mu, logvar = self.heads(self.summary(self.encoder(inp)))
        return gaussian_mixture(logits, mu, logvar), (logits, mu, logvar)
