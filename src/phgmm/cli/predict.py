"""``phgmm predict``: segment images and videos with a checkpoint or an exported ONNX file."""

from __future__ import annotations

import argparse

from .options import (
    add_device,
    add_inference_options,
    add_no_progress,
    add_overwrite,
    add_precision,
    add_size,
    add_skip_bad_samples,
    add_threads,
    check_bad_fraction,
)

DESCRIPTION = """\
Segment images and videos. INPUT is an image or video file, a folder (searched recursively) or a
quoted glob pattern expanded by phgmm ("data/**/*.png"). Per image <name>, writes
labels/<name>.png (class indices, ready for `phgmm evaluate --predictions OUT/labels`),
color/<name>.png (colour mask), overlay/<name>.jpg (the mask over the image) and, with
--uncertainty, entropy/ maps (PHGMM: of its samples of z, with mi/, their mutual information;
any other model or ONNX file: of the softmax). --skip-existing continues an interrupted run:
inputs whose outputs are all there are left out.
<name> keeps the path below the folder (or the pattern's leading folders), e.g.
labels/cityA/img1.png, so same-named files in different sub-folders never collide.
Per video (.mp4, .avi, .mov, .mkv) <name>: overlay/<name>.mp4 at the source's frame rate and,
with --save-frames, labels/<name>/000000.png ... per frame.

--mode whole (default): each image is resized to the model's working size (the checkpoint's
data.size, or the size recorded in the ONNX file) and the prediction back to the image's size.
--mode slide: the image keeps its own resolution and is run in overlapping windows of --tile
(default: the working size) every --stride (default: 2/3 of the tile), averaging the logits where
windows overlap -- for frames larger than the training size (e.g. 2048x1024 with a model trained
at 768x384). --tta flip and --scales 0.75,1.0,1.25 average the softmax of the augmented passes.
"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict",
        help="segment images and videos: colour masks, overlays, class-index PNGs",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help='image or video files, folders (recursive) or quoted glob patterns ("data/**/*.png")',
    )
    p.add_argument(
        "--checkpoint", metavar="CKPT", help="training checkpoint (.pt) or published model folder, run with PyTorch"
    )
    p.add_argument("--onnx", metavar="MODEL", help="run an exported ONNX model (phgmm export) on onnxruntime")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_size(p, "working size (default: the checkpoint's data.size, or the one stored in the ONNX file)")
    add_inference_options(p, from_config=False)
    p.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="N",
        help="images of the same size per forward pass (default 1); in slide mode, windows per pass",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="threads reading ahead and, as many, writing (default: min(4, CPUs))",
    )
    _add_extra_outputs(p)
    add_device(p)
    add_overwrite(p, "existing predictions in --out")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave out the inputs whose outputs are all in --out already (continue an interrupted run)",
    )
    add_skip_bad_samples(p)
    add_threads(p, config=False)
    add_precision(p, config=False)
    add_no_progress(p)
    p.set_defaults(func=run)
    return p


def _add_extra_outputs(p: argparse.ArgumentParser) -> None:
    """What predict writes beside the masks and overlays: per-frame labels, entropy maps."""
    p.add_argument(
        "--save-frames",
        action="store_true",
        help="videos: also write per-frame class-index PNGs labels/<name>/000000.png ...",
    )
    p.add_argument(
        "--uncertainty",
        action="store_true",
        help="also write entropy maps: PHGMM's predictive entropy over samples of z (and their "
        "mutual information in mi/); the softmax entropy for any other model or ONNX file",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        help="samples of q(z|x) for --uncertainty with a PHGMM checkpoint (default 8)",
    )


def _skip_bad(args: argparse.Namespace) -> float | None:
    """The share of unreadable inputs predict may skip (the default is data.max_bad_fraction's), or
    None to stop at the first."""
    from ..config import DataConfig

    if not args.skip_bad_samples:
        return None
    return DataConfig.max_bad_fraction if args.max_bad_fraction is None else args.max_bad_fraction


def _check_args(args: argparse.Namespace) -> None:
    """Stops, in one line, on flags that contradict each other or are out of range."""
    if (args.checkpoint is None) == (args.onnx is None):
        raise SystemExit("phgmm predict: give exactly one of --checkpoint CKPT or --onnx MODEL.onnx")
    if args.mode == "whole" and (args.tile or args.stride):
        raise SystemExit("phgmm predict: --tile and --stride need --mode slide")
    if args.samples is not None and not args.uncertainty:
        raise SystemExit("phgmm predict: --samples sets how many samples --uncertainty draws; add --uncertainty")
    if args.batch < 1:
        raise SystemExit(f"phgmm predict: --batch must be at least 1, got {args.batch}")
    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"phgmm predict: --workers must be at least 1, got {args.workers}")
    check_bad_fraction(args)
    if args.onnx and args.precision in ("bf16", "fp16"):
        raise SystemExit(
            f"phgmm predict: --precision {args.precision} needs --checkpoint; an ONNX model runs in fp32 on onnxruntime"
        )
    if args.skip_existing and args.overwrite:
        raise SystemExit(
            "phgmm predict: --skip-existing keeps finished outputs and --overwrite replaces them: give one of them"
        )


def run(args: argparse.Namespace) -> int:
    from ..engine.inference import Predictor, predict_paths
    from ..threads import thread_budget

    _check_args(args)
    from ..io import check_output_dir

    check_output_dir(args.out)
    with thread_budget(args.threads):
        predictor = Predictor(
            checkpoint=args.checkpoint,
            onnx=args.onnx,
            size=args.size,
            device=args.device,
            mode=args.mode,
            tile=args.tile,
            stride=args.stride,
            flip=args.tta == "flip",
            scales=args.scales,
            threads=args.threads,
            precision=args.precision or "auto",
        )
        if args.onnx is None:
            print(f"phgmm predict: {predictor.precision}", flush=True)
        if args.samples is not None and not predictor.can_sample:
            raise SystemExit(
                f"phgmm predict: --samples draws from PHGMM's q(z|x); {args.checkpoint or args.onnx} "
                f"has no latent distribution (its entropy map is the softmax's): drop --samples"
            )
        samples = 8 if args.samples is None else args.samples
        written = predict_paths(
            predictor,
            args.inputs,
            args.out,
            uncertainty=args.uncertainty,
            samples=samples,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            batch=args.batch,
            workers=args.workers,
            save_frames=args.save_frames,
            skip_bad=_skip_bad(args),
            skip_existing=args.skip_existing,
        )
    print(f"wrote {len(written)} files to {args.out}")
    return 0
