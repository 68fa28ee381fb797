"""Where a PHGMM training step spends GPU time: torch.profiler's top operators by CUDA time, and
how many kernels one step launches (many small kernels = a launch-bound step).

    python benchmarks/profile_step.py [--backbone resnet101] [--size 768x384] [--batch 16]
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from phgmm import PHGMM, PHGMMLoss
from phgmm.engine.training.optimizer import build_optimizer
from phgmm.io import parse_wxh


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet101")
    p.add_argument("--size", type=parse_wxh, default=(768, 384))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--postnet", default="full")
    p.add_argument("--rows", type=int, default=25)
    args = p.parse_args()
    dev = torch.device("cuda")
    w, h = args.size
    x = torch.randn(args.batch, 3, h, w, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 12, (args.batch, h, w), device=dev)
    model = PHGMM(backbone=args.backbone, postnet=args.postnet).to(dev, memory_format=torch.channels_last)
    opt = build_optimizer(model, lr=1e-4, weight_decay=0.01)  # as phgmm train builds it
    loss_fn = PHGMMLoss()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            with record_function("forward+loss"):
                terms = loss_fn(model(x, y), y)
        opt.zero_grad(set_to_none=True)
        with record_function("backward"):
            terms["total"].backward()
        with record_function("optimizer"):
            opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    print(events.table(sort_by="cuda_time_total", row_limit=args.rows))
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy = sum(e.device_time for e in kernels) / 1e3
    print(f"{len(kernels)} CUDA kernels in one step, {busy:.1f} ms of kernel time")


if __name__ == "__main__":
    main()
