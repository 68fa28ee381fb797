"""FLOP rate of PHGMM's narrow decoder convolutions against the encoder's, on this machine.

    python benchmarks/narrow_convs.py [--iters 200] [--device cpu|cuda]

Times single 3×3 convolutions (batch 1, channels-last and contiguous) at the decoder's width
(3C = 36 channels) on the map sizes of a 768×384 input (H/4 … H/32), beside 32- and 48-channel
ones and the encoder's 256-channel one at H/16, and prints microseconds and GFLOP/s: why PHGMM's
own layers run at a lower rate per FLOP than its encoder's (docs/design.md §8).
"""

from __future__ import annotations

import argparse
import time

import torch

CASES = ((36, 96, 192), (36, 48, 96), (36, 24, 48), (36, 12, 24), (32, 24, 48), (48, 24, 48), (256, 24, 48))


def timed_conv(channels: int, h: int, w: int, channels_last: bool, iters: int,
               device: torch.device) -> tuple[float, float]:
    """(seconds per call, FLOP/s) of a channels→channels 3×3 convolution on a 1×channels×h×w map."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).eval().to(device)
    x = torch.randn(1, channels, h, w, device=device)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for _ in range(20):
            conv(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iters):
            conv(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / iters
    return seconds, 2 * h * w * channels * channels * 9 / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    print(f"{dev}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| channels | map | channels-last µs | GFLOP/s | contiguous µs | GFLOP/s |\n|---:|---|---:|---:|---:|---:|")
    for c, h, w in CASES:
        a = timed_conv(c, h, w, True, args.iters, dev)
        b = timed_conv(c, h, w, False, args.iters, dev)
        print(f"| {c} | {h}×{w} | {a[0] * 1e6:.1f} | {a[1] / 1e9:.0f} | {b[0] * 1e6:.1f} | {b[1] / 1e9:.0f} |")


if __name__ == "__main__":
    main()
