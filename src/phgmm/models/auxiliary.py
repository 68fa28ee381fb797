"""The training-mode output of a network with auxiliary heads (HRNet + OCR, DANet, OCNet).

Such a network returns plain N×C×H×W logits in evaluation mode (what evaluate, predict and the ONNX
export see) and, in training mode, an :class:`AuxLogits`: the main logits plus weighted auxiliary
logits, each at the input's H×W, whose ℓ_s the loss adds to the main ℓ_s
(:class:`phgmm.losses.PHGMMLoss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["AuxLogits", "main_logits"]


@dataclass
class AuxLogits:
    """Main logits and ``(weight, logits)`` pairs of the auxiliary heads, all N×C×H×W."""

    logits: torch.Tensor
    aux: tuple[tuple[float, torch.Tensor], ...] = ()


def main_logits(output: object) -> torch.Tensor:
    """The main N×C×H×W logits of any network's output (a tensor, :class:`AuxLogits` or PHGMM's)."""
    return output if isinstance(output, torch.Tensor) else output.logits  # type: ignore[attr-defined]
