"""PHGMM's training objective (Eq. 3–7, docs/design.md §3).

``L = λ_g·ℓ_g + λ_z·ℓ_z + λ_s·ℓ_s`` with

* ℓ_g = KL(q(g|x) ‖ N(0, I)) (Eq. 4), closed form;
* ℓ_z = KL(q(z|x) ‖ p(z|x, y)) between two K-component diagonal mixtures (Eq. 6), which has no
  closed form: :func:`gmm_kl` offers the matched-component upper bound, a Monte-Carlo estimate and
  Hershey & Olsen's variational approximation;
* ℓ_s = cross-entropy + (1 − mean soft IoU) (Eq. 7).

Every term is averaged over the batch. Backpropagating ``total`` once gives Alg. 1's routing:
the encoder receives all three terms, the decoder ℓ_s, PostNet ℓ_z and the global space ℓ_g.

Trained literally, both latent spaces collapse (docs/design.md, "Posterior collapse"). The loss
offers two remedies from the VAE literature, both off by default in the paper's recipe:

* KL warm-up (Bowman et al. 2016): λ_z and λ_g ramp linearly from 0 over ``warmup_steps``;
* free bits (Kingma et al. 2016): each latent dimension's KL, averaged over the batch, counts at
  least ``free_bits`` nats, so below that floor nothing pulls the dimension to its prior.

The conditional-VAE remedy (the decoder also reads a sample of PostNet's posterior, Sohn et al.
2015) adds ``posterior_logits`` to the model's output; ℓ_s is then
``(1 − α)·ℓ_s(q) + α·ℓ_s(p)`` with α the model's ``decode_posterior``.

Three switches make the other published objectives (config recipes, :data:`phgmm.config.RECIPES`):

* ``ce_scale`` — the cross-entropy's reduction: ``mean`` over labelled pixels (default, every
  segmentation library), ``eq7`` (that mean × 1/C, Eq. 7 as printed), or ``sum`` over each image's
  labelled pixels, averaged over the batch (the ELBO's reconstruction term, as the Probabilistic
  U-Net's reference code scales it);
* ``kl_direction`` — ``q_to_posterior`` (Eq. 6: KL(q(z|x) ‖ p(z|x,y))) or ``posterior_to_q``
  (KL(p(z|x,y) ‖ q(z|x)), the Probabilistic U-Net's KL(posterior ‖ prior), Kohl et al. 2018);
* GECO (Rezende & Viola 2018, ``geco_target`` set): minimise the KL terms subject to
  ℓ_s ≤ κ. ``total = λ_g·ℓ_g + λ_z·ℓ_z + λ·(ℓ̂_s − κ)`` where ℓ̂_s carries ℓ_s's gradient and the
  moving average of ℓ_s − κ as its value, and after every training step the Lagrange multiplier
  follows ``λ ← λ·exp(ν·(moving average of ℓ_s − κ))``: it grows while the constraint is violated
  and shrinks once it holds, i.e. a β-VAE whose β = 1/λ is tuned to a reconstruction target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, MixtureSameFamily, Normal, kl_divergence

from .conventions import CE_SCALES, IGNORE_INDEX, KL_DIRECTIONS, KL_METHODS
from .models.auxiliary import AuxLogits

__all__ = [
    "gmm_kl",
    "gmm_kl_per_dim",
    "gaussian_kl_per_dim",
    "soft_iou_loss",
    "segmentation_loss",
    "PHGMMLoss",
    "KL_METHODS",
    "CE_SCALES",
    "KL_DIRECTIONS",
]


def _components(m: MixtureSameFamily) -> tuple[torch.Tensor, Independent]:
    comp = m.component_distribution
    if not isinstance(comp, Independent) or not isinstance(comp.base_dist, Normal):
        raise TypeError("gmm_kl expects mixtures of Independent(Normal) components")
    return m.mixture_distribution.probs, comp


def _pairwise_gaussian_kl(a: Independent, b: Independent) -> torch.Tensor:
    """B…×K×K' matrix of KL(a_i ‖ b_j) between the components of two batches of mixtures."""
    pa, pb = a.base_dist, b.base_dist
    left = Independent(Normal(pa.loc.unsqueeze(-2), pa.scale.unsqueeze(-2)), 1)  # B…×K×1×L
    right = Independent(Normal(pb.loc.unsqueeze(-3), pb.scale.unsqueeze(-3)), 1)  # B…×1×K'×L
    return kl_divergence(left, right)


def gaussian_kl_per_dim(q: Independent, p: Independent | None = None) -> torch.Tensor:
    """KL(q ‖ p) per dimension (B…×L) of two diagonal Gaussians; ``p=None`` is N(0, I)."""
    base = q.base_dist
    prior = (
        p.base_dist
        if p is not None
        else Normal(torch.zeros_like(base.loc), torch.ones_like(base.scale), validate_args=False)
    )  # checking would sync
    return kl_divergence(base, prior)


def gmm_kl_per_dim(q: MixtureSameFamily, p: MixtureSameFamily) -> tuple[torch.Tensor, torch.Tensor]:
    """The matched bound split into its parts: KL(π‖π*) (B…) and Σ_k π_k KL(q_k,l ‖ p_k,l) (B…×L).

    Their sum over L plus the first part is ``gmm_kl(q, p, "matched")``.
    """
    pi_q, comp_q = _components(q)
    _, comp_p = _components(p)
    if pi_q.shape[-1] != comp_p.base_dist.loc.shape[-2]:
        raise ValueError("the matched KL needs the same number of components in q and p")
    per_dim = (pi_q.unsqueeze(-1) * kl_divergence(comp_q.base_dist, comp_p.base_dist)).sum(-2)
    return kl_divergence(q.mixture_distribution, p.mixture_distribution), per_dim


def gmm_kl(q: MixtureSameFamily, p: MixtureSameFamily, method: str = "matched", num_samples: int = 1) -> torch.Tensor:
    """KL(q ‖ p) between two batches of diagonal Gaussian mixtures; returns one value per batch item.

    Args:
        q, p: mixtures with the same batch shape (N) and event shape (L).
        method:
            ``matched`` — upper bound KL(π‖π*) + Σ_k π_k KL(q_k ‖ p_k), components paired by index
            (exact for K = 1, zero for q = p);
            ``mc`` — unbiased Monte-Carlo estimate with ``num_samples`` reparameterised draws from
            every component, weighted by π_k (differentiable);
            ``variational`` — Hershey & Olsen (2007):
            Σ_a π_a log(Σ_a' π_a' e^{−KL(q_a‖q_a')} / Σ_b π*_b e^{−KL(q_a‖p_b)}).
        num_samples: draws per component for ``mc``.
    """
    if method not in KL_METHODS:
        raise ValueError(f"unknown KL method {method!r}; choose one of {', '.join(KL_METHODS)}")
    pi_q, comp_q = _components(q)
    pi_p, comp_p = _components(p)
    if method == "matched":
        if pi_q.shape[-1] != pi_p.shape[-1]:
            raise ValueError("the matched KL needs the same number of components in q and p")
        cat_kl = kl_divergence(q.mixture_distribution, p.mixture_distribution)
        return cat_kl + (pi_q * kl_divergence(comp_q, comp_p)).sum(-1)
    if method == "mc":
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        z = comp_q.rsample((num_samples,))  # S×B…×K×L: a draw from every component
        z = z.movedim(-2, 1)  # S×K×B…×L: log_prob broadcasts over S, K
        log_ratio = q.log_prob(z) - p.log_prob(z)  # S×K×B…
        return (pi_q.movedim(-1, 0) * log_ratio.mean(0)).sum(0)
    # variational
    log_pi_q = torch.log(pi_q.clamp_min(1e-30))
    log_pi_p = torch.log(pi_p.clamp_min(1e-30))
    self_term = torch.logsumexp(log_pi_q.unsqueeze(-2) - _pairwise_gaussian_kl(comp_q, comp_q), dim=-1)
    cross_term = torch.logsumexp(log_pi_p.unsqueeze(-2) - _pairwise_gaussian_kl(comp_q, comp_p), dim=-1)
    return (pi_q * (self_term - cross_term)).sum(-1)


def soft_iou_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0
) -> torch.Tensor:
    """1 − mean over classes of the soft IoU, from the softmax over the batch's non-ignored pixels.

    ``IoU_c = (Σ p_c y_c + s) / (Σ (p_c + y_c − p_c y_c) + s)``. The smoothing ``s`` (one pixel)
    makes a class absent from both the batch and the prediction count as a perfect match instead of
    a constant 0 that no gradient can move; it is negligible for present classes.
    """
    num_classes = logits.shape[1]
    # Masks instead of boolean indexing, so that no pixel count is read back to the host.
    valid = (target != ignore_index).unsqueeze(1)  # N×1×H×W
    probs = torch.softmax(logits.float(), dim=1) * valid  # N×C×H×W
    classes = torch.arange(num_classes, device=target.device).view(1, -1, 1, 1)
    onehot = (target.unsqueeze(1) == classes).to(probs.dtype)  # 0 where ignored
    inter = (probs * onehot).sum((0, 2, 3))
    union = (probs + onehot - probs * onehot).sum((0, 2, 3))
    return 1.0 - ((inter + smooth) / (union + smooth)).mean()


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX, ce_scale: str = "mean"
) -> torch.Tensor:
    """ℓ_s of Eq. (7): pixel cross-entropy + soft-IoU loss.

    ``ce_scale`` is the cross-entropy's reduction: ``mean`` over the batch's labelled pixels (the
    default); ``eq7``, that mean × 1/C, the factor Eq. 7 prints before the sum over classes;
    ``sum`` over each image's labelled pixels, averaged over the images (the per-image
    reconstruction term of an ELBO, the Probabilistic U-Net's scale). The soft-IoU term is the
    same in all three.
    """
    if logits.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"logits are {tuple(logits.shape[-2:])} but labels are {tuple(target.shape[-2:])}")
    if ce_scale not in CE_SCALES:
        raise ValueError(f"unknown ce_scale {ce_scale!r}; choose one of {', '.join(CE_SCALES)}")
    # The mean over labelled pixels, written out so that a batch with nothing to learn from gives a
    # zero (not NaN) loss without asking the host whether any pixel is labelled.
    per_pixel = F.cross_entropy(logits.float(), target.long(), ignore_index=ignore_index, reduction="none")
    if ce_scale == "sum":
        ce = per_pixel.sum() / per_pixel.shape[0]
    else:
        ce = per_pixel.sum() / (target != ignore_index).sum().clamp_min(1)
        if ce_scale == "eq7":
            ce = ce / logits.shape[1]
    return ce + soft_iou_loss(logits, target, ignore_index)


class PHGMMLoss(nn.Module):
    """``L = λ_g ℓ_g + λ_z ℓ_z + λ_s ℓ_s`` (Eq. 3). Returns ``{"total", "g", "z", "s"}``.

    ``g``, ``z`` and ``s`` are the terms as the paper defines them (for logging; ``s`` at the
    chosen ``ce_scale``, ``z`` in the chosen ``kl_direction``); ``total`` is what is minimised, with
    the remedies applied: the warm-up factor on λ_g and λ_z at ``step``, the free-bits floor per
    dimension, the conditional-VAE share of ℓ_s and GECO's multiplier. With their defaults
    (``warmup_steps=0``, ``free_bits=0``, no ``posterior_logits``, ``ce_scale="mean"``,
    ``kl_direction="q_to_posterior"``, ``geco_target=None``) ``total`` is Eq. (3) with the plain
    mean cross-entropy; ``ce_scale="eq7"`` makes it Eq. (3)–(7) exactly as printed.

    Terms the model does not provide (no global space, no PostNet or no labels for PostNet) are
    zero. Plain N×C×H×W logits (baselines) give ``total = λ_s·ℓ_s``.

    GECO's state (the multiplier λ, the moving average of the constraint and whether it has
    started) is kept in buffers, so it is saved and restored with the loss's ``state_dict``; it
    moves only in training steps (``step`` given and the module in training mode).
    """

    def __init__(
        self,
        lambda_g: float = 1.1,
        lambda_z: float = 0.4,
        lambda_s: float = 0.4,
        kl: str = "matched",
        ignore_index: int = IGNORE_INDEX,
        mc_samples: int = 1,
        warmup_steps: int = 0,
        free_bits: float = 0.0,
        decode_posterior: float = 0.0,
        ce_scale: str = "mean",
        kl_direction: str = "q_to_posterior",
        geco_target: float | None = None,
        geco_rate: float = 0.01,
        geco_alpha: float = 0.99,
        geco_init: float = 1.0,
    ) -> None:
        super().__init__()
        if kl not in KL_METHODS:
            raise ValueError(f"unknown KL method {kl!r}; choose one of {', '.join(KL_METHODS)}")
        if ce_scale not in CE_SCALES:
            raise ValueError(f"unknown ce_scale {ce_scale!r}; choose one of {', '.join(CE_SCALES)}")
        if kl_direction not in KL_DIRECTIONS:
            raise ValueError(f"unknown kl_direction {kl_direction!r}; choose one of {', '.join(KL_DIRECTIONS)}")
        if free_bits < 0 or warmup_steps < 0:
            raise ValueError("free_bits and warmup_steps must be >= 0")
        if free_bits > 0 and kl != "matched":
            raise ValueError(f"free bits need a KL per dimension: use kl='matched', not {kl!r}")
        if not (0.0 <= geco_alpha < 1.0) or geco_rate < 0 or geco_init <= 0:
            raise ValueError("GECO needs 0 <= geco_alpha < 1, geco_rate >= 0 and geco_init > 0")
        self.lambda_g, self.lambda_z, self.lambda_s = lambda_g, lambda_z, lambda_s
        self.kl = kl
        self.ignore_index = ignore_index
        self.mc_samples = mc_samples
        self.warmup_steps = int(warmup_steps)
        self.free_bits = float(free_bits)
        self.decode_posterior = float(decode_posterior)
        self.ce_scale = ce_scale
        self.kl_direction = kl_direction
        self.geco_target = None if geco_target is None else float(geco_target)
        self.geco_rate, self.geco_alpha = float(geco_rate), float(geco_alpha)
        # GECO's state: the multiplier, the constraint's moving average, and whether it has a value
        self.register_buffer("geco_lambda", torch.tensor(float(geco_init)))
        self.register_buffer("geco_average", torch.tensor(0.0))
        self.register_buffer("geco_started", torch.tensor(False))

    def kl_weight(self, step: int | None) -> float:
        """The warm-up factor on λ_g and λ_z at training step ``step`` (1 without warm-up)."""
        if self.warmup_steps <= 0 or step is None:
            return 1.0
        return min(1.0, step / self.warmup_steps)

    def _floor(self, per_dim: torch.Tensor) -> torch.Tensor:
        """Σ_l max(mean over the batch of KL_l, free_bits)."""
        return per_dim.flatten(0, -2).mean(0).clamp_min(self.free_bits).sum()

    def _kl_z(self, output) -> tuple[torch.Tensor, torch.Tensor]:
        """ℓ_z as logged and as optimised (they differ with free bits), in ``kl_direction``."""
        q, p = output.q_z, output.p_z
        if self.kl_direction == "posterior_to_q":
            q, p = p, q
        if self.free_bits > 0:
            cat_kl, per_dim = gmm_kl_per_dim(q, p)
            return cat_kl.mean() + per_dim.sum(-1).mean(), cat_kl.mean() + self._floor(per_dim)
        l_z = gmm_kl(q, p, self.kl, self.mc_samples).mean()
        return l_z, l_z

    def _geco(self, opt_s: torch.Tensor, update: bool) -> torch.Tensor:
        """λ·(ℓ̂_s − κ): ℓ_s's gradient with the moving average's value; moves λ when ``update``."""
        if self.geco_lambda.device != opt_s.device:
            self.to(opt_s.device)  # the buffers follow the loss terms onto the device
        constraint = opt_s - self.geco_target
        if not update:
            return self.geco_lambda * constraint
        c = constraint.detach()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            c = c.clone()  # every process's multiplier follows the same (mean) constraint
            torch.distributed.all_reduce(c)
            c = c / torch.distributed.get_world_size()
        with torch.no_grad():
            # the first step starts the average at its value instead of pulling it from 0
            avg = torch.where(self.geco_started, self.geco_alpha * self.geco_average + (1 - self.geco_alpha) * c, c)
            self.geco_average.copy_(avg)
            self.geco_started.fill_(True)
        term = self.geco_lambda.clone() * (constraint + (avg - constraint).detach())
        with torch.no_grad():
            self.geco_lambda.mul_(torch.exp(self.geco_rate * avg)).clamp_(1e-6, 1e6)
        return term

    def forward(self, output, target: torch.Tensor, step: int | None = None) -> dict[str, torch.Tensor]:
        logits = output if isinstance(output, torch.Tensor) else output.logits
        l_s = segmentation_loss(logits, target, self.ignore_index, self.ce_scale)
        # auxiliary heads (HRNet + OCR's soft regions, DANet, OCNet): their weighted ℓ_s is part of ℓ_s
        for weight, aux in getattr(output, "aux", ()):
            l_s = l_s + weight * segmentation_loss(aux, target, self.ignore_index, self.ce_scale)
        zero = l_s.new_zeros(())
        l_g = l_z = opt_g = opt_z = zero
        opt_s = l_s
        if not isinstance(output, (torch.Tensor, AuxLogits)):
            if output.q_g is not None:
                per_dim = gaussian_kl_per_dim(output.q_g)
                l_g = per_dim.sum(-1).mean()
                opt_g = self._floor(per_dim) if self.free_bits > 0 else l_g
            if output.p_z is not None and output.q_z is not None:
                l_z, opt_z = self._kl_z(output)
            if output.posterior_logits is not None and self.decode_posterior > 0:
                l_post = segmentation_loss(output.posterior_logits, target, self.ignore_index, self.ce_scale)
                opt_s = (1 - self.decode_posterior) * l_s + self.decode_posterior * l_post
        w = self.kl_weight(step)
        if self.geco_target is not None:
            recon = self._geco(opt_s, update=self.training and step is not None)
        else:
            recon = self.lambda_s * opt_s
        total = w * (self.lambda_g * opt_g + self.lambda_z * opt_z) + recon
        return {"total": total, "g": l_g, "z": l_z, "s": l_s}


def gaussian_kl_closed_form(mu_q, var_q, mu_p, var_p) -> torch.Tensor:
    """KL(N(μ_q, diag var_q) ‖ N(μ_p, diag var_p)), summed over the last dimension (for tests/docs)."""
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mu_q - mu_p) ** 2) / var_p - 1.0).sum(-1)
