"""What a training run prints when it starts: the model, device, data, schedule, how it runs, where
it writes, and the resume point (``Trainer.summary``)."""

from __future__ import annotations

from typing import Any

import torch

from ...models.contracts import SegmentationNetwork
from .. import distributed as du
from ..builders import describe_miou_classes
from ..precision import precision_note

__all__ = ["count", "start_summary", "run_description"]


def count(n: int, noun: str) -> str:
    """``1 epoch``, ``6 epochs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def start_summary(trainer: Any, resumed: dict[str, Any] | None = None) -> str:
    """The start-of-run summary of a :class:`~phgmm.engine.training.trainer.Trainer`: model, device,
    data, schedule, outputs (and the resume point)."""
    cfg, t, s = trainer.cfg, trainer.cfg.train, trainer.state
    counts = trainer.model.parameter_counts() if isinstance(trainer.model, SegmentationNetwork) else {}
    params = ""
    if counts:
        params = f", {counts['inference_total'] / 1e6:.2f} M parameters"
        if counts.get("training_total", 0) != counts["inference_total"]:
            params += f" ({counts['training_total'] / 1e6:.2f} M in training)"
    n_val = len(trainer.val_loader.dataset) if trainer.val_loader is not None else 0
    lines = [
        f"phgmm train: {cfg.model.name} ({cfg.model.backbone}{params}) on {trainer.device}"
        f"{f' × {du.world_size()} processes' if du.world_size() > 1 else ''}",
        f"  data: {cfg.data.dataset} at {cfg.data.root}: {len(trainer.train_set)} training images "
        f"({len(trainer.epoch_set)} samples per epoch), {n_val} validation, {cfg.data.size[0]}x{cfg.data.size[1]}",
        f"  schedule: {count(t.epochs, 'epoch')} × {count(trainer.steps_per_epoch, 'step')} of {t.batch_size}"
        f"{' per process' if du.world_size() > 1 else ''}, AdamW lr {t.lr:g} (poly), "
        f"weight decay {t.weight_decay:g}",
        f"  scores: {describe_miou_classes(cfg, trainer.train_set)}",
        f"  run: {run_description(trainer)}",
        f"  output: {trainer.out} (config.yaml, history.json, checkpoints/, tb/)",
    ]
    if resumed is not None:
        lines.append(
            f"  resuming {resumed.get('source', 'a checkpoint')} at epoch {s.epoch + 1}, "
            f"step {s.step_in_epoch} (global step {s.global_step})"
        )
    return "\n".join(lines)


def run_description(trainer: Any) -> str:
    """Precision, memory format, optimiser and compilation, as the start summary shows them."""
    t = trainer.cfg.train
    parts = [
        precision_note(t.amp, trainer.device),
        "channels-last" if trainer.fmt == torch.channels_last else "contiguous",
        "fused AdamW",
    ]
    if t.compile:
        parts.append(f"torch.compile (mode {t.compile_mode})")
    if getattr(trainer, "graphed", None) is not None:
        parts.append("the whole step replayed as one CUDA graph")
    if trainer.device.type == "cpu":  # what phgmm.threads chose: worth seeing on a shared machine
        n, w = torch.get_num_threads(), trainer.cfg.data.num_workers
        parts.append(f"{count(n, 'CPU thread')}" + (f" beside {count(w, 'loader worker')}" if w else ""))
    return ", ".join(parts)
