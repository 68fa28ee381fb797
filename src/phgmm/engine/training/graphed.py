"""A whole training step replayed as one CUDA graph (``train.cuda_graph``, docs/gpu.md).

PHGMM's eager GPU step launches thousands of small kernels and is bound by launching them
(docs/results/gpu_h100: 7,089 kernels, 74 ms of CPU launch time against 48 ms of GPU time). A CUDA
graph records the step's kernels once and replays them with one launch. What a graph needs, and how
each is met here:

* static shapes and addresses: every batch is copied into fixed input buffers
  (:class:`StaticBatch`); the training loader drops the last, short batch and the crop is fixed,
  so every batch fits; one that does not (a different shape) runs eagerly, said once;
* no host reads inside the step: the forward and the loss have none (``tests/test_roofline.py``);
  the non-finite check reads the loss terms after the replay, as the eager step reads them
  before its backward. A non-finite step must not update the weights (the eager step raises
  before its update): inside the graph a flag from the same terms makes the fused AdamW skip the
  update (its ``found_inf`` input, as a GradScaler uses it), and the trainer then stops as in eager;
* a capturable fused AdamW whose learning rate is a device tensor (:func:`make_capturable`): the
  poly schedule writes each step's rate into that tensor, which the graph reads;
* bf16 autocast without a GradScaler (fp16 needs the scaler, whose step reads its inf check on
  the host: refused), with the autocast weight-cast cache off, as PyTorch asks inside graphs;
* BatchNorm statistics exactly as in eager mode: the running statistics are updated by the
  batch-norm kernels themselves; the counters by one multi-tensor add per step
  (:func:`~phgmm.engine.training.step.batched_bn_counters`), as in the eager step;
* warm-up on a side stream (cuDNN and cuBLAS choose their algorithms and allocate workspaces
  outside the capture). The warm-up runs real steps on the first batch; the weights, buffers and
  optimiser state are saved before it and restored after it, so training starts from exactly the
  state eager training would. The first replay is then the first step.

Where a graph cannot run — a CPU, fp16 with a GradScaler, several processes (DDP), together with
``train.compile``, a KL warm-up or GECO (both change the loss's weights from the host every step),
a BatchNorm with ``momentum=None`` — :func:`training_graph_refusal` says why in one line and the
run trains eagerly: the switch never changes the arithmetic. Random draws (``sample_latent``,
``kl: mc``, ``skip_dropout``) come from PyTorch's graph-safe generator: the same distributions, a
different stream of numbers than an eager run.

The captured inference forward is :class:`phgmm.engine.inference.graphed.GraphedForward`; what both
graphs share (the capture mode, autocast inside a graph) is in :mod:`phgmm.engine.cudagraph`.

Eager stays the default everywhere: no graph mode is made the default before it is measured on a GPU
(``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..cudagraph import CAPTURE_MODE, graph_autocast
from .step import batched_bn_counters, loss_terms, stack_terms

__all__ = ["training_graph_refusal", "make_capturable", "StaticBatch", "GraphedTrainStep"]

_PREFIX = "train.cuda_graph"


def training_graph_refusal(
    device: torch.device,
    amp: torch.dtype | None,
    distributed: bool = False,
    compiled: bool = False,
    model: nn.Module | None = None,
    loss_fn: nn.Module | None = None,
) -> str | None:
    """None when a whole-step CUDA graph can train this run; else the one line that says why not
    (and that training runs eagerly)."""
    eager = "training runs eagerly (the same arithmetic)"
    if device.type != "cuda":
        return f"{_PREFIX}: CUDA graphs need a CUDA GPU, this run is on {device.type}; {eager}"
    if amp == torch.float16:
        return (
            f"{_PREFIX}: fp16 autocast needs a GradScaler, whose step reads its inf check back to the host "
            f"inside the step; set train.amp bf16 (or off) to graph the step; {eager}"
        )
    if distributed:
        return f"{_PREFIX}: not supported with several processes (DDP) yet; {eager}"
    if compiled:
        return (
            f"{_PREFIX}: not combined with train.compile (its mode reduce-overhead is torch.compile's own "
            f"CUDA graphs); running compiled, without the whole-step graph"
        )
    if loss_fn is not None:
        if getattr(loss_fn, "warmup_steps", 0) > 0:
            return f"{_PREFIX}: the KL warm-up changes the loss's weights every step (loss.kl_warmup_steps); {eager}"
        if getattr(loss_fn, "geco_target", None) is not None:
            return f"{_PREFIX}: GECO updates its multiplier between steps (loss.geco_target); {eager}"
    if model is not None and any(
        isinstance(m, _BatchNorm) and m.track_running_stats and m.momentum is None for m in model.modules()
    ):
        return f"{_PREFIX}: a BatchNorm with momentum=None reads its batch counter on the host; {eager}"
    return None


def _plain_param_groups(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> dict[str, Any]:
    """state_dict hook: checkpoints keep the learning rate as a number and ``capturable`` off, so a
    run resumes on any device with or without graphs."""
    for group in state["param_groups"]:
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = float(group["lr"])
        group["capturable"] = False
    return state


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Turn the trainer's fused AdamW into one a CUDA graph can replay, in place (its state kept):
    each group's learning rate becomes a float32 tensor on ``device`` — the scheduler's ``step``
    then writes the poly rate into it (``fill_``) instead of replacing a number the graph baked in —
    and, on CUDA, ``capturable`` is set (the step count stays on the device). Checkpoints still hold
    plain numbers (:func:`_plain_param_groups`)."""
    for group in optimizer.param_groups:
        if not isinstance(group["lr"], torch.Tensor):
            group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
        if device.type == "cuda":
            group["capturable"] = True
    if not getattr(optimizer, "_phgmm_plain_groups", False):
        optimizer.register_state_dict_post_hook(_plain_param_groups)
        optimizer._phgmm_plain_groups = True


class StaticBatch:
    """The fixed input buffers a captured step reads; each batch is copied in (``load``)."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        device: torch.device,
        memory_format: torch.memory_format = torch.channels_last,
    ) -> None:
        self.x = torch.empty(x.shape, dtype=x.dtype, device=device).contiguous(memory_format=memory_format)
        self.y = torch.empty(y.shape, dtype=y.dtype, device=device)

    def fits(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        return (
            x.shape == self.x.shape and y.shape == self.y.shape and x.dtype == self.x.dtype and y.dtype == self.y.dtype
        )

    def load(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x.copy_(x, non_blocking=True)
        self.y.copy_(y, non_blocking=True)


class GraphedTrainStep:
    """One training step (forward, loss, backward, optional clipping, fused AdamW) captured as a
    CUDA graph on the first call and replayed on every later one (see the module docstring).

    ``step(x, y)`` returns the four loss terms (:data:`~phgmm.engine.training.step.LOSS_TERMS` order, fp32,
    on the device) of this step, or None when the batch's shape differs from the captured one (the
    caller then runs the step eagerly). On a CPU :meth:`body` still runs eagerly: tests use it to check the arithmetic.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        amp: torch.dtype | None = None,
        grad_clip: float | None = None,
        takes_labels: bool = True,
        memory_format: torch.memory_format = torch.channels_last,
        warmup_steps: int = 3,
    ) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.device, self.amp, self.grad_clip = device, amp, grad_clip
        self.takes_labels, self.memory_format = takes_labels, memory_format
        self.warmup_steps = max(1, int(warmup_steps))
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.static: StaticBatch | None = None
        self.graph: Any = None
        self.outputs: torch.Tensor | None = None
        self.found_inf = torch.zeros((), dtype=torch.float32, device=device)
        self._said_shape = False
        make_capturable(optimizer, device)

    # -- the step as captured --------------------------------------------------------------------
    def body(self) -> torch.Tensor:
        """Forward, loss, backward, clipping and the AdamW update on the static batch; returns the
        stacked loss terms. The update is skipped (inside the kernels) when a term is not finite."""
        x, y = self.static.x, self.static.y
        with graph_autocast(self.amp, self.device), batched_bn_counters(self.model):
            terms = loss_terms(self.model, self.loss_fn, x, y, self.takes_labels)
        stacked = stack_terms(terms)
        self.found_inf.copy_(torch.logical_not(torch.isfinite(stacked).all()))
        terms["total"].backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.found_inf = self.found_inf  # read by the fused AdamW (skips the update)
        try:
            self.optimizer.step()
        finally:
            del self.optimizer.found_inf
        return stacked

    # -- capture ---------------------------------------------------------------------------------
    def _state_tensors(self) -> list[torch.Tensor]:
        tensors = list(self.model.parameters()) + list(self.model.buffers()) + list(self.loss_fn.buffers())
        return [t for t in tensors if t is not None]

    def _optimizer_tensors(self) -> dict[int, dict[str, torch.Tensor]]:
        return {
            id(p): {k: v for k, v in st.items() if isinstance(v, torch.Tensor)}
            for p, st in self.optimizer.state.items()
        }

    def capture(self) -> None:
        """Warm up on a side stream, restore the state the warm-up changed, capture :meth:`body`."""
        saved = [t.detach().clone() for t in self._state_tensors()]
        saved_opt = {pid: {k: v.clone() for k, v in st.items()} for pid, st in self._optimizer_tensors().items()}
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup_steps):
                self.optimizer.zero_grad(set_to_none=True)
                self.body()
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._restore(saved, saved_opt)
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, capture_error_mode=CAPTURE_MODE):
            self.outputs = self.body()

    def _restore(self, saved: list[torch.Tensor], saved_opt: dict[int, dict[str, torch.Tensor]]) -> None:
        """Put back the weights, buffers and optimiser state of before the warm-up, in place (the
        graph will read these very tensors). Optimiser state the warm-up created (a fresh run's
        moments and step count) is zeroed: AdamW's initial state."""
        with torch.no_grad():
            for t, s in zip(self._state_tensors(), saved, strict=True):
                t.copy_(s)
            for pid, state in self._optimizer_tensors().items():
                for k, v in state.items():
                    if pid in saved_opt and k in saved_opt[pid]:
                        v.copy_(saved_opt[pid][k])
                    else:
                        v.zero_()

    # -- each step -------------------------------------------------------------------------------
    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        if self.static is None:
            self.static = StaticBatch(x, y, self.device, self.memory_format)
        if not self.static.fits(x, y):
            if not self._said_shape:
                print(
                    f"{_PREFIX}: a batch of {tuple(x.shape)} differs from the captured {tuple(self.static.x.shape)}; "
                    f"such batches run eagerly",
                    flush=True,
                )
                self._said_shape = True
            return None
        self.static.load(x, y)
        if self.device.type != "cuda":  # no graphs here: the same step, eagerly
            self.optimizer.zero_grad(set_to_none=True)
            return self.body()
        if self.graph is None:
            self.capture()
        self.graph.replay()
        return self.outputs.clone()
