"""``phgmm predict``: segment images with a checkpoint or an exported ONNX file."""

from __future__ import annotations

import argparse

from .options import add_device, add_no_progress, add_overwrite, add_size

DESCRIPTION = """\
Segment image files and folders of images. Per image <stem>, writes labels/<stem>.png (class
indices, ready for `phgmm evaluate --predictions OUT/labels`), color/<stem>.png (colour mask),
overlay/<stem>.png and, with --uncertainty, entropy/ and mi/ maps. Images are resized to the
model's working size (the checkpoint's data.size, or the size recorded in the ONNX file) and the
prediction back to the image's own size.
"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="segment images: colour masks, overlays, class-index PNGs",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--checkpoint", metavar="CKPT", help="training checkpoint (.pt) to run with PyTorch")
    p.add_argument("--onnx", metavar="MODEL", help="run an exported ONNX model (phgmm export) on onnxruntime")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_size(p, "working size (default: the checkpoint's data.size, or the one stored in the ONNX file)")
    p.add_argument("--uncertainty", action="store_true",
                   help="also write predictive-entropy and mutual-information maps (PHGMM checkpoints only)")
    p.add_argument("--samples", type=int, default=8, help="samples of q(z|x) for --uncertainty (default 8)")
    add_device(p)
    add_overwrite(p, "existing predictions in --out")
    add_no_progress(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..engine.predict import Predictor, predict_paths

    if (args.checkpoint is None) == (args.onnx is None):
        raise SystemExit("phgmm predict: give exactly one of --checkpoint CKPT or --onnx MODEL.onnx")
    from ..io import check_output_dir
    check_output_dir(args.out)
    predictor = Predictor(checkpoint=args.checkpoint, onnx=args.onnx, size=args.size, device=args.device)
    written = predict_paths(predictor, args.inputs, args.out, uncertainty=args.uncertainty,
                            samples=args.samples, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"wrote {len(written)} files to {args.out}")
    return 0
