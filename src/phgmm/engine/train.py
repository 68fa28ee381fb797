"""Training loop (SPEC §4): AdamW + poly decay on the loss of SPEC §3, single- or multi-process.

Checkpoints ``last.pt`` (every epoch, and on Ctrl-C) and ``best.pt`` (best validation mIoU) go to
``<output_dir>/checkpoints``; TensorBoard logs to ``<output_dir>/tb``; the resolved config to
``<output_dir>/config.yaml``. A resumed run continues exactly where the checkpoint left off.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..config import Config, config_from_dict, config_to_dict, save_config
from . import distributed as du
from .builders import build_dataset_from_config, build_loss, build_model_from_config
from .checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint, unwrap
from .loaders import EpochDataset, make_eval_loader, make_train_loader
from .precision import amp_dtype, autocast, memory_format

__all__ = ["train", "TrainingError", "RunExistsError", "TrainingInterrupted", "poly_lambda"]


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


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check_output_dir(out: Path, resume: bool, overwrite: bool) -> None:
    last = out / "checkpoints" / "last.pt"
    if last.exists() and not resume and not overwrite:
        raise RunExistsError(f"{out}: already holds a training run ({last}). Resume it with "
                             f"--resume {last}, choose another output_dir, or pass --overwrite to replace it.")


def train(cfg: Config, resume: str | Path | dict | None = None, overwrite: bool = False,
          stop_after_epochs: int | None = None, progress: bool = True) -> dict[str, Any]:
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
    device = du.init(cfg.device)
    main = du.is_main()
    out = Path(cfg.output_dir)
    ckpt_dir = out / "checkpoints"
    state = None
    if isinstance(resume, dict):
        state = resume
    elif resume is not None:
        state = load_checkpoint(resume, map_location="cpu")
    if main:
        _check_output_dir(out, resume is not None, overwrite)
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    du.barrier()

    _seed_everything(cfg.seed)
    t = cfg.train
    train_set = build_dataset_from_config(cfg, cfg.data.train_split, train=True)
    epoch_set = EpochDataset(train_set, cfg.data.samples_per_epoch)
    loader, sampler = make_train_loader(epoch_set, t.batch_size, cfg.data.num_workers, cfg.seed,
                                        cfg.data.pin_memory)
    val_loader = None
    if t.val_every > 0:
        val_set = build_dataset_from_config(cfg, cfg.data.val_split, train=False)
        val_loader = make_eval_loader(val_set, cfg.eval.batch_size, cfg.data.num_workers, cfg.data.pin_memory)
    steps_per_epoch = len(loader) if t.max_steps_per_epoch is None else min(len(loader), t.max_steps_per_epoch)
    total_steps = steps_per_epoch * t.epochs

    model = build_model_from_config(cfg).to(device)
    if t.sync_bn and du.is_distributed():
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif du.is_main():
            print("train.sync_bn: PyTorch's SyncBatchNorm runs on GPUs only; using per-process BatchNorm")
    fmt = memory_format(t.channels_last)
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lambda(total_steps, t.poly_power))
    dtype = amp_dtype(t.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    loss_fn = build_loss(cfg)

    start_epoch, start_step, global_step, best_miou, history = 0, 0, 0, -1.0, []
    if state is not None:
        try:
            unwrap(model).load_state_dict(state["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"{state.get('source', 'checkpoint')}: its weights "
                                  f"do not fit the model of this config ({str(exc).splitlines()[0]}); "
                                  f"resume with the checkpoint's own model settings") from None
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        start_epoch, start_step = state["epoch"], state["step_in_epoch"]
        global_step, best_miou = state["global_step"], state.get("best_miou", -1.0)
        history = list(state.get("history", []))
        if state.get("world_size", 1) == du.world_size():
            restore_rng(state["rng"])
        elif main:
            print(f"resuming with {du.world_size()} processes instead of {state.get('world_size', 1)}: "
                  f"weights, optimiser and schedule continue; the sample order of the new world size applies")
        if start_step >= steps_per_epoch:
            start_epoch, start_step = start_epoch + 1, 0

    net = model
    if du.is_distributed():
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if t.compile:
        net = torch.compile(net)

    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(log_dir=str(out / "tb"), purge_step=global_step or None)

    classes = {"names": list(getattr(train_set, "class_names", [])),
               "colors": [list(c) for c in getattr(train_set, "colors", [])]}

    def snapshot(epoch: int, step_in_epoch: int) -> dict[str, Any]:
        return {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
                "best_miou": best_miou, "history": history, "rng": capture_rng(),
                "config": config_to_dict(cfg), "classes": classes, "world_size": du.world_size()}

    epochs_run = 0
    epoch, step = start_epoch, start_step
    try:
        for epoch in range(start_epoch, t.epochs):
            model.train()
            sampler.set_epoch(epoch)
            epoch_set.set_epoch(epoch)
            first = start_step if epoch == start_epoch else 0
            sampler.set_start(first * t.batch_size)
            bar = tqdm(total=steps_per_epoch, initial=first, desc=f"epoch {epoch + 1}/{t.epochs}",
                       disable=not (progress and main), dynamic_ncols=True, leave=True)
            sums = {"total": 0.0, "g": 0.0, "z": 0.0, "s": 0.0}
            seen, tick = 0, time.perf_counter()
            step = first
            for x, y in loader:
                if step >= steps_per_epoch:
                    break
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                x = x.contiguous(memory_format=fmt)
                with autocast(dtype, device):
                    output = net(x, y)
                    terms = loss_fn(output, y)
                bad = {k: v.item() for k, v in terms.items() if not torch.isfinite(v)}
                if bad:
                    name, value = next(iter((k, v) for k, v in bad.items() if k != "total"), ("total", bad["total"]))
                    raise TrainingError(
                        f"non-finite loss at epoch {epoch + 1}, step {step + 1} (global step {global_step + 1}): "
                        f"term ℓ_{name} = {value}. Training stopped; the last good checkpoint "
                        f"{ckpt_dir / 'last.pt'} was left intact. Try a lower train.lr or train.grad_clip.")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(terms["total"]).backward()
                if t.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                global_step += 1
                step += 1
                seen += x.shape[0] * du.world_size()
                for k in sums:
                    sums[k] += terms[k].item()
                if main:
                    rate = seen / max(1e-9, time.perf_counter() - tick)
                    bar.set_postfix(loss=f"{terms['total'].item():.3f}", s=f"{terms['s'].item():.3f}",
                                    z=f"{terms['z'].item():.3f}", g=f"{terms['g'].item():.3f}",
                                    img_s=f"{rate:.1f}")
                    bar.update(1)
                    if writer is not None and global_step % max(1, t.log_every) == 0:
                        for k, v in terms.items():
                            writer.add_scalar(f"train/loss_{k}", v.item(), global_step)
                        writer.add_scalar("train/lr", scheduler.get_last_lr()[0], global_step)
                        writer.add_scalar("train/images_per_s", rate, global_step)
            bar.close()
            du.broadcast_buffers(model)
            n_steps = max(1, step - first)
            record: dict[str, Any] = {"epoch": epoch + 1, **{f"loss_{k}": v / n_steps for k, v in sums.items()},
                                      "images_per_s": seen / max(1e-9, time.perf_counter() - tick)}
            last_epoch = epoch + 1 == t.epochs
            if val_loader is not None and ((epoch + 1) % t.val_every == 0 or last_epoch):
                from .evaluate import evaluate_model
                result = evaluate_model(unwrap(model), val_loader, cfg, device, trimap=False,
                                        report_samples=0, progress=progress)
                record["val_miou"] = result.metrics["miou"]
                record["val_pixel_accuracy"] = result.metrics["pixel_accuracy"]
                clustering = result.metrics.get("clustering") or {}
                if writer is not None:
                    writer.add_scalar("val/miou", result.metrics["miou"], global_step)
                    writer.add_scalar("val/pixel_accuracy", result.metrics["pixel_accuracy"], global_step)
                    for k, v in clustering.items():
                        if isinstance(v, (int, float)) and math.isfinite(v):
                            writer.add_scalar(f"val/clustering_{k}", v, global_step)
                record.update({f"val_{k}": v for k, v in clustering.items() if isinstance(v, (int, float))})
                if main:
                    print(f"epoch {epoch + 1}: val mIoU {100 * result.metrics['miou']:.2f} "
                          f"(pixel acc. {100 * result.metrics['pixel_accuracy']:.2f})", flush=True)
            history.append(record)
            if main:
                if "val_miou" in record and record["val_miou"] > best_miou:
                    best_miou = record["val_miou"]
                    save_checkpoint(ckpt_dir / "best.pt", snapshot(epoch + 1, 0))
                save_checkpoint(ckpt_dir / "last.pt", snapshot(epoch + 1, 0))
            du.barrier()
            epochs_run += 1
            if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
                break
    except KeyboardInterrupt:
        path = ckpt_dir / "last.pt"
        if main:
            save_checkpoint(path, snapshot(epoch, step))
            print(f"\ninterrupted: saved the position (epoch {epoch + 1}, step {step}) to {path}; "
                  f"continue with --resume {path}", flush=True)
        raise TrainingInterrupted(path) from None
    finally:
        if writer is not None:
            writer.close()

    if main and not (ckpt_dir / "best.pt").exists() and (ckpt_dir / "last.pt").exists():
        # no validation ran: the last weights are the best we know of
        save_checkpoint(ckpt_dir / "best.pt", load_checkpoint(ckpt_dir / "last.pt"))
    return {"output_dir": str(out), "last": str(ckpt_dir / "last.pt"), "best": str(ckpt_dir / "best.pt"),
            "best_miou": best_miou, "history": history, "global_step": global_step, "model": unwrap(model)}


def config_of_checkpoint(state: dict[str, Any], path: str | Path) -> Config:
    """The config a loaded checkpoint was trained with (for ``--resume`` without ``--config``)."""
    return config_from_dict(state["config"], f"{path} (config)")
