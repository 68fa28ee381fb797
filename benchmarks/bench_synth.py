"""Synthetic generator throughput on ONE core (rendering + PNG writing).

.venv/bin/python benchmarks/bench_synth.py [--num 40] [--size 768x384] [--format cityscapes]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402

cv2.setNumThreads(1)

from phgmm.data.synthetic import generate_dataset, render_scene  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num", type=int, default=40)
    ap.add_argument("--size", default="768x384")
    ap.add_argument("--format", default="cityscapes", choices=("cityscapes", "synthia"))
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    import numpy as np

    render_scene(np.random.default_rng(0), (w, h))  # warm-up (noise bank)
    with tempfile.TemporaryDirectory() as d:
        t0, c0 = time.perf_counter(), time.process_time()
        generate_dataset(d, args.num, (w, h), seed=0, fmt=args.format, progress=False)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
    # CPU time is the fair one-core figure on a shared machine; wall time is what you wait
    print(
        f"synth {args.format} {w}x{h}: {args.num} images, wall {dt:.2f} s = {args.num / dt:.1f} images/s, "
        f"CPU {dc:.2f} s = {args.num / dc:.1f} images/s per core"
    )


if __name__ == "__main__":
    main()
