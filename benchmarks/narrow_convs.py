"""FLOP rate of PHGMM's narrow decoder convolutions against the encoder's, on this machine.

    python benchmarks/narrow_convs.py [--iters 200] [--device cpu|cuda]

Times single 3×3 convolutions (batch 1, channels-last and contiguous, round-robin, median per
call) at the decoder's width (3C = 36 channels) on the map sizes of a 768×384 input (H/4 … H/32),
beside 32- and 48-channel ones and the encoder's 256-channel one at H/16, and prints microseconds
and GFLOP/s: why PHGMM's own layers run at a lower rate per FLOP than its encoder's
(docs/design.md §8).
"""

from __future__ import annotations

import argparse

import torch

from phgmm.benchmark.timing import time_interleaved

CASES = ((36, 96, 192), (36, 48, 96), (36, 24, 48), (36, 12, 24), (32, 24, 48), (48, 24, 48), (256, 24, 48))


def conv_calls(channels: int, h: int, w: int, device: torch.device) -> dict[str, object]:
    """One channels→channels 3×3 convolution on a 1×channels×h×w map, as a no-argument call per
    memory format."""
    calls = {}
    for name, fmt in (("channels-last", torch.channels_last), ("contiguous", torch.contiguous_format)):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1).eval().to(device, memory_format=fmt)
        x = torch.randn(1, channels, h, w, device=device).contiguous(memory_format=fmt)

        def call(conv=conv, x=x) -> None:
            with torch.no_grad():
                conv(x)

        for _ in range(20):  # warm-up: primitive creation, caches
            call()
        calls[name] = call
    return calls


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
        t = time_interleaved(conv_calls(c, h, w, dev), dev, args.iters)
        flops = 2 * h * w * c * c * 9
        a, b = t["channels-last"], t["contiguous"]
        print(f"| {c} | {h}×{w} | {a * 1e6:.1f} | {flops / a / 1e9:.0f} | {b * 1e6:.1f} | {flops / b / 1e9:.0f} |")


if __name__ == "__main__":
    main()
