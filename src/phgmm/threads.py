"""How many threads a command runs, so that it does not oversubscribe a shared machine.

A laptop, a shared server or a CI box often has as few cores as PyTorch starts threads for, and
other work beside phgmm. Three things made a 2-core machine crawl (docs/performance.md, "On a
shared machine"): PyTorch's intra-op threads counted every core although DataLoader worker
processes need some; the count came from the cores the machine has rather than those this
process may use (an affinity mask, a container's CPU quota); and OpenMP threads spun while
waiting for one another, burning the time slices a busy neighbour needed and waiting on a
thread the scheduler had paused.

So, unless the user says otherwise (``--threads N``, the config's ``threads`` key, or
``OMP_NUM_THREADS`` in the environment):

* intra-op threads = :func:`available_cores` − loader worker processes, at least 1, never more than
  PyTorch's own default;
* OpenMP waits passively (``OMP_WAIT_POLICY=PASSIVE``, set by the ``phgmm`` command before PyTorch
  loads; see :func:`prefer_passive_wait`).

Nothing here imports torch at module level: the CLI calls :func:`prefer_passive_wait` before any
module that loads it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "available_cores",
    "cgroup_cpu_limit",
    "intra_op_threads",
    "thread_budget",
    "prefer_passive_wait",
    "user_set_threads",
]

_CGROUP = Path("/sys/fs/cgroup")


def _own_cgroup_dirs(root: Path = _CGROUP) -> list[Path]:
    """The folders that may hold this process's CPU quota: its own cgroup (v2 and v1), then the root."""
    dirs = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, rel = (line.split(":", 2) + ["", ""])[:3]
        rel = rel.lstrip("/")
        if controllers == "":  # v2: 0::/path
            dirs.append(root / rel)
        elif "cpu" in controllers.split(","):  # v1: 3:cpu,cpuacct:/path
            dirs += [root / "cpu" / rel, root / "cpu,cpuacct" / rel]
    return dirs + [root, root / "cpu", root / "cpu,cpuacct"]


def cgroup_cpu_limit(root: Path = _CGROUP) -> float | None:
    """The CPU quota of this process's control group in cores (e.g. 1.5 for ``docker --cpus 1.5``),
    or None without one. Reads cgroup v2's ``cpu.max`` and v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``."""
    for folder in _own_cgroup_dirs(root):
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            if quota != "max":
                return int(quota) / int(period)
            return None
        except (OSError, ValueError):
            pass
        try:
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
            return quota / period if quota > 0 and period > 0 else None
        except (OSError, ValueError):
            pass
    return None


def available_cores() -> int:
    """The cores this process may use: its CPU affinity (``taskset``, a batch scheduler's
    allocation), capped by a container's CPU quota rounded up; at least 1. ``os.cpu_count()`` counts
    the machine's cores instead, which is what oversubscribes a container."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        n = min(n, math.ceil(limit))
    return max(1, n)


def user_set_threads(environ: MutableMapping[str, str] = os.environ) -> bool:
    """True when the environment fixes OpenMP's thread count (``OMP_NUM_THREADS``): the user has
    spoken, and the automatic choice steps aside."""
    return bool(environ.get("OMP_NUM_THREADS", "").strip())


def intra_op_threads(requested: int | None = None, workers: int = 0, default: int | None = None) -> int:
    """The intra-op thread count to run with: ``requested`` when given, else the available cores
    less the ``workers`` (loader processes) beside them, at least 1 and at most ``default``
    (PyTorch's own choice, which counts physical cores)."""
    if requested is not None:
        if int(requested) < 1:
            raise ValueError(f"threads must be at least 1, got {requested}")
        return int(requested)
    n = max(1, available_cores() - max(0, int(workers)))
    return min(n, default) if default else n


@contextmanager
def thread_budget(requested: int | None = None, workers: int = 0) -> Iterator[int]:
    """Run the body with :func:`intra_op_threads` PyTorch threads (restored afterwards, so that an
    API call leaves the caller's setting as it was); yields the count. With ``OMP_NUM_THREADS`` set
    and nothing requested, PyTorch's count is left alone."""
    import torch

    before = torch.get_num_threads()
    n = before if requested is None and user_set_threads() else intra_op_threads(requested, workers, before)
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def prefer_passive_wait(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Make OpenMP threads sleep instead of spinning while they wait (``OMP_WAIT_POLICY=PASSIVE``),
    unless the user chose a policy or a spin count (``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME``). Takes
    effect only before the OpenMP runtime starts, i.e. before torch is imported; returns whether
    it set the policy."""
    if any(environ.get(k, "").strip() for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")):
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
