"""The eager training step, and fewer kernels per step with the same arithmetic (docs/gpu.md).

:func:`training_step`: forward, the configured loss, backward and the optimiser step — the one
step ``phgmm train`` runs (:class:`~phgmm.engine.training.trainer.Trainer`) and ``phgmm benchmark`` times
(:func:`phgmm.benchmark.step.train_step`). The graphed step (engine/training/graphed.py) and the roofline's
trace share its forward and loss (:func:`loss_terms`) and its :data:`LOSS_TERMS` (:func:`stack_terms`).

:func:`batched_bn_counters`: every BatchNorm in training mode adds 1 to its ``num_batches_tracked``
counter in its forward, one tiny kernel each (PHGMM at ResNet-101 with its full PostNet has over 300
BatchNorms). The counter only matters to a BatchNorm with ``momentum=None`` (a cumulative average);
for the others it is bookkeeping. Inside this context those BatchNorms' counters are detached for
the forward and all advanced after it by one multi-tensor add: the same counters, one kernel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...models.contracts import LatentNetwork
from ..checkpoint import unwrap
from ..precision import autocast

__all__ = [
    "LOSS_TERMS",
    "StepParts",
    "batched_bn_counters",
    "training_step",
    "loss_terms",
    "stack_terms",
    "takes_labels",
]

#: the loss terms a step returns, in this order (stacked, fp32, detached)
LOSS_TERMS = ("total", "g", "z", "s")


def takes_labels(model: nn.Module) -> bool:
    """A network with latent spaces (PHGMM) reads the labels in its training forward (for PostNet);
    the others take the image only."""
    return isinstance(unwrap(model), LatentNetwork)


def loss_terms(
    net: nn.Module,
    loss_fn: Callable[..., dict[str, torch.Tensor]],
    x: torch.Tensor,
    y: torch.Tensor,
    labels: bool,
    step: int | None = None,
) -> dict[str, torch.Tensor]:
    """The forward (``net(x, y)`` when it ``labels``, else ``net(x)``) and the loss's terms: the part
    of a training step that the eager step, the graphed step and the roofline's trace share."""
    output = net(x, y) if labels else net(x)
    return loss_fn(output, y, step=step)


def stack_terms(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss terms detached and stacked in :data:`LOSS_TERMS` order, fp32."""
    return torch.stack([terms[k].detach().float() for k in LOSS_TERMS])


@dataclass
class StepParts:
    """What one eager training step needs. ``net`` is what is called (the model, or its DDP or
    compiled wrapper); ``model`` the bare network (BatchNorm counters, gradient clipping)."""

    net: nn.Module
    model: nn.Module
    loss_fn: Callable[..., dict[str, torch.Tensor]]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    amp: torch.dtype | None
    memory_format: torch.memory_format = torch.contiguous_format
    takes_labels: bool = False
    grad_clip: float | None = None


def training_step(
    parts: StepParts,
    x: torch.Tensor,
    y: torch.Tensor,
    step: int = 0,
    check: Callable[[torch.Tensor], Any] | None = None,
) -> torch.Tensor:
    """One optimisation step: forward under autocast, the loss terms, backward (scaled for fp16),
    optional gradient clipping, the optimiser step. Returns the detached terms stacked in
    :data:`LOSS_TERMS` order (fp32, on the device); ``check`` sees them before backward (the
    trainer's finiteness check, the step's one host synchronisation)."""
    x = x.to(parts.device, non_blocking=True).contiguous(memory_format=parts.memory_format)
    y = y.to(parts.device, non_blocking=True)
    with autocast(parts.amp, parts.device), batched_bn_counters(parts.model):
        terms = loss_terms(parts.net, parts.loss_fn, x, y, parts.takes_labels, step)
    stacked = stack_terms(terms)
    if check is not None:
        check(stacked)
    parts.optimizer.zero_grad(set_to_none=True)
    parts.scaler.scale(terms["total"]).backward()
    if parts.grad_clip:
        parts.scaler.unscale_(parts.optimizer)
        torch.nn.utils.clip_grad_norm_(parts.model.parameters(), parts.grad_clip)
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    return stacked


@contextlib.contextmanager
def batched_bn_counters(model: nn.Module) -> Iterator[None]:
    """Advance the training-mode BatchNorms' ``num_batches_tracked`` by one multi-tensor add after
    the forward run inside, instead of one add per BatchNorm during it.

    BatchNorms with ``momentum=None`` read their counter in the forward and are left alone, as are
    those in eval mode or without running statistics. If the forward raises, the counters are
    restored and not advanced (an eager forward would have advanced those it reached)."""
    owners = [
        m
        for m in model.modules()
        if isinstance(m, _BatchNorm)
        and m.training
        and m.track_running_stats
        and m.momentum is not None
        and m.num_batches_tracked is not None
    ]
    counters = [m.num_batches_tracked for m in owners]
    for m in owners:
        m.num_batches_tracked = None
    try:
        yield
    finally:
        for m, c in zip(owners, counters, strict=True):
            m.num_batches_tracked = c
    if counters:
        torch._foreach_add_(counters, 1)
