"""What every CUDA graph of the engine shares: the training step's
(:mod:`phgmm.engine.training.graphed`) and the inference forward's
(:mod:`phgmm.engine.inference.graphed`); docs/gpu.md."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["CAPTURE_MODE", "graph_autocast"]

#: other threads keep working while a graph is captured (the loader's pin-memory thread, predict's
#: readers and writers): only this thread's calls must be capturable
CAPTURE_MODE = "thread_local"


def graph_autocast(dtype: torch.dtype | None, device: torch.device) -> Any:
    """Autocast as the eager step uses it, with the weight-cast cache off (required inside graphs;
    the cache only saves recasting a weight used twice, the values are the same)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=False)
