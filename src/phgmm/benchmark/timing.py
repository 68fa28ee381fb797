"""Timing tools of the benchmark: synchronised round-robin timing, peak memory, FLOPs and the
GPUs' peak FLOP/s for model-FLOPs utilisation."""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "PEAK_FLOPS",
    "sync",
    "time_interleaved",
    "maxrss_bytes",
    "PeakMemory",
    "device_peak_flops",
    "count_flops",
    "batch_images",
]

#: Dense tensor-core peak FLOP/s per GPU name fragment: bf16 (used with ``amp="bf16"``) and
#: tf32 (used for fp32 runs, since cuDNN convolutions use TF32 by default).
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989e12, "tf32": 494.5e12},
    "H100": {"bf16": 989e12, "tf32": 494.5e12},
    "A100": {"bf16": 312e12, "tf32": 156e12},
}


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(fns: dict[str, Callable[[], Any]], device: torch.device, iters: int) -> dict[str, float]:
    """Median seconds of each function, timed round-robin (A B C A B C …) so that a slow drift of
    the machine (other processes, clocks) affects every function alike — used for the ratios."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    sync(device)
    for _ in range(max(1, iters)):
        for key, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def maxrss_bytes() -> int:
    """The process's resident-set high-water mark in bytes."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


class PeakMemory:
    """Peak memory of a phase: CUDA max allocated, or CPU RSS high-water-mark growth."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_rss_highwater_delta"
        self.value = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._start = maxrss_bytes()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self.value = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self.value = maxrss_bytes() - self._start


def device_peak_flops(device: torch.device, amp: str | None) -> float | None:
    """The device's dense peak FLOP/s from :data:`PEAK_FLOPS`, or None when unknown (or CPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device).upper()
    for key, peaks in PEAK_FLOPS.items():
        if key in name:
            return peaks["bf16" if amp == "bf16" else "tf32"]
    return None


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (convolutions and matrix products, ``FlopCounterMode``)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def batch_images(batch: Any) -> int:
    """How many images a loader's batch holds (a tensor, a dict of them, or a tuple whose first is)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        for key in ("image", "images", "x"):
            if key in batch:
                return batch_images(batch[key])
        return batch_images(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)) and batch:
        return batch_images(batch[0])
    raise TypeError(f"cannot tell the batch size of a {type(batch).__name__}")
