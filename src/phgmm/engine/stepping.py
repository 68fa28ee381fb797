"""Fewer kernels per training step, with the same arithmetic (docs/gpu.md).

:func:`batched_bn_counters`: every BatchNorm in training mode adds 1 to its ``num_batches_tracked``
counter in its forward, one tiny kernel each (PHGMM at ResNet-101 with its full PostNet has over 300
BatchNorms). The counter only matters to a BatchNorm with ``momentum=None`` (a cumulative average);
for the others it is bookkeeping. Inside this context those BatchNorms' counters are detached for
the forward and all advanced after it by one multi-tensor add: the same counters, one kernel.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["batched_bn_counters"]


@contextlib.contextmanager
def batched_bn_counters(model: nn.Module) -> Iterator[None]:
    """Advance the training-mode BatchNorms' ``num_batches_tracked`` by one multi-tensor add after
    the forward run inside, instead of one add per BatchNorm during it.

    BatchNorms with ``momentum=None`` read their counter in the forward and are left alone, as are
    those in eval mode or without running statistics. If the forward raises, the counters are
    restored and not advanced (an eager forward would have advanced those it reached)."""
    owners = [m for m in model.modules()
              if isinstance(m, _BatchNorm) and m.training and m.track_running_stats and m.momentum is not None
              and m.num_batches_tracked is not None]
    counters = [m.num_batches_tracked for m in owners]
    for m in owners:
        m.num_batches_tracked = None
    try:
        yield
    finally:
        for m, c in zip(owners, counters):
            m.num_batches_tracked = c
    if counters:
        torch._foreach_add_(counters, 1)
