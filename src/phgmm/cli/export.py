"""``phgmm export``: a checkpoint's inference graph to one ONNX file, with its metadata."""

from __future__ import annotations

import argparse

from .options import add_overwrite, add_size, add_threads

DESCRIPTION = """\
Export the inference graph (eval mode, no PostNet) of a checkpoint to ONNX, with dynamic batch,
height and width: one file serves every input size. The file's metadata records what
`phgmm predict --onnx` needs to run it like the checkpoint: the working size W×H (the checkpoint's
data.size), class names and colours, normalisation mean/std, model name and number of classes.
"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help="export a trained model's inference graph to ONNX",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT",
        help="training checkpoint (.pt) or published model folder (phgmm publish)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="output .onnx file")
    add_overwrite(p, "an existing output file")
    add_size(
        p,
        "example input size used for tracing (default: the checkpoint's data.size); "
        "the file accepts any size and records data.size as its working size",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument(
        "--exporter",
        choices=("auto", "dynamo", "torchscript"),
        default="auto",
        help="auto (default): dynamo, falling back to TorchScript",
    )
    add_threads(p, config=False)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..engine.inference.export import INPUT_NAME, OUTPUT_NAME, export_checkpoint
    from ..io import check_output_file

    check_output_file(args.out, overwrite=args.overwrite)  # refused before any work, not after it
    print(
        f"exporting {args.checkpoint} to {args.out} (tracing and optimising the graph: "
        f"about 10 s for a ResNet-18 PHGMM on a CPU)…",
        flush=True,
    )
    from ..threads import thread_budget

    with thread_budget(args.threads):
        out, info = export_checkpoint(
            args.checkpoint,
            args.out,
            example_size=args.size,
            opset=args.opset,
            overwrite=args.overwrite,
            exporter=args.exporter,
        )
    w, h = info.size
    print(
        f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB; input '{INPUT_NAME}' N×3×H×W float32, "
        f"output '{OUTPUT_NAME}' N×{info.num_classes}×H×W; working size {w}x{h})"
    )
    return 0
