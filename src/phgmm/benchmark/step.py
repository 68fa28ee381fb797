"""The training step the benchmarks time: the one ``phgmm train`` runs for a config.

:func:`train_step` builds :func:`phgmm.engine.training.step.training_step`'s parts the way the trainer
builds them (engine/training/trainer.py): the config's loss (:func:`~phgmm.engine.builders.build_loss`), a
fused AdamW with its learning rate and weight decay, its gradient clipping, a GradScaler only for
fp16, and PHGMM's labels passed to its forward. ``phgmm benchmark`` (run.py), the operator count
(opcount.py) and benchmarks/*.py time or count that step; ``tests/test_benchmark_step.py`` checks
that it gives the trainer's loss for every registered network.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import nn

from ..config import Config
from ..engine.builders import build_loss
from ..engine.training.optimizer import build_optimizer
from ..engine.training.step import StepParts, takes_labels, training_step

__all__ = ["train_step", "step_parts"]


def step_parts(
    model: nn.Module,
    cfg: Config | None = None,
    device: torch.device | str = "cpu",
    amp: torch.dtype | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> StepParts:
    """The parts of ``cfg``'s training step for ``model`` (default ``Config()``: the default loss,
    lr 1e-4, weight decay 0.01), with a fresh optimiser and loss (GECO's state starts anew)."""
    cfg = cfg if cfg is not None else Config()
    device = torch.device(device)
    t = cfg.train
    return StepParts(
        model,
        model,
        build_loss(cfg),
        build_optimizer(model, t.lr, t.weight_decay),
        torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
        device,
        amp,
        memory_format,
        takes_labels(model),
        t.grad_clip,
    )


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: Config | None = None,
    device: torch.device | str = "cpu",
    amp: torch.dtype | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Callable[[], torch.Tensor]:
    """A function that runs one training step of ``model`` on ``x``, ``y`` per call, in training
    mode, and returns the detached loss terms (:data:`~phgmm.engine.training.step.LOSS_TERMS` order).
    Steps are numbered from 0 as the trainer numbers them (the KL warm-up reads the number)."""
    parts = step_parts(model, cfg, device, amp, memory_format)
    count = itertools.count()

    def step() -> torch.Tensor:
        model.train()
        return training_step(parts, x, y, step=next(count))

    return step
