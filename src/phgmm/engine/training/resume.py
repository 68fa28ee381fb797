"""A run that starts from a checkpoint: what ``--resume`` may change (:data:`RESUME_FIXED`,
:func:`check_resume_config`), the run folder and config of a checkpoint's run
(:func:`config_of_checkpoint`), the best weights carried into another run folder
(:func:`carry_best`), and the note of a fine-tuning run (``model.init_from``) whose decoder width
left tensors fresh (:func:`decoder_width_note`)."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from ...config import Config, config_from_dict
from ...io import AtomicFile
from ..builders import build_model_from_config
from ..checkpoint import CheckpointError, config_differences, load_checkpoint
from ..datachecks import find_relative_data_root
from .state import TrainingState

__all__ = ["RESUME_FIXED", "check_resume_config", "config_of_checkpoint", "carry_best", "decoder_width_note"]


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


def carry_best(position: TrainingState, state: dict[str, Any], ckpt_dir: Path, main: bool = True) -> None:
    """Resumed into another run folder: its best.pt must hold the weights of the best mIoU the
    position records. The source run's best.pt is copied when it records that mIoU; without
    it the recorded best is dropped, so that this folder's next validation writes its own.
    ``main``: this is the process that writes and prints (the others only drop the recorded best)."""
    s, best = position, ckpt_dir / "best.pt"
    if s.best_miou < 0 or best.exists():
        return
    theirs = Path(state["source"]).parent / "best.pt" if state.get("source") else None
    recorded = None
    if theirs is not None and theirs.is_file():
        with contextlib.suppress(CheckpointError):
            recorded = load_checkpoint(theirs).get("best_miou")
    if recorded is not None and math.isclose(recorded, s.best_miou):
        if main:
            _copy_atomically(theirs, best)
            print(f"copied {theirs} (val mIoU {100 * recorded:.2f}) to {best}: the best weights so far", flush=True)
        return
    if main:
        print(
            f"no best.pt with the recorded best val mIoU {100 * s.best_miou:.2f} beside "
            f"{state.get('source', 'the checkpoint')}: {best} will hold the best of this run's validations",
            flush=True,
        )
    s.best_miou = -1.0


def _copy_atomically(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of ``src``; a reader never sees half of it."""
    import shutil

    with AtomicFile(dst) as tmp:
        shutil.copyfile(src, tmp)


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
