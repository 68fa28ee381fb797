"""Speed, memory and size of PHGMM and the baselines, measured in one run (SPEC §5, Fig. 10).

:func:`run_benchmark` builds every requested network on the same backbone and, on the same random
inputs, measures

* training throughput — images/s of a full step: forward, loss, backward, optimiser step (AdamW).
  PHGMM uses :class:`phgmm.losses.PHGMMLoss` (labels go to PostNet); the baselines use
  cross-entropy;
* inference throughput — eval mode under ``torch.no_grad`` (PHGMM's eval forward: no PostNet);
* peak memory — on CUDA ``torch.cuda.max_memory_allocated`` per phase; on CPU the growth of the
  process's resident-set high-water mark (``getrusage`` ``ru_maxrss``) during the phase, labelled
  ``cpu_rss_highwater_delta``: it only grows when a phase exceeds every earlier one, so it is a
  lower bound for later models, not their footprint;
* parameter counts (PHGMM: :meth:`PHGMM.parameter_counts`);
* FLOPs (``torch.utils.flop_counter.FlopCounterMode``) and model FLOPs utilisation on CUDA:
  achieved FLOP/s ÷ the device's peak (table :data:`PEAK_FLOPS`, or ``peak_flops=``);

and these ratios, all from the same run:

* ``phgmm_infer_over_encoder`` — PHGMM inference time ÷ its bare encoder's forward time;
* ``phgmm_infer_flops_over_encoder`` — the same in FLOPs (counted on every device): the time
  ratio's floor unless PHGMM's layers run faster per FLOP than the encoder's;
* ``phgmm_infer_over_deeplabv3`` — PHGMM inference time ÷ DeepLab v3 inference time;
* ``train_full_postnet_over_none`` — PHGMM training step with the full PostNet ÷ without PostNet;
* ``train_light_postnet_over_none`` — the same with the light PostNet.

Every time is the median over ``iters`` timed iterations (``infer_iters`` for inference) after
``warmup`` untimed ones (at least one; peak memory is taken over those), with
``torch.cuda.synchronize`` around each on CUDA; the functions compared in a ratio are timed round-robin so that a drift of the machine's speed hits
them alike. Optionally the throughput of a data loader is
measured too, so that a report can check "loader images/s ≥ 2× training images/s".
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .io import parse_wxh
from .models import MODEL_NAMES, build_model
from .models.phgmm import PHGMM
from .models.postnet import PostNet

__all__ = ["run_benchmark", "format_table", "register_cli", "PEAK_FLOPS", "RATIO_KEYS",
           "measure_loader", "device_peak_flops"]

#: Dense tensor-core peak FLOP/s per GPU name fragment: bf16 (used with ``amp="bf16"``) and
#: tf32 (used for fp32 runs, since cuDNN convolutions use TF32 by default).
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989e12, "tf32": 494.5e12},
    "H100": {"bf16": 989e12, "tf32": 494.5e12},
    "A100": {"bf16": 312e12, "tf32": 156e12},
}

RATIO_KEYS = ("phgmm_infer_over_encoder", "phgmm_infer_flops_over_encoder",
              "phgmm_infer_over_deeplabv3", "train_full_postnet_over_none",
              "train_light_postnet_over_none")

_IGNORE = 255


# -- helpers -------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_interleaved(fns: dict[str, Callable[[], Any]], device: torch.device, iters: int) -> dict[str, float]:
    """Median seconds of each function, timed round-robin (A B C A B C …) so that a slow drift of
    the machine (other processes, clocks) affects every function alike — used for the ratios."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    _sync(device)
    for _ in range(max(1, iters)):
        for key, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


class _PeakMemory:
    """Peak memory of a phase: CUDA max allocated, or CPU RSS high-water-mark growth."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_rss_highwater_delta"
        self.value = 0

    def __enter__(self) -> "_PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._start = _maxrss_bytes()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self.value = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self.value = _maxrss_bytes() - self._start


def device_peak_flops(device: torch.device, amp: str | None) -> float | None:
    """The device's dense peak FLOP/s from :data:`PEAK_FLOPS`, or None when unknown (or CPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device).upper()
    for key, peaks in PEAK_FLOPS.items():
        if key in name:
            return peaks["bf16" if amp == "bf16" else "tf32"]
    return None


def _count_flops(fn: Callable[[], Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def _batch_images(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        for key in ("image", "images", "x"):
            if key in batch:
                return _batch_images(batch[key])
        return _batch_images(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_images(batch[0])
    raise TypeError(f"cannot tell the batch size of a {type(batch).__name__}")


def measure_loader(loader: Any, batch_size: int = 2, workers: int = 2, batches: int = 20) -> dict[str, float]:
    """Images/s of a data loader (a ``DataLoader``/iterable of batches, or a ``Dataset``).

    A dataset is wrapped in a shuffling ``DataLoader`` with ``workers`` workers. The first batch
    (worker start-up) is not timed; then up to ``batches`` batches are.
    """
    if isinstance(loader, torch.utils.data.Dataset) and not isinstance(loader, torch.utils.data.IterableDataset):
        loader = torch.utils.data.DataLoader(loader, batch_size=batch_size, shuffle=True, num_workers=workers,
                                             drop_last=False, persistent_workers=False)
    else:
        workers = getattr(loader, "num_workers", workers)
    it = iter(loader)
    try:
        next(it)
    except StopIteration:
        raise ValueError("the loader yields no batches") from None
    n_images, n_batches = 0, 0
    t0 = time.perf_counter()
    for batch in it:
        n_images += _batch_images(batch)
        n_batches += 1
        if n_batches >= batches:
            break
    dt = time.perf_counter() - t0
    if n_batches == 0:
        raise ValueError("the loader needs at least two batches to be timed")
    return {"images_per_s": n_images / dt, "batches": n_batches, "images": n_images, "workers": workers}


# -- the benchmark -------------------------------------------------------------------------------
def run_benchmark(models: Sequence[str] = MODEL_NAMES, backbone: str = "resnet101",
                  size: Sequence[int] = (384, 768), batch: int = 1, train_batch: int = 2, warmup: int = 1,
                  iters: int = 3, infer_iters: int | None = None, device: str | torch.device = "cpu",
                  amp: str | None = None,
                  channels_last: bool = True, num_classes: int = 12, loader: Any = None,
                  loader_workers: int = 2, loader_batches: int = 20, peak_flops: float | None = None,
                  count_flops: bool | None = None, model_kwargs: dict[str, dict[str, Any]] | None = None,
                  seed: int = 0, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure training and inference speed, memory and size of PHGMM and baselines in one run.

    Args:
        models: names from :data:`phgmm.models.MODEL_NAMES`. ``phgmm`` and ``deeplabv3`` are
            always measured (the ratios need them).
        backbone: the shared ResNet.
        size: input (H, W).
        batch: inference batch; train_batch: training batch (≥ 2 keeps batch norm meaningful).
        warmup, iters: untimed and timed iterations per measurement (the median is reported).
        infer_iters: timed iterations of the inference measurements (default ``max(iters, 20)``:
            an inference costs a fraction of a training step, and a 1.15-vs-1.20 ratio needs
            more than a handful of samples on a noisy machine).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``…
        amp: None (fp32) or ``"bf16"`` (autocast).
        channels_last: models and inputs in channels-last memory format.
        num_classes: C.
        loader: optional ``Dataset``/``DataLoader`` whose throughput is measured
            (``loader_workers`` workers, ``loader_batches`` batches, batches of ``train_batch``).
        peak_flops: device peak FLOP/s for the MFU (default: :data:`PEAK_FLOPS` by GPU name).
        count_flops: count FLOPs (default: on CUDA only; one extra forward/step per model).
        model_kwargs: extra constructor keys per model name, e.g. ``{"phgmm": {"decoder_units": (1, 1, 1, 1)}}``.
        seed: seeds the weights and the random inputs.
        progress: called with a line of text after each measurement (e.g. ``print``).

    Returns:
        A JSON-serialisable dict: ``settings``, ``models`` (per model: parameter counts, train and
        inference seconds and images/s, peak memory, FLOPs/MFU), ``phgmm_train_step_s`` per
        PostNet variant, ``encoder_infer_s``, ``ratios`` (:data:`RATIO_KEYS`) and ``loader``.
    """
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device is CUDA but torch.cuda.is_available() is False")
    if amp not in (None, "none", "bf16"):
        raise ValueError(f"amp must be None or 'bf16', got {amp!r}")
    amp = None if amp == "none" else amp
    h, w = (int(v) for v in size)
    if batch < 1 or train_batch < 1:
        raise ValueError("batch sizes must be positive")
    names = [m.lower() for m in models]
    unknown = [m for m in names if m not in MODEL_NAMES]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
    names = ["phgmm", "deeplabv3"] + [m for m in dict.fromkeys(names) if m not in ("phgmm", "deeplabv3")]
    model_kwargs = {k.lower(): dict(v) for k, v in (model_kwargs or {}).items()}
    count_flops = dev.type == "cuda" if count_flops is None else count_flops
    infer_iters = max(iters, 20) if infer_iters is None else infer_iters
    if peak_flops is None:
        peak_flops = device_peak_flops(dev, amp)
    say = progress or (lambda _msg: None)

    from .losses import PHGMMLoss

    torch.manual_seed(seed)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    x_inf = torch.randn(batch, 3, h, w, device=dev).contiguous(memory_format=mf)
    x_tr = torch.randn(train_batch, 3, h, w, device=dev).contiguous(memory_format=mf)
    y_tr = torch.randint(0, num_classes, (train_batch, h, w), device=dev)
    y_tr[:, : max(1, h // 16)] = _IGNORE  # a band of ignored pixels, as in real labels

    def autocast() -> contextlib.AbstractContextManager:
        if amp == "bf16":
            return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    phgmm_loss = PHGMMLoss(ignore_index=_IGNORE)

    def make_train_step(model: nn.Module, is_phgmm: bool) -> Callable[[], None]:
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)

        def step() -> None:
            model.train()
            opt.zero_grad(set_to_none=True)
            with autocast():
                if is_phgmm:
                    loss = phgmm_loss(model(x_tr, y_tr), y_tr)["total"]
                else:
                    loss = F.cross_entropy(model(x_tr).float(), y_tr, ignore_index=_IGNORE)
            loss.backward()
            opt.step()
        return step

    def make_infer(fn: Callable[[torch.Tensor], Any]) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad(), autocast():
                fn(x_inf)
        return run

    def warm(fn: Callable[[], Any]) -> int:
        """Run the warm-up calls (at least one) and return their peak memory: the first call is
        where activations, workspaces and the optimiser state get allocated."""
        with _PeakMemory(dev) as mem:
            for _ in range(max(1, warmup)):
                fn()
            _sync(dev)
        return mem.value

    def mfu(flops: int | None, seconds: float) -> float | None:
        if not flops or not peak_flops or seconds <= 0:
            return None
        return flops / seconds / peak_flops

    results: dict[str, Any] = {}
    train_variants: dict[str, float] = {}
    encoder_s = float("nan")
    flops_over_encoder = float("nan")
    mem_kind = _PeakMemory(dev).kind
    for name in names:
        torch.manual_seed(seed)
        kwargs = dict(model_kwargs.get(name, {}))
        is_phgmm = name == "phgmm"
        if is_phgmm:
            kwargs["postnet"] = "full"
        model = build_model(name, num_classes=num_classes, backbone=backbone, **kwargs).to(dev, memory_format=mf)
        params = (dict(model.parameter_counts()) if hasattr(model, "parameter_counts")
                  else {"inference_total": sum(p.numel() for p in model.parameters())})
        entry: dict[str, Any] = {"params": params, "memory_kind": mem_kind}

        # Inference (eval, no_grad). PHGMM and its bare encoder are timed round-robin.
        model.eval()
        infer = make_infer(model)
        entry["infer_peak_memory"] = warm(infer)
        if is_phgmm:
            enc = make_infer(model.encoder)
            warm(enc)
            t = _time_interleaved({"model": infer, "encoder": enc}, dev, infer_iters)
            t_inf, encoder_s = t["model"], t["encoder"]
            say(f"{name}: bare encoder {encoder_s * 1e3:.1f} ms/batch of {batch}")
            # Always counted (one forward each): the floor under the time ratio, since only a
            # higher FLOP rate than the encoder's could bring the time ratio below it.
            entry["infer_flops"] = _count_flops(infer)
            flops_over_encoder = entry["infer_flops"] / _count_flops(enc)
        else:
            t_inf = _time_interleaved({"model": infer}, dev, infer_iters)["model"]
        entry.update(infer_s=t_inf, infer_images_per_s=batch / t_inf)
        say(f"{name}: inference {t_inf * 1e3:.1f} ms/batch of {batch}")
        if count_flops:
            if "infer_flops" not in entry:
                entry["infer_flops"] = _count_flops(infer)
            entry["infer_mfu"] = mfu(entry["infer_flops"], t_inf)

        # Training step(s). PHGMM: the full PostNet (the paper's setting) is the headline number;
        # no PostNet and the light PostNet are measured on the same model by swapping the module,
        # each with its own optimiser, warmed up one after the other and timed round-robin.
        if is_phgmm:
            full_postnet = model.postnet
            light_postnet = PostNet(num_classes, model.num_components, model.latent_dim, backbone, "light",
                                    _IGNORE).to(dev, memory_format=mf)
            variants = {"none": None, "light": light_postnet, "full": full_postnet}

            def with_postnet(postnet: nn.Module | None, step: Callable[[], None]) -> Callable[[], None]:
                def run() -> None:
                    model.postnet = postnet
                    step()
                return run

            steps = {}
            for variant, postnet in variants.items():
                model.postnet = postnet
                steps[variant] = with_postnet(postnet, make_train_step(model, True))
                entry[f"train_peak_memory_postnet_{variant}"] = warm(steps[variant])
            train_variants.update(_time_interleaved(steps, dev, iters))
            for variant in variants:
                say(f"{name}: training step, PostNet {variant}: {train_variants[variant] * 1e3:.1f} ms/batch "
                    f"of {train_batch}")
            model.postnet = full_postnet
            del steps
            entry["params"]["postnet_light"] = sum(p.numel() for p in light_postnet.parameters())
            t_tr, entry["train_peak_memory"] = train_variants["full"], entry["train_peak_memory_postnet_full"]
            entry["train_postnet"] = "full"
        else:
            step = make_train_step(model, False)
            entry["train_peak_memory"] = warm(step)
            t_tr = _time_interleaved({"step": step}, dev, iters)["step"]
            say(f"{name}: training step {t_tr * 1e3:.1f} ms/batch of {train_batch}")
        entry.update(train_step_s=t_tr, train_images_per_s=train_batch / t_tr)
        if count_flops:
            entry["train_flops"] = _count_flops(make_train_step(model, is_phgmm))
            entry["train_mfu"] = mfu(entry["train_flops"], t_tr)
        results[name] = entry
        del model
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    ratios = {
        "phgmm_infer_over_encoder": results["phgmm"]["infer_s"] / encoder_s,
        "phgmm_infer_flops_over_encoder": flops_over_encoder,
        "phgmm_infer_over_deeplabv3": results["phgmm"]["infer_s"] / results["deeplabv3"]["infer_s"],
        "train_full_postnet_over_none": train_variants["full"] / train_variants["none"],
        "train_light_postnet_over_none": train_variants["light"] / train_variants["none"],
    }
    loader_info = None
    if loader is not None:
        loader_info = measure_loader(loader, train_batch, loader_workers, loader_batches)
        loader_info["over_phgmm_train_images_per_s"] = (loader_info["images_per_s"]
                                                       / results["phgmm"]["train_images_per_s"])
        loader_info["at_least_2x_training"] = loader_info["over_phgmm_train_images_per_s"] >= 2.0
        say(f"loader: {loader_info['images_per_s']:.1f} images/s")

    settings = {
        "backbone": backbone, "size_hw": [h, w], "batch": batch, "train_batch": train_batch,
        "warmup": warmup, "iters": iters, "infer_iters": infer_iters, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(), "amp": amp, "channels_last": channels_last,
        "num_classes": num_classes, "torch": torch.__version__, "peak_flops": peak_flops,
        "memory_kind": mem_kind, "phgmm_kwargs": _jsonable(model_kwargs.get("phgmm", {})),
        "timing": "median seconds per call",
    }
    return {"settings": settings, "models": results, "phgmm_train_step_s": train_variants,
            "encoder_infer_s": encoder_s, "ratios": ratios, "loader": loader_info}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f}"


def format_table(result: dict[str, Any]) -> str:
    """A readable Markdown table of a :func:`run_benchmark` result."""
    s = result["settings"]
    mem = "peak MiB (CUDA max allocated)" if s["memory_kind"] == "cuda_max_allocated" else "RSS HWM +MiB (CPU)"
    lines = [
        f"{s['backbone']}, {s['size_hw'][1]}×{s['size_hw'][0]} (W×H), {s['device']} ({s['device_name']}), "
        f"amp={s['amp']}, inference batch {s['batch']}, training batch {s['train_batch']}, "
        f"median of {s['iters']} (training) / {s['infer_iters']} (inference) after {s['warmup']} warm-up",
        "",
        f"| model | params (inference) | train img/s | infer img/s | infer ms/batch | train {mem} | infer {mem} | train MFU | infer MFU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in result["models"].items():
        def pct(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.1f}%"
        label = name + (f" (PostNet {e['train_postnet']})" if "train_postnet" in e else "")
        lines.append(f"| {label} | {e['params'].get('inference_total', 0) / 1e6:.2f} M | {e['train_images_per_s']:.2f} | "
                     f"{e['infer_images_per_s']:.2f} | {e['infer_s'] * 1e3:.1f} | {_mib(e.get('train_peak_memory'))} | "
                     f"{_mib(e.get('infer_peak_memory'))} | {pct(e.get('train_mfu'))} | {pct(e.get('infer_mfu'))} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in result["ratios"].items()]
    v = result["phgmm_train_step_s"]
    lines += ["", "PHGMM training step (s): " + ", ".join(f"PostNet {k}: {t:.3f}" for k, t in v.items()),
              f"PHGMM bare encoder forward (s): {result['encoder_infer_s']:.4f}"]
    if result.get("loader"):
        ld = result["loader"]
        lines.append(f"loader: {ld['images_per_s']:.1f} images/s with {ld['workers']} workers = "
                     f"{ld['over_phgmm_train_images_per_s']:.1f}× PHGMM training images/s "
                     f"({'≥' if ld['at_least_2x_training'] else '<'} 2×)")
    return "\n".join(lines)


# -- CLI -----------------------------------------------------------------------------------------
def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``phgmm benchmark [--config FILE] [--models phgmm,deeplabv3] [--backbone resnet101]
    [--size 768x384] [--batch 1] [--iters 3] [--json OUT]``."""
    p = subparsers.add_parser("benchmark", help="time training and inference of PHGMM and the baselines",
                              description="Training/inference speed, memory, parameters and the PHGMM "
                                          "ratios (see benchmarks/README.md), measured in one run.")
    p.add_argument("--config", help="take backbone, size and training batch from this config file")
    p.add_argument("--models", default=None, help=f"comma-separated, from {','.join(MODEL_NAMES)} (default: all)")
    p.add_argument("--backbone", default=None, help="default resnet101 (or the config's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of --config, e.g. --set data.root=data/synth (repeatable)")
    p.add_argument("--size", type=parse_wxh, default=None,
                   help="input WxH, default 768x384 (or the config's data.size)")
    p.add_argument("--batch", type=int, default=None, help="inference batch (default 1)")
    p.add_argument("--train-batch", type=int, default=None, help="training batch (default 2, or the config's)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=3, help="timed training steps per measurement")
    p.add_argument("--infer-iters", type=int, default=None,
                   help="timed inferences per measurement (default max(--iters, 20))")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--amp", choices=("none", "bf16"), default="none")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="channels-last memory format, the library's default (--no-channels-last: contiguous)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak TFLOP/s for the MFU")
    p.add_argument("--loader-workers", type=int, default=None,
                   help="also time a DataLoader over the config's training set with this many workers "
                        "(needs --config)")
    p.add_argument("--json", dest="json_out", default=None, help="write the full result as JSON here")
    p.set_defaults(func=cmd_benchmark)
    return p


def _config_settings(path: str, overrides: Sequence[str] = ()) -> tuple[dict[str, Any], Any]:
    from phgmm.config import load_config

    cfg = load_config(path, overrides=overrides)
    out: dict[str, Any] = {}
    model = getattr(cfg, "model", None)
    data = getattr(cfg, "data", None)
    train = getattr(cfg, "train", None)
    if getattr(model, "backbone", None):
        out["backbone"] = model.backbone
    if getattr(model, "num_classes", None):
        out["num_classes"] = int(model.num_classes)
    if getattr(data, "size", None):
        w, h = data.size  # the config stores (W, H)
        out["size"] = (int(h), int(w))
    if getattr(train, "batch_size", None):
        out["train_batch"] = int(train.batch_size)
    if model is not None:
        fields = vars(model) if not hasattr(model, "__dataclass_fields__") else {
            k: getattr(model, k) for k in model.__dataclass_fields__}
        accepted = set(inspect.signature(PHGMM.__init__).parameters) - {"self", "num_classes", "backbone", "postnet"}
        out["model_kwargs"] = {"phgmm": {k: v for k, v in fields.items() if k in accepted and v is not None}}
    return out, cfg


def cmd_benchmark(args: argparse.Namespace) -> int:
    settings: dict[str, Any] = {}
    cfg = None
    if args.set and not args.config:
        raise SystemExit("phgmm benchmark: --set overrides keys of --config; give --config too")
    if args.config:
        settings, cfg = _config_settings(args.config, args.set)
    if args.backbone:
        settings["backbone"] = args.backbone
    if args.size:
        settings["size"] = (args.size[1], args.size[0])   # run_benchmark takes (H, W)
    if args.batch is not None:
        settings["batch"] = args.batch
    if args.train_batch is not None:
        settings["train_batch"] = args.train_batch
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else list(MODEL_NAMES)
    loader = None
    if args.loader_workers is not None:
        if cfg is None:
            raise SystemExit("--loader-workers needs --config (the dataset comes from the config)")
        loader = _dataset_from_config(cfg)
    result = run_benchmark(models, device=device, warmup=args.warmup, iters=args.iters,
                           infer_iters=args.infer_iters, amp=args.amp,
                           channels_last=args.channels_last,
                           peak_flops=args.peak_tflops * 1e12 if args.peak_tflops else None,
                           loader=loader, loader_workers=args.loader_workers or 0,
                           progress=lambda msg: print(msg, file=sys.stderr, flush=True), **settings)
    print(format_table(result))
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_jsonable(result), indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def _dataset_from_config(cfg: Any) -> Any:
    """The config's training dataset (with its augmentations), built by the engine's builder."""
    from phgmm.engine.builders import build_dataset_from_config  # the lead's engine; lazy

    return build_dataset_from_config(cfg, cfg.data.train_split, train=True)


if __name__ == "__main__":   # ``python -m phgmm.benchmark …`` is ``phgmm benchmark …``
    from .cli import main

    raise SystemExit(main(["benchmark", *sys.argv[1:]]))
