"""fp32 against bf16 autocast on this CPU: the training step `phgmm train` runs and the folded
inference `phgmm predict` runs, for every network, with ONNX Runtime (fp32) beside them.

    python benchmarks/bf16_cpu.py --threads 1 --json docs/results/bf16_cpu/bf16_cpu.json

Each network is built from one config (default ``camvid``: ResNet-18, 240x176, batch 8) with
``model.name`` set to it; the fp32 and bf16 copies start from the same weights. The training step is
:func:`phgmm.engine.training.step.training_step` with the config's loss and fused AdamW, exactly as the
trainer calls it (:func:`phgmm.benchmark.step.train_step`, as ``phgmm benchmark`` times it);
inference is the BatchNorm-folded network, batch 1, at each ``--infer-sizes``, its convolution and
linear weights cast to bf16 once for the bf16 pass (``precision.cast_for_autocast``).
Within a network the two precisions (and ONNX Runtime) are timed round-robin (A B A B …), so the
printed ratios hold on a busy machine; absolute times are only comparable within one run.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from phgmm.benchmark.step import train_step
from phgmm.benchmark.timing import time_interleaved
from phgmm.config import load_config
from phgmm.conventions import IGNORE_INDEX
from phgmm.engine.builders import build_model_from_config
from phgmm.engine.precision import autocast, cast_for_autocast, cpu_bf16
from phgmm.models import MODEL_NAMES
from phgmm.models.fold import fold_batchnorm

CPU = torch.device("cpu")
CL = torch.channels_last


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _batch(cfg: Any, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random training images and labels at the config's size and batch, a band of ignored pixels."""
    w, h = cfg.data.size
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(cfg.train.batch_size, 3, h, w, generator=g)
    y = torch.randint(0, cfg.model.num_classes, (cfg.train.batch_size, h, w), generator=g)
    y[:, : max(1, h // 16)] = IGNORE_INDEX
    return x, y


def _forward(model: torch.nn.Module, x: torch.Tensor, amp: torch.dtype | None) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad(), autocast(amp, CPU):
            model(x)

    return run


def _onnx(model: torch.nn.Module, size: tuple[int, int]) -> tuple[Callable[[], None], Any] | None:
    """ONNX Runtime on the folded fp32 network (what ``phgmm export`` writes), or None if it cannot export."""
    try:
        import onnxruntime  # noqa: F401

        from phgmm.engine.inference.export import InferenceGraph, OnnxPredictor, export_onnx
    except ImportError:
        return None
    tmp = tempfile.TemporaryDirectory(prefix="phgmm-bf16-onnx-")
    path = Path(tmp.name) / "model.onnx"
    try:
        export_onnx(InferenceGraph(model), path, example_size=size)
    except Exception as exc:  # noqa: BLE001 - reported in the table, not fatal
        print(f"  onnx: export failed ({type(exc).__name__})", flush=True)
        tmp.cleanup()
        return None
    session = OnnxPredictor(path, threads=torch.get_num_threads())
    x = torch.randn(1, 3, size[1], size[0]).numpy()
    return (lambda: session(x)), tmp


def measure(
    name: str, cfg_name: str, sizes: list[tuple[int, int]], iters: int, infer_iters: int, onnx: bool, seed: int
) -> dict[str, Any]:
    """fp32 and bf16 times of one network: training step and folded inference at each size."""
    cfg = load_config(cfg_name, [f"model.name={name}"])
    torch.manual_seed(seed)
    m32 = build_model_from_config(cfg).to(memory_format=CL)
    m16 = copy.deepcopy(m32)
    x, y = _batch(cfg, seed)
    steps = {
        "fp32": train_step(m32, x, y, cfg, CPU, None, CL),
        "bf16": train_step(m16, x, y, cfg, CPU, torch.bfloat16, CL),
    }
    for fn in steps.values():
        fn()  # warm-up: optimiser state, oneDNN primitives
    t = time_interleaved(steps, CPU, iters)
    entry: dict[str, Any] = {
        "train_fp32_s": t["fp32"],
        "train_bf16_s": t["bf16"],
        "train_bf16_over_fp32": t["bf16"] / t["fp32"],
        "infer": [],
    }
    print(
        f"{name}: training step fp32 {t['fp32'] * 1e3:.0f} ms, bf16 {t['bf16'] * 1e3:.0f} ms "
        f"({entry['train_bf16_over_fp32']:.3f})",
        flush=True,
    )
    del steps, m16
    folded = fold_batchnorm(m32.eval()).to(memory_format=CL).eval()
    folded16 = cast_for_autocast(copy.deepcopy(folded), torch.bfloat16)  # as phgmm predict runs it
    for w, h in sizes:
        xi = torch.randn(1, 3, h, w).contiguous(memory_format=CL)
        fns = {"fp32": _forward(folded, xi, None), "bf16": _forward(folded16, xi, torch.bfloat16)}
        session = _onnx(folded, (w, h)) if onnx else None
        if session is not None:
            fns["onnx"] = session[0]
        for fn in fns.values():
            fn()
        ti = time_interleaved(fns, CPU, infer_iters)
        row = {"size_wh": [w, h], "fp32_s": ti["fp32"], "bf16_s": ti["bf16"], "bf16_over_fp32": ti["bf16"] / ti["fp32"]}
        if "onnx" in ti:
            row.update(
                onnx_fp32_s=ti["onnx"], onnx_over_fp32=ti["onnx"] / ti["fp32"], onnx_over_bf16=ti["onnx"] / ti["bf16"]
            )
            session[1].cleanup()
        entry["infer"].append(row)
        extra = f", onnxruntime {ti['onnx'] * 1e3:.1f} ms" if "onnx" in ti else ""
        print(
            f"{name}: inference {w}x{h} fp32 {ti['fp32'] * 1e3:.1f} ms, bf16 {ti['bf16'] * 1e3:.1f} ms "
            f"({row['bf16_over_fp32']:.3f}){extra}",
            flush=True,
        )
    return entry


def table(result: dict[str, Any]) -> str:
    """The Markdown table of a result: bf16 ÷ fp32 per network (and ONNX Runtime ÷ PyTorch fp32)."""
    sizes = [tuple(r["size_wh"]) for r in next(iter(result["models"].values()))["infer"]]
    head = ["network", "train fp32 (ms)", "train bf16 ÷ fp32"]
    for w, h in sizes:
        head += [f"infer {w}x{h} fp32 (ms)", f"bf16 ÷ fp32 ({w}x{h})", f"ONNX RT ÷ fp32 ({w}x{h})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, e in result["models"].items():
        cells = [name, f"{e['train_fp32_s'] * 1e3:.0f}", f"{e['train_bf16_over_fp32']:.3f}"]
        for r in e["infer"]:
            onnx = f"{r['onnx_over_fp32']:.3f}" if "onnx_over_fp32" in r else "–"
            cells += [f"{r['fp32_s'] * 1e3:.1f}", f"{r['bf16_over_fp32']:.3f}", onnx]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--models", default="all", help="comma-separated networks, or all (default)")
    p.add_argument("--config", default="camvid", help="config the networks are built from (default camvid)")
    p.add_argument("--infer-sizes", default="240x176,768x384", help="inference sizes WxH, comma-separated")
    p.add_argument("--iters", type=int, default=3, help="timed training steps per precision")
    p.add_argument("--infer-iters", type=int, default=10, help="timed inferences per precision and size")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-onnx", action="store_true", help="leave ONNX Runtime out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="write the result here")
    args = p.parse_args(argv)
    native, why = cpu_bf16()
    if not native:
        print(f"bf16_cpu: this CPU runs bf16 emulated ({why}); nothing to compare", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(MODEL_NAMES) if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    sizes = [_size(s) for s in args.infer_sizes.split(",")]
    print(
        f"bf16_cpu: {', '.join(names)} from config {args.config}; {torch.get_num_threads()} thread(s); {why}",
        flush=True,
    )
    result: dict[str, Any] = {
        "settings": {
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "config": args.config,
            "threads": torch.get_num_threads(),
            "iters": args.iters,
            "infer_iters": args.infer_iters,
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "bf16": why,
            "load_average_at_start": list(os.getloadavg()),
        },
        "models": {},
    }
    for name in names:
        result["models"][name] = measure(
            name, args.config, sizes, args.iters, args.infer_iters, not args.no_onnx, args.seed
        )
    result["settings"]["load_average_at_end"] = list(os.getloadavg())
    print(table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
