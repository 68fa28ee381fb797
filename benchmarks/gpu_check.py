"""Every GPU figure of issue 19 in one call (docs/gpu.md), written under --out as JSON and Markdown.

    python benchmarks/gpu_check.py --out DIR [--device cuda] [--backbone resnet101] [--size 768x384]
                                   [--batch 16] [--steps 10] [--modes eager,graphed,compiled]
                                   [--budget-s 540] [--camvid ROOT] [--tiny]

For PHGMM (full PostNet) and DeepLab v3, each with the default config's loss (the step ``phgmm
train`` runs, ``phgmm.benchmark.step``), bf16 autocast on CUDA, channels-last, random inputs:

1. kernels per training step: the dispatch counter's kernel-launching operators
   (``phgmm.benchmark.opcount``) and, on CUDA, the kernels ``torch.profiler`` saw in one eager step;
2. training images/s and MFU in each mode: ``eager`` (the trainer's step: fused AdamW, BatchNorm
   counters in one add), ``graphed`` (``train.cuda_graph``: the whole step replayed as one CUDA
   graph), ``compiled`` (``torch.compile``, default mode; slow to compile, so run last and skipped
   when the time budget is spent);
3. inference images/s, BatchNorm folded (as ``phgmm predict`` runs), eager and graphed;
4. graphed against eager: the loss of 20 steps from the same weights on the same batches;
5. the CamVid ResNet-101 epoch time of both models when ``--camvid ROOT`` points at the data (it is
   not on the lent GPU machine unless carried): skipped with a note otherwise.

Each part is written to ``gpu_check.json`` as soon as it is measured, so a run cut short keeps what
it measured. ``--tiny`` (ResNet-18, 128×64, batch 2, 2 steps) with ``--device cpu`` runs the same
code end to end on a CPU, the CUDA-only parts skipped with a note each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from phgmm.benchmark.opcount import count_ops
from phgmm.benchmark.step import step_parts, train_step
from phgmm.benchmark.timing import count_flops, device_peak_flops, sync
from phgmm.conventions import IGNORE_INDEX
from phgmm.engine.inference.graphed import GraphedForward
from phgmm.engine.training.graphed import GraphedTrainStep, training_graph_refusal
from phgmm.io import parse_wxh
from phgmm.models import build_model, fold_batchnorm

MODELS = ("phgmm", "deeplabv3")


class Check:
    """The run's settings, inputs, results and time budget."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dev = torch.device(args.device)
        self.cuda = self.dev.type == "cuda"
        self.amp = torch.bfloat16 if self.cuda else None
        self.mf = torch.channels_last
        self.start = time.perf_counter()
        w, h = args.size
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(args.batch, 3, h, w, generator=g).to(self.dev).contiguous(memory_format=self.mf)
        self.y = torch.randint(0, 12, (args.batch, h, w), generator=g).to(self.dev)
        self.y[:, : max(1, h // 16)] = IGNORE_INDEX
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.result: dict[str, Any] = {
            "settings": {
                "device": str(self.dev),
                "device_name": torch.cuda.get_device_name(self.dev) if self.cuda else "cpu",
                "torch": torch.__version__,
                "backbone": args.backbone,
                "size_wh": list(args.size),
                "batch": args.batch,
                "amp": "bf16" if self.cuda else None,
                "channels_last": True,
                "steps": args.steps,
                "peak_flops": device_peak_flops(self.dev, "bf16") if self.cuda else None,
            },
            "models": {},
            "notes": [],
        }

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.start)

    def note(self, line: str) -> None:
        print(line, flush=True)
        self.result["notes"].append(line)
        self.save()

    def entry(self, name: str) -> dict[str, Any]:
        return self.result["models"].setdefault(name, {})

    def save(self) -> None:
        (self.out / "gpu_check.json").write_text(json.dumps(self.result, indent=1) + "\n")

    def autocast(self) -> Any:
        return torch.autocast("cuda", dtype=self.amp) if self.amp is not None else _Null()

    def model(self, name: str, train: bool = True) -> torch.nn.Module:
        torch.manual_seed(0)
        kwargs = {"postnet": "full" if train else None} if name == "phgmm" else {}
        return build_model(name, backbone=self.args.backbone, **kwargs).to(self.dev, memory_format=self.mf)


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def median_time(fn: Callable[[], Any], dev: torch.device, steps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        sync(dev)
        t = time.perf_counter()
        fn()
        sync(dev)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def eager_step(c: Check, model: torch.nn.Module) -> Callable[[], torch.Tensor]:
    return train_step(model, c.x, c.y, device=c.dev, amp=c.amp, memory_format=c.mf)


def graphed_step(c: Check, model: torch.nn.Module) -> Callable[[], torch.Tensor]:
    p = step_parts(model, device=c.dev, amp=c.amp, memory_format=c.mf)
    graphed = GraphedTrainStep(model, p.loss_fn, p.optimizer, c.dev, c.amp, p.grad_clip, p.takes_labels, c.mf)

    def step() -> torch.Tensor:
        model.train()
        return graphed.step(c.x, c.y)

    return step


def part_kernels(c: Check) -> None:
    for name in MODELS:
        model = c.model(name)
        step = eager_step(c, model)
        step()
        e = c.entry(name)
        counter = count_ops(step)
        e["train_dispatched_ops"], e["train_dispatched_kernels"] = counter.total, counter.total_kernels
        if c.cuda:
            try:
                from torch.autograd import DeviceType
                from torch.profiler import ProfilerActivity, profile

                sync(c.dev)
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    step()
                    sync(c.dev)
                e["train_cuda_kernels_profiled"] = sum(1 for ev in prof.events() if ev.device_type == DeviceType.CUDA)
            except Exception as exc:  # noqa: BLE001 - a profiler failure is a note, not the end of the run
                c.note(f"{name}: torch.profiler failed: {exc!r}")
        e["train_flops"] = count_flops(step)
        c.note(
            f"{name}: {counter.total_kernels} kernel-launching operators per training step "
            f"({e.get('train_cuda_kernels_profiled', 'no profile on a CPU')} CUDA kernels profiled)"
        )
        del model, step
        _free(c)


def part_training(c: Check, mode: str) -> None:
    for name in MODELS:
        if c.left() < 30:
            c.note(f"training {mode}, {name}: skipped, the time budget is spent")
            continue
        model = c.model(name)
        if mode == "graphed":
            why = training_graph_refusal(c.dev, c.amp, model=model, loss_fn=step_parts(model).loss_fn)
            if why:
                c.note(f"training graphed, {name}: skipped: {why}")
                return
            step = graphed_step(c, model)
        elif mode == "compiled":
            if not c.cuda and not c.args.compile_on_cpu:
                c.note("training compiled: skipped on a CPU (--compile-on-cpu runs it)")
                return
            step = eager_step(c, torch.compile(model))
        else:
            step = eager_step(c, model)
        t0 = time.perf_counter()
        step()
        sync(c.dev)
        first = time.perf_counter() - t0
        t = median_time(step, c.dev, c.args.steps)
        e = c.entry(name)
        e[f"train_{mode}_first_s"], e[f"train_{mode}_step_s"] = first, t
        e[f"train_{mode}_images_per_s"] = c.args.batch / t
        peak = c.result["settings"]["peak_flops"]
        if peak and e.get("train_flops"):
            e[f"train_{mode}_mfu"] = e["train_flops"] / t / peak
        c.note(
            f"training {mode}, {name}: first step {first:.2f} s, median {t * 1e3:.1f} ms "
            f"({c.args.batch / t:.1f} images/s{_mfu(e, mode)})"
        )
        del model, step
        _free(c)


def part_inference(c: Check) -> None:
    for name in MODELS:
        model = fold_batchnorm(c.model(name, train=False).eval()).to(c.dev, memory_format=c.mf)
        e = c.entry(name)
        eager = GraphedForward(model, c.dev, c.amp, enabled=False)
        e["infer_eager_s"] = median_time(lambda f=eager: f(c.x), c.dev, max(10, c.args.steps))
        if c.cuda:
            graphed = GraphedForward(model, c.dev, c.amp)
            e["infer_graphed_s"] = median_time(lambda f=graphed: f(c.x), c.dev, max(10, c.args.steps), warmup=2)
            with torch.no_grad(), c.autocast():
                ref = model(c.x).float()
            got = graphed(c.x).float()
            e["infer_graphed_max_abs_diff"] = float((got - ref).abs().max())
        for mode in ("eager", "graphed"):
            if f"infer_{mode}_s" in e:
                e[f"infer_{mode}_images_per_s"] = c.args.batch / e[f"infer_{mode}_s"]
        c.note(
            f"inference (folded), {name}: eager {e['infer_eager_s'] * 1e3:.1f} ms"
            + (f", graphed {e['infer_graphed_s'] * 1e3:.1f} ms" if "infer_graphed_s" in e else ", graphed: CUDA only")
        )
        del model
        _free(c)


def part_loss_match(c: Check, steps: int = 20) -> None:
    """PHGMM from the same weights on the same batches: eager and graphed losses, step by step."""
    if not c.cuda:
        c.note("graphed vs eager losses: CUDA only, skipped")
        return
    if c.left() < 60:
        c.note("graphed vs eager losses: skipped, the time budget is spent")
        return
    g = torch.Generator(device=c.dev).manual_seed(1)
    batches = [
        (
            torch.randn(c.x.shape, generator=g, device=c.dev).contiguous(memory_format=c.mf),
            torch.randint(0, 12, c.y.shape, generator=g, device=c.dev),
        )
        for _ in range(steps)
    ]
    losses = {}
    for mode in ("eager", "graphed"):
        model = c.model("phgmm")
        step = graphed_step(c, model) if mode == "graphed" else eager_step(c, model)
        values = []
        for x, y in batches:
            c.x.copy_(x)
            c.y.copy_(y)
            values.append(float(step()[0]))
        losses[mode] = values
        del model, step
        _free(c)
    rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses["graphed"], losses["eager"], strict=True)]
    c.result["loss_match"] = {
        "steps": steps,
        "eager": losses["eager"],
        "graphed": losses["graphed"],
        "max_relative_difference": max(rel),
        "first_step_relative_difference": rel[0],
    }
    c.note(
        f"graphed vs eager losses over {steps} steps: first step differs by {rel[0]:.2e}, "
        f"at most {max(rel):.2e} (relative; bf16 rounds to about 4e-3)"
    )


def part_camvid(c: Check) -> None:
    root = c.args.camvid
    if not root or not Path(root).is_dir():
        c.note(
            "CamVid epoch time: skipped, no CamVid data on this machine (--camvid ROOT; the data does not "
            "travel to the lent GPU unless carried)"
        )
        return
    if c.left() < 120:
        c.note("CamVid epoch time: skipped, the time budget is spent")
        return
    from phgmm.config import apply_overrides, load_config
    from phgmm.engine.training.trainer import Trainer

    for name in MODELS:
        cfg = apply_overrides(
            load_config("camvid"),
            [
                f"data.root={root}",
                f"model.name={name}",
                f"model.backbone={c.args.backbone}",
                "train.epochs=2",
                "train.val_every=0",
                f"output_dir={c.out / ('camvid_' + name)}",
                "train.amp=bf16",
            ],
        )
        record = Trainer(cfg, overwrite=True, progress=False).fit()["history"][-1]
        c.entry(name)["camvid_epoch_s"] = record["epoch_seconds"]
        c.note(f"CamVid {name}: second epoch {record['epoch_seconds']:.2f} s")


def _mfu(e: dict[str, Any], mode: str) -> str:
    v = e.get(f"train_{mode}_mfu")
    return "" if v is None else f", MFU {100 * v:.1f} %"


def _free(c: Check) -> None:
    if c.cuda:
        torch.cuda.empty_cache()


def summary(c: Check) -> str:
    s, m = c.result["settings"], c.result["models"]
    lines = [
        f"# GPU check: {s['device_name']}, torch {s['torch']}",
        "",
        f"{s['backbone']}, {s['size_wh'][0]}×{s['size_wh'][1]}, batch {s['batch']}, amp {s['amp']}, "
        f"channels-last, median of {s['steps']} steps",
        "",
        "| model | kernels/step (dispatched) | CUDA kernels/step (profiled) | mode | train images/s | MFU | "
        "first step s |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for name, e in m.items():
        for mode in ("eager", "graphed", "compiled"):
            if f"train_{mode}_step_s" not in e:
                continue
            mfu = e.get(f"train_{mode}_mfu")
            lines.append(
                f"| {name} | {e.get('train_dispatched_kernels', '-')} | {e.get('train_cuda_kernels_profiled', '-')} "
                f"| {mode} | {e[f'train_{mode}_images_per_s']:.1f} | "
                f"{'-' if mfu is None else f'{100 * mfu:.1f} %'} | {e[f'train_{mode}_first_s']:.2f} |"
            )
    lines += ["", "| model | inference images/s eager (folded) | graphed |", "|---|---:|---:|"]
    for name, e in m.items():
        if "infer_eager_images_per_s" in e:
            lines.append(
                f"| {name} | {e['infer_eager_images_per_s']:.1f} | "
                f"{round(e['infer_graphed_images_per_s'], 1) if 'infer_graphed_images_per_s' in e else '-'} |"
            )
    p, d = m.get("phgmm", {}), m.get("deeplabv3", {})
    ratios = []
    for mode in ("eager", "graphed", "compiled"):
        a, b = p.get(f"train_{mode}_images_per_s"), d.get(f"train_{mode}_images_per_s")
        if a and b:
            ratios.append(f"| PHGMM ÷ DeepLab v3 training images/s, {mode} | {a / b:.3f} | ≥ 1.5 |")
    for mode in ("eager", "graphed"):
        a, b = p.get(f"infer_{mode}_s"), d.get(f"infer_{mode}_s")
        if a and b:
            ratios.append(f"| PHGMM ÷ DeepLab v3 inference time, {mode} | {a / b:.3f} | ≤ 0.4 |")
    if ratios:
        lines += ["", "| ratio | value | target |", "|---|---:|---|", *ratios]
    if "loss_match" in c.result:
        lm = c.result["loss_match"]
        lines += [
            "",
            f"graphed vs eager loss over {lm['steps']} steps: max relative difference "
            f"{lm['max_relative_difference']:.2e} (first step {lm['first_step_relative_difference']:.2e})",
        ]
    lines += ["", "Notes:", *[f"- {n}" for n in c.result["notes"]]]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--backbone", default="resnet101")
    p.add_argument("--size", type=parse_wxh, default=(768, 384), help="W×H")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement (median)")
    p.add_argument("--modes", default="eager,graphed,compiled")
    p.add_argument("--budget-s", type=float, default=540, help="skip the remaining parts after this many seconds")
    p.add_argument("--camvid", default=None, help="CamVid root for the epoch times (skipped without)")
    p.add_argument("--compile-on-cpu", action="store_true")
    p.add_argument("--tiny", action="store_true", help="ResNet-18, 128×64, batch 2, 2 steps: the CPU dry run")
    args = p.parse_args()
    if args.tiny:
        args.backbone, args.size, args.batch, args.steps = "resnet18", (128, 64), 2, 2
    c = Check(args)
    print(
        f"gpu_check on {c.result['settings']['device_name']}: {args.backbone} {args.size[0]}x{args.size[1]}, "
        f"batch {args.batch}, modes {args.modes}, budget {args.budget_s:.0f} s",
        flush=True,
    )
    parts: list[tuple[str, Callable[[], None]]] = [("kernels", lambda: part_kernels(c))]
    modes = [m for m in args.modes.split(",") if m]
    parts += [(f"training {m}", (lambda m=m: part_training(c, m))) for m in modes if m != "compiled"]
    parts += [
        ("inference", lambda: part_inference(c)),
        ("loss match", lambda: part_loss_match(c)),
        ("camvid", lambda: part_camvid(c)),
    ]
    if "compiled" in modes:  # last: compiling can take minutes
        parts.append(("training compiled", lambda: part_training(c, "compiled")))
    for label, run in parts:
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - one failing part must not lose the others
            c.note(f"{label}: failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        c.save()
    (c.out / "gpu_check.md").write_text(summary(c))
    print(summary(c), flush=True)


if __name__ == "__main__":
    main()
