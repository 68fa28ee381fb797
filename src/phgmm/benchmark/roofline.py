"""Roofline bounds: the fastest a network's step could run on a GPU, from its operators alone.

Every ATen operator of a training step or an inference is recorded on the ``meta`` device (shapes
only, no arithmetic, so a ResNet-101 step at 768×384 × 16 traces in seconds on any machine) with its
FLOPs (the formulas of ``torch.utils.flop_counter``: convolutions and matrix products, the same
"model FLOPs" the benchmark's MFU divides by) and the bytes it must move at least: its tensor inputs
read once and its outputs written once (an in-place operator reads and writes its tensor; a copy's
destination is only written). Views move nothing; ``empty`` writes nothing.

An operator cannot finish sooner than ``max(FLOPs ÷ peak, bytes ÷ bandwidth)``. Two sums of that
bound over the step give two ceilings on its model-FLOPs utilisation (MFU):

* ``eager`` — one kernel per operator, each at the device's peak FLOP rate or full memory
  bandwidth, whichever binds, and no launch overhead: the best any eager execution of the network
  can do;
* ``fused`` — only the convolutions and matrix products move memory: every normalisation,
  activation, addition and loss operator fused away into them for free. No schedule that runs
  each convolution as its own kernel can beat it.

A training step also pays the optimiser: a fused AdamW reads parameter, gradient and both moments
and writes parameter and moments, 28 bytes per fp32 parameter, added to both bounds.

bf16 autocast is modelled by running the network in bf16 (the fp32 master weights' casts and the
loss's fp32 upcast of the logits are the only differences; the first is not counted, the second is).
The bounds are lower bounds on time, so the MFU ceilings are upper bounds: a measured MFU above
``fused`` would mean a counting error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from ..config import Config
from ..engine.builders import build_loss
from ..engine.training.step import batched_bn_counters, loss_terms, takes_labels
from ..models import build_model, fold_batchnorm
from .timing import PEAK_FLOPS

__all__ = [
    "DeviceSpec",
    "DEVICES",
    "OpRecord",
    "Roofline",
    "trace_ops",
    "roofline",
    "by_operator",
    "training_ops",
    "training_roofline",
    "inference_roofline",
    "ADAMW_BYTES_PER_PARAM",
]

#: fused AdamW on fp32 parameters: read parameter, gradient, exp_avg, exp_avg_sq; write three back
ADAMW_BYTES_PER_PARAM = 7 * 4


@dataclass(frozen=True)
class DeviceSpec:
    """A GPU's dense bf16 tensor-core peak (FLOP/s) and its memory bandwidth (bytes/s)."""

    name: str
    peak_flops: float
    bandwidth: float

    @property
    def ridge(self) -> float:
        """FLOPs per byte an operator needs to be bound by arithmetic rather than memory."""
        return self.peak_flops / self.bandwidth


#: datasheet figures: the benchmark's dense bf16 peaks (:data:`~phgmm.benchmark.timing.PEAK_FLOPS`,
#: the same the measured MFU divides by) and the memory bandwidths
DEVICES: dict[str, DeviceSpec] = {
    "h100": DeviceSpec("NVIDIA H100 SXM5 80 GB (HBM3)", PEAK_FLOPS["H100"]["bf16"], 3.35e12),
    "h200": DeviceSpec("NVIDIA H200 SXM 141 GB (HBM3e)", PEAK_FLOPS["H200"]["bf16"], 4.8e12),
    "a100": DeviceSpec("NVIDIA A100 SXM 80 GB (HBM2e)", PEAK_FLOPS["A100"]["bf16"], 2.039e12),
}


@dataclass(frozen=True)
class OpRecord:
    """One ATen operator call: its FLOPs, the bytes it moves at least, and whether it is a matrix op."""

    name: str
    flops: int
    bytes: int
    matrix: bool

    def bound(self, device: DeviceSpec) -> float:
        """The least seconds this call can take on ``device``: ``max(FLOPs ÷ peak, bytes ÷ bandwidth)``."""
        return max(self.flops / device.peak_flops, self.bytes / device.bandwidth)


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class _Recorder(TorchDispatchMode):
    """Records an :class:`OpRecord` per operator call."""

    _NO_TRAFFIC = {
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "_local_scalar_dense",
        "lift_fresh",
        "_record_function_enter_new",
        "_record_function_exit",
    }
    _WRITE_ONLY = {
        "copy_",
        "fill_",
        "zero_",
        "normal_",
        "uniform_",
        "random_",
        "bernoulli_",
        "exponential_",
        "geometric_",
        "log_normal_",
        "cauchy_",
    }

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[OpRecord] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        name = packet.__name__
        if func.is_view or name in self._NO_TRAFFIC:
            return out
        # Every tensor argument is read once and every result written once; an in-place result
        # (relu_, add_) is both. A destination that is only written is not read: out= arguments
        # and the first argument of the write-only operators.
        operands = args[1:] if name in self._WRITE_ONLY else args
        reads = {id(t): t for t in _tensors((operands, {k: v for k, v in kwargs.items() if k != "out"}))}
        moved = sum(_nbytes(t) for t in reads.values()) + sum(_nbytes(t) for t in _tensors(out))
        matrix = packet in flop_registry
        flops = int(flop_registry[packet](*args, **kwargs, out_val=out)) if matrix else 0
        self.ops.append(OpRecord(name, flops, moved, matrix))
        return out


def trace_ops(fn: Callable[[], Any]) -> list[OpRecord]:
    """Run ``fn`` (on meta tensors, typically) and return every operator it called."""
    with _Recorder() as rec:
        fn()
    return rec.ops


@dataclass(frozen=True)
class Roofline:
    """The bounds of one traced step on one device (seconds, and MFU ceilings)."""

    device: DeviceSpec
    flops: int  # model FLOPs: convolutions and matrix products
    bytes_all: int  # every operator's minimal traffic (+ optimiser)
    bytes_matrix: int  # the matrix operators' traffic alone (+ optimiser)
    kernels: int  # operators that move memory: kernels of an eager run, at least
    eager_s: float
    fused_s: float
    compute_s: float  # FLOPs ÷ peak: the bound if nothing waited on memory

    @property
    def eager_mfu(self) -> float:
        return self.compute_s / self.eager_s

    @property
    def fused_mfu(self) -> float:
        return self.compute_s / self.fused_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "device": self.device.name,
            "flops": self.flops,
            "bytes_all": self.bytes_all,
            "bytes_matrix": self.bytes_matrix,
            "kernels": self.kernels,
            "eager_s": self.eager_s,
            "fused_s": self.fused_s,
            "compute_s": self.compute_s,
            "eager_mfu_ceiling": self.eager_mfu,
            "fused_mfu_ceiling": self.fused_mfu,
        }


def roofline(ops: list[OpRecord], device: DeviceSpec, extra_bytes: int = 0) -> Roofline:
    """Sum ``max(FLOPs ÷ peak, bytes ÷ bandwidth)`` over ``ops`` (all of them, and the matrix ops
    alone); ``extra_bytes`` (the optimiser's traffic) is added to both."""
    extra_s = extra_bytes / device.bandwidth
    flops = sum(op.flops for op in ops)
    return Roofline(
        device=device,
        flops=flops,
        bytes_all=sum(op.bytes for op in ops) + extra_bytes,
        bytes_matrix=sum(op.bytes for op in ops if op.matrix) + extra_bytes,
        kernels=len(ops),
        eager_s=sum(op.bound(device) for op in ops) + extra_s,
        fused_s=sum(op.bound(device) for op in ops if op.matrix) + extra_s,
        compute_s=flops / device.peak_flops,
    )


def by_operator(ops: list[OpRecord], device: DeviceSpec) -> dict[str, dict[str, float]]:
    """Per operator name: calls, FLOPs, least bytes and eager bound (seconds), largest bound first —
    to set beside a profiler's time per operator on that device."""
    table: dict[str, dict[str, float]] = {}
    for op in ops:
        row = table.setdefault(op.name, {"calls": 0, "flops": 0, "bytes": 0, "bound_s": 0.0})
        row["calls"] += 1
        row["flops"] += op.flops
        row["bytes"] += op.bytes
        row["bound_s"] += op.bound(device)
    return dict(sorted(table.items(), key=lambda kv: -kv[1]["bound_s"]))


def _meta_model(
    name: str, backbone: str, num_classes: int, dtype: torch.dtype, postnet: str | None, **kwargs: Any
) -> nn.Module:
    with torch.device("meta"):
        # PHGMM's PostNet; the other networks ignore PHGMM's keys
        model = build_model(name, num_classes=num_classes, backbone=backbone, **{**kwargs, "postnet": postnet})
    return model.to(dtype=dtype, memory_format=torch.channels_last)


def _meta_batch(
    size: tuple[int, int], batch: int, num_classes: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    w, h = size
    x = torch.empty(batch, 3, h, w, device="meta", dtype=dtype).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch, h, w), device="meta")
    return x, y


def training_ops(
    name: str = "phgmm",
    backbone: str = "resnet101",
    size: tuple[int, int] = (768, 384),
    batch: int = 16,
    num_classes: int = 12,
    postnet: str | None = "full",
    dtype: torch.dtype = torch.bfloat16,
    **model_kwargs: Any,
) -> tuple[list[OpRecord], int]:
    """The operators of one training step (forward, loss, backward) and the number of trained
    parameters (for the optimiser's traffic, counted from it rather than traced).

    The forward and the loss are those of :func:`phgmm.engine.training.step.training_step` with the
    default config's loss, the BatchNorm counters advanced in one add, as ``phgmm train`` steps."""
    model = _meta_model(name, backbone, num_classes, dtype, postnet, **model_kwargs)
    model.train()
    x, y = _meta_batch(size, batch, num_classes, dtype)
    loss_fn, labels = build_loss(Config()), takes_labels(model)

    def step() -> None:
        with batched_bn_counters(model):
            terms = loss_terms(model, loss_fn, x, y, labels, step=0)
        terms["total"].backward()

    return trace_ops(step), sum(p.numel() for p in model.parameters() if p.requires_grad)


def training_roofline(
    name: str = "phgmm",
    backbone: str = "resnet101",
    size: tuple[int, int] = (768, 384),
    batch: int = 16,
    device: DeviceSpec = DEVICES["h100"],
    num_classes: int = 12,
    postnet: str | None = "full",
    dtype: torch.dtype = torch.bfloat16,
    **model_kwargs: Any,
) -> Roofline:
    """The bounds of one training step as the benchmark times it: forward, the configured loss
    (PHGMM's with ``postnet``), backward and a fused AdamW step."""
    ops, params = training_ops(name, backbone, size, batch, num_classes, postnet, dtype, **model_kwargs)
    return roofline(ops, device, extra_bytes=ADAMW_BYTES_PER_PARAM * params)


def inference_roofline(
    name: str = "phgmm",
    backbone: str = "resnet101",
    size: tuple[int, int] = (768, 384),
    batch: int = 16,
    device: DeviceSpec = DEVICES["h100"],
    num_classes: int = 12,
    dtype: torch.dtype = torch.bfloat16,
    encoder_only: bool = False,
    folded: bool = False,
    **model_kwargs: Any,
) -> Roofline:
    """The bounds of one eval-mode forward (``encoder_only``: PHGMM's bare encoder; ``folded``: with
    the BatchNorms folded into the convolutions, as ``phgmm predict`` runs it)."""
    model = _meta_model(name, backbone, num_classes, dtype, None, **model_kwargs).eval()
    if folded:
        model = fold_batchnorm(model)
    net = model.encoder if encoder_only else model
    x, _ = _meta_batch(size, batch, num_classes, dtype)

    def forward() -> None:
        with torch.no_grad():
            net(x)

    return roofline(trace_ops(forward), device)
