"""The ``phgmm`` command line: train, evaluate, predict, synth, export, benchmark.

Every command reads the same config system as the Python API (``phgmm.config``). Errors a user
can fix (a missing file, a bad config key, a folder that would be overwritten) are printed as one
line naming the file and the problem, with a non-zero exit status — never a traceback.

Layout: one module per command in this package, each with ``register(subparsers)`` (adds the
sub-parser, every flag with a help string, and ``set_defaults(func=run)``) and ``run(args) -> int``
(the work, importing the library lazily so that ``phgmm --help`` stays fast). Options shared by
several commands (``--set``, ``--size``, ``--no-progress``, ``--overwrite``, ``--device``) come from
:mod:`phgmm.cli.options`, so that they are spelled and parsed alike everywhere. The library never
imports this package.

Adding a command ``phgmm foo``: write ``phgmm/cli/foo.py`` with ``register`` and ``run`` (copy
``export.py``) and add ``foo`` to :data:`COMMANDS` below.
"""

from __future__ import annotations

import argparse
import sys

from ..threads import prefer_passive_wait
from ..version import __version__
from . import benchmark, configs, evaluate, experiment, export, predict, publish, synth, train

__all__ = ["main", "build_parser", "COMMANDS"]

#: the command modules, in the order ``phgmm --help`` lists them
COMMANDS = (train, evaluate, predict, experiment, synth, export, publish, benchmark, configs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phgmm",
        description="PHGMM semantic segmentation: train, evaluate, "
        "predict, generate synthetic data, export to ONNX, benchmark.",
    )
    parser.add_argument(
        "--version", action="version", version=f"phgmm {__version__}", help="print the version and exit"
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", help="run `phgmm COMMAND --help` for its options"
    )
    sub.required = True
    for command in COMMANDS:
        command.register(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is the whole story for a user: printed as one line, exit 2."""
    from ..config import ConfigError
    from ..engine.checkpoint import CheckpointError
    from ..engine.loaders import TooManyBadSamples
    from ..engine.training.trainer import TrainingError
    from ..io import DiskFullError

    try:
        from ..data import DatasetError
    except ImportError:  # pragma: no cover - the data package always defines it
        DatasetError = ValueError  # type: ignore[misc,assignment]
    return (
        ConfigError,
        CheckpointError,
        TrainingError,
        TooManyBadSamples,
        DatasetError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
        DiskFullError,
    )


def _dash_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--scales -1,1`` as ``--scales=-1,1``: argparse takes a value that starts with '-' (and is
    not a plain negative number) for an option and answers "expected one argument"; joined, the
    value reaches the option's own check, which says what is wrong with it."""
    command = parser
    for token in argv:  # down the subcommands named (``experiment compare``) to the one that parses
        if token.startswith("-"):
            continue
        commands = next((a.choices for a in command._actions if isinstance(a, argparse._SubParsersAction)), {})
        if token not in commands:
            break
        command = commands[token]
    takes_value = {
        o
        for a in command._actions
        if a.option_strings and a.nargs is None and not isinstance(a, argparse._StoreConstAction)
        for o in a.option_strings
    }
    known = set(command._option_string_actions)
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else None
        if (
            token in takes_value
            and following is not None
            and following.startswith("-")
            and following.split("=", 1)[0] not in known
            and following != "--"
        ):
            out.append(f"{token}={following}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    # Before anything loads torch (_user_errors does): OpenMP reads its wait policy once, at start.
    prefer_passive_wait()
    parser = build_parser()
    args = parser.parse_args(_dash_values(parser, sys.argv[1:] if argv is None else list(argv)))
    errors = _user_errors()
    try:
        return int(args.func(args) or 0)
    except errors as exc:
        from ..data.errors import plain_message

        print(f"phgmm {args.command}: error: {plain_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"phgmm {args.command}: interrupted", file=sys.stderr)
        return 130
