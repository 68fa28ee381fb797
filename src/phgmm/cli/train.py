"""``phgmm train``: train a model from a config, or resume a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import (
    add_no_progress,
    add_set,
    add_skip_bad_samples,
    add_threads,
    bad_fraction_overrides,
    threads_override,
)

DESCRIPTION = """\
Train PHGMM or a baseline from a YAML config (configs/*.yaml): the data set, the model and the
training schedule are config keys, each of which --set can override. Checkpoints (best.pt,
last.pt), the resolved config.yaml and TensorBoard logs go to --out (default: the config's
output_dir); an existing run there is not overwritten unless --overwrite is given. --resume
continues a run from its checkpoint exactly where it stopped (with the checkpoint's own config
unless --config is given).
Under torchrun, one process per GPU trains with DistributedDataParallel.
"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a model from a config",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config file, or the name of a shipped one (e.g. demo; see `phgmm configs`)",
    )
    add_set(p)
    p.add_argument(
        "--out",
        metavar="DIR",
        help="folder of the run (checkpoints, config.yaml, logs); the same as --set output_dir=DIR",
    )
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (its config unless --config)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (after --config, --resume and --set) as YAML and exit",
    )
    add_skip_bad_samples(p)
    add_threads(p)
    add_no_progress(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..config import apply_overrides, load_config
    from ..engine import distributed as du
    from ..engine.checkpoint import load_checkpoint
    from ..engine.training.resume import config_of_checkpoint
    from ..engine.training.trainer import TrainingInterrupted, train

    if args.config is None and args.resume is None:
        raise SystemExit("phgmm train: give --config FILE (e.g. configs/demo.yaml) or --resume CHECKPOINT")
    state = load_checkpoint(args.resume) if args.resume else None  # read once: it can be large
    cfg = load_config(args.config) if args.config else config_of_checkpoint(state, args.resume)
    apply_overrides(cfg, [*args.set, *bad_fraction_overrides(args), *threads_override(args)])
    if args.out:  # set directly, not as YAML: a folder named "2026" or "true" stays a name
        cfg.output_dir = args.out
    if args.print_config:
        import yaml

        from ..config import config_to_dict

        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    try:
        summary = train(cfg, resume=state, overwrite=args.overwrite, progress=not args.no_progress)
    except TrainingInterrupted:
        return 130
    if du.is_main():
        best = summary["best_miou"]
        msg = f"best val mIoU {100 * best:.2f}" if best >= 0 else "no validation ran"
        print(f"done: {msg}; checkpoints in {Path(summary['best']).parent}")
    du.cleanup()
    return 0
