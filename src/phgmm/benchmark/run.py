"""The benchmark run: every requested network on the same backbone and random inputs, the PHGMM
ratios, and a Markdown table of the result (see :mod:`phgmm.benchmark`)."""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import Config
from ..conventions import IGNORE_INDEX
from ..engine.precision import amp_dtype, autocast, check_device, memory_format
from ..io import metrics_json_safe
from ..models import MODEL_NAMES, build_model
from ..models.contracts import LatentNetwork, SegmentationNetwork
from ..models.fold import fold_batchnorm
from ..models.postnet import PostNet
from .opcount import count_ops
from .step import step_parts, train_step
from .timing import PeakMemory, count_flops, device_peak_flops, sync, time_interleaved
from .user import measure_loader, measure_onnx, measure_predict

__all__ = ["run_benchmark", "format_table", "loader_from_config", "RATIO_KEYS", "OPTIONAL_RATIO_KEYS"]

RATIO_KEYS = (
    "phgmm_infer_over_encoder",
    "phgmm_infer_flops_over_encoder",
    "phgmm_infer_over_deeplabv3",
    "phgmm_folded_over_unfolded",
    "phgmm_folded_infer_over_encoder",
    "train_full_postnet_over_none",
    "train_light_postnet_over_none",
    "phgmm_train_images_per_s_over_deeplabv3",
)

#: ratios present only when their measurement was asked for (``predict_images``, ``onnx``)
OPTIONAL_RATIO_KEYS = ("predict_over_forward_images_per_s", "onnx_over_pytorch_time")


@dataclass
class _BenchmarkRun:
    """What every measurement of one run shares: device, precision, inputs, iteration counts."""

    dev: torch.device
    dtype: torch.dtype | None  # autocast dtype (None: fp32)
    mf: torch.memory_format
    x_inf: torch.Tensor
    x_tr: torch.Tensor
    y_tr: torch.Tensor
    warmup: int
    iters: int
    infer_iters: int
    count_flops: bool
    peak_flops: float | None
    say: Callable[[str], None]
    cfg: Config  # the training step's loss, optimiser settings and clipping
    graphs: bool = False  # also time CUDA-graph replays (CUDA only)

    def autocast(self) -> Any:
        return autocast(self.dtype, self.dev)


def _inputs(
    dev: torch.device,
    mf: torch.memory_format,
    size: tuple[int, int],
    batch: int,
    train_batch: int,
    num_classes: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random inference images, training images and labels at ``size`` = (W, H)."""
    w, h = size
    torch.manual_seed(seed)
    x_inf = torch.randn(batch, 3, h, w, device=dev).contiguous(memory_format=mf)
    x_tr = torch.randn(train_batch, 3, h, w, device=dev).contiguous(memory_format=mf)
    y_tr = torch.randint(0, num_classes, (train_batch, h, w), device=dev)
    y_tr[:, : max(1, h // 16)] = IGNORE_INDEX  # a band of ignored pixels, as in real labels
    return x_inf, x_tr, y_tr


def _train_step(run: _BenchmarkRun, model: nn.Module) -> Callable[[], Any]:
    """The training step ``phgmm train`` runs for the run's config (step.py: its loss, fused AdamW,
    clipping), on the run's training batch."""
    return train_step(model, run.x_tr, run.y_tr, run.cfg, run.dev, run.dtype, run.mf)


def _infer(run: _BenchmarkRun, fn: Callable[[torch.Tensor], Any]) -> Callable[[], None]:
    """One inference (no_grad, autocast) of ``fn`` on the run's inference batch."""

    def infer() -> None:
        with torch.no_grad(), run.autocast():
            fn(run.x_inf)

    return infer


def _graphed_train_step(run: _BenchmarkRun, model: nn.Module) -> Callable[[], None]:
    """The training step of :func:`_train_step` captured as one CUDA graph (engine/training/graphed.py)."""
    from ..engine.training.graphed import GraphedTrainStep

    p = step_parts(model, run.cfg, run.dev, run.dtype, run.mf)
    graphed = GraphedTrainStep(model, p.loss_fn, p.optimizer, run.dev, run.dtype, p.grad_clip, p.takes_labels, run.mf)

    def step() -> None:
        model.train()
        graphed.step(run.x_tr, run.y_tr)

    return step


def _measure_graphs(run: _BenchmarkRun, name: str, model: nn.Module, entry: dict[str, Any]) -> None:
    """CUDA only (``graphs=True``): the training step and the folded inference replayed as CUDA
    graphs, their times and images/s beside the eager ones in ``entry``."""
    from ..engine.inference.graphed import GraphedForward

    step = _graphed_train_step(run, model)
    _warm(run, step)  # captures
    t_tr = time_interleaved({"step": step}, run.dev, run.iters)["step"]
    folded = fold_batchnorm(model).to(run.dev, memory_format=run.mf)
    forward = GraphedForward(folded, run.dev, run.dtype)
    infer = lambda: forward(run.x_inf)  # noqa: E731
    _warm(run, infer)
    t_inf = time_interleaved({"infer": infer}, run.dev, run.infer_iters)["infer"]
    entry.update(
        train_graphed_step_s=t_tr,
        train_graphed_images_per_s=run.x_tr.shape[0] / t_tr,
        infer_graphed_folded_s=t_inf,
        infer_graphed_folded_images_per_s=run.x_inf.shape[0] / t_inf,
    )
    run.say(f"{name}: CUDA graphs: training step {t_tr * 1e3:.1f} ms, folded inference {t_inf * 1e3:.1f} ms")


def _count_kernels(run: _BenchmarkRun, model: nn.Module, entry: dict[str, Any]) -> None:
    """Operators that launch a kernel in one eager training step and one inference (opcount.py):
    what an eager GPU step pays in launches."""
    step = _train_step(run, model)
    step()  # the optimiser's moments exist from here
    entry["train_kernels"] = count_ops(step).total_kernels
    latent = isinstance(model, LatentNetwork)
    if latent:  # the inference network has no PostNet
        postnet, model.postnet = model.postnet, None
    model.eval()
    with torch.no_grad(), run.autocast():
        entry["infer_kernels"] = count_ops(lambda: model(run.x_inf)).total_kernels
    if latent:
        model.postnet = postnet


def _warm(run: _BenchmarkRun, fn: Callable[[], Any]) -> int:
    """Run the warm-up calls (at least one) and return their peak memory: the first call is where
    activations, workspaces and the optimiser state get allocated."""
    with PeakMemory(run.dev) as mem:
        for _ in range(max(1, run.warmup)):
            fn()
        sync(run.dev)
    return mem.value


def _mfu(run: _BenchmarkRun, flops: int | None, seconds: float) -> float | None:
    if not flops or not run.peak_flops or seconds <= 0:
        return None
    return flops / seconds / run.peak_flops


def _measure_inference(run: _BenchmarkRun, name: str, model: nn.Module, entry: dict[str, Any]) -> dict[str, float]:
    """Eval-mode inference time, images/s, peak memory (and FLOPs/MFU) into ``entry``.

    PHGMM, its bare encoder and both with BatchNorm folded are timed round-robin; for PHGMM returns
    ``encoder_s``, ``folded_s``, ``folded_encoder_s`` and ``flops_over_encoder`` (always counted,
    one forward each: the floor under the time ratio, since only a higher FLOP rate than the
    encoder's could bring the time ratio below it)."""
    model.eval()
    infer = _infer(run, model)
    entry["infer_peak_memory"] = _warm(run, infer)
    extra: dict[str, float] = {}
    if isinstance(model, LatentNetwork):
        folded_model = fold_batchnorm(model)  # as phgmm predict and evaluate run it
        others = {
            "encoder": _infer(run, model.encoder),
            "folded": _infer(run, folded_model),
            "folded_encoder": _infer(run, folded_model.encoder),
        }
        for fn in others.values():  # the model itself was warmed above
            _warm(run, fn)
        enc = others["encoder"]
        t = time_interleaved({"model": infer, **others}, run.dev, run.infer_iters)
        t_inf = t["model"]
        extra.update(encoder_s=t["encoder"], folded_s=t["folded"], folded_encoder_s=t["folded_encoder"])
        run.say(
            f"{name}: bare encoder {t['encoder'] * 1e3:.1f} ms/batch of {run.x_inf.shape[0]}; "
            f"BatchNorm folded: {t['folded'] * 1e3:.1f} ms, its encoder {t['folded_encoder'] * 1e3:.1f} ms"
        )
        entry["infer_flops"] = count_flops(infer)
        extra["flops_over_encoder"] = entry["infer_flops"] / count_flops(enc)
    else:
        t_inf = time_interleaved({"model": infer}, run.dev, run.infer_iters)["model"]
    entry.update(infer_s=t_inf, infer_images_per_s=run.x_inf.shape[0] / t_inf)
    run.say(f"{name}: inference {t_inf * 1e3:.1f} ms/batch of {run.x_inf.shape[0]}")
    if run.count_flops:
        if "infer_flops" not in entry:
            entry["infer_flops"] = count_flops(infer)
        entry["infer_mfu"] = _mfu(run, entry["infer_flops"], t_inf)
    return extra


def _measure_phgmm_training(
    run: _BenchmarkRun, model: nn.Module, light_postnet: nn.Module, entry: dict[str, Any]
) -> dict[str, float]:
    """PHGMM's training step with no, the light and the full PostNet, on the same model (the
    PostNet module is swapped), each with its own optimiser, warmed up one after the other and timed
    round-robin. Returns the median seconds per variant; the full PostNet is left in place."""
    full_postnet = model.postnet
    variants = {"none": None, "light": light_postnet, "full": full_postnet}

    def with_postnet(postnet: nn.Module | None, step: Callable[[], None]) -> Callable[[], None]:
        def swapped() -> None:
            model.postnet = postnet
            step()

        return swapped

    steps = {}
    for variant, postnet in variants.items():
        model.postnet = postnet
        steps[variant] = with_postnet(postnet, _train_step(run, model))
        entry[f"train_peak_memory_postnet_{variant}"] = _warm(run, steps[variant])
    times = time_interleaved(steps, run.dev, run.iters)
    for variant in variants:
        run.say(f"phgmm: training step, PostNet {variant}: {times[variant] * 1e3:.1f} ms/batch of {run.x_tr.shape[0]}")
    model.postnet = full_postnet
    return times


def _measure_training(run: _BenchmarkRun, name: str, model: nn.Module, entry: dict[str, Any]) -> float:
    """A baseline's training step (the configured loss): median seconds, peak memory into ``entry``."""
    step = _train_step(run, model)
    entry["train_peak_memory"] = _warm(run, step)
    t_tr = time_interleaved({"step": step}, run.dev, run.iters)["step"]
    run.say(f"{name}: training step {t_tr * 1e3:.1f} ms/batch of {run.x_tr.shape[0]}")
    return t_tr


def _model_builder(
    config: Any, backbone: str, num_classes: int, model_kwargs: dict[str, dict[str, Any]]
) -> Callable[[str], nn.Module]:
    """name → the model's inference network (no PostNet): from ``config``'s model section through
    the engine's builder, or from ``build_model`` with ``model_kwargs[name]``."""
    if config is not None:
        from ..engine.builders import build_model_from_config

        def from_config(name: str) -> nn.Module:
            model = dataclasses.replace(config.model, name=name, backbone=backbone, num_classes=num_classes)
            return build_model_from_config(dataclasses.replace(config, model=model), inference=True)

        return from_config

    def from_kwargs(name: str) -> nn.Module:
        # the inference network: no PostNet (PHGMM's key; the other networks ignore PHGMM's keys)
        kwargs = {**model_kwargs.get(name, {}), "postnet": None}
        return build_model(name, num_classes=num_classes, backbone=backbone, **kwargs)

    return from_kwargs


def _attach_postnets(model: nn.Module, num_classes: int, backbone: str, cfg: Config) -> nn.Module:
    """PHGMM with the full PostNet (the paper's setting) attached, and ``cfg``'s share of ℓ_s decoded
    from PostNet's sample (the inference network is built without it, as the trainer's is with it);
    returns the light PostNet."""
    if getattr(model, "local_space", None) is None:
        raise ValueError("the benchmark measures PHGMM's PostNet: PHGMM needs its local space (use_local)")
    norm = model.build_args.get("summary_norm", "none")
    model.postnet = PostNet(num_classes, model.num_components, model.latent_dim, backbone, "full", IGNORE_INDEX, norm)
    model.decode_posterior = float(cfg.model.decode_posterior)
    return PostNet(num_classes, model.num_components, model.latent_dim, backbone, "light", IGNORE_INDEX, norm)


def _measure_model(
    run: _BenchmarkRun,
    name: str,
    model: nn.Module,
    num_classes: int,
    backbone: str,
    results: dict[str, Any],
    phgmm: dict[str, Any],
) -> None:
    """Every measurement of one model into ``results[name]``; PHGMM's extras into ``phgmm``."""
    latent = isinstance(model, LatentNetwork)
    light = _attach_postnets(model, num_classes, backbone, run.cfg) if latent else None
    model.to(run.dev, memory_format=run.mf)
    params = (
        dict(model.parameter_counts())
        if isinstance(model, SegmentationNetwork)
        else {"inference_total": sum(p.numel() for p in model.parameters())}
    )
    entry: dict[str, Any] = {"params": params, "memory_kind": PeakMemory(run.dev).kind}
    extra = _measure_inference(run, name, model, entry)
    if latent:
        light = light.to(run.dev, memory_format=run.mf)
        phgmm.update(extra, train_variants=_measure_phgmm_training(run, model, light, entry))
        entry["params"]["postnet_light"] = sum(p.numel() for p in light.parameters())
        t_tr, entry["train_peak_memory"] = phgmm["train_variants"]["full"], entry["train_peak_memory_postnet_full"]
        entry["train_postnet"] = "full"
    else:
        t_tr = _measure_training(run, name, model, entry)
    entry.update(train_step_s=t_tr, train_images_per_s=run.x_tr.shape[0] / t_tr)
    if run.count_flops:
        entry["train_flops"] = count_flops(_train_step(run, model))
        entry["train_mfu"] = _mfu(run, entry["train_flops"], t_tr)
    _count_kernels(run, model, entry)
    if run.graphs and run.dev.type == "cuda":
        _measure_graphs(run, name, model, entry)
        if run.count_flops:
            entry["train_graphed_mfu"] = _mfu(run, entry["train_flops"], entry["train_graphed_step_s"])
    results[name] = entry


def _ratios(results: dict[str, Any], phgmm: dict[str, Any]) -> dict[str, float]:
    variants = phgmm["train_variants"]
    return {
        "phgmm_infer_over_encoder": results["phgmm"]["infer_s"] / phgmm["encoder_s"],
        "phgmm_infer_flops_over_encoder": phgmm["flops_over_encoder"],
        "phgmm_infer_over_deeplabv3": results["phgmm"]["infer_s"] / results["deeplabv3"]["infer_s"],
        "phgmm_folded_over_unfolded": phgmm["folded_s"] / results["phgmm"]["infer_s"],
        "phgmm_folded_infer_over_encoder": phgmm["folded_s"] / phgmm["folded_encoder_s"],
        "train_full_postnet_over_none": variants["full"] / variants["none"],
        "train_light_postnet_over_none": variants["light"] / variants["none"],
        "phgmm_train_images_per_s_over_deeplabv3": (
            results["phgmm"]["train_images_per_s"] / results["deeplabv3"]["train_images_per_s"]
        ),
    }


def _loader_check(
    loader: Any,
    train_batch: int,
    workers: int,
    batches: int,
    phgmm_train_images_per_s: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The loader's images/s and whether it is at least twice PHGMM's training images/s."""
    info = measure_loader(loader, train_batch, workers, batches)
    info["over_phgmm_train_images_per_s"] = info["images_per_s"] / phgmm_train_images_per_s
    info["at_least_2x_training"] = info["over_phgmm_train_images_per_s"] >= 2.0
    say(f"loader: {info['images_per_s']:.1f} images/s")
    return info


def _names(models: Sequence[str]) -> list[str]:
    """Requested model names, validated, with ``phgmm`` and ``deeplabv3`` first (the ratios need them)."""
    names = [m.lower() for m in models]
    unknown = [m for m in names if m not in MODEL_NAMES]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
    return ["phgmm", "deeplabv3"] + [m for m in dict.fromkeys(names) if m not in ("phgmm", "deeplabv3")]


def _defaults(
    config: Any, backbone: str | None, num_classes: int | None, train_batch: int | None, size: Sequence[int] | None
) -> tuple[str, int, int, tuple[int, int]]:
    """The backbone, class count, training batch and (W, H) asked for, else ``config``'s, else
    ResNet-101, 12 classes, batch 2 and 768×384."""
    backbone = backbone or (config.model.backbone if config is not None else "resnet101")
    num_classes = num_classes or (config.model.num_classes if config is not None else 12)
    train_batch = train_batch or (config.train.batch_size if config is not None else 2)
    w, h = (int(v) for v in (size or (config.data.size if config is not None else (768, 384))))
    return backbone, num_classes, train_batch, (w, h)


def run_benchmark(
    models: Sequence[str] = MODEL_NAMES,
    backbone: str | None = None,
    size: Sequence[int] | None = None,
    batch: int = 1,
    train_batch: int | None = None,
    warmup: int = 1,
    iters: int = 3,
    infer_iters: int | None = None,
    device: str | torch.device = "cpu",
    amp: str | None = None,
    channels_last: bool = True,
    num_classes: int | None = None,
    loader: Any = None,
    loader_workers: int = 2,
    loader_batches: int = 20,
    peak_flops: float | None = None,
    count_flops: bool | None = None,
    model_kwargs: dict[str, dict[str, Any]] | None = None,
    config: Any = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    predict_images: int = 0,
    predict_workers: int | None = None,
    predict_rounds: int | None = None,
    onnx: bool = False,
    graphs: bool = False,
) -> dict[str, Any]:
    """Measure training and inference speed, memory and size of PHGMM and baselines in one run.

    Args:
        models: names from :data:`phgmm.models.MODEL_NAMES`. ``phgmm`` and ``deeplabv3`` are
            always measured (the ratios need them).
        backbone: the shared ResNet (default: ``config.model.backbone``, else ``resnet101``).
        size: input (W, H) (default: ``config.data.size``, else (768, 384)).
        batch: inference batch; train_batch: training batch (≥ 2 keeps batch norm meaningful;
            default ``config.train.batch_size``, else 2).
        warmup, iters: untimed and timed iterations per measurement (the median is reported).
        infer_iters: timed iterations of the inference measurements (default ``max(iters, 20)``:
            an inference costs a fraction of a training step, and a 1.15-vs-1.20 ratio needs
            more than a handful of samples on a noisy machine).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``…
        amp: None (fp32) or ``"bf16"``: autocast as in training (``phgmm.engine.precision``, so
            fp32 on CPU, where autocast is slower).
        channels_last: models and inputs in channels-last memory format.
        num_classes: C (default: ``config.model.num_classes``, else 12).
        loader: optional ``Dataset``/``DataLoader`` whose throughput is measured
            (``loader_workers`` workers, ``loader_batches`` batches, batches of ``train_batch``).
        peak_flops: device peak FLOP/s for the MFU (default: :data:`PEAK_FLOPS` by GPU name).
        count_flops: count FLOPs (default: on CUDA only; one extra forward/step per model).
        model_kwargs: extra constructor keys per model name, e.g. ``{"phgmm": {"decoder_units": (1, 1, 1, 1)}}``
            (not with ``config``).
        config: a :class:`phgmm.config.Config`: every model is built from its model section by
            :func:`phgmm.engine.builders.build_model_from_config` (with ``model.name`` set to each
            name); its size, training batch, backbone and classes are the defaults above.
        seed: seeds the weights and the random inputs.
        progress: called with a line of text after each measurement (e.g. ``print``).
        predict_images: N > 0 also runs :func:`measure_predict` on N synthetic images of ``size``
            with the inference ``batch`` (``predict_workers`` threads each way, ``predict_rounds``
            rounds, default ``max(iters, 3)``): ratio ``predict_over_forward_images_per_s``.
        onnx: also run :func:`measure_onnx` (CPU, ``infer_iters`` iterations): ratio
            ``onnx_over_pytorch_time``, or a note in ``result["onnx"]["skipped"]``.
        graphs: on CUDA, also time each model's training step and folded inference replayed as CUDA
            graphs (:mod:`phgmm.engine.training.graphed`, :mod:`phgmm.engine.inference.graphed`):
            ``train_graphed_*`` and ``infer_graphed_folded_*`` per model. Ignored (with a progress line)
            elsewhere.

    Returns:
        A JSON-serialisable dict: ``settings`` (``size_wh`` = [W, H]), ``models`` (per model:
        parameter counts, train and inference seconds and images/s, peak memory, FLOPs/MFU, the
        kernel-launching operators of one training step and one inference: ``train_kernels``,
        ``infer_kernels``),
        ``phgmm_train_step_s`` per PostNet variant, ``encoder_infer_s``, ``ratios``
        (:data:`RATIO_KEYS`, plus :data:`OPTIONAL_RATIO_KEYS` when measured), ``loader``,
        ``predict`` and ``onnx`` (None unless asked for).
    """
    dev = check_device(device)
    if amp not in (None, "none", "bf16"):
        raise ValueError(f"amp must be None or 'bf16', got {amp!r}")
    if config is not None and model_kwargs:
        raise ValueError("give model_kwargs or config, not both (the config's model section has the keys)")
    backbone, num_classes, train_batch, (w, h) = _defaults(config, backbone, num_classes, train_batch, size)
    if batch < 1 or train_batch < 1:
        raise ValueError("batch sizes must be positive")
    names = _names(models)
    model_kwargs = {k.lower(): dict(v) for k, v in (model_kwargs or {}).items()}
    dtype = amp_dtype(amp or "off", dev)
    amp = "bf16" if dtype is not None else None
    mf = memory_format("true" if channels_last else "false")
    run = _BenchmarkRun(
        dev,
        dtype,
        mf,
        *_inputs(dev, mf, (w, h), batch, train_batch, num_classes, seed),
        warmup=warmup,
        iters=iters,
        infer_iters=max(iters, 20) if infer_iters is None else infer_iters,
        count_flops=dev.type == "cuda" if count_flops is None else count_flops,
        peak_flops=device_peak_flops(dev, amp) if peak_flops is None else peak_flops,
        say=progress or (lambda _msg: None),
        cfg=config if config is not None else Config(),
        graphs=graphs,
    )
    build = _model_builder(config, backbone, num_classes, model_kwargs)
    _announce(run, names, backbone, (w, h), loader is not None, predict_images, onnx)
    results, phgmm = _measure_models(run, names, build, num_classes, backbone, seed)
    loader_info = None
    if loader is not None:
        loader_info = _loader_check(
            loader, train_batch, loader_workers, loader_batches, results["phgmm"]["train_images_per_s"], run.say
        )
    ratios = _ratios(results, phgmm)
    predict_info, onnx_info = _user_measurements(
        run, build, (w, h), seed, predict_images, predict_workers, predict_rounds, onnx, ratios
    )
    settings = _settings(run, backbone, (w, h), channels_last, amp, num_classes, model_kwargs, config)
    return {
        "settings": settings,
        "models": results,
        "phgmm_train_step_s": phgmm["train_variants"],
        "encoder_infer_s": phgmm["encoder_s"],
        "ratios": ratios,
        "loader": loader_info,
        "predict": predict_info,
        "onnx": onnx_info,
    }


def _announce(
    run: _BenchmarkRun,
    names: list[str],
    backbone: str,
    size: tuple[int, int],
    loader: bool,
    predict_images: int,
    onnx: bool,
) -> None:
    """The first progress line: what will be measured, where and how often."""
    extras = [
        what
        for what, on in (
            ("the data loader", loader),
            (f"phgmm predict on {predict_images} images", predict_images),
            ("ONNX Runtime", onnx),
        )
        if on
    ]
    run.say(
        f"measuring {', '.join(names)}{''.join(f', {e}' for e in extras)} on {run.dev} "
        f"({torch.get_num_threads()} threads): {backbone} at {size[0]}x{size[1]}, inference batch "
        f"{run.x_inf.shape[0]} ({run.infer_iters} timed), training batch {run.x_tr.shape[0]} ({run.iters} timed "
        f"after {run.warmup} warm-up); a line per measurement follows"
        + (
            " (at full size on a CPU, minutes per model: --models, --iters and --size shorten it)"
            if run.dev.type == "cpu"
            else ""
        )
    )
    if run.graphs and run.dev.type != "cuda":
        run.say("CUDA graphs: CUDA only; not measured on this device")


def _measure_models(
    run: _BenchmarkRun, names: list[str], build: Callable[[str], nn.Module], num_classes: int, backbone: str, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every model in turn, each from the same seed: (per-model entries, PHGMM's extras)."""
    results: dict[str, Any] = {}
    phgmm: dict[str, Any] = {}
    for i, name in enumerate(names, 1):
        run.say(f"[{i}/{len(names)}] {name}")
        torch.manual_seed(seed)
        _measure_model(run, name, build(name), num_classes, backbone, results, phgmm)
        if run.dev.type == "cuda":
            torch.cuda.empty_cache()
    return results, phgmm


def _user_measurements(
    run: _BenchmarkRun,
    build: Callable[[str], nn.Module],
    size: tuple[int, int],
    seed: int,
    predict_images: int,
    predict_workers: int | None,
    predict_rounds: int | None,
    onnx: bool,
    ratios: dict[str, float],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``phgmm predict`` against the bare forward and ONNX Runtime against PyTorch, when asked for,
    on a fresh PHGMM inference network; their ratios go into ``ratios``."""
    predict_info = onnx_info = None
    if not (predict_images or onnx):
        return None, None
    torch.manual_seed(seed)
    fresh = build("phgmm").to(run.dev, memory_format=run.mf).eval()  # inference network, no PostNet
    batch = run.x_inf.shape[0]
    if predict_images:
        predict_info = measure_predict(
            fresh,
            size,
            images=predict_images,
            batch=batch,
            rounds=predict_rounds or max(run.iters, 3),
            device=run.dev,
            workers=predict_workers,
            mf=run.mf,
            seed=seed,
            say=run.say,
        )
        ratios["predict_over_forward_images_per_s"] = predict_info["predict_over_forward"]
    if onnx:
        onnx_info = measure_onnx(
            fresh, size, batch=batch, warmup=run.warmup, iters=run.infer_iters, seed=seed, say=run.say
        )
        if "skipped" not in onnx_info:
            ratios["onnx_over_pytorch_time"] = onnx_info["onnx_over_pytorch"]
    return predict_info, onnx_info


def _settings(
    run: _BenchmarkRun,
    backbone: str,
    size: tuple[int, int],
    channels_last: bool,
    amp: str | None,
    num_classes: int,
    model_kwargs: dict[str, dict[str, Any]],
    config: Any,
) -> dict[str, Any]:
    """What the result's numbers were measured under."""
    dev = run.dev
    return {
        "backbone": backbone,
        "size_wh": list(size),
        "batch": run.x_inf.shape[0],
        "train_batch": run.x_tr.shape[0],
        "warmup": run.warmup,
        "iters": run.iters,
        "infer_iters": run.infer_iters,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "amp": amp,
        "channels_last": channels_last,
        "num_classes": num_classes,
        "torch": torch.__version__,
        "peak_flops": run.peak_flops,
        "memory_kind": PeakMemory(dev).kind,
        "phgmm_kwargs": metrics_json_safe(model_kwargs.get("phgmm", {})),
        "config_model": metrics_json_safe(vars(config.model)) if config is not None else None,
        "cuda_graphs": run.graphs and dev.type == "cuda",
        "timing": "median seconds per call",
    }


def loader_from_config(config: Any) -> Any:
    """The config's training dataset (with its augmentations), built by the engine's builder:
    pass it as ``run_benchmark(loader=...)``."""
    from ..engine.builders import build_dataset_from_config

    return build_dataset_from_config(config, config.data.train_split, train=True)


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _models_table(result: dict[str, Any]) -> list[str]:
    s = result["settings"]
    mem = "peak MiB (CUDA max allocated)" if s["memory_kind"] == "cuda_max_allocated" else "RSS HWM +MiB (CPU)"
    lines = [
        f"{s['backbone']}, {s['size_wh'][0]}×{s['size_wh'][1]} (W×H), {s['device']} ({s['device_name']}), "
        f"amp={s['amp']}, inference batch {s['batch']}, training batch {s['train_batch']}, "
        f"median of {s['iters']} (training) / {s['infer_iters']} (inference) after {s['warmup']} warm-up",
        "",
        f"| model | params (inference) | train img/s | infer img/s | infer ms/batch | train {mem} | infer {mem} | "
        f"train MFU | infer MFU | kernels/train step | kernels/inference |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in result["models"].items():
        label = name + (f" (PostNet {e['train_postnet']})" if "train_postnet" in e else "")
        lines.append(
            f"| {label} | {e['params'].get('inference_total', 0) / 1e6:.2f} M | {e['train_images_per_s']:.2f} | "
            f"{e['infer_images_per_s']:.2f} | {e['infer_s'] * 1e3:.1f} | {_mib(e.get('train_peak_memory'))} | "
            f"{_mib(e.get('infer_peak_memory'))} | {_pct(e.get('train_mfu'))} | {_pct(e.get('infer_mfu'))} | "
            f"{e.get('train_kernels', '-')} | {e.get('infer_kernels', '-')} |"
        )
    return lines


def _graphed_table(result: dict[str, Any]) -> list[str]:
    graphed = {n: e for n, e in result["models"].items() if "train_graphed_step_s" in e}
    if not graphed:
        return []
    lines = [
        "",
        "| model (CUDA graphs) | train img/s eager | train img/s graphed | graphed ÷ eager step | "
        "train MFU graphed | folded infer img/s graphed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, e in graphed.items():
        lines.append(
            f"| {name} | {e['train_images_per_s']:.2f} | {e['train_graphed_images_per_s']:.2f} | "
            f"{e['train_graphed_step_s'] / e['train_step_s']:.3f} | "
            f"{_pct(e.get('train_graphed_mfu'))} | {e['infer_graphed_folded_images_per_s']:.2f} |"
        )
    return lines


def _extras(result: dict[str, Any]) -> list[str]:
    """The loader, predict and ONNX lines, where they were measured."""
    lines = []
    if result.get("loader"):
        ld = result["loader"]
        lines.append(
            f"loader: {ld['images_per_s']:.1f} images/s with {ld['workers']} workers = "
            f"{ld['over_phgmm_train_images_per_s']:.1f}× PHGMM training images/s "
            f"({'≥' if ld['at_least_2x_training'] else '<'} 2×)"
        )
    if result.get("predict"):
        p = result["predict"]
        lines.append(
            f"predict: {p['predict_images_per_s']:.2f} images/s vs bare forward "
            f"{p['forward_images_per_s']:.2f} images/s = {p['predict_over_forward']:.3f}× "
            f"({p['images']} PNGs of {p['size_wh'][0]}×{p['size_wh'][1]}, batch {p['batch']}, "
            f"median of {p['rounds']} rounds)"
        )
    if result.get("onnx"):
        o = result["onnx"]
        lines.append(
            f"onnx: {o['skipped']}"
            if "skipped" in o
            else f"onnx: onnxruntime {o['onnx_s'] * 1e3:.1f} ms vs PyTorch {o['pytorch_s'] * 1e3:.1f} ms "
            f"per batch of {o['batch']} on the CPU = {o['onnx_over_pytorch']:.3f}×"
        )
    return lines


def format_table(result: dict[str, Any]) -> str:
    """A readable Markdown table of a :func:`run_benchmark` result."""
    lines = _models_table(result) + _graphed_table(result)
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in result["ratios"].items()]
    v = result["phgmm_train_step_s"]
    lines += [
        "",
        "PHGMM training step (s): " + ", ".join(f"PostNet {k}: {t:.3f}" for k, t in v.items()),
        f"PHGMM bare encoder forward (s): {result['encoder_infer_s']:.4f}",
    ]
    return "\n".join(lines + _extras(result))
