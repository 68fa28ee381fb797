"""Time the Monte-Carlo I(x; z) estimate and its pairwise bounds (phgmm evaluate's information
measures) on a demo-sized mixture posterior, at the default chunk size against 2^24-element chunks.

    python benchmarks/bench_latent_mi.py [--n 100] [--threads 1]

Prints wall and system seconds and minor page faults of each, and the ratio of the two times (the
default is measured first: glibc's mmap threshold only rises within a process).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from phgmm.metrics.latent import latent_mutual_information, mutual_information_bounds


def posterior(n: int, k: int = 12, d: int = 64) -> MixtureSameFamily:
    """N near-identical K-component posteriors of D dimensions (a collapsed z, as trained here)."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(n, k, d, generator=g, dtype=torch.float64) * 0.01
    logvar = torch.randn(n, k, d, generator=g, dtype=torch.float64) * 0.01
    pi = torch.softmax(torch.randn(n, k, generator=g, dtype=torch.float64), -1)
    comp = Independent(Normal(mu, torch.exp(0.5 * logvar), validate_args=False), 1, validate_args=False)
    return MixtureSameFamily(Categorical(probs=pi, validate_args=False), comp, validate_args=False)


def measure(q, max_elements: int | None) -> tuple[float, float, int, float]:
    before, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    mi = latent_mutual_information(q, 16, 0, max_elements=max_elements)["mi"]
    mutual_information_bounds(q, max_elements=max_elements)
    wall, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
    return wall, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt, mi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="images (the demo's validation split: 100)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    q = posterior(args.n)
    rows = {}
    for name, max_elements in (("default chunks", None), ("2^24-element chunks", 2**24)):
        rows[name] = measure(q, max_elements)
        wall, sys_s, faults, mi = rows[name]
        print(f"{name}: {wall:.2f} s ({sys_s:.2f} s in the kernel), {faults} minor page faults, I(x; z) {mi:.6f}")
    print(f"2^24-element chunks / default: {rows['2^24-element chunks'][0] / rows['default chunks'][0]:.2f}x the time")


if __name__ == "__main__":
    main()
