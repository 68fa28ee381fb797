"""Run an experiment: train and evaluate every run, skip finished ones, resume unfinished ones.

A run is finished when ``results_dir/<name>/metrics.json`` exists. Those small files (metrics,
history, timing, config) are what the report reads, so an experiment committed half-way continues
on another machine: finished runs are skipped, and a run whose checkpoint ``last.pt`` survives in
``output_dir/<name>`` resumes from it.
"""

from __future__ import annotations

import platform
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import save_config
from ..io import read_json, write_json
from ..version import __version__
from .plan import Experiment, RunSpec, settings_differences

__all__ = ["run_experiment", "run_one", "machine_info", "measure_inference"]


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured: package versions, CPU/GPU, threads."""
    info = {
        "phgmm": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": __import__("os").cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


@torch.no_grad()
def measure_inference(model: torch.nn.Module, loader, device: torch.device, repeats: int = 5) -> dict[str, float]:
    """Median seconds per image of the eval-mode forward on the first validation batch
    (one warm-up call, then ``repeats`` timed calls)."""
    model.eval()
    x, _ = next(iter(loader))
    x = x.to(device)
    per_image = []
    for i in range(repeats + 1):
        tick = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:  # the first call warms up the allocator and kernels
            per_image.append((time.perf_counter() - tick) / x.shape[0])
    return {"inference_seconds_per_image": statistics.median(per_image), "inference_batch": int(x.shape[0])}


def _timing(history: list[dict[str, Any]], samples_per_epoch: int) -> dict[str, float]:
    seconds = [h["epoch_seconds"] for h in history if "epoch_seconds" in h]
    if not seconds:
        return {}
    per_epoch = statistics.median(seconds)
    return {
        "train_seconds_per_epoch": per_epoch,
        "train_seconds_per_image": per_epoch / max(1, samples_per_epoch),
        "train_seconds_total": sum(seconds),
    }


def run_one(exp: Experiment, run: RunSpec, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, evaluate and record one run; returns its metrics (from the results when finished)."""
    from ..engine import distributed as du
    from ..engine.builders import build_dataset_from_config
    from ..engine.checkpoint import load_checkpoint, load_inference_model
    from ..engine.evaluation.evaluate import evaluate_model
    from ..engine.loaders import make_eval_loader
    from ..engine.training.trainer import train

    done = exp.results_dir / run.name
    if (done / "metrics.json").is_file():
        log(f"[{run.name}] finished earlier: {done / 'metrics.json'}{_edited_note(exp, run, done)}")
        return read_json(done / "metrics.json")
    cfg = exp.config(run)
    out = Path(cfg.output_dir)
    last = out / "checkpoints" / "last.pt"
    resume = last if last.is_file() else None
    log(
        f"[{run.name}] {'resuming from ' + str(last) if resume else 'training'} "
        f"({' '.join(run.overrides) or 'base config'})"
    )
    summary = train(cfg, resume=resume, overwrite=resume is None, progress=progress)
    if not du.is_main():
        return {}
    # score the best weights on the validation split with the full metrics (trimap, boundary)
    state = load_checkpoint(summary["best"])
    device = du.init(cfg.device)
    model = load_inference_model(summary["best"], state=state, cfg=cfg, keep_postnet=True).to(device)
    val = build_dataset_from_config(cfg, cfg.data.val_split, train=False)
    loader = make_eval_loader(val, cfg.eval.batch_size, cfg.data.num_workers, cfg.data.pin_memory)
    result = evaluate_model(model, loader, cfg, device, report_samples=0, progress=progress)
    history = summary["history"]
    n_train = len(build_dataset_from_config(cfg, cfg.data.train_split, train=False))
    timing = {**_timing(history, cfg.data.samples_per_epoch or n_train), **measure_inference(model, loader, device)}
    params = model.parameter_counts() if hasattr(model, "parameter_counts") else {}
    metrics = {
        **result.metrics,
        "run": run.name,
        "group": run.group,
        "model": cfg.model.name,
        "backbone": cfg.model.backbone,
        "overrides": run.overrides,
        "best_epoch": state.get("epoch"),
        "timing": timing,
        "parameters": params.get("inference_total"),
    }
    done.mkdir(parents=True, exist_ok=True)
    save_config(cfg, done / "config.yaml")
    write_json(done / "history.json", history)
    if result.z_points is not None and cfg.eval.tsne:
        _save_tsne(result, done / "tsne.png", cfg.seed)
    write_json(done / "metrics.json", metrics)  # last: its presence marks the run finished
    log(f"[{run.name}] val mIoU {100 * metrics['miou']:.2f} → {done}")
    return metrics


def _edited_note(exp: Experiment, run: RunSpec, done: Path) -> str:
    """A finished run whose settings the experiment file no longer gives: it is kept as it ran
    (its results stay true to its config.yaml), and this says so and how to run it again."""
    import yaml

    path = done / "config.yaml"
    if not path.is_file():
        return ""
    diffs = settings_differences(yaml.safe_load(path.read_text()) or {}, [*exp.overrides, *run.overrides])
    if not diffs:
        return ""
    return (
        f"; it ran with other settings than the file now gives ({'; '.join(diffs)}): kept as it ran, and "
        f"results.md reports what it ran with. To run it with the file's settings, remove {done}"
    )


def _save_tsne(result, path: Path, seed: int) -> None:
    import numpy as np

    from ..metrics import tsne_embedding
    from ..report import tsne_figure

    pts, labs = result.z_points, result.z_labels
    if len(pts) > 2000:
        keep = np.random.default_rng(0).choice(len(pts), 2000, replace=False)
        pts, labs = pts[keep], labs[keep]
    tsne_figure(path, tsne_embedding(pts, seed=seed), labs)


def _shipped_name(path: Path) -> str:
    """``experiments/compare_camvid`` for a shipped file (what ``--config`` takes), else the path."""
    from ..configs import CONFIG_DIR

    try:
        return Path(path).resolve().relative_to(CONFIG_DIR).with_suffix("").as_posix()
    except ValueError:
        return str(path)


def run_experiment(
    exp: Experiment,
    only: str | list[str] | None = None,
    progress: bool = True,
    report: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Run (or continue) the selected runs in order, then rebuild the report from what finished."""
    exp.results_dir.mkdir(parents=True, exist_ok=True)
    info_path = exp.results_dir / "experiment.json"
    info = read_json(info_path) if info_path.is_file() else {}
    info.update(
        {
            "kind": exp.kind,
            "title": exp.title,
            "source": _shipped_name(exp.source),
            "base": _shipped_name(exp.base),
            "set": exp.overrides,
            "runs": [{"name": r.name, "set": r.overrides, "group": r.group} for r in exp.runs],
        }
    )
    machines = info.setdefault("machines", [])
    from ..threads import thread_budget

    first = exp.config(exp.select(only)[0])
    with thread_budget(first.threads, first.data.num_workers):  # the threads the runs will use
        here = machine_info()
    if here not in machines:
        machines.append(here)
    write_json(info_path, info)
    shutil.copyfile(exp.source, exp.results_dir / "experiment.yaml")
    results = {}
    for run in exp.select(only):
        results[run.name] = run_one(exp, run, progress=progress, log=log)
    if report:
        from .report import write_experiment_report

        path = write_experiment_report(exp.results_dir)
        log(f"report: {path}")
    return results
