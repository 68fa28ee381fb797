"""``phgmm benchmark``: speed, memory, FLOPs and the PHGMM ratios of PHGMM and the baselines."""

from __future__ import annotations

import argparse
import sys

from .options import add_device, add_set, add_size, add_threads

DESCRIPTION = """\
Training/inference speed, memory, parameters, FLOPs and the PHGMM ratios (see benchmarks/README.md),
measured in one run on the same random inputs. Prints a Markdown table (progress on stderr); --json
writes every number and the settings. With --config, the models are built from the config's model
section and its backbone, data.size and train.batch_size are the defaults; explicit flags win.
--predict-images N and --onnx add two ratios a user of the model feels: `phgmm predict`'s
images/s over the bare forward's (same size and --batch), and onnxruntime's time over PyTorch's.
"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "benchmark",
        help="time training and inference of PHGMM and the baselines",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="build the models from this config; its backbone, size and training batch are the defaults",
    )
    add_set(p, "--config")
    p.add_argument(
        "--models",
        default=None,
        metavar="NAMES",
        help="comma-separated model names, e.g. phgmm,deeplabv3,unet (default: all); "
        "phgmm and deeplabv3 are always measured",
    )
    p.add_argument("--backbone", default=None, help="the shared ResNet (default resnet101, or the config's)")
    add_size(p, "input size (default 768x384, or the config's data.size)")
    p.add_argument("--batch", type=int, default=1, help="inference batch (default 1)")
    p.add_argument("--train-batch", type=int, default=None, help="training batch (default 2, or the config's)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before each measurement (default 1)")
    p.add_argument("--iters", type=int, default=3, help="timed training steps per measurement (default 3)")
    p.add_argument(
        "--infer-iters", type=int, default=None, help="timed inferences per measurement (default max(--iters, 20))"
    )
    add_device(p)
    p.add_argument(
        "--amp",
        choices=("none", "bf16"),
        default="none",
        help="bf16 autocast on CUDA, as in training (default none: fp32)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="channels-last memory format, the library's default (--no-channels-last: contiguous)",
    )
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        metavar="T",
        help="device peak TFLOP/s for the MFU (default: known GPUs' tensor-core peak)",
    )
    _add_extra_measurements(p)
    p.add_argument("--json", dest="json_out", default=None, metavar="FILE", help="write the full result as JSON here")
    add_threads(p)
    p.set_defaults(func=run)
    return p


def _add_extra_measurements(p: argparse.ArgumentParser) -> None:
    """The optional measurements beside the models' own: loader, predict, ONNX, CUDA graphs."""
    p.add_argument(
        "--loader-workers",
        type=int,
        default=None,
        metavar="N",
        help="also time a DataLoader over the config's training set with N workers (needs --config)",
    )
    p.add_argument(
        "--predict-images",
        type=int,
        default=0,
        metavar="N",
        help="also time `phgmm predict` on N synthetic PNGs of --size against the bare forward on "
        "the same batches (ratio predict_over_forward_images_per_s; default 0: off)",
    )
    p.add_argument(
        "--predict-workers",
        type=int,
        default=None,
        metavar="N",
        help="threads reading and writing in the --predict-images measurement (default: predict's)",
    )
    p.add_argument(
        "--onnx",
        action="store_true",
        help="also time onnxruntime against PyTorch on the CPU for the same exported PHGMM "
        "(ratio onnx_over_pytorch_time; skipped with a note without onnxruntime)",
    )
    p.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="on CUDA, also time each model's training step and folded inference replayed as CUDA "
        "graphs (train.cuda_graph; ignored with a note elsewhere)",
    )


def run(args: argparse.Namespace) -> int:
    from ..benchmark import format_table
    from ..io import check_output_file, write_json

    if args.json_out:
        check_output_file(args.json_out)  # before minutes of measuring, not after

    if args.set and not args.config:
        raise SystemExit("phgmm benchmark: --set overrides keys of --config; give --config too")
    if args.predict_images < 0:
        raise SystemExit(f"phgmm benchmark: --predict-images must be 0 (off) or positive, got {args.predict_images}")
    if args.loader_workers is not None and not args.config:
        raise SystemExit("phgmm benchmark: --loader-workers needs --config (the dataset comes from the config)")
    cfg = None
    if args.config:
        from ..config import load_config

        cfg = load_config(args.config, overrides=args.set)
    from ..engine.precision import check_device

    device = check_device(args.device or "auto")  # before minutes of measuring, not after
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    from ..threads import thread_budget

    before = machine_state()
    with thread_budget(args.threads if args.threads is not None else getattr(cfg, "threads", None)):
        result = _measure(args, cfg, device, models)
    # a figure cited in the docs must say how and where it was measured (issue 29)
    result["settings"]["command"] = " ".join(["phgmm", *sys.argv[1:]]) if sys.argv[0] else None
    result["settings"]["machine"] = {"start": before, "end": machine_state()}
    print(format_table(result))
    if args.json_out:
        print(f"wrote {write_json(args.json_out, result)}")
    return 0


def machine_state() -> dict:
    """What the machine was doing: CPU model, cores, load averages and the time (UTC)."""
    import datetime
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _measure(args: argparse.Namespace, cfg, device, models: list[str] | None) -> dict:
    """:func:`phgmm.benchmark.run_benchmark` with the command's options."""
    from ..benchmark import loader_from_config, run_benchmark
    from ..models import MODEL_NAMES

    return run_benchmark(
        models or MODEL_NAMES,
        backbone=args.backbone,
        size=args.size,
        batch=args.batch,
        train_batch=args.train_batch,
        warmup=args.warmup,
        iters=args.iters,
        infer_iters=args.infer_iters,
        device=device,
        amp=args.amp,
        channels_last=args.channels_last,
        peak_flops=args.peak_tflops * 1e12 if args.peak_tflops else None,
        loader=loader_from_config(cfg) if args.loader_workers is not None else None,
        loader_workers=args.loader_workers or 0,
        config=cfg,
        predict_images=args.predict_images,
        predict_workers=args.predict_workers,
        onnx=args.onnx,
        graphs=args.cuda_graphs,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
