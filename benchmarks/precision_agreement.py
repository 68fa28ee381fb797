"""How often a trained model's bf16 prediction differs from its fp32 one, pixel by pixel.

    python benchmarks/precision_agreement.py --images ../shared/realdata/camvid/val \\
        --json docs/results/bf16_parity_camvid/agreement.json RUN/checkpoints/best.pt ...

Each checkpoint predicts every image twice with :class:`phgmm.engine.inference.predictor.Predictor` (BatchNorm
folded, as ``phgmm predict`` runs it): ``--precision fp32`` and ``--precision bf16``. Printed per
checkpoint: the share of all pixels whose class differs, and the worst image's share.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from phgmm.data.imageio import list_images, load_image
from phgmm.engine.inference.predictor import Predictor
from phgmm.engine.precision import cpu_bf16


def agreement(checkpoint: Path, images: list[Path]) -> dict[str, object]:
    """Per-image shares of pixels whose fp32 and bf16 classes differ, and their summary."""
    p32 = Predictor(checkpoint=checkpoint, precision="fp32")
    p16 = Predictor(checkpoint=checkpoint, precision="bf16")
    shares = []
    for path in images:
        rgb = load_image(path)
        a = p32.labels_from_logits(p32.logits(rgb))
        b = p16.labels_from_logits(p16.logits(rgb))
        shares.append(float(np.mean(a != b)))
    worst = int(np.argmax(shares))
    return {
        "checkpoint": str(checkpoint),
        "images": len(images),
        "pixels_differing": float(np.mean(shares)),
        "worst_image": images[worst].name,
        "worst_image_pixels_differing": shares[worst],
        "per_image": dict(zip((p.name for p in images), shares, strict=True)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path, metavar="CKPT")
    p.add_argument("--images", required=True, type=Path, help="folder of images to predict")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the result here")
    args = p.parse_args(argv)
    native, why = cpu_bf16()
    if not native:
        print(f"precision_agreement: no native bf16 here ({why})", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    images = list_images(args.images)
    rows = []
    for ckpt in args.checkpoints:
        row = agreement(ckpt, images)
        rows.append(row)
        print(
            f"{ckpt}: {row['pixels_differing'] * 100:.3f} % of pixels differ over {row['images']} images; "
            f"worst {row['worst_image']} {row['worst_image_pixels_differing'] * 100:.3f} %",
            flush=True,
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"command": " ".join(["precision_agreement.py", *(argv or sys.argv[1:])]), "bf16": why, "runs": rows},
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
