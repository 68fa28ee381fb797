"""The two latent spaces of PHGMM (paper Fig. 3 and 4, docs/design.md §2).

* :class:`MultiLevelSummary` — per encoder level, conv3×3(F_l → C) + sigmoid + global average pool,
  concatenated into ``s ∈ R^{4C}``. Local space, global space and PostNet each own one.
* :class:`MixtureHeads` — from ``s``, the K component means and log-variances and the K mixture
  logits of a diagonal Gaussian mixture (Eq. 1 for q(z|x), Eq. 5 for PostNet's p(z|x,y)).
* :class:`LocalSpace` — q(z|x) and the decoder's input map built from ``π_k · μ_k``.
* :class:`GlobalSpace` — q(g|x) and the global feature map built from ``μ_g``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from ..conventions import SUMMARY_NORMS

__all__ = [
    "MultiLevelSummary",
    "MixtureHeads",
    "LocalSpace",
    "GlobalSpace",
    "gaussian_mixture",
    "std_from_logvar",
    "LOGVAR_RANGE",
]

# log σ² is clamped to this range: wide enough never to bind in normal training, narrow enough
# that exp() can neither overflow nor make a KL term infinite (from-scratch training starts wild).
LOGVAR_RANGE = (-12.0, 8.0)


def gaussian_mixture(logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> MixtureSameFamily:
    """A batch of K-component diagonal Gaussian mixtures over R^L.

    Args:
        logits: N×K mixture logits (π = softmax(logits)).
        mu, logvar: N×K×L component means and log-variances.
    """
    # validate_args=False: a diverging run (NaN parameters) must reach the trainer's own
    # non-finite check, which names the step and the term, instead of failing in a constructor
    normal = Independent(Normal(mu.float(), std_from_logvar(logvar), validate_args=False), 1, validate_args=False)
    return MixtureSameFamily(Categorical(logits=logits.float(), validate_args=False), normal, validate_args=False)


def std_from_logvar(logvar: torch.Tensor) -> torch.Tensor:
    """σ = exp(½ log σ²) in fp32, log σ² clamped to :data:`LOGVAR_RANGE`.

    Densities and KLs are built in fp32 even under autocast: a bf16 sum over L = 256 dimensions
    is too coarse."""
    return torch.exp(0.5 * logvar.float().clamp(*LOGVAR_RANGE))


class MultiLevelSummary(nn.Module):
    """``s = concat_l GAP(sigmoid(conv3×3(F_l → C)))`` — a 4C-vector per image (Fig. 3/4).

    ``norm="batch"`` (a departure from the paper, off by default) puts a BatchNorm without affine
    parameters between each convolution and its sigmoid: the pre-sigmoid maps then have zero mean
    and unit variance over the batch, so training cannot switch the summary off by driving them
    into the sigmoid's flat negative tail (docs/latent.md).
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, norm: str = "none") -> None:
        super().__init__()
        if norm not in SUMMARY_NORMS:
            raise ValueError(f"summary norm must be 'none' or 'batch', got {norm!r}")
        self.convs = nn.ModuleList(nn.Conv2d(c, num_classes, 3, padding=1) for c in in_channels)
        self.norms = (
            nn.ModuleList(nn.BatchNorm2d(num_classes, affine=False) for _ in in_channels) if norm == "batch" else None
        )
        self.out_features = num_classes * len(in_channels)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.pool(self.normalize([conv(f) for conv, f in zip(self.convs, features, strict=True)]))

    def normalize(self, pre: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The convolutions' outputs as the sigmoid reads them (normalised with ``norm="batch"``)."""
        return [n(p) for n, p in zip(self.norms, pre, strict=True)] if self.norms is not None else list(pre)

    @staticmethod
    def pool(pre: Sequence[torch.Tensor]) -> torch.Tensor:
        """``s`` from the convolutions' outputs (one N×C×h×w map per level)."""
        return torch.cat([torch.sigmoid(p).mean(dim=(2, 3)) for p in pre], dim=1)


class MixtureHeads(nn.Module):
    """Per-component FC heads for μ_k and log σ²_k (L each) and one FC for the K mixture logits.

    The K heads of a kind are stored as one ``Linear(in, K·L)``: its row block k *is* head k
    (independent weights), and one matrix product is faster than K small ones.
    """

    def __init__(self, in_features: int, num_components: int, latent_dim: int) -> None:
        super().__init__()
        self.num_components = num_components
        self.latent_dim = latent_dim
        self.mu = nn.Linear(in_features, num_components * latent_dim)
        self.logvar = nn.Linear(in_features, num_components * latent_dim)
        self.logits = nn.Linear(in_features, num_components)

    def forward(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shape = (s.shape[0], self.num_components, self.latent_dim)
        return self.logits(s), self.mu(s).view(shape), self.logvar(s).view(shape)


class LocalSpace(nn.Module):
    """Local latent space z: q(z|x) as a K-component mixture and the decoder input (Fig. 3).

    For each component, ``h_k = ReLU(FC_k(π_k · μ_k)) ∈ R^D``; the K vectors are concatenated
    (K·D channels), fused to ``out_channels`` (512) and broadcast to the H/32 × W/32 grid. The
    fusion convolution is 1×1 + ReLU; since its input is constant over the grid it is applied to
    the 1×1 vector before broadcasting, which gives the identical map at a fraction of the cost.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        num_components: int = 12,
        latent_dim: int = 256,
        component_dim: int = 64,
        out_channels: int = 512,
        summary_norm: str = "none",
    ) -> None:
        super().__init__()
        self.summary = MultiLevelSummary(in_channels, num_classes, summary_norm)
        self.heads = MixtureHeads(self.summary.out_features, num_components, latent_dim)
        # FC_k: R^L → R^D, one weight matrix per component.
        self.component_weight = nn.Parameter(torch.empty(num_components, component_dim, latent_dim))
        self.component_bias = nn.Parameter(torch.zeros(num_components, component_dim))
        self.fuse = nn.Conv2d(num_components * component_dim, out_channels, 1)
        self.out_channels = out_channels
        nn.init.kaiming_uniform_(self.component_weight.view(-1, latent_dim), a=5**0.5)

    def distribution(self, s: torch.Tensor) -> tuple[MixtureSameFamily, tuple]:
        """q(z|x) and its raw parameters (mixture logits, μ, log σ²) from the summary ``s``."""
        logits, mu, logvar = self.heads(s)
        return gaussian_mixture(logits, mu, logvar), (logits, mu, logvar)

    def decode_input(self, pi: torch.Tensor, z: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """The 512-channel map fed to the decoder from weights π (N×K) and component codes z (N×K×L)."""
        h = torch.einsum("nkl,kdl->nkd", pi.unsqueeze(-1) * z, self.component_weight)
        h = F.relu(h + self.component_bias)
        fused = F.relu(self.fuse(h.flatten(1)[:, :, None, None]))
        return fused.expand(-1, -1, grid[0], grid[1])


class GlobalSpace(nn.Module):
    """Global latent space g: q(g|x) = N(μ_g, σ_g²) and the global feature map (Fig. 4).

    ``FC(μ_g) → R^M`` (+ReLU) is broadcast to H/32 × W/32, passed through conv3×3 + ReLU and later
    upsampled to H/4 by the merge stage.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        latent_dim: int = 256,
        out_channels: int = 64,
        summary_norm: str = "none",
    ) -> None:
        super().__init__()
        self.summary = MultiLevelSummary(in_channels, num_classes, summary_norm)
        self.mu = nn.Linear(self.summary.out_features, latent_dim)
        self.logvar = nn.Linear(self.summary.out_features, latent_dim)
        self.project = nn.Linear(latent_dim, out_channels)
        self.conv = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.out_channels = out_channels

    def distribution(self, s: torch.Tensor) -> tuple[Independent, torch.Tensor]:
        """q(g|x) and μ_g from the summary ``s``."""
        mu = self.mu(s)
        normal = Normal(mu.float(), std_from_logvar(self.logvar(s)), validate_args=False)
        return Independent(normal, 1, validate_args=False), mu

    def feature_map(self, g: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """The M-channel H/32 map from a global code (the mean μ_g at inference)."""
        v = F.relu(self.project(g))[:, :, None, None].expand(-1, -1, grid[0], grid[1])
        return F.relu(self.conv(v))
