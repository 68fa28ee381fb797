"""The captured inference forward: ``model(x)`` (a folded, channels-last eval network) captured as a
CUDA graph once per input shape and replayed; on a CPU the model is called (docs/gpu.md).

``phgmm benchmark --cuda-graphs`` times it beside the eager inference; ``phgmm predict`` and
``phgmm evaluate`` do not use it yet. Eager stays the default: no graph mode is made the default
before it is measured on a GPU (``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..cudagraph import CAPTURE_MODE, graph_autocast

__all__ = ["GraphedForward"]


class GraphedForward:
    """``model(x)`` replayed from a CUDA graph captured once per input shape (at most
    ``max_graphs``; further shapes run eagerly). On a CPU, or with ``enabled=False``, the model
    itself is called. The result is a copy: later calls cannot overwrite it."""

    def __init__(
        self,
        model: Callable[[torch.Tensor], Any],
        device: torch.device,
        amp: torch.dtype | None = None,
        enabled: bool = True,
        max_graphs: int = 8,
        warmup: int = 2,
    ) -> None:
        self.model, self.device, self.amp = model, torch.device(device), amp
        self.enabled = enabled and self.device.type == "cuda"
        self.max_graphs, self.warmup = max_graphs, max(1, warmup)
        self.graphs: dict[tuple, tuple[Any, torch.Tensor, Any]] = {}

    def _run(self, x: torch.Tensor) -> Any:
        with torch.no_grad(), graph_autocast(self.amp, self.device):
            return self.model(x)

    def __call__(self, x: torch.Tensor) -> Any:
        if not self.enabled:
            return self._run(x)
        key = (tuple(x.shape), x.dtype, x.is_contiguous(memory_format=torch.channels_last))
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.graphs) >= self.max_graphs:
                return self._run(x)
            entry = self.graphs[key] = self._capture(x)
        graph, static_x, out = entry
        static_x.copy_(x, non_blocking=True)
        graph.replay()
        return out.clone()

    def _capture(self, x: torch.Tensor) -> tuple[Any, torch.Tensor, Any]:
        static_x = x.detach().clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self._run(static_x)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode=CAPTURE_MODE):
            out = self._run(static_x)
        return graph, static_x, out
