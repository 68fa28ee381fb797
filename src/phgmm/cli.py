"""The ``phgmm`` command line: train, evaluate, predict, synth, export, benchmark.

Every command reads the same config system as the Python API (``phgmm.config``). Errors a user
can fix (a missing file, a bad config key, a folder that would be overwritten) are printed as one
line naming the file and the problem, with a non-zero exit status — never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .io import parse_wxh

__all__ = ["main", "build_parser"]


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import apply_overrides, load_config
    from .engine.checkpoint import load_checkpoint
    from .engine.train import TrainingInterrupted, config_of_checkpoint, train

    if args.config is None and args.resume is None:
        raise SystemExit("phgmm train: give --config FILE (e.g. configs/demo.yaml) or --resume CHECKPOINT")
    state = load_checkpoint(args.resume) if args.resume else None   # read once: it can be large
    cfg = load_config(args.config) if args.config else config_of_checkpoint(state, args.resume)
    apply_overrides(cfg, args.set)
    try:
        summary = train(cfg, resume=state, overwrite=args.overwrite, progress=not args.no_progress)
    except TrainingInterrupted:
        return 130
    from .engine import distributed as du
    if du.is_main():
        best = summary["best_miou"]
        msg = f"best val mIoU {100 * best:.2f}" if best >= 0 else "no validation ran"
        print(f"done: {msg}; checkpoints in {Path(summary['best']).parent}")
    du.cleanup()
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if args.checkpoint and (args.predictions or args.ground_truth):
        raise SystemExit("phgmm evaluate: use either --checkpoint or --predictions/--ground-truth, not both")
    if args.checkpoint:
        from .engine.evaluate import evaluate_checkpoint
        metrics = evaluate_checkpoint(args.checkpoint, args.out, overrides=args.set, config_path=args.config,
                                      split=args.split, progress=not args.no_progress)
    elif args.predictions and args.ground_truth:
        from .engine.score import score_folders
        names = colors = None
        if args.classes:
            from .data.classes import load_class_table
            table = load_class_table(args.classes)
            names, colors = list(table.names), [tuple(c) for c in table.colors]
        metrics = score_folders(args.predictions, args.ground_truth, args.out, class_names=names,
                                colors=colors, progress=not args.no_progress)
    else:
        raise SystemExit("phgmm evaluate: give --checkpoint CKPT, or --predictions DIR and --ground-truth DIR")
    if metrics is not None:
        print(f"mIoU {100 * metrics['miou']:.2f} (11 classes, background excluded); "
              f"pixel accuracy {100 * metrics['pixel_accuracy']:.2f}")
        print(f"metrics: {Path(args.out) / 'metrics.json'}\nreport:  {Path(args.out) / 'report.md'}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .engine.predict import Predictor, predict_paths

    if (args.checkpoint is None) == (args.onnx is None):
        raise SystemExit("phgmm predict: give exactly one of --checkpoint CKPT or --onnx MODEL.onnx")
    predictor = Predictor(checkpoint=args.checkpoint, onnx=args.onnx, size=args.size, device=args.device)
    written = predict_paths(predictor, args.inputs, args.out, uncertainty=args.uncertainty,
                            samples=args.samples, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phgmm", description="PHGMM semantic segmentation")
    parser.add_argument("--version", action="version", version=f"phgmm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("train", help="train a model from a config")
    p.add_argument("--config", help="YAML config (configs/*.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.lr=3e-4 (repeatable)")
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (its config unless --config)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in output_dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="score a checkpoint, or saved predictions against ground truth")
    p.add_argument("--checkpoint", metavar="CKPT")
    p.add_argument("--config", help="evaluate with this config instead of the checkpoint's")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--split", help="dataset split (default: data.val_split)")
    p.add_argument("--predictions", metavar="DIR", help="class-index PNGs of any model")
    p.add_argument("--ground-truth", metavar="DIR", help="class-index ground-truth PNGs (255 = ignore)")
    p.add_argument("--classes", metavar="TABLE", help="class table (YAML/CSV or builtin name); default: the 12 PHGMM classes")
    p.add_argument("--out", required=True, metavar="DIR", help="where metrics.json and report.md go")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="segment images: colour masks, overlays, class-index PNGs")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--checkpoint", metavar="CKPT")
    p.add_argument("--onnx", metavar="MODEL", help="run an exported ONNX model on onnxruntime")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--size", type=parse_wxh, help="working size WxH (default: the checkpoint's data.size)")
    p.add_argument("--uncertainty", action="store_true",
                   help="also write predictive-entropy and mutual-information maps (PHGMM only)")
    p.add_argument("--samples", type=int, default=8, help="samples of q(z|x) for --uncertainty (default 8)")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_predict)

    from .data.synthetic import register_cli as register_synth
    register_synth(sub)
    from .export import register_cli as register_export
    register_export(sub)
    from .benchmark import register_cli as register_benchmark
    register_benchmark(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .config import ConfigError
    from .engine.checkpoint import CheckpointError
    from .engine.train import TrainingError
    try:
        from .data import DatasetError
    except ImportError:  # pragma: no cover - the data package always defines it
        DatasetError = ValueError  # type: ignore[misc,assignment]
    try:
        return int(args.func(args) or 0)
    except (ConfigError, CheckpointError, TrainingError, DatasetError, FileNotFoundError,
            FileExistsError, ValueError) as exc:
        print(f"phgmm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"phgmm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
