"""Evaluation (docs/design.md §5): one pass over a split → metrics.json + report.md.

All counts (confusion matrix, trimap, Boundary IoU) are accumulated over the whole split and summed
across processes; clustering points (one μ_z^k per image and component) are gathered from every
process before the scikit-learn indices are computed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ...config import Config, config_from_dict
from ...conventions import IGNORE_INDEX
from ...models.contracts import LatentNetwork
from ...models.fold import fold_batchnorm
from .. import distributed as du
from ..builders import miou_exclusion
from ..checkpoint import load_checkpoint, load_inference_model, unwrap
from ..precision import amp_dtype, autocast, memory_format
from .latent_probe import LatentOptions, LatentProbe
from .probes import ClusteringProbe, UncertaintyProbe
from .result import EvalResult

__all__ = ["evaluate_model", "evaluate_checkpoint", "write_evaluation"]


def _base_dataset(dataset):
    """The data set under the loaders' wrappers (skipping bad samples, epochs)."""
    while hasattr(dataset, "base"):
        dataset = dataset.base
    return dataset


def _forward(model: nn.Module, x: torch.Tensor, cfg: Config):
    """``(enc, logits)`` of a batch: PHGMM decodes the means of its own codes (``enc`` is kept for
    the latent probes); with slide / flip / scales, the logits are what ``phgmm predict`` computes."""
    e = cfg.eval
    enc = model.encode(x) if isinstance(model, LatentNetwork) else None
    if e.mode != "whole" or e.flip or tuple(e.scales) != (1.0,):
        from ..inference.tiling import infer_logits

        return enc, infer_logits(
            model, x, mode=e.mode, tile=e.tile or tuple(cfg.data.size), stride=e.stride, flip=e.flip, scales=e.scales
        )
    return enc, (model.decode(enc) if enc is not None else model(x))


def _reduce(evaluator, seen: int, device: torch.device) -> int:
    """Sum the evaluator's counts (and the image count) over processes; returns the image count."""
    if not du.is_distributed():
        return seen
    state = evaluator.state_tensor().to(device)
    du.all_reduce_sum(state)
    evaluator.load_state_tensor(state.cpu())
    return int(du.all_reduce_sum(torch.tensor([seen], device=device, dtype=torch.float64)).item())


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    loader,
    cfg: Config,
    device: torch.device,
    trimap: bool = True,
    boundary: bool | None = None,
    clustering: bool | None = None,
    report_samples: int | None = None,
    progress: bool = True,
    latent: bool | None = None,
    uncertainty: bool | None = None,
    latent_level: str = "full",
) -> EvalResult:
    """Score ``model`` on ``loader``'s split (every process must call it; all get the result).

    PHGMM is always decoded from the means of z and g (docs/design.md §5), whatever its
    ``sample_latent`` says. ``latent`` (default ``eval.latent``) adds the latent-use measures
    (:mod:`phgmm.engine.evaluation.latent_probe`; a second pass over the split) under ``metrics["latent"]``,
    all of them at ``latent_level`` "full", the light set of validation at "light"; ``uncertainty`` (default
    ``eval.uncertainty``) adds ``metrics["uncertainty"]``: AUROC / AUPR of each uncertainty map
    for telling wrong pixels from right ones, and the calibration (ECE) of the softmax.
    """
    from ...metrics import SegmentationEvaluator

    model = unwrap(model)
    was_training = model.training
    model.eval()
    e, n_classes = cfg.eval, cfg.model.num_classes
    names = list(getattr(loader.dataset, "class_names", [str(i) for i in range(n_classes)]))
    excluded = miou_exclusion(cfg, _base_dataset(loader.dataset))
    evaluator = SegmentationEvaluator(
        n_classes,
        names,
        ignore_index=IGNORE_INDEX,
        exclude_from_mean=excluded,
        trimap_widths=range(1, e.trimap_max_width + 1) if trimap else None,
        boundary=trimap if boundary is None else boundary,
    )
    cluster, probe, unc = _probes(model, cfg, device, excluded, clustering, latent, uncertainty, latent_level)
    n_samples = e.report_samples if report_samples is None else report_samples
    seen, elapsed, preds_kept = _score_pass(
        model, loader, cfg, device, evaluator, [p for p in (cluster, probe, unc) if p is not None], n_samples, progress
    )

    seen = _reduce(evaluator, seen, device)
    result = EvalResult(
        metrics={
            **evaluator.compute(),
            "miou_excluded": [names[i] for i in excluded],
            "images_per_s": seen / max(1e-9, elapsed),
        }
    )
    if cluster is not None:
        cluster.compute(result, device)
    if probe is not None:  # a second pass: the swaps need every image's codes first
        result.metrics.update(probe.finish(model, loader, cfg, result.metrics["miou"], e.active_threshold, progress))
    if unc is not None:
        result.metrics["uncertainty"] = unc.compute(device)
    if du.is_main():
        result.samples += _samples(loader, preds_kept)
    model.train(was_training)
    return result


def _probes(
    model: nn.Module,
    cfg: Config,
    device: torch.device,
    excluded,
    clustering: bool | None,
    latent: bool | None,
    uncertainty: bool | None,
    latent_level: str,
):
    """The clustering, latent-use and uncertainty probes asked for (each None when not, or when
    the model has no latent space for it); ``None`` arguments take the ``eval`` section's value."""
    e, n_classes = cfg.eval, cfg.model.num_classes
    latent_spaces = isinstance(model, LatentNetwork)
    has_z = latent_spaces and model.local_space is not None
    cluster = ClusteringProbe() if (e.clustering if clustering is None else clustering) and has_z else None
    probe = (
        LatentProbe(model, n_classes, device, LatentOptions.from_config(e, latent_level), excluded)
        if latent_spaces and (e.latent if latent is None else latent)
        else None
    )
    unc = (
        UncertaintyProbe(n_classes, e.uncertainty_samples if has_z else 0)
        if (e.uncertainty if uncertainty is None else uncertainty)
        else None
    )
    return cluster, probe, unc


def _score_pass(
    model: nn.Module, loader, cfg: Config, device: torch.device, evaluator, probes: list, n_samples: int, progress: bool
) -> tuple[int, float, list[np.ndarray]]:
    """One pass over the split: the evaluator's counts and the probes' updates; returns the image
    count, the seconds it took and the first ``n_samples`` predictions (main process only)."""
    dtype, fmt = amp_dtype(cfg.train.amp, device), memory_format(cfg.train.channels_last)
    model.to(memory_format=fmt)
    preds_kept: list[np.ndarray] = []
    seen, tick = 0, time.perf_counter()
    for x, y in tqdm(loader, desc="evaluate", disable=not (progress and du.is_main()), dynamic_ncols=True):
        x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        with autocast(dtype, device):
            enc, logits = _forward(model, x, cfg)
            pred = logits.argmax(1).cpu()
            for p in probes:
                p.update(model, x, y, enc, logits, pred)
        evaluator.update(pred, y)
        if du.is_main() and len(preds_kept) < n_samples:
            preds_kept += [p.numpy().astype(np.uint8) for p in pred[: n_samples - len(preds_kept)]]
        seen += x.shape[0]
    return seen, time.perf_counter() - tick, preds_kept


def _samples(loader, preds_kept: list[np.ndarray]) -> list[tuple]:
    """The report's sample rows: each kept prediction beside its image and label as read from disk."""
    rows = []
    for i, pred in enumerate(preds_kept):
        index = loader.sampler.indices[i] if hasattr(loader.sampler, "indices") else i
        rows.append((*loader.dataset.load_raw(index), pred))
    return rows


def write_evaluation(
    result: EvalResult,
    out_dir: str | Path,
    class_names,
    colors,
    cfg: Config,
    title: str = "phgmm evaluation",
    extra: dict | None = None,
) -> Path:
    """metrics.json, report.md and the figures (t-SNE of z when there are points)."""
    from ...io import write_json
    from ...report import write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {**result.metrics, **(extra or {})}
    tsne = None
    if cfg.eval.tsne and result.z_points is not None and len(np.unique(result.z_labels)) > 1:
        from ...metrics import tsne_embedding

        pts, labs = result.z_points, result.z_labels
        if len(pts) > 3000:  # t-SNE is quadratic; a fixed random subset keeps the report quick
            keep = np.random.default_rng(0).choice(len(pts), 3000, replace=False)
            pts, labs = pts[keep], labs[keep]
        tsne = (tsne_embedding(pts, seed=cfg.seed), labs)
    write_json(out_dir / "metrics.json", metrics)
    return write_report(out_dir, metrics, class_names, colors, samples=result.samples or None, tsne=tsne, title=title)


def evaluate_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    overrides: list[str] | None = None,
    config_path: str | Path | None = None,
    split: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint on its validation split (or ``split``) and write the report."""
    from ...config import apply_overrides, load_config
    from ...threads import thread_budget
    from ..datachecks import find_relative_data_paths

    state = load_checkpoint(checkpoint, map_location="cpu")
    if config_path:
        cfg, source = load_config(config_path), f"--config {config_path}"
    else:
        cfg, source = config_from_dict(state["config"], f"{checkpoint} (config)"), f"the config saved in {checkpoint}"
        find_relative_data_paths(cfg, checkpoint)  # evaluated from another folder than training ran in
    apply_overrides(cfg, overrides or [])
    check_data_paths(cfg, source, overrides or [])
    # PyTorch threads beside the loader workers, not on top of them (phgmm.threads); restored after
    with thread_budget(cfg.threads, cfg.data.num_workers):
        return _evaluate_read_checkpoint(state, cfg, checkpoint, out_dir, split, progress)


def check_data_paths(cfg: Config, source: str, overrides: list[str] = ()) -> None:
    """Refuse a data path of ``cfg`` that is not there, naming the key, where its value came from
    (the checkpoint's saved config, --config or --set) and how to point it elsewhere."""
    from ...data import DatasetError
    from ...data.classes import BUILTIN_TABLES

    for key in ("root", "masks_root", "class_table"):
        value = getattr(cfg.data, key)
        if value is None or (key == "class_table" and value in BUILTIN_TABLES):
            continue
        if not Path(value).expanduser().exists():
            given = any(o.split("=", 1)[0].strip() == f"data.{key}" for o in overrides)
            origin = "given with --set" if given else f"from {source}"
            raise DatasetError(
                f"{value}: data.{key} does not exist ({origin}); run from the folder the training "
                f"ran in, or point it elsewhere: --set data.{key}=PATH"
            )


def training_images_note(state: dict[str, Any], cfg: Config, dataset, split: str) -> tuple[int, str]:
    """How many of the images about to be scored the checkpoint was trained on, and a line saying
    so (a folder data set without split sub-folders gives the same files for every split)."""
    from ...data import DatasetError
    from ..builders import build_dataset_from_config

    try:
        trained = config_from_dict(state["config"], "checkpoint config")
        if split == trained.data.train_split:
            return 0, ""  # asked for: scoring the training split is a choice, not an accident
        train_set = build_dataset_from_config(trained, trained.data.train_split, train=False)
    except (DatasetError, ValueError, OSError, KeyError):
        return 0, ""  # the training data is not here: nothing to compare with
    seen = {Path(a).resolve() for a, _ in train_set.files}
    shared = sum(Path(a).resolve() in seen for a, _ in dataset.files)
    if not shared:
        return 0, ""
    return shared, (
        f"note: {shared} of the {len(dataset.files)} images of split '{split}' are images this checkpoint was "
        f"trained on (data.root {trained.data.root} has no '{split}' sub-folder): these scores measure how well "
        f"it fits them, not how it does on new images"
    )


def _evaluate_read_checkpoint(
    state: dict[str, Any], cfg: Config, checkpoint: str | Path, out_dir: str | Path, split: str | None, progress: bool
) -> dict[str, Any]:
    """:func:`evaluate_checkpoint` once the checkpoint is read and the config resolved."""
    from ..builders import build_dataset_from_config
    from ..loaders import make_eval_loader

    device = du.init(cfg.device)
    # PostNet's weights, when the checkpoint has them, let the latent measures report z's KL
    model = load_inference_model(checkpoint, state=state, cfg=cfg, keep_postnet=cfg.eval.latent)
    # Folded as phgmm predict folds it, so that what is scored is what is predicted.
    model = fold_batchnorm(model).to(device)
    dataset = build_dataset_from_config(cfg, split or cfg.data.val_split, train=False)
    shared, note = training_images_note(state, cfg, dataset, split or cfg.data.val_split) if du.is_main() else (0, "")
    if note:
        print(note, flush=True)
    if cfg.data.unknown_ids == "ignore" and du.is_main():
        from ..datachecks import unknown_ids_note

        line = unknown_ids_note([dataset])
        if line:
            print(line, flush=True)
    loader = make_eval_loader(
        dataset,
        cfg.eval.batch_size,
        cfg.data.num_workers,
        cfg.data.pin_memory,
        skip_bad=cfg.data.max_bad_fraction if cfg.data.skip_bad_samples else None,
    )
    result = evaluate_model(model, loader, cfg, device, progress=progress)
    skipped = getattr(loader, "skipped", [])
    if skipped:
        result.metrics["skipped_samples"] = skipped
        if du.is_main():
            print(f"skipped {len(skipped)} unreadable samples (--skip-bad-samples); they are not scored")
    if du.is_main():
        extra = {
            "checkpoint": str(checkpoint),
            "split": split or cfg.data.val_split,
            **({"training_images_scored": shared} if shared else {}),
            "epoch": state.get("epoch"),
            "model": cfg.model.name,
            "backbone": cfg.model.backbone,
        }
        report = write_evaluation(
            result,
            out_dir,
            dataset.class_names,
            dataset.colors,
            cfg,
            title=f"phgmm evaluation — {cfg.model.name} ({cfg.model.backbone})",
            extra=extra,
        )
        result.metrics["report"] = str(report)
    return result.metrics
