"""DataLoader throughput with augmentation at 768x384 (2 workers) on a small synthetic set.

.venv/bin/python benchmarks/bench_loader.py [--num 32] [--workers 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from phgmm.data import build_dataset
from phgmm.data.synthetic import generate_dataset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        generate_dataset(d, args.num, (768, 384), seed=0, val_fraction=0.0, progress=False)
        ds = build_dataset("cityscapes", d, "train", size=(768, 384), augment=True, seed=0)
        dl = DataLoader(
            ds,
            batch_size=args.batch,
            shuffle=True,
            num_workers=args.workers,
            generator=torch.Generator().manual_seed(0),
        )
        n, t0 = 0, time.perf_counter()
        for epoch in range(args.epochs):
            ds.set_epoch(epoch)
            for x, _y in dl:
                n += x.shape[0]
        dt = time.perf_counter() - t0
    print(
        f"loader cityscapes-format 768x384 augment=True workers={args.workers} batch={args.batch}: "
        f"{n} images in {dt:.2f} s = {n / dt:.1f} images/s (includes worker start-up)"
    )


if __name__ == "__main__":
    main()
