"""Evaluation (SPEC §5): one pass over a split → metrics.json + report.md.

All counts (confusion matrix, trimap, Boundary IoU) are accumulated over the whole split and summed
across processes; clustering points (one μ_z^k per image and component) are gathered from every
process before the scikit-learn indices are computed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import Config, config_from_dict
from . import distributed as du
from .checkpoint import inference_model, load_checkpoint, unwrap
from .precision import amp_dtype, autocast, memory_format

__all__ = ["EvalResult", "evaluate_model", "evaluate_checkpoint", "write_evaluation"]


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    z_points: np.ndarray | None = None   # (images·K)×L component means
    z_labels: np.ndarray | None = None   # component index k of each point


@torch.no_grad()
def evaluate_model(model: nn.Module, loader, cfg: Config, device: torch.device, trimap: bool = True,
                   boundary: bool | None = None, clustering: bool | None = None, report_samples: int | None = None,
                   progress: bool = True) -> EvalResult:
    """Score ``model`` on ``loader``'s split (every process must call it; all get the result)."""
    from ..metrics import SegmentationEvaluator

    model = unwrap(model)
    was_training = model.training
    model.eval()
    dataset = loader.dataset
    names = list(getattr(dataset, "class_names", [str(i) for i in range(cfg.model.num_classes)]))
    widths = range(1, cfg.eval.trimap_max_width + 1) if trimap else None
    evaluator = SegmentationEvaluator(cfg.model.num_classes, names, ignore_index=255,
                                      trimap_widths=widths, boundary=trimap if boundary is None else boundary)
    want_z = (cfg.eval.clustering if clustering is None else clustering) and hasattr(model, "infer")
    n_samples = cfg.eval.report_samples if report_samples is None else report_samples
    dtype = amp_dtype(cfg.train.amp, device)
    fmt = memory_format(cfg.train.channels_last)
    model.to(memory_format=fmt)
    z_points: list[torch.Tensor] = []
    preds_kept: list[np.ndarray] = []
    seen = 0
    tick = time.perf_counter()
    bar = tqdm(total=len(loader), desc="evaluate", disable=not (progress and du.is_main()), dynamic_ncols=True)
    for x, y in loader:
        x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        with autocast(dtype, device):
            if want_z:
                out = model.infer(x)
                logits = out.logits
                z_points.append(out.q_z.component_distribution.base_dist.loc.float().cpu())
            else:
                logits = model(x)
        pred = logits.argmax(1).cpu()
        evaluator.update(pred, y)
        if du.is_main() and len(preds_kept) < n_samples:
            preds_kept += [p.numpy().astype(np.uint8) for p in pred[: n_samples - len(preds_kept)]]
        seen += x.shape[0]
        bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - tick

    if du.is_distributed():
        state = evaluator.state_tensor().to(device)
        du.all_reduce_sum(state)
        evaluator.load_state_tensor(state.cpu())
        counts = du.all_reduce_sum(torch.tensor([seen], device=device, dtype=torch.float64))
        seen = int(counts.item())
    metrics = evaluator.compute()
    metrics["images_per_s"] = seen / max(1e-9, elapsed) * 1.0
    result = EvalResult(metrics=metrics)

    if want_z and z_points:
        pts = torch.cat(z_points)                                   # images×K×L
        pts = du.all_gather_tensors(pts.to(device)).cpu()
        n_img, k, l = pts.shape
        result.z_points = pts.reshape(n_img * k, l).numpy()
        result.z_labels = np.tile(np.arange(k), n_img)
        if k > 1:
            from ..metrics import clustering_indices
            metrics["clustering"] = clustering_indices(result.z_points, result.z_labels)
    if du.is_main() and preds_kept:
        for i, pred in enumerate(preds_kept):
            rgb, gt = dataset.load_raw(loader.sampler.indices[i] if hasattr(loader.sampler, "indices") else i)
            result.samples.append((rgb, gt, pred))
    model.train(was_training)
    return result


def write_evaluation(result: EvalResult, out_dir: str | Path, class_names, colors, cfg: Config,
                     title: str = "phgmm evaluation", extra: dict | None = None) -> Path:
    """metrics.json, report.md and the figures (t-SNE of z when there are points)."""
    from ..io import write_json
    from ..report import write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {**result.metrics, **(extra or {})}
    tsne = None
    if cfg.eval.tsne and result.z_points is not None and len(np.unique(result.z_labels)) > 1:
        from ..metrics import tsne_embedding
        pts, labs = result.z_points, result.z_labels
        if len(pts) > 3000:   # t-SNE is quadratic; a fixed random subset keeps the report quick
            keep = np.random.default_rng(0).choice(len(pts), 3000, replace=False)
            pts, labs = pts[keep], labs[keep]
        tsne = (tsne_embedding(pts, seed=cfg.seed), labs)
    write_json(out_dir / "metrics.json", metrics)
    return write_report(out_dir, metrics, class_names, colors, samples=result.samples or None,
                        tsne=tsne, title=title)


def evaluate_checkpoint(checkpoint: str | Path, out_dir: str | Path, overrides: list[str] | None = None,
                        config_path: str | Path | None = None, split: str | None = None,
                        progress: bool = True) -> dict[str, Any]:
    """Evaluate a checkpoint on its validation split (or ``split``) and write the report."""
    from ..config import apply_overrides, load_config
    from .builders import build_dataset_from_config
    from .loaders import make_eval_loader

    state = load_checkpoint(checkpoint, map_location="cpu")
    cfg = load_config(config_path) if config_path else config_from_dict(state["config"], f"{checkpoint} (config)")
    apply_overrides(cfg, overrides or [])
    device = du.init(cfg.device)
    model = inference_model(state, cfg, checkpoint).to(device)
    dataset = build_dataset_from_config(cfg, split or cfg.data.val_split, train=False)
    loader = make_eval_loader(dataset, cfg.eval.batch_size, cfg.data.num_workers, cfg.data.pin_memory)
    result = evaluate_model(model, loader, cfg, device, progress=progress)
    if du.is_main():
        extra = {"checkpoint": str(checkpoint), "split": split or cfg.data.val_split,
                 "epoch": state.get("epoch"), "model": cfg.model.name, "backbone": cfg.model.backbone}
        report = write_evaluation(result, out_dir, dataset.class_names, dataset.colors, cfg,
                                  title=f"phgmm evaluation — {cfg.model.name} ({cfg.model.backbone})", extra=extra)
        result.metrics["report"] = str(report)
    return result.metrics
