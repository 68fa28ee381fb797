"""The training-mode output of a network with auxiliary heads (HRNet + OCR, DANet, OCNet).

Such a network returns plain N×C×H×W logits in evaluation mode (what evaluate, predict and the ONNX
export see) and, in training mode, an :class:`AuxLogits`: the main logits plus weighted auxiliary
logits, each at the input's H×W, whose ℓ_s the loss adds to the main ℓ_s
(:class:`phgmm.losses.PHGMMLoss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AuxLogits", "main_logits", "cross_entropy_with_aux"]


@dataclass
class AuxLogits:
    """Main logits and ``(weight, logits)`` pairs of the auxiliary heads, all N×C×H×W."""

    logits: torch.Tensor
    aux: tuple[tuple[float, torch.Tensor], ...] = ()


def main_logits(output: object) -> torch.Tensor:
    """The main N×C×H×W logits of any network's output (a tensor, :class:`AuxLogits` or PHGMM's)."""
    return output if isinstance(output, torch.Tensor) else output.logits   # type: ignore[attr-defined]


def cross_entropy_with_aux(output: object, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Cross-entropy of the main logits plus each auxiliary head's, weighted: the comparison
    networks' training loss as the benchmarks time it (every head's backward included)."""
    loss = F.cross_entropy(main_logits(output).float(), target, ignore_index=ignore_index)
    for weight, aux in getattr(output, "aux", ()):
        loss = loss + weight * F.cross_entropy(aux.float(), target, ignore_index=ignore_index)
    return loss
