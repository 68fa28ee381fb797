"""Per-pixel uncertainty from S sampled predictions (docs/design.md §6).

Sampling the local latent space q(z|x) S times gives S logits tensors ``S×N×C×H×W``. With
``p_s = softmax(logits_s)`` over the class axis and ``p̄ = mean_s p_s``:

* predictive entropy  ``H[p̄] = -Σ_c p̄_c log p̄_c``  (total uncertainty),
* expected entropy    ``E_s H[p_s]``                 (aleatoric part),
* mutual information  ``H[p̄] - E_s H[p_s] ≥ 0``      (epistemic part; clamped at 0 against
  rounding).

All three are ``N×H×W`` in nats; ``log C`` is the maximum. A 4-D input ``N×C×H×W`` is treated as
a single sample (S = 1, so the mutual information is 0). Computed in log space (``log_softmax``,
``logsumexp``) so that saturated logits do not produce NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["predictive_entropy", "expected_entropy", "mutual_information_map", "uncertainty_maps"]


def _as_logits(logits: Any) -> torch.Tensor:
    t = logits if isinstance(logits, torch.Tensor) else torch.from_numpy(np.asarray(logits))
    if not t.is_floating_point():
        t = t.float()
    if t.dim() == 4:
        t = t.unsqueeze(0)
    if t.dim() != 5:
        raise ValueError(f"expected S×N×C×H×W (or N×C×H×W) logits, got shape {tuple(t.shape)}")
    return t


def _entropy_from_logp(logp: torch.Tensor, dim: int) -> torch.Tensor:
    p = logp.exp()
    return -(p * torch.where(torch.isfinite(logp), logp, torch.zeros_like(logp))).sum(dim)


@torch.no_grad()
def predictive_entropy(logits: Any) -> torch.Tensor:
    """Entropy of the mean softmax over samples, ``N×H×W``."""
    t = _as_logits(logits)
    logp = torch.log_softmax(t, dim=2)
    log_mean = torch.logsumexp(logp, dim=0) - math.log(t.shape[0])  # N×C×H×W
    return _entropy_from_logp(log_mean, dim=1)


@torch.no_grad()
def expected_entropy(logits: Any) -> torch.Tensor:
    """Mean over samples of each sample's softmax entropy, ``N×H×W``."""
    t = _as_logits(logits)
    logp = torch.log_softmax(t, dim=2)
    return _entropy_from_logp(logp, dim=2).mean(0)


@torch.no_grad()
def mutual_information_map(logits: Any) -> torch.Tensor:
    """``predictive_entropy - expected_entropy``, clamped at 0, ``N×H×W``."""
    return (predictive_entropy(logits) - expected_entropy(logits)).clamp_min(0.0)


@torch.no_grad()
def uncertainty_maps(logits: Any) -> dict:
    """All three maps at once (one softmax pass): ``{"predictive_entropy", "expected_entropy",
    "mutual_information"}``, each ``N×H×W``."""
    t = _as_logits(logits)
    logp = torch.log_softmax(t, dim=2)
    log_mean = torch.logsumexp(logp, dim=0) - math.log(t.shape[0])
    pe = _entropy_from_logp(log_mean, dim=1)
    ee = _entropy_from_logp(logp, dim=2).mean(0)
    return {"predictive_entropy": pe, "expected_entropy": ee, "mutual_information": (pe - ee).clamp_min(0.0)}
