"""``phgmm publish``: a training checkpoint → a shareable folder (safetensors + config.json)."""

from __future__ import annotations

import argparse

from .options import add_overwrite

DESCRIPTION = """\
Write a checkpoint's model as model.safetensors + config.json: no optimiser state, no PostNet,
nothing that unpickles. The config holds the model settings, class names and colours, working size
and normalisation. phgmm.load(DIR), PHGMM.from_pretrained(DIR) and every command that takes
--checkpoint accept the folder.
"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "publish",
        help="save a checkpoint's model as safetensors + config.json for sharing",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="training checkpoint (best.pt)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    add_overwrite(p, "a model saved earlier in --out")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..io import check_output_dir
    from ..pretrained import publish

    check_output_dir(args.out)
    out = publish(args.checkpoint, args.out, overwrite=args.overwrite)
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"wrote {out} ({size:.1f} MiB): load it with phgmm.load({str(out)!r}) or --checkpoint {out}")
    return 0
