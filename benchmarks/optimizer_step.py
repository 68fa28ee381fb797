"""AdamW's three implementations on PHGMM's parameters: for-loop, foreach and fused (CPU or GPU).

    python benchmarks/optimizer_step.py [--backbone resnet101] [--postnet full] [--iters 10] [--device cpu|cuda]

Times one ``optimizer.step()`` over PHGMM's parameters (with PostNet, as in training; random
gradients) for each implementation, round-robin, and prints the medians and their ratios to the
for-loop step. ``phgmm train`` uses the fused one (``phgmm.engine.training.optimizer.build_optimizer``).
"""

from __future__ import annotations

import argparse

import torch

from phgmm import PHGMM
from phgmm.benchmark.timing import time_interleaved
from phgmm.engine.training.optimizer import parameter_groups

IMPLEMENTATIONS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet101")
    p.add_argument("--postnet", default="full")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = PHGMM(backbone=args.backbone, postnet=args.postnet).to(dev)
    for param in model.parameters():
        param.grad = torch.randn_like(param) * 1e-3
    steps = {}
    for name, kwargs in IMPLEMENTATIONS.items():
        opt = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-4, **kwargs)
        steps[name] = opt.step
        opt.step()  # allocates the moments
    t = time_interleaved(steps, dev, args.iters)
    n = sum(param.numel() for param in model.parameters())
    print(
        f"{dev}, torch {torch.__version__}, PHGMM {args.backbone} + PostNet {args.postnet}: {n / 1e6:.1f} M parameters"
    )
    for name, seconds in t.items():
        print(f"{name:9s} {seconds * 1e3:8.2f} ms  ({seconds / t['for-loop']:.2f}× the for-loop step)")


if __name__ == "__main__":
    main()
