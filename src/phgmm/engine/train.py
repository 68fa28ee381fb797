"""Training (docs/design.md §4): AdamW + poly decay on PHGMM's loss, single- or multi-process.

The loop is a few short parts, after torchvision's segmentation reference and detectron2's
``train_loop``:

* :class:`TrainingState` — model, optimiser, schedule, AMP scaler and the position (epoch, step,
  best mIoU, history), with ``state_dict()`` / ``load_state_dict()``;
* :class:`Trainer` — builds everything from a config (or resumes a checkpoint) and runs
  :meth:`~Trainer.train_one_epoch`, :meth:`~Trainer.validate` and :meth:`~Trainer.save_checkpoints`;
* :func:`train` — the one-call API the CLI uses.

Checkpoints ``last.pt`` (every epoch, every ``train.checkpoint_every`` steps, before validation
can fail, and on Ctrl-C) and ``best.pt`` (best validation mIoU, weights only) go to
``<output_dir>/checkpoints``; TensorBoard logs to ``<output_dir>/tb``; the resolved config to
``<output_dir>/config.yaml``; the per-epoch history to ``<output_dir>/history.json``. Ctrl-C is
honoured between steps, so a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..config import Config, config_from_dict, config_to_dict, save_config
from ..data.datasets import check_disjoint_splits
from ..io import AtomicFile, check_output_dir, write_json
from ..models.contracts import LatentNetwork, SegmentationNetwork
from ..report import latent_use_line
from ..threads import thread_budget
from . import distributed as du
from .builders import build_dataset_from_config, build_loss, build_model_from_config, describe_miou_classes
from .checkpoint import (
    CheckpointError,
    capture_rng,
    init_from_weights,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    unwrap,
)
from .datachecks import find_relative_data_paths, find_relative_data_root, unknown_ids_note  # noqa: F401
from .loaders import EpochDataset, make_eval_loader, make_train_loader
from .precision import amp_dtype, memory_format, precision_note, precision_reason
from .runlock import acquire_run_lock, release_run_lock
from .stepping import LOSS_TERMS, StepParts, takes_labels, training_step

__all__ = [
    "train",
    "Trainer",
    "TrainingState",
    "TrainingError",
    "RunExistsError",
    "TrainingInterrupted",
    "poly_lambda",
    "parameter_groups",
    "build_optimizer",
    "config_of_checkpoint",
    "check_resume_config",
]


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is left intact."""


class RunExistsError(FileExistsError):
    """The output folder already holds a run; resume it, or pass ``overwrite=True``."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``checkpoint`` is where the position was saved."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(str(checkpoint))
        self.checkpoint = checkpoint


def poly_lambda(total_steps: int, power: float) -> Callable[[int], float]:
    """lr factor ``(1 − step/total)^power`` (poly decay), never below zero."""
    return lambda step: max(0.0, 1.0 - step / max(1, total_steps)) ** power


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on weights only, none on biases and normalisation parameters.

    A normalisation layer's scale and shift and every bias are 1-D (or, like the local space's
    per-component biases, named ``*bias``); decaying them only drags BatchNorm towards zero.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith("bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups`, fused: a few multi-tensor kernels over all parameters
    instead of a loop over them (on a CPU 0.42× the for-loop step for a ResNet-101 PHGMM with its
    PostNet, ``python benchmarks/optimizer_step.py``). A checkpoint written by an unfused
    optimiser resumes unfused: ``load_state_dict`` restores the saved group settings."""
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr, fused=True)


def _count(n: int, noun: str) -> str:
    """``1 epoch``, ``6 epochs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


#: Settings a resumed run takes from its checkpoint (the optimiser's and schedule's state carry
#: them): an override that differs cannot apply and is refused. Everything else (epochs, val_every,
#: checkpoint_every, num_workers, output_dir …) may change on resume; the poly schedule is then
#: recomputed over the new number of epochs.
RESUME_FIXED = {
    "train": ("lr", "weight_decay", "poly_power", "batch_size"),
    "loss": (
        "lambda_g",
        "lambda_z",
        "lambda_s",
        "kl",
        "kl_warmup_steps",
        "free_bits",
        "ce_scale",
        "kl_direction",
        "geco_target",
        "geco_rate",
        "geco_alpha",
    ),
}


def check_resume_config(cfg: Config, state: dict[str, Any]) -> None:
    """Refuse a resume whose config changes what the checkpoint fixes; names both values."""
    from .checkpoint import config_differences

    source = state.get("source", "checkpoint")
    model = config_differences(state.get("config", {}), cfg, "model")
    model = [d for d in model if not d.startswith(("model.pretrained_backbone", "model.init_from"))]
    if model:
        raise CheckpointError(
            f"{source}: its weights do not fit the model of this config ({'; '.join(model)}); "
            f"resume with the checkpoint's own model settings"
        )
    fixed = [
        d
        for section, keys in RESUME_FIXED.items()
        for d in config_differences(state.get("config", {}), cfg, section, keys)
    ]
    if fixed:
        raise CheckpointError(
            f"{source}: a resumed run continues the checkpoint's optimiser, schedule and loss, "
            f"so these settings cannot change: {'; '.join(fixed)}. Drop the override, or start "
            f"a new run from its weights with the new settings: --set model.init_from={source} "
            f"and another --out (without --resume)"
        )


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


@contextlib.contextmanager
def _sigint_between_steps(flag: dict[str, bool]) -> Iterator[None]:
    """Ctrl-C sets ``flag["stop"]`` instead of raising, so the running step completes; a second
    Ctrl-C raises at once. Only the main thread can install a handler; elsewhere this is a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001 - the signal module's signature
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Trainer:
    """Trains ``cfg``'s model; see the module docstring for what it writes.

    Args:
        cfg: the resolved config (``phgmm.config.load_config``).
        resume: a checkpoint to continue from: a path, or one already read with ``load_checkpoint``.
        overwrite: allow replacing an existing run in ``cfg.output_dir``.
        progress: show progress bars (rank 0 only).
    """

    def __init__(
        self, cfg: Config, resume: str | Path | dict | None = None, overwrite: bool = False, progress: bool = True
    ) -> None:
        self.cfg, self.progress = cfg, progress
        self.device = du.init(cfg.device)
        self.main = du.is_main()
        self._record_precision_that_runs()
        self.out = Path(cfg.output_dir)
        self.ckpt_dir = self.out / "checkpoints"
        state = load_checkpoint(resume) if isinstance(resume, (str, Path)) else resume
        if state is not None:
            check_resume_config(cfg, state)
        self._lock = None
        try:
            self._set_up(state, overwrite)
        except BaseException:
            self.close()
            raise

    def _set_up(self, state: dict[str, Any] | None, overwrite: bool) -> None:
        cfg = self.cfg
        if self.main:
            check_output_dir(self.out)
            # before anything is written: a second training into this folder stops here, naming the first
            self._lock = acquire_run_lock(self.out)
            self._prepare_output(state is not None, overwrite)
        du.barrier()
        _seed_everything(cfg.seed)
        self._build_data()
        census = self._unknown_ids_census()  # may refuse the data: before any log is opened
        self._build_model()
        if state is not None:
            self._restore(state)
        elif cfg.model.init_from:  # fine-tuning: the weights that fit, a fresh schedule
            line = init_from_weights(self.model, cfg.model.init_from)
            if self.main:
                print(line + decoder_width_note(cfg, cfg.model.init_from, line), flush=True)
        self.net: nn.Module = self.model
        if du.is_distributed():
            ids = [self.device.index] if self.device.type == "cuda" else None
            # Without ℓ_z (no PostNet) the local space's log-variance head gets no gradient unless
            # samples are decoded. find_unused_parameters cannot see through the output's
            # distributions (it would mark used parameters unused), but the graph is the same every
            # step, so a static graph lets DDP learn once which parameters sit out.
            unused = isinstance(self.model, LatentNetwork) and cfg.model.postnet is None and not cfg.model.sample_latent
            self.net = DistributedDataParallel(self.model, device_ids=ids, static_graph=unused)
        if cfg.train.compile:
            self.net = torch.compile(self.net, mode=cfg.train.compile_mode)
        self.graphed = self._graphed_step() if cfg.train.cuda_graph else None
        self.writer = None
        if self.main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.out / "tb"), purge_step=self.state.global_step or None)
        self._stop = {"stop": False}
        if self.main:
            print(self.summary(state), flush=True)
            if census:
                print(census, flush=True)

    def _unknown_ids_census(self) -> str:
        """With ``data.unknown_ids=ignore``, the line saying how much of the labels that turns into
        255 (on a sample of label maps); a run none of whose sampled label pixels has a class is
        refused. Empty otherwise, and on every process but the first."""
        if self.cfg.data.unknown_ids != "ignore" or not self.main:
            return ""
        sets = [self.train_set] + ([self.val_loader.dataset] if self.val_loader is not None else [])
        return unknown_ids_note(sets)

    def close(self) -> None:
        """Release the run folder for another training (fit does it when it ends)."""
        release_run_lock(getattr(self, "_lock", None))
        self._lock = None

    def _record_precision_that_runs(self) -> None:
        """train.amp as it runs here: a lower precision this device cannot run fast (fp16 on a CPU,
        bf16 on a CPU without native bf16, see :func:`~phgmm.engine.precision.cpu_bf16`) becomes
        ``off`` with a note, so that config.yaml and the checkpoints never record a precision the run
        did not use."""
        t = self.cfg.train
        if amp_dtype(t.amp, self.device) is None and t.amp in ("bf16", "fp16"):
            if self.main:
                print(
                    f"{precision_reason(t.amp, self.device)}; this run trains in fp32 on {self.device}, "
                    f"and its config.yaml records train.amp=off",
                    flush=True,
                )
            t.amp = "off"

    def summary(self, resumed: dict[str, Any] | None = None) -> str:
        """The start-of-run summary: model, device, data, schedule, outputs (and the resume point)."""
        cfg, t, s = self.cfg, self.cfg.train, self.state
        counts = self.model.parameter_counts() if isinstance(self.model, SegmentationNetwork) else {}
        params = ""
        if counts:
            params = f", {counts['inference_total'] / 1e6:.2f} M parameters"
            if counts.get("training_total", 0) != counts["inference_total"]:
                params += f" ({counts['training_total'] / 1e6:.2f} M in training)"
        n_val = len(self.val_loader.dataset) if self.val_loader is not None else 0
        lines = [
            f"phgmm train: {cfg.model.name} ({cfg.model.backbone}{params}) on {self.device}"
            f"{f' × {du.world_size()} processes' if du.world_size() > 1 else ''}",
            f"  data: {cfg.data.dataset} at {cfg.data.root}: {len(self.train_set)} training images "
            f"({len(self.epoch_set)} samples per epoch), {n_val} validation, {cfg.data.size[0]}x{cfg.data.size[1]}",
            f"  schedule: {_count(t.epochs, 'epoch')} × {_count(self.steps_per_epoch, 'step')} of {t.batch_size}"
            f"{' per process' if du.world_size() > 1 else ''}, AdamW lr {t.lr:g} (poly), "
            f"weight decay {t.weight_decay:g}",
            f"  scores: {describe_miou_classes(cfg, self.train_set)}",
            f"  run: {self._run_description()}",
            f"  output: {self.out} (config.yaml, history.json, checkpoints/, tb/)",
        ]
        if resumed is not None:
            lines.append(
                f"  resuming {resumed.get('source', 'a checkpoint')} at epoch {s.epoch + 1}, "
                f"step {s.step_in_epoch} (global step {s.global_step})"
            )
        return "\n".join(lines)

    def _run_description(self) -> str:
        """Precision, memory format, optimiser and compilation, as the start summary shows them."""
        t = self.cfg.train
        parts = [
            precision_note(t.amp, self.device),
            "channels-last" if self.fmt == torch.channels_last else "contiguous",
            "fused AdamW",
        ]
        if t.compile:
            parts.append(f"torch.compile (mode {t.compile_mode})")
        if getattr(self, "graphed", None) is not None:
            parts.append("the whole step replayed as one CUDA graph")
        if self.device.type == "cpu":  # what phgmm.threads chose: worth seeing on a shared machine
            n, w = torch.get_num_threads(), self.cfg.data.num_workers
            parts.append(f"{_count(n, 'CPU thread')}" + (f" beside {_count(w, 'loader worker')}" if w else ""))
        return ", ".join(parts)

    # -- setup -----------------------------------------------------------------------------------
    def _prepare_output(self, resuming: bool, overwrite: bool) -> None:
        last = self.ckpt_dir / "last.pt"
        if last.exists() and not resuming and not overwrite:
            raise RunExistsError(
                f"{self.out}: already holds a training run ({last}). Resume it with "
                f"--resume {last}, choose another output_dir, or pass --overwrite to replace it."
            )
        save_config(self.cfg, self.out / "config.yaml")

    def _build_data(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        self.train_set = build_dataset_from_config(cfg, cfg.data.train_split, train=True)
        self.epoch_set = EpochDataset(self.train_set, cfg.data.samples_per_epoch, seed=cfg.seed)
        skip = cfg.data.max_bad_fraction if cfg.data.skip_bad_samples else None
        self.loader, self.sampler = make_train_loader(
            self.epoch_set, t.batch_size, cfg.data.num_workers, cfg.seed, cfg.data.pin_memory, skip_bad=skip
        )
        self.val_loader = None
        if t.val_every > 0:
            val_set = build_dataset_from_config(cfg, cfg.data.val_split, train=False)
            check_disjoint_splits(self.train_set, val_set, cfg.data.root, cfg.data.train_split, cfg.data.val_split)
            self.val_loader = make_eval_loader(
                val_set, cfg.eval.batch_size, cfg.data.num_workers, cfg.data.pin_memory, skip_bad=skip
            )
        self.steps_per_epoch = (
            len(self.loader) if t.max_steps_per_epoch is None else min(len(self.loader), t.max_steps_per_epoch)
        )
        self.classes = {
            "names": list(getattr(self.train_set, "class_names", [])),
            "colors": [list(c) for c in getattr(self.train_set, "colors", [])],
        }

    def _build_model(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        model = build_model_from_config(cfg).to(self.device)
        if t.sync_bn and du.is_distributed():
            if self.device.type == "cuda":
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            elif self.main:
                print("train.sync_bn: PyTorch's SyncBatchNorm runs on GPUs only; using per-process BatchNorm")
        self.fmt = memory_format(t.channels_last)
        self.model = model.to(memory_format=self.fmt)
        optimizer = build_optimizer(self.model, t.lr, t.weight_decay)
        total_steps = self.steps_per_epoch * t.epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lambda(total_steps, t.poly_power))
        self.amp = amp_dtype(t.amp, self.device)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        self.loss_fn = build_loss(cfg)
        self.takes_labels = takes_labels(self.model)
        self.state = TrainingState(self.model, optimizer, scheduler, scaler)

    def _restore(self, state: dict[str, Any]) -> None:
        self.state.load_state_dict(state)
        if state.get("loss"):  # GECO's state (an older checkpoint saved none)
            self.loss_fn.load_state_dict(state["loss"])
        if state.get("world_size", 1) == du.world_size():
            restore_rng(state["rng"])
        elif self.main:
            print(
                f"resuming with {du.world_size()} processes instead of {state.get('world_size', 1)}: "
                f"weights, optimiser and schedule continue; the sample order of the new world size applies"
            )
        if self.state.step_in_epoch >= self.steps_per_epoch:
            self.state.epoch, self.state.step_in_epoch = self.state.epoch + 1, 0
        self._carry_best(state)

    def _carry_best(self, state: dict[str, Any]) -> None:
        """Resumed into another run folder: its best.pt must hold the weights of the best mIoU the
        position records. The source run's best.pt is copied when it records that mIoU; without
        it the recorded best is dropped, so that this folder's next validation writes its own."""
        s, best = self.state, self.ckpt_dir / "best.pt"
        if s.best_miou < 0 or best.exists():
            return
        theirs = Path(state["source"]).parent / "best.pt" if state.get("source") else None
        recorded = None
        if theirs is not None and theirs.is_file():
            with contextlib.suppress(CheckpointError):
                recorded = load_checkpoint(theirs).get("best_miou")
        if recorded is not None and math.isclose(recorded, s.best_miou):
            if self.main:
                _copy_atomically(theirs, best)
                print(f"copied {theirs} (val mIoU {100 * recorded:.2f}) to {best}: the best weights so far", flush=True)
            return
        if self.main:
            print(
                f"no best.pt with the recorded best val mIoU {100 * s.best_miou:.2f} beside "
                f"{state.get('source', 'the checkpoint')}: {best} will hold the best of this run's validations",
                flush=True,
            )
        s.best_miou = -1.0

    # -- checkpoints -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A checkpoint of the current position (what ``--resume`` reads)."""
        return {
            **self.state.state_dict(),
            "rng": capture_rng(),
            "config": config_to_dict(self.cfg),
            "classes": self.classes,
            "world_size": du.world_size(),
            "loss": self.loss_fn.state_dict(),  # GECO's multiplier and moving average
            "epoch_running": self._running_now(),
        }  # the unfinished epoch's loss sums

    def save_checkpoints(self, best: bool = False) -> None:
        """``last.pt`` (the full position) and, when ``best``, ``best.pt`` (weights, no optimiser)."""
        if not self.main:
            return
        snap = self.snapshot()
        if best:
            save_checkpoint(self.ckpt_dir / "best.pt", _weights_only(snap))
        save_checkpoint(self.ckpt_dir / "last.pt", snap)
        write_json(self.out / "history.json", self.state.history)

    # -- the loop --------------------------------------------------------------------------------
    def _graphed_step(self):
        """The whole-step CUDA graph of ``train.cuda_graph`` (engine/graphed.py), or None after one
        line that says why it cannot run here (training then runs eagerly, the same arithmetic)."""
        from .graphed import GraphedTrainStep, training_graph_refusal

        why = training_graph_refusal(
            self.device, self.amp, du.is_distributed(), self.cfg.train.compile, self.model, self.loss_fn
        )
        if why is not None:
            if self.main:
                print(why, flush=True)
            return None
        return GraphedTrainStep(
            self.model,
            self.loss_fn,
            self.state.optimizer,
            self.device,
            self.amp,
            self.cfg.train.grad_clip,
            self.takes_labels,
            self.fmt,
        )

    def run_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step; returns the detached loss terms (on the device)."""
        s = self.state
        stacked = self.graphed.step(x, y) if self.graphed is not None else None
        if stacked is not None:  # replayed: the same step, one launch
            self._check_finite(stacked)
            s.scheduler.step()
            s.global_step += 1
            s.step_in_epoch += 1
            return {"terms": stacked, "images": x.shape[0]}
        stacked = training_step(self.step_parts(), x, y, step=s.global_step, check=self._check_finite)
        s.scheduler.step()
        s.global_step += 1
        s.step_in_epoch += 1
        return {"terms": stacked, "images": x.shape[0]}

    def step_parts(self) -> StepParts:
        """This run's eager training step (:func:`~phgmm.engine.stepping.training_step`)."""
        s = self.state
        return StepParts(
            self.net,
            self.model,
            self.loss_fn,
            s.optimizer,
            s.scaler,
            self.device,
            self.amp,
            self.fmt,
            self.takes_labels,
            self.cfg.train.grad_clip,
        )

    def _check_finite(self, stacked: torch.Tensor) -> None:
        if not bool(torch.isfinite(stacked).all()):  # the step's one host synchronisation
            self._non_finite(dict(zip(LOSS_TERMS, stacked.tolist(), strict=True)))

    def _non_finite(self, values: dict[str, float]) -> None:
        s = self.state
        name = next((k for k in ("g", "z", "s") if not math.isfinite(values[k])), "total")
        last = self.ckpt_dir / "last.pt"
        kept = (
            f"the last good checkpoint {last} was left intact"
            if last.exists()
            else "no checkpoint had been written yet"
        )
        raise TrainingError(
            f"non-finite loss at epoch {s.epoch + 1}, step {s.step_in_epoch + 1} (global step {s.global_step + 1}): "
            f"term ℓ_{name} = {values[name]}. Training stopped; {kept}. Try a lower train.lr or train.grad_clip."
        )

    def train_one_epoch(self) -> dict[str, Any]:
        """Train from the current position to the end of the epoch; returns the epoch's record."""
        s, t = self.state, self.cfg.train
        epoch, first = s.epoch, s.step_in_epoch
        self.model.train()
        self.sampler.set_epoch(epoch)
        self.epoch_set.set_epoch(epoch)
        self.sampler.set_start(first * t.batch_size)
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=first,
            desc=f"epoch {epoch + 1}/{t.epochs}",
            disable=not (self.progress and self.main),
            dynamic_ncols=True,
            leave=True,
        )
        run = self._start_running(first)
        sums = run["sums"]
        seen, tick, every = 0, time.perf_counter(), max(1, t.log_every)
        for x, y in self.loader:
            if s.step_in_epoch >= self.steps_per_epoch:
                break
            out = self.run_step(x, y)
            sums += out["terms"]
            seen += out["images"] * du.world_size()
            run["images"] += out["images"] * du.world_size()
            bar.update(1)
            if s.global_step % every == 0:
                self._log_step(out["terms"], seen / max(1e-9, time.perf_counter() - tick), bar)
            if (
                t.checkpoint_every
                and s.global_step % t.checkpoint_every == 0
                and s.step_in_epoch < self.steps_per_epoch
            ):
                self.save_checkpoints()
            if self._stop["stop"]:
                raise KeyboardInterrupt
        bar.close()
        du.broadcast_buffers(self.model)
        # the whole epoch, across an interruption and resume (no step ran: an empty record)
        done = self._running_now() or {"steps": 0, "images": 0, "seconds": time.perf_counter() - tick}
        n_steps = max(1, done["steps"])
        elapsed = done["seconds"]
        seen = done["images"]
        means = (sums / n_steps).tolist()
        geco = (
            {"geco_lambda": float(self.loss_fn.geco_lambda)}
            if getattr(self.loss_fn, "geco_target", None) is not None
            else {}
        )
        return {
            "epoch": epoch + 1,
            **{f"loss_{k}": v for k, v in zip(LOSS_TERMS, means, strict=True)},
            **geco,
            "images_per_s": seen / max(1e-9, elapsed),
            "epoch_seconds": elapsed,
            "global_step": s.global_step,
        }

    def _start_running(self, first: int) -> dict[str, Any]:
        """The epoch's running loss sums, images and seconds: zero at its start; resumed mid-epoch,
        what the checkpoint saved, so that history.json averages the whole epoch, not its last part."""
        saved = (self.state.running or {}) if first > 0 else {}
        self._running = {
            "sums": torch.tensor(saved.get("sums", [0.0] * len(LOSS_TERMS)), device=self.device),
            "images": saved.get("images", 0),
            "seconds": saved.get("seconds", 0.0),
            # an older checkpoint saved no sums: average the steps run since
            "first": first - saved.get("steps", 0),
            "tick": time.perf_counter(),
        }
        return self._running

    def _running_now(self) -> dict[str, Any] | None:
        """The unfinished epoch's running record, as a checkpoint stores it (None at an epoch's start)."""
        run = getattr(self, "_running", None)
        if run is None or self.state.step_in_epoch == 0:
            return None
        return {
            "sums": run["sums"].tolist(),
            "images": run["images"],
            "steps": self.state.step_in_epoch - run["first"],
            "seconds": run["seconds"] + time.perf_counter() - run["tick"],
        }

    def _log_step(self, terms: torch.Tensor, rate: float, bar) -> None:
        if not self.main:
            return
        values = dict(zip(LOSS_TERMS, terms.tolist(), strict=True))
        bar.set_postfix(
            loss=f"{values['total']:.3f}",
            s=f"{values['s']:.3f}",
            z=f"{values['z']:.3f}",
            g=f"{values['g']:.3f}",
            img_s=f"{rate:.1f}",
        )
        if self.writer is not None:
            step = self.state.global_step
            for k, v in values.items():
                self.writer.add_scalar(f"train/loss_{k}", v, step)
            self.writer.add_scalar("train/lr", self.state.scheduler.get_last_lr()[0], step)
            self.writer.add_scalar("train/kl_weight", self.loss_fn.kl_weight(step), step)
            if getattr(self.loss_fn, "geco_target", None) is not None:
                self.writer.add_scalar("train/geco_lambda", float(self.loss_fn.geco_lambda), step)
            self.writer.add_scalar("train/images_per_s", rate, step)

    def validate(self) -> dict[str, Any]:
        """Score the validation split; returns the ``val_*`` entries of the epoch's record."""
        from .evaluate import evaluate_model, flat_scalars

        e = self.cfg.eval  # the light latent-use measures by default (eval.val_latent)
        result = evaluate_model(
            unwrap(self.model),
            self.val_loader,
            self.cfg,
            self.device,
            trimap=False,
            report_samples=0,
            progress=self.progress,
            latent=e.latent and e.val_latent != "off",
            latent_level=e.val_latent,
        )
        record = {f"val_{k}": v for k, v in flat_scalars(result.metrics).items()}
        if self.writer is not None:
            for k, v in record.items():
                if math.isfinite(v):
                    self.writer.add_scalar(k.replace("val_", "val/", 1), v, self.state.global_step)
        if self.main:
            m = result.metrics
            latent = latent_use_line(m.get("latent") or {})
            print(
                f"epoch {self.state.epoch}: val mIoU {100 * m['miou']:.2f} "
                f"(pixel acc. {100 * m['pixel_accuracy']:.2f})" + (f"; {latent}" if latent else ""),
                flush=True,
            )
        return record

    def fit(self, stop_after_epochs: int | None = None) -> dict[str, Any]:
        """Train to ``train.epochs`` (or for ``stop_after_epochs`` epochs of this call); the run
        folder is released for another training when it returns or raises."""
        if self.main and self._lock is None:  # fit called again after it ended
            self._lock = acquire_run_lock(self.out)
        try:
            return self._fit(stop_after_epochs)
        finally:
            self.close()

    def _fit(self, stop_after_epochs: int | None) -> dict[str, Any]:
        s, t = self.state, self.cfg.train
        epochs_run = 0
        try:
            with _sigint_between_steps(self._stop):
                while s.epoch < t.epochs:
                    record = self.train_one_epoch()
                    s.epoch, s.step_in_epoch = s.epoch + 1, 0
                    s.history.append(record)
                    validate = self.val_loader is not None and (s.epoch % t.val_every == 0 or s.epoch == t.epochs)
                    if validate:
                        self.save_checkpoints()  # the epoch is kept even if validation fails
                        record.update(self.validate())
                    best = "val_miou" in record and record["val_miou"] > s.best_miou
                    if best:
                        s.best_miou = record["val_miou"]
                    self.save_checkpoints(best=best)
                    du.barrier()
                    epochs_run += 1
                    if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
                        break
        except KeyboardInterrupt:
            path = self.ckpt_dir / "last.pt"
            self.save_checkpoints()
            if self.main:
                print(
                    f"\ninterrupted: saved the position (epoch {s.epoch + 1}, step {s.step_in_epoch}) to "
                    f"{path}; continue with --resume {path}",
                    flush=True,
                )
            raise TrainingInterrupted(path) from None
        finally:
            if self.writer is not None:
                self.writer.close()
        return self._finish()

    def _finish(self) -> dict[str, Any]:
        s = self.state
        skipped = getattr(self.loader, "skipped", [])
        if skipped and self.main:
            print(f"skipped {len(skipped)} unreadable training samples (data.skip_bad_samples)", flush=True)
        best_path, last_path = self.ckpt_dir / "best.pt", self.ckpt_dir / "last.pt"
        if self.main and not best_path.exists() and last_path.exists():
            # no validation ran: the last weights are the best we know of
            save_checkpoint(best_path, _weights_only(load_checkpoint(last_path)))
        return {
            "output_dir": str(self.out),
            "last": str(last_path),
            "best": str(best_path),
            "best_miou": s.best_miou,
            "history": s.history,
            "global_step": s.global_step,
            "model": unwrap(self.model),
            "skipped_samples": list(skipped),
        }


def decoder_width_note(cfg: Config, path: str | Path, line: str) -> str:
    """The fine-tuning line's note when tensors were left fresh only because the decoder's width
    follows the class count (3·C): which width keeps them, and how many more would load."""
    if "another shape" not in line or cfg.model.decoder_channels is not None:
        return ""
    try:
        source = load_checkpoint(path)
        src = (source.get("config") or {}).get("model") or {}
        width = src.get("decoder_channels") or 3 * int(src.get("num_classes", cfg.model.num_classes))
    except (CheckpointError, TypeError, ValueError):
        return ""
    here = 3 * cfg.model.num_classes
    if width == here:
        return ""
    from copy import deepcopy

    alt = deepcopy(cfg)
    alt.model.decoder_channels = int(width)
    alt.model.init_from = None
    alt.model.pretrained_backbone = None
    own = build_model_from_config(alt, pretrained=False).state_dict()
    fits = sum(1 for k, v in source["model"].items() if k in own and tuple(v.shape) == tuple(own[k].shape))
    return (
        f". The decoder's width follows the class count (model.decoder_channels unset: 3·C, {width} in the file, "
        f"{here} here), which is why most of those are fresh: --set model.decoder_channels={width} keeps them "
        f"({fits} of {len(own)} tensors would load)"
    )


def _copy_atomically(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of ``src``; a reader never sees half of it."""
    import shutil

    with AtomicFile(dst) as tmp:
        shutil.copyfile(src, tmp)


def _weights_only(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint for using the model, not for resuming: no optimiser, schedule or RNG."""
    drop = {"optimizer", "scheduler", "scaler", "rng", "source"}
    return {k: v for k, v in snapshot.items() if k not in drop}


def train(
    cfg: Config,
    resume: str | Path | dict | None = None,
    overwrite: bool = False,
    stop_after_epochs: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``cfg``'s model; returns a summary (best mIoU, checkpoint paths, history, the model).

    Args:
        cfg: the resolved config (``phgmm.config.load_config``).
        resume: a checkpoint to continue from (its optimiser, scheduler, RNG and position): a
            path, or a checkpoint already read with ``load_checkpoint``.
        overwrite: allow replacing an existing run in ``cfg.output_dir``.
        stop_after_epochs: stop (with a checkpoint) after this many epochs of this call, e.g. to
            split a long run into jobs; the schedule still follows ``cfg.train.epochs``.
        progress: show a progress bar (rank 0 only).
    """
    # PyTorch threads beside the loader workers, not on top of them (phgmm.threads); restored after
    with thread_budget(cfg.threads, cfg.data.num_workers):
        return Trainer(cfg, resume=resume, overwrite=overwrite, progress=progress).fit(stop_after_epochs)


def config_of_checkpoint(state: dict[str, Any], path: str | Path) -> Config:
    """The config a loaded checkpoint was trained with (for ``--resume`` without ``--config``).

    Its ``output_dir`` is the run folder the checkpoint sits in (``<run>/checkpoints/last.pt``)
    wherever the command runs: a relative folder saved from another working directory, or a
    run folder moved since, would otherwise start a second run folder beside the original."""
    cfg = config_from_dict(state["config"], f"{path} (config)")
    where = Path(path).resolve().parent
    if where.name == "checkpoints" and (where.parent / "config.yaml").is_file():
        find_relative_data_root(cfg, run=where.parent)
        cfg.output_dir = str(where.parent)
    return cfg
