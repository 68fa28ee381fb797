"""torch.compile modes against eager for PHGMM's training step and inference (GPU): which is worth it?

    python benchmarks/compile_check.py [--what train,infer] [--modes eager,default,reduce-overhead]
                                       [--backbone resnet101] [--size 768x384] [--batch 16] [--steps 5]

``train``: one PHGMM training step (forward, PHGMMLoss with the full PostNet, backward, AdamW): the
step ``phgmm train`` runs (:func:`phgmm.engine.training.step.training_step`, its parts built for the
default config by :func:`phgmm.benchmark.step.step_parts`), called through the compiled module as
``phgmm train`` does with ``train.compile: true`` and ``train.compile_mode``. ``infer``: an
eval-mode forward of PHGMM and of DeepLab v3, BatchNorm folded (as ``phgmm predict`` runs them), so
that the PHGMM ÷ DeepLab v3 ratio can be read under each mode. ``reduce-overhead`` replays the
compiled graphs as CUDA graphs, which removes the per-kernel launch cost that bounds PHGMM's step
(docs/results/roofline). bf16 autocast on CUDA; prints the first call's time (compilation) and the
median of ``--steps`` timed calls per mode, and the ratios to eager.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from collections.abc import Callable

import torch

from phgmm import PHGMM
from phgmm.benchmark.step import step_parts
from phgmm.benchmark.timing import sync, time_interleaved
from phgmm.conventions import IGNORE_INDEX
from phgmm.engine.training.step import training_step
from phgmm.io import parse_wxh
from phgmm.models import build_model, fold_batchnorm


def train_step(model: torch.nn.Module, mode: str, x: torch.Tensor, y: torch.Tensor, amp: bool) -> Callable[[], None]:
    """The training step ``phgmm train`` runs, for the default config, with ``model`` called through
    :func:`compiled` (bf16 autocast when ``amp``); steps numbered from 0 as the trainer numbers them."""
    model.train()
    parts = step_parts(model, device=x.device, amp=torch.bfloat16 if amp else None, memory_format=torch.channels_last)
    parts = dataclasses.replace(parts, net=compiled(model, mode))
    count = itertools.count()

    def step():
        training_step(parts, x, y, step=next(count))

    return step


def infer_step(model, x, amp: bool) -> Callable[[], None]:
    def step():
        with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            model(x)

    return step


def timed(step: Callable[[], None], steps: int, device: torch.device) -> tuple[float, float]:
    """(first call's seconds — the compilation —, median of ``steps`` further calls)."""
    sync(device)
    t = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - t
    return first, time_interleaved({"step": step}, device, steps)["step"]


def compiled(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    return model if mode == "eager" else torch.compile(model, mode=mode)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--what", default="train,infer", help="train, infer or both (comma-separated)")
    p.add_argument(
        "--modes",
        default="eager,default,reduce-overhead",
        help="eager and torch.compile modes to compare (comma-separated)",
    )
    p.add_argument("--backbone", default="resnet101")
    p.add_argument("--size", type=parse_wxh, default=(768, 384), help="W×H")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--postnet", default="full")
    args = p.parse_args()
    modes = args.modes.split(",")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = dev.type == "cuda"
    w, h = args.size
    x = torch.randn(args.batch, 3, h, w, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 12, (args.batch, h, w), device=dev)
    y[:, : h // 16] = IGNORE_INDEX
    print(
        f"{dev}{' ' + torch.cuda.get_device_name() if cuda else ''}, torch {torch.__version__}, "
        f"{args.backbone}, {w}×{h}, batch {args.batch}",
        flush=True,
    )
    results: dict[str, float] = {}
    for what in args.what.split(","):
        names = ["phgmm"] if what == "train" else ["phgmm", "deeplabv3"]
        for name in names:
            for mode in modes:
                torch.manual_seed(0)
                if what == "train":
                    model = PHGMM(backbone=args.backbone, postnet=args.postnet).to(
                        dev, memory_format=torch.channels_last
                    )
                    step = train_step(model, mode, x, y, cuda)
                else:
                    kwargs = {"postnet": None} if name == "phgmm" else {}
                    model = build_model(name, backbone=args.backbone, **kwargs).eval()
                    model = fold_batchnorm(model).to(dev, memory_format=torch.channels_last)
                    step = infer_step(compiled(model, mode), x, cuda)
                first, med = timed(step, args.steps, dev)
                key = f"{what} {name} {mode}"
                results[key] = med
                print(
                    f"{key:40s} first call {first:7.2f} s, median {med * 1e3:8.2f} ms "
                    f"({args.batch / med:7.1f} images/s)",
                    flush=True,
                )
                del model, step
                if cuda:
                    torch.cuda.empty_cache()
    print()
    for key, t in results.items():
        what, name, mode = key.split(" ")
        base = results.get(f"{what} {name} eager")
        if base and mode != "eager":
            print(f"{what} {name}: {mode} ÷ eager = {t / base:.3f}")
    for mode in modes:
        a, b = results.get(f"infer phgmm {mode}"), results.get(f"infer deeplabv3 {mode}")
        if a and b:
            print(f"infer, {mode}: phgmm ÷ deeplabv3 = {a / b:.3f}")


if __name__ == "__main__":
    main()
