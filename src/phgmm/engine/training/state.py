"""What a checkpoint restores of a run: :class:`TrainingState` (the model, optimiser, schedule,
AMP scaler and the position: epoch, step, best mIoU, history) with ``state_dict()`` /
``load_state_dict()``, and the rearranging of an older optimiser state into today's parameter groups."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, unwrap

__all__ = ["TrainingState"]


class TrainingState:
    """Everything a checkpoint restores: the model, optimiser, schedule, scaler and position."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
    ) -> None:
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.epoch = 0  # epochs finished
        self.step_in_epoch = 0  # steps finished in the current epoch
        self.global_step = 0
        self.best_miou = -1.0
        self.history: list[dict[str, Any]] = []
        self.running: dict[str, Any] | None = None  # the unfinished epoch's loss sums (Trainer._running_now)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "best_miou": self.best_miou,
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a checkpoint; a model that does not fit is a :class:`CheckpointError`."""
        source = state.get("source", "checkpoint")
        try:
            unwrap(self.model).load_state_dict(state["model"])
        except RuntimeError as exc:
            raise CheckpointError(
                f"{source}: its weights do not fit the model of this config "
                f"({str(exc).splitlines()[0]}); resume with the checkpoint's own model "
                f"settings"
            ) from None
        if "optimizer" not in state:
            raise CheckpointError(
                f"{source}: holds weights only (no optimiser state), so training cannot "
                f"resume from it; resume from last.pt, or start a new run"
            )
        try:
            self.optimizer.load_state_dict(_regroup(state["optimizer"], self.model, self.optimizer))
        except ValueError as exc:
            raise CheckpointError(
                f"{source}: its optimiser state does not fit ({exc}); it was written by an "
                f"older phgmm with other parameter groups: start a new run"
            ) from None
        scheduler = dict(state["scheduler"])
        groups = len(self.optimizer.param_groups)
        for key in ("base_lrs", "_last_lr"):  # one entry per group; an old single group is shared
            if isinstance(scheduler.get(key), list) and len(scheduler[key]) == 1 and groups > 1:
                scheduler[key] = scheduler[key] * groups
        self.scheduler.load_state_dict(scheduler)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.best_miou = state["global_step"], state.get("best_miou", -1.0)
        self.history = list(state.get("history", []))
        self.running = state.get("epoch_running")


def _regroup(saved: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """An optimiser state written with one parameter group (phgmm 0.1 before the weight-decay
    split), rearranged into this optimiser's groups: each parameter keeps its AdamW moments, each
    group its own weight decay. Other states are returned unchanged."""
    groups = optimizer.state_dict()["param_groups"]
    if len(saved["param_groups"]) != 1 or len(groups) == 1:
        return saved
    old = saved["param_groups"][0]
    position = {id(p): i for i, p in enumerate(unwrap(model).parameters())}  # the old group's order
    new_order = [p for g in optimizer.param_groups for p in g["params"]]
    if len(old["params"]) != len(new_order):
        return saved
    state = {}
    for new_index, p in enumerate(new_order):
        old_index = old["params"][position[id(p)]]
        if old_index in saved["state"]:
            state[new_index] = saved["state"][old_index]
    merged = [{**old, "params": g["params"], "weight_decay": g["weight_decay"]} for g in groups]
    return {"state": state, "param_groups": merged}
