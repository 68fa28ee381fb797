"""The training loop (docs/design.md §4): AdamW + poly decay on PHGMM's loss, single- or multi-process.

The loop is a few short parts, after torchvision's segmentation reference and detectron2's
``train_loop``:

* :class:`~phgmm.engine.training.state.TrainingState` — model, optimiser, schedule, AMP scaler and
  the position (epoch, step, best mIoU, history), with ``state_dict()`` / ``load_state_dict()``;
* :class:`Trainer` — builds everything from a config (or resumes a checkpoint) and runs
  :meth:`~Trainer.train_one_epoch`, :meth:`~Trainer.validate` and :meth:`~Trainer.save_checkpoints`;
* :func:`train` — the one-call API the CLI uses.

Beside it in this package: the one step (``step.py``) and its CUDA graph (``graphed.py``), the
optimiser and schedule (``optimizer.py``), what a resume may change (``resume.py``) and the start
summary (``console.py``).

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ...config import Config, config_to_dict, save_config
from ...data.datasets import check_disjoint_splits
from ...io import check_output_dir, write_json
from ...models.contracts import LatentNetwork
from ...report import latent_use_line
from ...threads import thread_budget
from .. import distributed as du
from ..builders import build_dataset_from_config, build_loss, build_model_from_config
from ..checkpoint import capture_rng, init_from_weights, load_checkpoint, restore_rng, save_checkpoint, unwrap
from ..datachecks import unknown_ids_note
from ..loaders import EpochDataset, make_eval_loader, make_train_loader
from ..precision import amp_dtype, memory_format, precision_reason
from ..runlock import acquire_run_lock, release_run_lock
from .console import start_summary
from .optimizer import build_optimizer, poly_lambda
from .resume import carry_best, check_resume_config, decoder_width_note
from .state import TrainingState
from .step import LOSS_TERMS, StepParts, takes_labels, training_step

__all__ = ["train", "Trainer", "TrainingError", "RunExistsError", "TrainingInterrupted"]


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is left intact."""


class RunExistsError(FileExistsError):
    """The output folder already holds a run; resume it, or pass ``overwrite=True``."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``checkpoint`` is where the position was saved."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(str(checkpoint))
        self.checkpoint = checkpoint


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
        return start_summary(self, resumed)

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
        carry_best(self.state, state, self.ckpt_dir, self.main)

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
        """The whole-step CUDA graph of ``train.cuda_graph`` (engine/training/graphed.py), or None after one
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
        """This run's eager training step (:func:`~phgmm.engine.training.step.training_step`)."""
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
        from ..evaluation.evaluate import evaluate_model
        from ..evaluation.result import flat_scalars

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
                self._validate_owed_epoch()
                while s.epoch < t.epochs:
                    record = self.train_one_epoch()
                    s.epoch, s.step_in_epoch = s.epoch + 1, 0
                    s.history.append(record)
                    best = False
                    if self._validates(s.epoch):
                        self.save_checkpoints()  # the epoch is kept even if validation fails
                        best = self._validate_into(record)
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

    def _validates(self, epoch: int) -> bool:
        """Whether the end of ``epoch`` (counted from 1) is validated: every ``train.val_every``, and the last."""
        t = self.cfg.train
        return self.val_loader is not None and (epoch % t.val_every == 0 or epoch == t.epochs)

    def _validate_into(self, record: dict[str, Any]) -> bool:
        """Validate into the epoch's history record; whether it is the best epoch so far."""
        record.update(self.validate())
        best = "val_miou" in record and record["val_miou"] > self.state.best_miou
        if best:
            self.state.best_miou = record["val_miou"]
        return best

    def _validate_owed_epoch(self) -> None:
        """Validate the saved epoch whose validation never finished (the run was stopped inside it:
        its checkpoint is written before validation), so that a resumed run's history keeps every
        validation and its best.pt is chosen from all of them."""
        s = self.state
        last = s.history[-1] if s.history else None
        if last is None or s.step_in_epoch or last.get("epoch") != s.epoch or "val_miou" in last:
            return
        if not self._validates(s.epoch):
            return
        if self.main:
            print(f"epoch {s.epoch} was saved but its validation did not finish: validating it first", flush=True)
        self.save_checkpoints(best=self._validate_into(last))
        du.barrier()

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
