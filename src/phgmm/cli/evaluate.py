"""``phgmm evaluate``: score a checkpoint on a split, or saved predictions against ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import (
    add_inference_options,
    add_no_progress,
    add_overwrite,
    add_precision,
    add_set,
    add_skip_bad_samples,
    add_threads,
    bad_fraction_overrides,
    precision_override,
    threads_override,
)

DESCRIPTION = """\
Either evaluate a checkpoint (or a published model folder) on a split of its data set
(--checkpoint), or score class-index PNGs written by any model against ground-truth PNGs of the
same names (--predictions, --ground-truth). Ground truth is class indices (0..C-1, 255 = ignore),
or a data set's native ids when --classes names its class table (e.g. --classes camvid); values
that cannot be what you said are refused, never scored. Writes metrics.json (mIoU, per-class IoU,
precision, recall, confusion matrix, trimap, Boundary IoU; for PHGMM the use of its latent spaces
and the clustering of z) and report.md to --out, which must not hold an earlier evaluation
unless --overwrite is given. PHGMM's latent use (docs/latent.md) takes a second pass: each image
decoded with a seeded random other image's and the most different image's codes, I(x; z) and
I(x; g), the decoder's sensitivity, and an untrained network's baseline (eval.latent_* keys).
"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate",
        help="score a checkpoint, or saved predictions against ground truth",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="training checkpoint (.pt) or published model folder (phgmm publish) to evaluate",
    )
    p.add_argument("--config", metavar="FILE", help="evaluate with this config instead of the checkpoint's")
    add_set(p, "the checkpoint's config (or --config)")
    p.add_argument("--split", help="dataset split (default: data.val_split)")
    _add_saved_prediction_args(p)
    p.add_argument(
        "--miou-exclude",
        metavar="NAMES",
        help="classes left out of the mIoU, comma-separated names or indices, 'none' for none "
        "(default: the --classes table's miou_exclude, else class 0; with --checkpoint: "
        "--set data.miou_exclude=[...])",
    )
    p.add_argument(
        "--uncertainty",
        action="store_true",
        help="also measure uncertainty maps (AUROC/AUPR for wrong pixels) and calibration (ECE)",
    )
    add_inference_options(p, from_config=True)
    p.add_argument("--out", required=True, metavar="DIR", help="where metrics.json and report.md go")
    add_overwrite(p, "an earlier metrics.json / report.md in --out")
    add_skip_bad_samples(p)
    add_precision(p)
    add_threads(p)
    add_no_progress(p)
    p.set_defaults(func=run)
    return p


def _add_saved_prediction_args(p: argparse.ArgumentParser) -> None:
    """The keys of the second mode: saved predictions scored against ground truth."""
    p.add_argument("--predictions", metavar="DIR", help="class-index PNGs of any model")
    p.add_argument(
        "--ground-truth",
        metavar="DIR",
        help="ground-truth PNGs: class indices (255 = ignore), or native ids with --classes",
    )
    p.add_argument(
        "--classes",
        metavar="TABLE",
        help="the ground truth's class table (YAML/CSV or builtin: cityscapes, camvid, synthia, "
        "phgmm12) mapping its native ids; default: ground truth holds class indices",
    )
    p.add_argument(
        "--gt-channel",
        choices=("single", "red"),
        default="single",
        help="which channel of the ground-truth PNGs holds the ids (red: SYNTHIA GT/LABELS)",
    )
    p.add_argument(
        "--unknown-ids",
        choices=("error", "ignore"),
        default="error",
        help="ground-truth ids missing from --classes: stop (default) or score them as ignored",
    )
    p.add_argument(
        "--predicted-only",
        action="store_true",
        help="score only the ground-truth files that have a prediction (default: every ground-truth "
        "file needs one); metrics.json counts the others",
    )


def run(args: argparse.Namespace) -> int:
    from ..io import check_output_dir

    if args.checkpoint and (args.predictions or args.ground_truth):
        raise SystemExit("phgmm evaluate: use either --checkpoint or --predictions/--ground-truth, not both")
    if not args.checkpoint and not (args.predictions and args.ground_truth):
        raise SystemExit("phgmm evaluate: give --checkpoint CKPT, or --predictions DIR and --ground-truth DIR")
    _refuse_flags_of_the_other_mode(args)
    # before any work: a folder that cannot be written, or an earlier evaluation, stops us now
    check_output_dir(args.out, ("metrics.json", "report.md"), args.overwrite)
    if args.checkpoint:
        from ..engine.evaluation.evaluate import evaluate_checkpoint

        overrides = [
            *args.set,
            *(["eval.uncertainty=true"] if args.uncertainty else []),
            *bad_fraction_overrides(args),
            *([f"eval.mode={args.mode}"] if args.mode else []),
            *([f"eval.tile=[{args.tile[0]},{args.tile[1]}]"] if args.tile else []),
            *([f"eval.stride=[{args.stride[0]},{args.stride[1]}]"] if args.stride else []),
            *([f"eval.flip={'true' if args.tta == 'flip' else 'false'}"] if args.tta else []),
            *([f"eval.scales=[{','.join(map(str, args.scales))}]"] if args.scales else []),
            *precision_override(args),
            *threads_override(args),
        ]
        metrics = evaluate_checkpoint(
            args.checkpoint,
            args.out,
            overrides=overrides,
            config_path=args.config,
            split=args.split,
            progress=not args.no_progress,
        )
    else:
        from ..engine.evaluation.score import score_folders
        from ..threads import thread_budget

        with thread_budget(args.threads):
            exclude = (
                None
                if args.miou_exclude is None
                else [v.strip() for v in args.miou_exclude.split(",") if v.strip() and v.strip().lower() != "none"]
            )
            metrics = score_folders(
                args.predictions,
                args.ground_truth,
                args.out,
                gt_table=args.classes or None,
                unknown_ids=args.unknown_ids,
                gt_channel=args.gt_channel,
                progress=not args.no_progress,
                miou_exclude=exclude,
                predicted_only=args.predicted_only,
            )
    if metrics is not None:
        print("\n".join(summary_lines(metrics)))
        print(f"metrics: {Path(args.out) / 'metrics.json'}\nreport:  {Path(args.out) / 'report.md'}")
    return 0


def _refuse_flags_of_the_other_mode(args: argparse.Namespace) -> None:
    """Stop on a flag that the chosen mode would ignore: scoring saved predictions with --tta or
    --uncertainty must not look as if it had measured them."""
    checkpoint_only = [
        flag
        for flag, given in (
            ("--config", args.config),
            ("--set", args.set),
            ("--split", args.split),
            ("--uncertainty", args.uncertainty),
            ("--mode", args.mode),
            ("--tile", args.tile),
            ("--stride", args.stride),
            ("--tta", args.tta),
            ("--scales", args.scales),
            ("--skip-bad-samples", args.skip_bad_samples),
            ("--precision", args.precision),
            ("--max-bad-fraction", args.max_bad_fraction is not None),
        )
        if given
    ]
    predictions_only = [
        flag
        for flag, given in (
            ("--classes", args.classes),
            ("--gt-channel", args.gt_channel != "single"),
            ("--predicted-only", args.predicted_only),
            ("--miou-exclude", args.miou_exclude is not None),
            ("--unknown-ids", args.unknown_ids != "error"),
        )
        if given
    ]
    if args.checkpoint and predictions_only:
        raise SystemExit(
            f"phgmm evaluate: {', '.join(predictions_only)} apply to scoring saved predictions "
            f"(--predictions, --ground-truth), not to --checkpoint, which reads its own data set"
        )
    if not args.checkpoint and checkpoint_only:
        raise SystemExit(
            f"phgmm evaluate: {', '.join(checkpoint_only)} apply to evaluating a --checkpoint; "
            f"saved predictions are scored as they are (give inference options to `phgmm predict`, "
            f"or evaluate the checkpoint)"
        )


def summary_lines(metrics: dict) -> list[str]:
    """What the console shows of an evaluation: mIoU and pixel accuracy, and with --uncertainty how
    well each map tells wrong pixels from right ones and the calibration error."""
    from ..report import classes_in_mean, excluded_indices, latent_use_line

    names = metrics["class_names"]
    excluded = excluded_indices(metrics, names)
    scored = classes_in_mean(metrics, names, excluded)
    left = f", {', '.join(names[i] for i in excluded)} excluded" if excluded else ", none excluded"
    lines = [
        f"mIoU {100 * metrics['miou']:.2f} ({scored} class{'es' if scored != 1 else ''}{left}); "
        f"pixel accuracy {100 * metrics['pixel_accuracy']:.2f}"
    ]
    if metrics.get("ground_truth_not_scored"):
        n = metrics.get("num_images", 0)
        lines.append(
            f"scored {n} of {n + metrics['ground_truth_not_scored']} ground-truth images: the "
            f"{metrics['ground_truth_not_scored']} without a prediction were left out (--predicted-only)"
        )
    if metrics.get("unknown_ids_ignored_pixels"):
        lines.append(
            f"--unknown-ids ignore: {metrics['unknown_ids_ignored_pixels']} ground-truth pixels "
            f"({100 * metrics['unknown_ids_ignored_fraction']:.2f} %) held ids not in the class table "
            f"and were not scored"
        )
    latent = latent_use_line(metrics.get("latent") or {})
    if latent:
        lines.append(latent)
    unc = metrics.get("uncertainty")
    if unc:
        maps = [
            f"{label} {unc[key]['auroc']:.3f}"
            for key, label in (
                ("softmax_entropy", "softmax entropy"),
                ("mutual_information", "mutual information of z samples"),
            )
            if key in unc and unc[key].get("auroc") is not None
        ]
        ece = unc["calibration"]["ece"]
        lines.append(
            f"uncertainty, AUROC for wrong pixels: {', '.join(maps) or 'undefined (no wrong pixels)'}; "
            f"calibration error (ECE) " + (f"{100 * ece:.2f} %" if ece is not None else "undefined")
        )
    return lines
