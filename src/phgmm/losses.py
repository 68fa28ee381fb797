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
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, MixtureSameFamily, Normal, kl_divergence

from .models.auxiliary import AuxLogits

__all__ = ["gmm_kl", "gmm_kl_per_dim", "gaussian_kl_per_dim", "soft_iou_loss", "segmentation_loss",
           "PHGMMLoss", "KL_METHODS"]

KL_METHODS = ("matched", "mc", "variational")


def _components(m: MixtureSameFamily) -> tuple[torch.Tensor, Independent]:
    comp = m.component_distribution
    if not isinstance(comp, Independent) or not isinstance(comp.base_dist, Normal):
        raise TypeError("gmm_kl expects mixtures of Independent(Normal) components")
    return m.mixture_distribution.probs, comp


def _pairwise_gaussian_kl(a: Independent, b: Independent) -> torch.Tensor:
    """B…×K×K' matrix of KL(a_i ‖ b_j) between the components of two batches of mixtures."""
    pa, pb = a.base_dist, b.base_dist
    left = Independent(Normal(pa.loc.unsqueeze(-2), pa.scale.unsqueeze(-2)), 1)    # B…×K×1×L
    right = Independent(Normal(pb.loc.unsqueeze(-3), pb.scale.unsqueeze(-3)), 1)   # B…×1×K'×L
    return kl_divergence(left, right)


def gaussian_kl_per_dim(q: Independent, p: Independent | None = None) -> torch.Tensor:
    """KL(q ‖ p) per dimension (B…×L) of two diagonal Gaussians; ``p=None`` is N(0, I)."""
    base = q.base_dist
    prior = p.base_dist if p is not None else Normal(torch.zeros_like(base.loc), torch.ones_like(base.scale),
                                                     validate_args=False)   # checking would sync
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


def gmm_kl(q: MixtureSameFamily, p: MixtureSameFamily, method: str = "matched",
           num_samples: int = 1) -> torch.Tensor:
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
        z = comp_q.rsample((num_samples,))          # S×B…×K×L: a draw from every component
        z = z.movedim(-2, 1)                        # S×K×B…×L: log_prob broadcasts over S, K
        log_ratio = q.log_prob(z) - p.log_prob(z)   # S×K×B…
        return (pi_q.movedim(-1, 0) * log_ratio.mean(0)).sum(0)
    # variational
    log_pi_q = torch.log(pi_q.clamp_min(1e-30))
    log_pi_p = torch.log(pi_p.clamp_min(1e-30))
    self_term = torch.logsumexp(log_pi_q.unsqueeze(-2) - _pairwise_gaussian_kl(comp_q, comp_q), dim=-1)
    cross_term = torch.logsumexp(log_pi_p.unsqueeze(-2) - _pairwise_gaussian_kl(comp_q, comp_p), dim=-1)
    return (pi_q * (self_term - cross_term)).sum(-1)


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255,
                  smooth: float = 1.0) -> torch.Tensor:
    """1 − mean over classes of the soft IoU, from the softmax over the batch's non-ignored pixels.

    ``IoU_c = (Σ p_c y_c + s) / (Σ (p_c + y_c − p_c y_c) + s)``. The smoothing ``s`` (one pixel)
    makes a class absent from both the batch and the prediction count as a perfect match instead of
    a constant 0 that no gradient can move; it is negligible for present classes.
    """
    num_classes = logits.shape[1]
    # Masks instead of boolean indexing, so that no pixel count is read back to the host.
    valid = (target != ignore_index).unsqueeze(1)                                   # N×1×H×W
    probs = torch.softmax(logits.float(), dim=1) * valid                             # N×C×H×W
    classes = torch.arange(num_classes, device=target.device).view(1, -1, 1, 1)
    onehot = (target.unsqueeze(1) == classes).to(probs.dtype)                        # 0 where ignored
    inter = (probs * onehot).sum((0, 2, 3))
    union = (probs + onehot - probs * onehot).sum((0, 2, 3))
    return 1.0 - ((inter + smooth) / (union + smooth)).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """ℓ_s of Eq. (7): pixel cross-entropy (mean over non-ignored pixels) + soft-IoU loss."""
    if logits.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"logits are {tuple(logits.shape[-2:])} but labels are {tuple(target.shape[-2:])}")
    # The mean over labelled pixels, written out so that a batch with nothing to learn from gives a
    # zero (not NaN) loss without asking the host whether any pixel is labelled.
    per_pixel = F.cross_entropy(logits.float(), target.long(), ignore_index=ignore_index, reduction="none")
    labelled = (target != ignore_index).sum().clamp_min(1)
    return per_pixel.sum() / labelled + soft_iou_loss(logits, target, ignore_index)


class PHGMMLoss(nn.Module):
    """``L = λ_g ℓ_g + λ_z ℓ_z + λ_s ℓ_s`` (Eq. 3). Returns ``{"total", "g", "z", "s"}``.

    ``g``, ``z`` and ``s`` are the terms as the paper defines them (for logging); ``total`` is what
    is minimised, with the remedies applied: the warm-up factor on λ_g and λ_z at ``step``, the
    free-bits floor per dimension, and the conditional-VAE share of ℓ_s. With their defaults
    (``warmup_steps=0``, ``free_bits=0``, no ``posterior_logits``) ``total`` is Eq. (3) exactly.

    Terms the model does not provide (no global space, no PostNet or no labels for PostNet) are
    zero. Plain N×C×H×W logits (baselines) give ``total = λ_s·ℓ_s``.
    """

    def __init__(self, lambda_g: float = 1.1, lambda_z: float = 0.4, lambda_s: float = 0.4,
                 kl: str = "matched", ignore_index: int = 255, mc_samples: int = 1,
                 warmup_steps: int = 0, free_bits: float = 0.0, decode_posterior: float = 0.0) -> None:
        super().__init__()
        if kl not in KL_METHODS:
            raise ValueError(f"unknown KL method {kl!r}; choose one of {', '.join(KL_METHODS)}")
        if free_bits < 0 or warmup_steps < 0:
            raise ValueError("free_bits and warmup_steps must be >= 0")
        if free_bits > 0 and kl != "matched":
            raise ValueError(f"free bits need a KL per dimension: use kl='matched', not {kl!r}")
        self.lambda_g, self.lambda_z, self.lambda_s = lambda_g, lambda_z, lambda_s
        self.kl = kl
        self.ignore_index = ignore_index
        self.mc_samples = mc_samples
        self.warmup_steps = int(warmup_steps)
        self.free_bits = float(free_bits)
        self.decode_posterior = float(decode_posterior)

    def kl_weight(self, step: int | None) -> float:
        """The warm-up factor on λ_g and λ_z at training step ``step`` (1 without warm-up)."""
        if self.warmup_steps <= 0 or step is None:
            return 1.0
        return min(1.0, step / self.warmup_steps)

    def _floor(self, per_dim: torch.Tensor) -> torch.Tensor:
        """Σ_l max(mean over the batch of KL_l, free_bits)."""
        return per_dim.flatten(0, -2).mean(0).clamp_min(self.free_bits).sum()

    def forward(self, output, target: torch.Tensor, step: int | None = None) -> dict[str, torch.Tensor]:
        logits = output if isinstance(output, torch.Tensor) else output.logits
        l_s = segmentation_loss(logits, target, self.ignore_index)
        # auxiliary heads (HRNet + OCR's soft regions, DANet, OCNet): their weighted ℓ_s is part of ℓ_s
        for weight, aux in getattr(output, "aux", ()):
            l_s = l_s + weight * segmentation_loss(aux, target, self.ignore_index)
        zero = l_s.new_zeros(())
        l_g = l_z = opt_g = opt_z = zero
        opt_s = l_s
        if not isinstance(output, (torch.Tensor, AuxLogits)):
            if output.q_g is not None:
                per_dim = gaussian_kl_per_dim(output.q_g)
                l_g = per_dim.sum(-1).mean()
                opt_g = self._floor(per_dim) if self.free_bits > 0 else l_g
            if output.p_z is not None:
                if self.free_bits > 0:
                    cat_kl, per_dim = gmm_kl_per_dim(output.q_z, output.p_z)
                    l_z = cat_kl.mean() + per_dim.sum(-1).mean()
                    opt_z = cat_kl.mean() + self._floor(per_dim)
                else:
                    l_z = opt_z = gmm_kl(output.q_z, output.p_z, self.kl, self.mc_samples).mean()
            if output.posterior_logits is not None and self.decode_posterior > 0:
                l_post = segmentation_loss(output.posterior_logits, target, self.ignore_index)
                opt_s = (1 - self.decode_posterior) * l_s + self.decode_posterior * l_post
        w = self.kl_weight(step)
        total = w * (self.lambda_g * opt_g + self.lambda_z * opt_z) + self.lambda_s * opt_s
        return {"total": total, "g": l_g, "z": l_z, "s": l_s}


def gaussian_kl_closed_form(mu_q, var_q, mu_p, var_p) -> torch.Tensor:
    """KL(N(μ_q, diag var_q) ‖ N(μ_p, diag var_p)), summed over the last dimension (for tests/docs)."""
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mu_q - mu_p) ** 2) / var_p - 1.0).sum(-1)


