"""How many ATen operators a training step and an eval forward dispatch (docs/gpu.md).

An eager GPU step launches about one kernel per dispatched operator, so on a GPU where PHGMM's
step is bound by launches (docs/results/gpu_h100) this count is the cost a CPU can see. It is
deterministic: it depends on the network and on PyTorch, not on the machine, the threads or the
input size, so a test can guard it (``tests/test_opcount.py`` against
``tests/fixtures/op_counts.json``) and a change that adds operators shows up without a GPU.

Two figures per phase:

* ``ops`` — every operator that reaches the dispatcher's Python mode (forward, autograd's backward
  and the optimiser), views included;
* ``kernels`` — the ones that can launch a device kernel: ``ops`` without views (``view``,
  ``split``, ``expand``, ``t`` …), allocations of uninitialised memory (``empty*``) and
  metadata-only calls. This is the figure to compare with a GPU profile's kernel count.

The training step is what ``phgmm train`` and ``phgmm benchmark`` run (:func:`phgmm.benchmark.step.train_step`:
forward, the default config's loss — with the full PostNet for PHGMM —, backward, fused AdamW
step), the second step after one untimed one (the first creates the optimiser's moments). The eval forward is
``model.eval()`` under ``torch.no_grad``, unfolded and with BatchNorm folded (what ``phgmm
predict`` and ``evaluate`` run).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..conventions import IGNORE_INDEX
from ..models.contracts import LatentNetwork
from .step import train_step

__all__ = ["OpCounter", "count_ops", "model_op_counts", "op_counts", "PHASES", "DEFAULT_SETTING"]

#: the phases counted per model
PHASES = ("train", "eval", "eval_folded")

#: the fixed small configuration the committed record (tests/fixtures/op_counts.json) is taken at
DEFAULT_SETTING = {
    "backbone": "resnet18",
    "size_wh": [128, 64],
    "batch": 2,
    "num_classes": 12,
    "postnet": "full",
    "channels_last": True,
}

_NO_KERNEL = {
    "empty",
    "empty_like",
    "empty_strided",
    "new_empty",
    "new_empty_strided",
    "_local_scalar_dense",
    "lift_fresh",
    "lift_fresh_copy",
    "_record_function_enter_new",
    "_record_function_exit",
    "detach",
    "alias",
    "_to_copy_meta",
    "sym_size",
    "sym_stride",
    "sym_numel",
    "sym_storage_offset",
    "is_same_size",
    "_has_compatible_shallow_copy_type",
    "set_",
    "resize_",
    "_unsafe_view",
}


class OpCounter(TorchDispatchMode):
    """Counts every operator dispatched inside it, by name (``aten.convolution`` → ``convolution``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()
        self.kernels: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.ops[name] += 1
        if not (func.is_view or name in _NO_KERNEL):
            self.kernels[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def total_kernels(self) -> int:
        return sum(self.kernels.values())


def count_ops(fn: Callable[[], Any]) -> OpCounter:
    """Run ``fn`` once under an :class:`OpCounter` and return it."""
    with OpCounter() as counter:
        fn()
    return counter


def model_op_counts(
    name: str,
    backbone: str = "resnet18",
    size_wh: Sequence[int] = (128, 64),
    batch: int = 2,
    num_classes: int = 12,
    postnet: str | None = "full",
    channels_last: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    phases: Sequence[str] = PHASES,
) -> dict[str, dict[str, Any]]:
    """Operator counts of ``name``'s training step, eval forward and folded eval forward on the CPU.

    Returns ``{phase: {"ops": n, "kernels": n, "by_op": {name: kernels}}}`` for ``phases`` (of
    :data:`PHASES`).
    """
    from ..models import build_model, fold_batchnorm

    torch.manual_seed(seed)
    kwargs = dict(model_kwargs or {})
    kwargs.setdefault("postnet", postnet)  # PHGMM's; the other networks ignore PHGMM's keys
    model = build_model(name, num_classes=num_classes, backbone=backbone, **kwargs)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=mf)
    w, h = (int(v) for v in size_wh)
    x = torch.randn(batch, 3, h, w).contiguous(memory_format=mf)
    y = torch.randint(0, num_classes, (batch, h, w))
    y[:, : max(1, h // 16)] = IGNORE_INDEX
    result = {}
    if "train" in phases:
        step = train_step(model, x, y, memory_format=mf)
        step()  # creates the optimiser's moments: not a steady step
        result["train"] = count_ops(step)
    if isinstance(model, LatentNetwork):
        model.postnet = None  # the inference network, as predict builds it
    model.eval()
    with torch.no_grad():
        if "eval" in phases:
            result["eval"] = count_ops(lambda: model(x))
        if "eval_folded" in phases:
            folded = fold_batchnorm(model)
            result["eval_folded"] = count_ops(lambda: folded(x))
    return {
        phase: {"ops": c.total, "kernels": c.total_kernels, "by_op": dict(c.kernels.most_common())}
        for phase, c in result.items()
    }


def op_counts(models: Sequence[str] | None = None, **setting: Any) -> dict[str, Any]:
    """:func:`model_op_counts` for every model (default: every registered one) at ``setting``
    (default :data:`DEFAULT_SETTING`), with the setting and PyTorch's version."""
    from ..models import MODEL_NAMES

    setting = {**DEFAULT_SETTING, **setting}
    names = list(models or MODEL_NAMES)
    return {
        "setting": setting,
        "torch": torch.__version__.split("+")[0],
        "models": {n: model_op_counts(n, **setting) for n in names},
    }
