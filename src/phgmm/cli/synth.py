"""``phgmm synth``: write the procedural street-scene data set in a real on-disk format."""

from __future__ import annotations

import argparse
import time

from .options import add_no_progress, add_size, add_threads

DESCRIPTION = """\
Write procedural street scenes (all 12 PHGMM classes) in the Cityscapes or SYNTHIA on-disk format,
to be read by the real loaders (data.dataset cityscapes or synthia, data.root = --out). The same
--seed gives identical files.
"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "synth",
        help="generate the procedural street-scene data set",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (must be empty or new unless --overwrite)"
    )
    p.add_argument("--num", type=int, default=200, help="number of scenes (default 200)")
    add_size(p, "image size, at least 32x32 (default 768x384)", default=(768, 384))
    p.add_argument("--seed", type=int, default=0, help="seed; the same seed gives identical files (default 0)")
    p.add_argument(
        "--format", choices=("cityscapes", "synthia"), default="cityscapes", help="on-disk layout (default cityscapes)"
    )
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="cityscapes format: fraction written to val (default 0.2)"
    )
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    add_threads(p, config=False, what="rendering (OpenCV)")
    add_no_progress(p)
    # the old spelling: no progress bar and no summary line
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..data.synthetic import generate_dataset
    from ..io import check_output_dir

    check_output_dir(args.out)
    _set_opencv_threads(args.threads)
    t0 = time.perf_counter()
    out = generate_dataset(
        args.out,
        args.num,
        args.size,
        args.seed,
        args.format,
        args.val_fraction,
        args.overwrite,
        progress=not (args.no_progress or args.quiet),
    )
    dt = time.perf_counter() - t0
    if not args.quiet:
        print(
            f"wrote {args.num} {args.format} scenes of {args.size[0]}x{args.size[1]} to {out} "
            f"({args.num / dt:.1f} images/s)"
        )
    return 0


def _set_opencv_threads(threads: int | None) -> None:
    """The renderer's parallel work is OpenCV's: ``--threads``, or the cores this process may use
    (OpenCV's own default counts the machine's, which oversubscribes a container)."""
    import cv2

    from ..threads import intra_op_threads

    cv2.setNumThreads(intra_op_threads(threads))
