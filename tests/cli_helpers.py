"""What the command-line tests share: the tiny PHGMM overrides, ``--set`` arguments and the
one-line error check (imported by the test files; not a test module)."""

from __future__ import annotations

#: a tiny PHGMM on the demo config: a case trains in a few seconds on a CPU
TINY = [
    "data.size=[128, 64]",
    "model.decoder_units=[1, 1, 1, 1]",
    "model.latent_dim=16",
    "model.component_dim=8",
    "model.local_channels=32",
    "model.global_dim=8",
    "model.num_components=3",
    "train.batch_size=2",
    "eval.batch_size=2",
    "eval.tsne=false",
    "train.log_every=1",
]


def set_args(*overrides: str) -> list[str]:
    """``["--set", o1, "--set", o2, …]``."""
    return [a for o in overrides for a in ("--set", o)]


def one_line_error(capsys, command: str) -> str:
    """The one stderr line of a refused ``phgmm COMMAND`` (no traceback), returned for its words."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(f"phgmm {command}: error: "), err
    return lines[0]
