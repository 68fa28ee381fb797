"""The PHGMM network (paper Fig. 2, docs/design.md §2): encoder, local space z, global space g, decoder,
merge head and, for training only, PostNet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, MixtureSameFamily

from ..conventions import IGNORE_INDEX, POSTNET_VARIANTS
from .backbone import resnet_encoder
from .decoder import Decoder, MergeHead
from .latent import GlobalSpace, LocalSpace, MultiLevelSummary, gaussian_mixture
from .layers import count_parameters as count
from .postnet import PostNet
from .registry import register
from .shareable import Shareable

__all__ = ["PHGMM", "PHGMMOutput", "Encoded"]


@dataclass
class Encoded:
    """One batch read by the encoder: its maps and the latent spaces' raw parameters.

    Attributes:
        size: the input's (H, W).
        feats: encoder levels F1 … F4.
        skips: the decoder skip convolutions' outputs (before BN + ReLU), F1 … F4 order.
        local: (mixture logits N×K, μ_z N×K×L, log σ²_z N×K×L); None without a local space.
        glob: (μ_g N×L, log σ²_g N×L); None without a global space.
    """

    size: tuple[int, int]
    feats: list[torch.Tensor]
    skips: list[torch.Tensor]
    local: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None
    glob: tuple[torch.Tensor, torch.Tensor] | None


@dataclass
class PHGMMOutput:
    """What a training-mode forward returns.

    Attributes:
        logits: N×C×H×W class scores (softmax is applied by the loss and by ``predict``).
        q_z: q(z|x), a K-component mixture of L-dim diagonal Gaussians (Eq. 1).
        q_z: q(z|x), a K-component mixture of L-dim diagonal Gaussians (Eq. 1); None when the
            model has no local space (the "without z" ablation).
        p_z: PostNet's p(z|x, y) (Eq. 5); None without labels or without PostNet.
        q_g: q(g|x) = N(μ_g, σ_g²) (Eq. 2); None when the model has no global space.
        posterior_logits: the decoder's logits from a sample of p(z|x, y) (the conditional-VAE
            remedy, ``decode_posterior > 0``); None otherwise.
    """

    logits: torch.Tensor
    q_z: MixtureSameFamily | None
    p_z: MixtureSameFamily | None = None
    q_g: Independent | None = None
    posterior_logits: torch.Tensor | None = None


def _flat_weight(w: torch.Tensor) -> torch.Tensor | None:
    """A 4-D weight as a flat view in its memory order (contiguous or channels-last); None otherwise."""
    if w.is_contiguous():
        return w.reshape(-1)
    if w.is_contiguous(memory_format=torch.channels_last):
        return w.permute(0, 2, 3, 1).reshape(-1)
    return None


def _merged_level_weights(
    owners: Sequence[MultiLevelSummary], skip_convs: Sequence[nn.Conv2d]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per encoder level, the summary convolutions' (owners' order) and the skip convolution's
    weights and biases concatenated along the output channels, all levels built by one
    ``torch.cat`` (one kernel, not one per level's weight and bias), in the weights' memory
    format. Under autocast the merged tensors are cast once here instead of once per convolution
    (the same rounding of the same values). Weights that are neither contiguous nor channels-last,
    or mixed formats within a level, fall back to a concatenation per level."""
    levels = [[o.convs[level] for o in owners] + [skip] for level, skip in enumerate(skip_convs)]
    missing = [c.out_channels for convs in levels for c in convs if c.bias is None]
    zeros = levels[0][-1].weight.new_zeros(max(missing)) if missing else None
    flats, layouts = [], []
    for convs in levels:
        flat = [_flat_weight(c.weight) for c in convs]
        cl = [not c.weight.is_contiguous() for c in convs]
        if any(f is None for f in flat) or len(set(cl)) > 1:
            return _merged_level_weights_per_level(levels, zeros)
        flats += flat
        layouts.append(cl[0])
    biases = [c.bias if c.bias is not None else zeros[: c.out_channels] for convs in levels for c in convs]
    merged = torch.cat(flats + biases)
    device = merged.device.type
    # the meta device (the roofline's shape-only trace) has no autocast state to ask
    if device in ("cpu", "cuda") and torch.is_autocast_enabled(device) and merged.is_floating_point():
        merged = merged.to(torch.get_autocast_dtype(device))
    weight_sizes = [sum(c.weight.numel() for c in convs) for convs in levels]
    bias_sizes = [sum(c.out_channels for c in convs) for convs in levels]
    chunks = merged.split(weight_sizes + bias_sizes)
    out = []
    for convs, chunk, bias, channels_last in zip(
        levels, chunks[: len(levels)], chunks[len(levels) :], layouts, strict=True
    ):
        n, cin, kh, kw = sum(c.out_channels for c in convs), *convs[0].weight.shape[1:]
        weight = chunk.view(n, kh, kw, cin).permute(0, 3, 1, 2) if channels_last else chunk.view(n, cin, kh, kw)
        out.append((weight, bias))
    return out


def _merged_level_weights_per_level(
    levels: list[list[nn.Conv2d]], zeros: torch.Tensor | None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (
            torch.cat([c.weight for c in convs]),
            torch.cat([c.bias if c.bias is not None else zeros[: c.out_channels] for c in convs]),
        )
        for convs in levels
    ]


def _pooled_together(owners: Sequence[MultiLevelSummary], slabs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each owner's ``pool`` (sigmoid, spatial mean, levels concatenated) from the per-level slabs
    that hold the owners' maps side by side: one sigmoid and one mean per level for all owners,
    one concatenation, then each owner's channels gathered by a copy (the same numbers, fewer
    kernels forward and backward)."""
    if not owners:
        return []
    means = torch.cat([torch.sigmoid(slab).mean(dim=(2, 3)) for slab in slabs], dim=1)
    if len(owners) == 1:
        return [means]
    widths = {c.out_channels for o in owners for c in o.convs}
    if len(widths) > 1:  # owners of different widths: gather each owner's channels level by level
        offsets = [0]
        for level in range(len(slabs)):
            offsets += [offsets[-1] + o.convs[level].out_channels for o in owners]
        return [
            torch.cat(
                [
                    means[:, offsets[level * len(owners) + i] : offsets[level * len(owners) + i + 1]]
                    for level in range(len(slabs))
                ],
                dim=1,
            )
            for i in range(len(owners))
        ]
    n, width = means.shape[0], widths.pop()
    return [part.reshape(n, -1) for part in means.view(n, len(slabs), len(owners), width).unbind(2)]


@register("phgmm", "PHGMM: local (z, Gaussian mixture) and global (g) latent spaces (Saire & Ramírez Rivera)")
class PHGMM(Shareable, nn.Module):
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
        sample_latent: decode reparameterised samples of z and g instead of their means in
            training (the paper decodes the means: ``f(μ̄_z)``). Evaluation always decodes means.
        decode_posterior: in training, also decode a reparameterised sample of PostNet's
            p(z|x, y) (a conditional VAE, Sohn et al. 2015) and weigh its ℓ_s by this value
            (the loss's ``(1 − α)·ℓ_s(q) + α·ℓ_s(p)``). 0 is the paper's recipe.
        use_local: build the local space z (the ablation's "without z" is False: the decoder
            then starts from the H/32 skip alone, and there is no PostNet or ℓ_z).
        skip_dropout: in training, drop all encoder skips of an image with this probability, so
            the decoder must work from z and g alone for that image (decoder weakening, the
            image analogue of Bowman et al.'s word dropout). 0 is the paper's network.
        summary_norm: ``"batch"`` normalises the multi-level summaries' maps before their sigmoid
            (BatchNorm without affine parameters), so that training cannot saturate the summary
            into a constant; a departure from the paper, whose ``"none"`` is the default.
        in_channels: image channels.
        ignore_index: label value excluded from PostNet's one-hot input.
    """

    def __init__(
        self,
        num_classes: int = 12,
        num_components: int = 12,
        backbone: str = "resnet101",
        use_global: bool = True,
        postnet: str | None = "full",
        latent_dim: int = 256,
        component_dim: int = 64,
        global_dim: int = 64,
        local_channels: int = 512,
        decoder_channels: int | None = None,
        decoder_units: Sequence[int] = (3, 23, 4, 3),
        sample_latent: bool = False,
        decode_posterior: float = 0.0,
        use_local: bool = True,
        skip_dropout: float = 0.0,
        in_channels: int = 3,
        ignore_index: int = IGNORE_INDEX,
        summary_norm: str = "none",
    ) -> None:
        super().__init__()
        self.build_args = {
            "name": "phgmm",
            "num_classes": num_classes,
            "num_components": num_components,
            "backbone": backbone,
            "use_global": use_global,
            "postnet": postnet,
            "latent_dim": latent_dim,
            "component_dim": component_dim,
            "global_dim": global_dim,
            "local_channels": local_channels,
            "decoder_channels": decoder_channels,
            "decoder_units": list(decoder_units),
            "sample_latent": sample_latent,
            "decode_posterior": decode_posterior,
            "use_local": use_local,
            "skip_dropout": skip_dropout,
            "summary_norm": summary_norm,
            "in_channels": in_channels,
            "ignore_index": ignore_index,
        }
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if num_components < 1:
            raise ValueError(f"num_components must be at least 1, got {num_components}")
        if postnet not in (*POSTNET_VARIANTS, None):
            raise ValueError(f"postnet must be 'full', 'light' or None, got {postnet!r}")
        if not 0.0 <= skip_dropout < 1.0:
            raise ValueError(f"skip_dropout must be in [0, 1), got {skip_dropout}")
        if not 0.0 <= decode_posterior <= 1.0:
            raise ValueError(f"decode_posterior must be in [0, 1], got {decode_posterior}")
        if decode_posterior > 0 and (postnet is None or not use_local):
            raise ValueError("decode_posterior needs PostNet and the local space (postnet set, use_local true)")
        postnet = postnet if use_local else None
        decoder_channels = decoder_channels or 3 * num_classes
        self.num_classes = num_classes
        self.num_components = num_components
        self.latent_dim = latent_dim
        self.sample_latent = sample_latent
        self.decode_posterior = float(decode_posterior)
        self.skip_dropout = float(skip_dropout)
        self.encoder = resnet_encoder(backbone, in_channels=in_channels)
        chans = self.encoder.channels
        self.local_space = (
            LocalSpace(chans, num_classes, num_components, latent_dim, component_dim, local_channels, summary_norm)
            if use_local
            else None
        )
        self.global_space = (
            GlobalSpace(chans, num_classes, latent_dim, global_dim, summary_norm) if use_global else None
        )
        self.decoder = Decoder(chans, local_channels if use_local else None, decoder_channels, decoder_units)
        merge_in = 4 * decoder_channels + (global_dim if use_global else 0)
        self.head = MergeHead(merge_in, decoder_channels, num_classes)
        self.postnet = (
            PostNet(num_classes, num_components, latent_dim, backbone, postnet, ignore_index, summary_norm)
            if postnet
            else None
        )

    @classmethod
    def from_build_args(cls, name: str = "phgmm", **kwargs) -> PHGMM:
        return cls(**kwargs)

    # -- building blocks -------------------------------------------------------------------------
    def level_maps(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        """The local summary s_z, the global summary s_g and the decoder's skip convolutions.

        Three 3×3 convolutions read each encoder level F_l: the local space's summary (C outputs),
        the global space's (C) and the decoder skip (3C), each with its own weights (docs/design.md §2). They
        run as one convolution over the concatenated filters and the output is split: the same
        maps, but F_l — the largest tensors here — is read once, and one convolution with 5C
        outputs runs much faster than three narrow ones (measured: ``phgmm benchmark``).

        Fewer kernels for the same numbers (docs/gpu.md): the merged weights and biases of all four
        levels come from one ``torch.cat`` (:func:`_merged_level_weights`), and, without a summary
        norm, the local and global summaries, adjacent in each level's output, pass one sigmoid and
        one spatial mean per level instead of one each (:func:`_pooled_together`).

        Returns:
            ``s_z`` (N×4C; None without a local space), ``s_g`` (N×4C, None without a global
            space) and the skip convolutions' outputs, one per level in F1 … F4 order (before
            their BN + ReLU).
        """
        spaces = [self.local_space, self.global_space]
        owners = [space.summary for space in spaces if space is not None]
        skip_convs = self.decoder.skip_convs()
        per_owner = any(o.norms is not None for o in owners)  # each owner's BatchNorm reads its own maps
        slabs, skips = [], []  # per level: the summaries' channels (one slab, or one map per owner); the skip's
        for level, (f, (weight, bias)) in enumerate(zip(feats, _merged_level_weights(owners, skip_convs), strict=True)):
            out = F.conv2d(f, weight, bias, padding=skip_convs[level].padding)
            widths = [o.convs[level].out_channels for o in owners]
            *parts, skip = out.split((widths if per_owner else [sum(widths)]) + [skip_convs[level].out_channels], dim=1)
            slabs.append(parts)
            skips.append(skip)
        if per_owner:
            pooled = [owner.pool(owner.normalize([parts[i] for parts in slabs])) for i, owner in enumerate(owners)]
        else:
            pooled = _pooled_together(owners, [parts[0] for parts in slabs])
        pooled = iter(pooled)
        s_z, s_g = (next(pooled) if space is not None else None for space in spaces)
        return s_z, s_g, skips

    def _decode(
        self,
        size: Sequence[int],
        feats: list[torch.Tensor],
        skips: list[torch.Tensor],
        pi: torch.Tensor | None,
        z: torch.Tensor | None,
        g: torch.Tensor | None,
        skip_keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits at ``size`` (H, W) from the encoder's maps and the latent codes (π and z: N×K
        and N×K×L; g: N×L); ``skip_keep`` (N×1×1×1) masks the skips (training only)."""
        grid = tuple(feats[3].shape[-2:])
        z_map = self.local_space.decode_input(pi, z, grid) if self.local_space is not None else None
        sides = self.decoder(z_map, skips, skip_keep)
        if self.global_space is not None and g is not None:
            sides.append(self.global_space.feature_map(g, grid))
        return self.head(sides, feats[0].shape[-2:], size)

    def encode(self, x: torch.Tensor) -> Encoded:
        """The encoder's maps and the latent distributions' parameters of a batch (no decoding).

        Evaluation tools use it to decode one image's maps with another image's codes
        (:meth:`decode`), the swap test of latent use.
        """
        feats = self.encoder(x)
        s_z, s_g, skips = self.level_maps(feats)
        local = self.local_space.heads(s_z) if self.local_space is not None else None
        glob = (self.global_space.mu(s_g), self.global_space.logvar(s_g)) if self.global_space is not None else None
        return Encoded(tuple(x.shape[-2:]), feats, skips, local, glob)

    def decode(
        self,
        enc: Encoded,
        pi: torch.Tensor | None = None,
        mu_z: torch.Tensor | None = None,
        mu_g: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of ``enc`` decoded from the given codes (default: its own means)."""
        if enc.local is not None:
            pi = torch.softmax(enc.local[0], dim=1) if pi is None else pi
            mu_z = enc.local[1] if mu_z is None else mu_z
        if enc.glob is not None and mu_g is None:
            mu_g = enc.glob[0]
        return self._decode(enc.size, enc.feats, enc.skips, pi, mu_z, mu_g)

    def forward_latent(self, x: torch.Tensor, y: torch.Tensor | None = None, sample: bool | None = None) -> PHGMMOutput:
        """The training forward: logits with the latent distributions they were decoded from (a
        :class:`PHGMMOutput`), in either mode. PostNet runs only when it exists and ``y`` is given.

        ``sample`` (default: the model's ``sample_latent``) decodes reparameterised samples of z
        and g instead of their means.
        """
        feats = self.encoder(x)
        s_z, s_g, skips = self.level_maps(feats)
        sample = self.sample_latent if sample is None else sample
        q_z = pi = z = None
        if self.local_space is not None:
            q_z, (logits_pi, mu, _) = self.local_space.distribution(s_z)
            pi = torch.softmax(logits_pi, dim=1)
            z = q_z.component_distribution.rsample() if sample else mu
        q_g = g = None
        if self.global_space is not None:
            q_g, g = self.global_space.distribution(s_g)
            g = q_g.rsample() if sample else g
        keep = None
        if self.training and self.skip_dropout > 0:
            keep = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.skip_dropout).to(skips[0].dtype)
        logits = self._decode(x.shape[-2:], feats, skips, pi, z, g, keep)
        p_z = self.postnet(x, y)[0] if (self.postnet is not None and y is not None) else None
        posterior_logits = None
        if p_z is not None and self.decode_posterior > 0 and self.training:
            z_post = p_z.component_distribution.rsample()
            posterior_logits = self._decode(x.shape[-2:], feats, skips, p_z.mixture_distribution.probs, z_post, g, keep)
        return PHGMMOutput(logits=logits, q_z=q_z, p_z=p_z, q_g=q_g, posterior_logits=posterior_logits)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | PHGMMOutput:
        """Training mode: a :class:`PHGMMOutput`. Eval mode: N×C×H×W logits decoded from the
        means of z and g; PostNet never runs."""
        if self.training:
            return self.forward_latent(x, y)
        return self.decode(self.encode(x))

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

        The encoder runs once, in eval mode whatever the model's mode (so BatchNorm statistics
        never change); every sample draws one z_k per component (and keeps π and μ_g), the basis
        of the predictive-entropy and mutual-information maps.
        """
        if n < 1:
            raise ValueError(f"number of samples must be >= 1, got {n}")
        if self.local_space is None:
            raise ValueError("this model has no local space z to sample (use_local is false)")
        was_training = self.training
        self.eval()
        try:
            enc = self.encode(x)
            logits_pi, mu, logvar = enc.local
            q_z = gaussian_mixture(logits_pi, mu, logvar)
            pi = torch.softmax(logits_pi, dim=1)
            samples = q_z.component_distribution.rsample((n,)).to(mu.dtype)
            return torch.stack([self.decode(enc, pi, samples[i]) for i in range(n)])
        finally:
            self.train(was_training)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part: encoder, heads (local + global spaces), decoder (+merge), PostNet."""
        counts = {
            "encoder": count(self.encoder),
            "local_space": count(self.local_space),
            "global_space": count(self.global_space),
            "decoder": count(self.decoder) + count(self.head),
            "postnet": count(self.postnet),
        }
        counts["inference_total"] = (
            counts["encoder"] + counts["local_space"] + counts["global_space"] + counts["decoder"]
        )
        counts["training_total"] = counts["inference_total"] + counts["postnet"]
        return counts
