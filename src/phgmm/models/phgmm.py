"""The PHGMM network (paper Fig. 2, SPEC §2): encoder, local space z, global space g, decoder,
merge head and, for training only, PostNet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, MixtureSameFamily

from .backbone import resnet_encoder
from .decoder import Decoder, MergeHead
from .latent import GlobalSpace, LocalSpace, MultiLevelSummary
from .postnet import PostNet

__all__ = ["PHGMM", "PHGMMOutput"]


@dataclass
class PHGMMOutput:
    """What a training-mode forward returns.

    Attributes:
        logits: N×C×H×W class scores (softmax is applied by the loss and by ``predict``).
        q_z: q(z|x), a K-component mixture of L-dim diagonal Gaussians (Eq. 1).
        p_z: PostNet's p(z|x, y) (Eq. 5); None without labels or without PostNet.
        q_g: q(g|x) = N(μ_g, σ_g²) (Eq. 2); None when the model has no global space.
    """

    logits: torch.Tensor
    q_z: MixtureSameFamily
    p_z: MixtureSameFamily | None = None
    q_g: Independent | None = None


class PHGMM(nn.Module):
    """Probabilistic Hourglass Gaussian Mixture Model for semantic segmentation.

    Args:
        num_classes: C, background included (12 for the paper's 11 classes + background).
        num_components: K, mixture components of the local space z.
        backbone: ``resnet18``/``34``/``50``/``101``.
        use_global: build the global space g (the ablation's "without g" is False).
        postnet: ``"full"``, ``"light"`` or None (inference-only model; no ℓ_z).
        latent_dim: L, dimension of z and g.
        component_dim: D, width of each component's decoder input h_k.
        global_dim: M, channels of the global feature map.
        local_channels: channels of the fused local map fed to the decoder (512).
        decoder_channels: channels of every decoder unit (3C = 36 by default; None → 3·C).
        decoder_units: residual units per decoder group, coarse to fine.
        sample_latent: decode reparameterised samples of z instead of the means μ_k in training
            (the paper decodes the means: ``f(μ̄_z)``).
        in_channels: image channels.
        ignore_index: label value excluded from PostNet's one-hot input.
    """

    def __init__(self, num_classes: int = 12, num_components: int = 12, backbone: str = "resnet101",
                 use_global: bool = True, postnet: str | None = "full", latent_dim: int = 256,
                 component_dim: int = 64, global_dim: int = 64, local_channels: int = 512,
                 decoder_channels: int | None = None, decoder_units: Sequence[int] = (3, 23, 4, 3),
                 sample_latent: bool = False, in_channels: int = 3, ignore_index: int = 255) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if num_components < 1:
            raise ValueError(f"num_components must be at least 1, got {num_components}")
        if postnet not in ("full", "light", None):
            raise ValueError(f"postnet must be 'full', 'light' or None, got {postnet!r}")
        decoder_channels = decoder_channels or 3 * num_classes
        self.num_classes = num_classes
        self.num_components = num_components
        self.latent_dim = latent_dim
        self.sample_latent = sample_latent
        self.encoder = resnet_encoder(backbone, in_channels=in_channels)
        chans = self.encoder.channels
        self.local_space = LocalSpace(chans, num_classes, num_components, latent_dim, component_dim,
                                      local_channels)
        self.global_space = GlobalSpace(chans, num_classes, latent_dim, global_dim) if use_global else None
        self.decoder = Decoder(chans, local_channels, decoder_channels, decoder_units)
        merge_in = 4 * decoder_channels + (global_dim if use_global else 0)
        self.head = MergeHead(merge_in, decoder_channels, num_classes)
        self.postnet = (PostNet(num_classes, num_components, latent_dim, backbone, postnet, ignore_index)
                        if postnet else None)

    # -- building blocks -------------------------------------------------------------------------
    def level_maps(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        """The local summary s_z, the global summary s_g and the decoder's skip convolutions.

        Three 3×3 convolutions read each encoder level F_l: the local space's summary (C outputs),
        the global space's (C) and the decoder skip (3C), each with its own weights (SPEC §2). They
        run as one convolution over the concatenated filters and the output is split: the same
        maps, but F_l — the largest tensors here — is read once, and one convolution with 5C
        outputs runs much faster than three narrow ones (measured: ``phgmm benchmark``).

        Returns:
            ``s_z`` (N×4C), ``s_g`` (N×4C, None without a global space) and the skip
            convolutions' outputs, one per level in F1 … F4 order (before their BN + ReLU).
        """
        summaries = [self.local_space.summary.convs]
        if self.global_space is not None:
            summaries.append(self.global_space.summary.convs)
        summary_maps, skips = [], []  # per level: [local, (global)]; the skip's output
        for level, (f, skip_conv) in enumerate(zip(feats, self.decoder.skip_convs())):
            convs = [s[level] for s in summaries] + [skip_conv]
            weight = torch.cat([c.weight for c in convs])
            bias = torch.cat([c.bias if c.bias is not None else c.weight.new_zeros(c.out_channels)
                              for c in convs])
            out = F.conv2d(f, weight, bias, padding=skip_conv.padding)
            *parts, skip = out.split([c.out_channels for c in convs], dim=1)
            summary_maps.append(parts)
            skips.append(skip)
        s_z = MultiLevelSummary.pool([maps[0] for maps in summary_maps])
        s_g = (MultiLevelSummary.pool([maps[1] for maps in summary_maps])
               if self.global_space is not None else None)
        return s_z, s_g, skips

    def _decode(self, x: torch.Tensor, feats: list[torch.Tensor], skips: list[torch.Tensor],
                pi: torch.Tensor, z: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        grid = tuple(feats[3].shape[-2:])
        sides = self.decoder(self.local_space.decode_input(pi, z, grid), skips)
        if self.global_space is not None and g is not None:
            sides.append(self.global_space.feature_map(g, grid))
        return self.head(sides, feats[0].shape[-2:], x.shape[-2:])

    def infer(self, x: torch.Tensor, y: torch.Tensor | None = None, sample: bool | None = None) -> PHGMMOutput:
        """Full forward with distributions. PostNet runs only when it exists and ``y`` is given."""
        feats = self.encoder(x)
        s_z, s_g, skips = self.level_maps(feats)
        q_z, (logits_pi, mu, _) = self.local_space.distribution(s_z)
        sample = self.sample_latent if sample is None else sample
        z = q_z.component_distribution.rsample() if sample else mu
        q_g, g = self.global_space.distribution(s_g) if self.global_space is not None else (None, None)
        logits = self._decode(x, feats, skips, torch.softmax(logits_pi, dim=1), z, g)
        p_z = self.postnet(x, y)[0] if (self.postnet is not None and y is not None) else None
        return PHGMMOutput(logits=logits, q_z=q_z, p_z=p_z, q_g=q_g)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | PHGMMOutput:
        """Training mode: a :class:`PHGMMOutput`. Eval mode: N×C×H×W logits; PostNet never runs."""
        if self.training:
            return self.infer(x, y)
        feats = self.encoder(x)
        s_z, s_g, skips = self.level_maps(feats)
        logits_pi, mu, _ = self.local_space.heads(s_z)
        g = self.global_space.mu(s_g) if self.global_space is not None else None
        return self._decode(x, feats, skips, torch.softmax(logits_pi, dim=1), mu, g)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class indices N×H×W (eval-mode forward + argmax; the train/eval mode is restored)."""
        was_training = self.training
        self.eval()
        try:
            return self(x).argmax(dim=1)
        finally:
            self.train(was_training)

    def sample_logits(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """n×N×C×H×W logits, each decoded from a reparameterised sample of z ~ q(z|x).

        The encoder runs once; every sample draws one z_k per component (and keeps π and μ_g),
        the basis of the predictive-entropy and mutual-information maps.
        """
        if n < 1:
            raise ValueError(f"number of samples must be >= 1, got {n}")
        feats = self.encoder(x)
        s_z, s_g, skips = self.level_maps(feats)
        q_z, (logits_pi, _, _) = self.local_space.distribution(s_z)
        pi = torch.softmax(logits_pi, dim=1)
        g = self.global_space.mu(s_g) if self.global_space is not None else None
        samples = q_z.component_distribution.rsample((n,))
        return torch.stack([self._decode(x, feats, skips, pi, samples[i], g) for i in range(n)])

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part: encoder, heads (local + global spaces), decoder (+merge), PostNet."""
        def count(m: nn.Module | None) -> int:
            return sum(p.numel() for p in m.parameters()) if m is not None else 0
        counts = {
            "encoder": count(self.encoder),
            "local_space": count(self.local_space),
            "global_space": count(self.global_space),
            "decoder": count(self.decoder) + count(self.head),
            "postnet": count(self.postnet),
        }
        counts["inference_total"] = counts["encoder"] + counts["local_space"] + counts["global_space"] + counts["decoder"]
        counts["training_total"] = counts["inference_total"] + counts["postnet"]
        return counts
