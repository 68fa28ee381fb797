"""Options shared by several commands: one spelling, one parser, one help text each."""

from __future__ import annotations

import argparse
import re

from ..io import SizeError, parse_wxh

__all__ = [
    "parse_size",
    "parse_scales",
    "add_set",
    "add_size",
    "add_no_progress",
    "add_overwrite",
    "add_device",
    "add_skip_bad_samples",
    "add_threads",
    "bad_fraction_overrides",
    "check_bad_fraction",
    "threads_override",
]

_LIST = re.compile(r"^\s*\[\s*(\d+)\s*,\s*(\d+)\s*\]\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """A size in any spelling ``--set data.size=…`` takes: ``768x384`` (or ``768×384``) and
    ``[768,384]`` (YAML list, spaces allowed) — always width, height."""
    m = _LIST.match(text) if isinstance(text, str) else None
    if m:
        text = f"{m.group(1)}x{m.group(2)}"
    try:
        return parse_wxh(text)
    except SizeError:
        raise SizeError(f"size must be WIDTHxHEIGHT or [WIDTH,HEIGHT] (e.g. 768x384), got {text!r}") from None


def parse_scales(text: str) -> tuple[float, ...]:
    """``0.75,1.0,1.25`` → (0.75, 1.0, 1.25): positive factors."""
    try:
        scales = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"scales must be comma-separated numbers, e.g. 0.75,1.0,1.25; got {text!r}"
        ) from None
    if not scales or any(not s > 0 or s == float("inf") for s in scales):
        raise argparse.ArgumentTypeError(f"scales must be positive numbers, got {text!r}")
    return scales


def add_set(p: argparse.ArgumentParser, what: str = "the config") -> None:
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a key of {what}, e.g. --set train.lr=3e-4 or --set data.size=[512,256] "
        f"(YAML value; repeatable)",
    )


def add_size(p: argparse.ArgumentParser, help: str, default: tuple[int, int] | None = None) -> None:
    p.add_argument(
        "--size",
        type=parse_size,
        default=default,
        metavar="WxH",
        help=f"{help}; WIDTHxHEIGHT or [WIDTH,HEIGHT], e.g. 768x384",
    )


def add_no_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for logs)")


def add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace {what}")


def add_skip_bad_samples(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--skip-bad-samples",
        action="store_true",
        help="log and skip files that cannot be read instead of stopping at the first one; the run "
        "still stops once more than --max-bad-fraction of the files are bad (default 1 %%, "
        "so 1 bad file in 4 stops it)",
    )
    p.add_argument(
        "--max-bad-fraction",
        type=_fraction,
        default=None,
        metavar="F",
        help="with --skip-bad-samples: the share of files that may be bad (default 0.01; in a "
        "folder of 20 images, 0.05 lets 1 pass); train and evaluate: the same as "
        "--set data.max_bad_fraction=F",
    )


def check_bad_fraction(args: argparse.Namespace) -> None:
    """Refuse ``--max-bad-fraction`` without ``--skip-bad-samples``, which it would not change."""
    if args.max_bad_fraction is not None and not args.skip_bad_samples:
        raise SystemExit("--max-bad-fraction sets how many files --skip-bad-samples may skip; add --skip-bad-samples")


def bad_fraction_overrides(args: argparse.Namespace) -> list[str]:
    """The ``data.*`` overrides of ``--skip-bad-samples`` and ``--max-bad-fraction``."""
    check_bad_fraction(args)
    return [
        *(["data.skip_bad_samples=true"] if args.skip_bad_samples else []),
        *([f"data.max_bad_fraction={args.max_bad_fraction}"] if args.max_bad_fraction is not None else []),
    ]


def _fraction(text: str) -> float:
    try:
        f = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.05, got {text!r}") from None
    if not 0 <= f <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (0.05 is 5 %%), got {f}")
    return f


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def add_threads(p: argparse.ArgumentParser, config: bool = True, what: str = "the model") -> None:
    """``--threads N``: PyTorch's intra-op threads (and, where a config is read, its ``threads`` key)."""
    where = " (the same as --set threads=N)" if config else ""
    default = (
        "the cores this process may use, less the data.num_workers loader processes, at least 1"
        if config
        else "the cores this process may use"
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"CPU threads for {what}{where}; default: {default} (OMP_NUM_THREADS, when set, is respected)",
    )


PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def add_precision(p: argparse.ArgumentParser, config: bool = True) -> None:
    """``--precision``: the forward pass's autocast dtype (``train.amp``'s values; fp32 is ``off``)."""
    where = " (the same as --set train.amp=...)" if config else ""
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help=f"autocast precision{where}: auto (bf16 or fp16 on a GPU; on a CPU bf16 where it "
        f"has native bf16 instructions, else fp32), bf16 (on a CPU without them: fp32), fp16 (GPU) or fp32; "
        f"default: {'the checkpoint config' if config else 'auto'}'s",
    )


def precision_override(args: argparse.Namespace) -> list[str]:
    """``["train.amp=..."]`` for a given ``--precision``, to append to the ``--set`` overrides."""
    value = getattr(args, "precision", None)
    return [] if value is None else [f"train.amp={'off' if value == 'fp32' else value}"]


def threads_override(args: argparse.Namespace) -> list[str]:
    """``["threads=N"]`` for a given ``--threads``, to append to the ``--set`` overrides."""
    n = getattr(args, "threads", None)
    return [f"threads={n}"] if n is not None else []


def add_device(p: argparse.ArgumentParser, default: str | None = "auto") -> None:
    p.add_argument(
        "--device",
        default=default,
        metavar="DEVICE",
        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)",
    )


def add_inference_options(p: argparse.ArgumentParser, *, from_config: bool) -> None:
    """--mode, --tile, --stride, --tta and --scales, spelled the same for predict and evaluate, so
    that what is scored is what is predicted.

    ``from_config``: the flags default to None and the config's ``eval.*`` keys decide (evaluate);
    otherwise they default to one plain pass over the whole image (predict).
    """
    p.add_argument(
        "--mode",
        choices=("whole", "slide"),
        default=None if from_config else "whole",
        help="whole (default): one forward per image at the working size; slide: overlapping "
        "windows of --tile at the image's own resolution (evaluate: set data.size to the "
        "frames' own size to slide over full-resolution frames)",
    )
    p.add_argument(
        "--tile",
        type=parse_size,
        default=None,
        metavar="WxH",
        help="--mode slide: window size (default: the working size)",
    )
    p.add_argument(
        "--stride",
        type=parse_size,
        default=None,
        metavar="WxH",
        help="--mode slide: window step, at most the tile (default: 2/3 of the tile)",
    )
    p.add_argument(
        "--tta",
        choices=("none", "flip"),
        default=None if from_config else "none",
        help="test-time augmentation: flip averages with the mirrored image's prediction",
    )
    p.add_argument(
        "--scales",
        type=parse_scales,
        default=None if from_config else (1.0,),
        metavar="S1,S2,...",
        help="test-time scales, e.g. 0.75,1.0,1.25: the input is resized by each factor and the "
        "softmax outputs averaged (default 1.0)",
    )
