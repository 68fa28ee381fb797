"""phgmm on a shared machine: idle, then beside 1 and 2 busy processes, before and after the thread policy.

    .venv/bin/python benchmarks/shared_machine.py            # ~10 minutes on 2 cores
    .venv/bin/python benchmarks/shared_machine.py --quick    # ~3 minutes: fewer steps and images, idle and 1 busy
    .venv/bin/python benchmarks/shared_machine.py --demo     # also `make demo`'s steps beside 2 busy (~15+ min)

What it times (each a fresh ``python -m phgmm`` process, as a user runs it):

* ``train``: one demo-size training epoch (configs/demo.yaml: ResNet-18 PHGMM at 256×128, batch 8,
  ``data.num_workers=1``; 10 steps, no validation). The figure is the epoch's own time from
  ``history.json`` (``epoch_seconds``), without start-up; the command's wall time is in the JSON.
* ``predict``: ``phgmm predict`` of that checkpoint on 32 synthetic images of 512×256 (wall time of
  the whole command, start-up included, as a user waits for it).
* ``demo`` (``--demo``): ``make demo``'s three commands (synth 500 scenes, train, evaluate), wall time.

Modes (``--modes``; default ``before,after``):

* ``before``: what phgmm did until issue 22: PyTorch's default thread count (every core, here
  ``--threads <torch default>``) beside the loader worker, and libgomp's default wait (spin about
  3 ms, then sleep: ``GOMP_SPINCOUNT=300000`` reproduces it and stops phgmm from setting PASSIVE);
* ``after``: the defaults now: intra-op threads = cores − loader workers, ``OMP_WAIT_POLICY=PASSIVE``;
* ``threads-only``: the new thread count with the old spinning wait;
* ``passive-only``: the old thread count with the passive wait.

Busy neighbours are pure-Python spin loops (``while True: pass``), one process each, started before
a measurement and killed after it. Every row prints the 1-minute load average when it started:
on a machine others use, figures above the table's idle load are polluted; rerun when it is quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
#: variables that would decide the thread count or the wait policy instead of the mode under test
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def phgmm(*args: str, env: dict[str, str], log: Path) -> float:
    """Run ``phgmm ARGS`` to the end; its wall time in seconds (output appended to ``log``)."""
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"\n$ phgmm {' '.join(args)}\n")
        fh.flush()
        rc = subprocess.call([PY, "-m", "phgmm", *args], stdout=fh, stderr=subprocess.STDOUT, env=env)
    if rc != 0:
        raise SystemExit(f"phgmm {args[0]} failed (exit {rc}); see {log}")
    return time.perf_counter() - t0


def torch_default_threads() -> int:
    """PyTorch's own intra-op count in a clean process (what phgmm used before issue 22)."""
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_ENV}
    out = subprocess.run(
        [PY, "-c", "import torch; print(torch.get_num_threads())"], env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


def mode_env(mode: str, old_threads: int) -> tuple[dict[str, str], list[str]]:
    """The environment and extra phgmm options of a mode."""
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    spin = {"GOMP_SPINCOUNT": "300000"}  # libgomp's default wait, and phgmm leaves it
    threads = ["--threads", str(old_threads)]
    return {
        "before": ({**env, **spin}, threads),
        "after": (env, []),
        "threads-only": ({**env, **spin}, []),
        "passive-only": ({**env, "OMP_WAIT_POLICY": "PASSIVE"}, threads),
    }[mode]


class Busy:
    """``n`` processes spinning in pure Python while the body runs."""

    def __init__(self, n: int) -> None:
        self.n, self.procs = n, []

    def __enter__(self) -> Busy:
        self.procs = [subprocess.Popen([PY, "-c", "while True: pass"]) for _ in range(self.n)]
        time.sleep(0.5 if self.n else 0)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.wait()


def load1() -> float:
    return os.getloadavg()[0]


def prepare(work: Path, images: int, log: Path) -> dict[str, Path]:
    """The training data (demo size), a checkpoint, and the predict images (512×256)."""
    env = mode_env("after", 1)[0]
    data, big = work / "data", work / "images512"
    phgmm(
        "synth",
        "--out",
        str(data),
        "--num",
        "100",
        "--size",
        "256x128",
        "--seed",
        "0",
        "--no-progress",
        env=env,
        log=log,
    )
    phgmm(
        "synth",
        "--out",
        str(big),
        "--num",
        str(images),
        "--size",
        "512x256",
        "--seed",
        "1",
        "--val-fraction",
        "0",
        "--no-progress",
        env=env,
        log=log,
    )
    run = work / "ckpt"
    phgmm(
        "train",
        "--config",
        "demo",
        "--set",
        f"data.root={data}",
        "--out",
        str(run),
        "--set",
        "train.epochs=1",
        "--set",
        "train.max_steps_per_epoch=2",
        "--set",
        "train.val_every=0",
        "--no-progress",
        env=env,
        log=log,
    )
    return {"data": data, "images": big / "leftImg8bit", "checkpoint": run / "checkpoints" / "last.pt"}


def time_train(
    paths: dict[str, Path], steps: int, env: dict[str, str], extra: list[str], out: Path, log: Path
) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    wall = phgmm(
        "train",
        "--config",
        "demo",
        "--set",
        f"data.root={paths['data']}",
        "--out",
        str(out),
        "--set",
        "train.epochs=1",
        "--set",
        f"train.max_steps_per_epoch={steps}",
        "--set",
        "train.val_every=0",
        "--no-progress",
        *extra,
        env=env,
        log=log,
    )
    epoch = json.loads((out / "history.json").read_text())[-1]["epoch_seconds"]
    return {"seconds": float(epoch), "wall": wall}


def time_predict(
    paths: dict[str, Path], env: dict[str, str], extra: list[str], out: Path, log: Path
) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    wall = phgmm(
        "predict",
        str(paths["images"]),
        "--checkpoint",
        str(paths["checkpoint"]),
        "--out",
        str(out),
        "--no-progress",
        *extra,
        env=env,
        log=log,
    )
    return {"seconds": wall, "wall": wall}


def time_demo(work: Path, env: dict[str, str], extra: list[str], log: Path, limit: float) -> dict[str, float]:
    """``make demo``'s three commands, stopped (and reported as > limit) past ``limit`` seconds."""
    data, run = work / "demo-data", work / "demo-run"
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    steps = [
        ["synth", "--out", str(data), "--num", "500", "--size", "256x128", "--seed", "0", "--no-progress", *extra],
        ["train", "--config", "demo", "--set", f"data.root={data}", "--out", str(run), "--no-progress", *extra],
        ["evaluate", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--out", str(run), "--no-progress", *extra],
    ]
    for args in steps:
        left = limit - (time.perf_counter() - t0)
        with open(log, "a") as fh:
            fh.write(f"\n$ phgmm {' '.join(args)}\n")
            fh.flush()
            try:
                subprocess.run(
                    [PY, "-m", "phgmm", *args],
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=max(1.0, left),
                    check=True,
                )
            except subprocess.TimeoutExpired:
                return {"seconds": float("inf"), "wall": limit}
    wall = time.perf_counter() - t0
    return {"seconds": wall, "wall": wall}


def table(results: list[dict], busy: list[int]) -> str:
    """Seconds per task and mode, with loaded/idle ratios and the load average each began at."""
    head = (
        "| task | mode | "
        + " | ".join(
            f"{'idle' if b == 0 else f'{b} busy'} s (load)" + ("" if b == 0 else f" | {b} busy ÷ idle") for b in busy
        )
        + " |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    keys = sorted({(r["task"], r["mode"]) for r in results}, key=lambda k: (k[0], k[1] != "before", k[1]))
    for task, mode in keys:
        cells = []
        idle = next((r["seconds"] for r in results if (r["task"], r["mode"], r["busy"]) == (task, mode, 0)), None)
        for b in busy:
            r = next((r for r in results if (r["task"], r["mode"], r["busy"]) == (task, mode, b)), None)
            if r is None:
                cells += ["–"] if b == 0 else ["–", "–"]
                continue
            sec = "> limit" if r["seconds"] == float("inf") else f"{r['seconds']:.1f}"
            cells.append(f"{sec} ({r['load']:.1f})")
            if b:
                ok = idle and r["seconds"] != float("inf")
                cells.append(f"{r['seconds'] / idle:.2f}×" if ok else "–")
        lines.append(f"| {task} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 training steps, 16 images, idle and 1 busy only")
    ap.add_argument("--modes", default="before,after", help="before, after, threads-only, passive-only")
    ap.add_argument("--busy", default=None, help="busy neighbours to measure beside (default 0,1,2; --quick 0,1)")
    ap.add_argument("--tasks", default="train,predict", help="train, predict (and demo with --demo)")
    ap.add_argument("--demo", action="store_true", help="also make demo's steps beside 2 busy processes")
    ap.add_argument("--demo-limit", type=float, default=1200, help="seconds before the demo counts as too slow")
    ap.add_argument("--repeat", type=int, default=1, help="runs per cell; the fastest counts (default 1)")
    ap.add_argument("--json", default=None, help="write every figure here")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one, removed after)")
    args = ap.parse_args()

    steps, images = (5, 16) if args.quick else (10, 32)
    busy = [int(b) for b in (args.busy or ("0,1" if args.quick else "0,1,2")).split(",")]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - {"train", "predict", "demo"})
    if unknown:
        ap.error(f"--tasks: unknown {', '.join(unknown)}; choose from train, predict, demo")
    args.demo = args.demo or "demo" in tasks
    tasks = [t for t in tasks if t != "demo"]  # the demo is timed on its own, beside 2 busy processes
    old_threads = torch_default_threads()
    work = Path(args.work or tempfile.mkdtemp(prefix="phgmm-shared-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores, torch default {old_threads} threads; load average {os.getloadavg()}; log: {log}", flush=True)
    results: list[dict] = []
    try:
        paths = prepare(work, images, log)
        for b in busy:
            with Busy(b):
                for mode in modes:
                    env, extra = mode_env(mode, old_threads)
                    for task in tasks:
                        best = None
                        for _ in range(args.repeat):
                            start = load1()
                            if task == "train":
                                r = time_train(paths, steps, env, extra, work / "train-out", log)
                            else:
                                r = time_predict(paths, env, extra, work / "predict-out", log)
                            if best is None or r["seconds"] < best["seconds"]:
                                best = {**r, "load": start}
                        results.append({"task": task, "mode": mode, "busy": b, **best})
                        print(
                            f"  {task:8s} {mode:13s} beside {b} busy: {best['seconds']:.1f} s "
                            f"(wall {best['wall']:.1f} s, load {best['load']:.1f})",
                            flush=True,
                        )
        if args.demo:
            with Busy(2):
                for mode in modes:
                    env, extra = mode_env(mode, old_threads)
                    start = load1()
                    r = time_demo(work, env, extra, log, args.demo_limit)
                    results.append({"task": "make demo", "mode": mode, "busy": 2, **r, "load": start})
                    print(f"  make demo {mode:13s} beside 2 busy: {r['seconds']:.0f} s (load {start:.1f})", flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    title = (
        f"train: one epoch of {steps} steps, batch 8, 256×128 (epoch_seconds); predict: {images} images "
        f"512×256, the whole command; seconds (1-minute load average at the start)"
    )
    print(f"\n{title}\n\n{table(results, busy + ([2] if args.demo and 2 not in busy else []))}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "cores": cores,
                    "torch_default_threads": old_threads,
                    "steps": steps,
                    "images": images,
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
