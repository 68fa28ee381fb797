"""torch.compile on and off for one PHGMM training step (GPU): is compiling worth it?

    python benchmarks/compile_check.py [--backbone resnet101] [--size 768x384] [--batch 16] [--steps 5]

Times eager and compiled training steps (forward, PHGMMLoss, backward, AdamW) in the same run,
bf16 autocast on CUDA, and prints the compile time and the step-time ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from phgmm import PHGMM, PHGMMLoss
from phgmm.io import parse_wxh


def step_fn(model, loss_fn, opt, x, y, amp):
    def step():
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            terms = loss_fn(model(x, y), y)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
    return step


def timed(step, steps: int, cuda: bool) -> list[float]:
    out = []
    for _ in range(steps):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet101")
    p.add_argument("--size", type=parse_wxh, default=(768, 384))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--postnet", default="full")
    args = p.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = dev.type == "cuda"
    w, h = args.size
    x = torch.randn(args.batch, 3, h, w, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 12, (args.batch, h, w), device=dev)
    results = {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = PHGMM(backbone=args.backbone, postnet=args.postnet).to(dev, memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        net = torch.compile(model) if name == "compiled" else model
        step = step_fn(net, PHGMMLoss(), opt, x, y, cuda)
        t0 = time.perf_counter()
        step()                                   # first call: compilation (or warm-up)
        if cuda:
            torch.cuda.synchronize()
        first = time.perf_counter() - t0
        times = timed(step, args.steps, cuda)
        results[name] = statistics.median(times)
        print(f"{name:9s} first step {first:7.2f} s, median step {results[name]:.4f} s "
              f"({args.batch / results[name]:.1f} images/s)", flush=True)
    print(f"compiled ÷ eager step time: {results['compiled'] / results['eager']:.3f}")


if __name__ == "__main__":
    main()
