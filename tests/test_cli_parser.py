"""The command line's shape: every command and flag documented, one spelling per option, sizes
in every spelling ``--set data.size`` takes, and no library module importing the CLI."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from phgmm.cli import COMMANDS, build_parser, main
from phgmm.cli.options import parse_size

SRC = Path(__file__).resolve().parents[1] / "src" / "phgmm"
NAMES = ["train", "evaluate", "predict", "experiment", "synth", "export", "publish", "benchmark", "configs"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_command_and_flag_has_help():
    parser = build_parser()
    [sub_action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {a.dest: a.help for a in sub_action._choices_actions}
    assert list(helps) == [*NAMES, "models"] and all(helps.values())  # configs.py also registers `models`
    assert [m.__name__.rsplit(".", 1)[1] for m in COMMANDS] == NAMES
    for name, sub in _subparsers(parser).items():
        assert sub.description, f"phgmm {name} has no description"
        for action in sub._actions:
            if action.help == argparse.SUPPRESS and action.dest == "quiet":
                continue  # synth's hidden old spelling
            assert action.help and action.help.strip(), f"phgmm {name} {action.option_strings or action.dest}"
    for action in parser._actions:
        assert action.help, action.option_strings


def test_train_help_has_a_description(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "Train PHGMM or a baseline from a YAML config" in out and "--resume CKPT" in out


@pytest.mark.parametrize("text", ["128x64", "128X64", "128×64", "[128,64]", "[128, 64]", " [ 128 ,64 ] "])
def test_size_spellings(text):
    assert parse_size(text) == (128, 64)
    args = build_parser().parse_args(["predict", "img.png", "--checkpoint", "c.pt", "--out", "o", "--size", text])
    assert args.size == (128, 64)


@pytest.mark.parametrize("text", ["128", "[128]", "128x", "axb", "[128,64,3]", "(128,64)", "0x64"])
def test_bad_sizes_are_usage_errors(text, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["predict", "img.png", "--out", "o", "--size", text])
    assert exc.value.code == 2
    assert "size must be" in capsys.readouterr().err


def test_same_size_option_everywhere():
    parser = build_parser()
    for argv in (
        ["synth", "--out", "o"],
        ["export", "--checkpoint", "c", "--out", "o"],
        ["benchmark"],
        ["predict", "x", "--out", "o"],
    ):
        assert parser.parse_args([*argv, "--size", "[96,48]"]).size == (96, 48), argv[0]


def test_out_is_one_spelling_and_train_print_config_shows_it(capsys):
    subs = _subparsers(build_parser())
    for name in ("train", "evaluate", "predict", "synth", "export", "publish"):
        assert "--out" in subs[name]._option_string_actions, name
    import yaml

    def printed(*argv: str) -> dict:
        assert main(["train", "--config", "demo", *argv, "--print-config"]) == 0
        return yaml.safe_load(capsys.readouterr().out)

    default = printed("--set", "train.epochs=3")
    assert default["train"]["epochs"] == 3 and default["output_dir"] == "runs/demo"
    # --out wins over --set and stays the folder name the user typed, not a YAML number
    cfg = printed("--set", "output_dir=elsewhere", "--out", "2026")
    assert cfg["output_dir"] == "2026" and cfg["train"]["epochs"] == 8


def test_no_progress_is_one_spelling():
    subs = _subparsers(build_parser())
    for name in ("train", "evaluate", "predict", "synth"):
        assert "--no-progress" in subs[name]._option_string_actions, name
    assert "--quiet" not in subs["synth"].format_help()  # hidden, still accepted
    args = build_parser().parse_args(["synth", "--out", "o", "--quiet"])
    assert args.quiet and not args.no_progress


def test_synth_through_main(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["synth", "--out", str(out), "--num", "1", "--size", "[64,32]", "--no-progress"]) == 0
    assert "wrote 1 cityscapes scenes of 64x32" in capsys.readouterr().out
    assert len(list(out.rglob("*_leftImg8bit.png"))) == 1
    # a non-empty folder is a one-line error; --quiet (old spelling) prints nothing on success
    assert main(["synth", "--out", str(out), "--num", "1", "--size", "64x32", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("phgmm synth: error:") and "not empty" in err and err.count("\n") == 1
    assert main(["synth", "--out", str(out), "--num", "1", "--size", "64x32", "--quiet", "--overwrite"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["synth", "--out", str(tmp_path / "t"), "--size", "16x16", "--no-progress"]) == 2
    assert "too small" in capsys.readouterr().err


def test_no_library_module_imports_the_cli():
    """The CLI sits on top: only phgmm/cli/* and phgmm/__main__.py may import it."""
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "cli" or rel == Path("__main__.py"):
            continue
        package = ["phgmm", *rel.parts[:-1]]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join([*base, node.module] if node.module else base)
                targets = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            if any(t == "phgmm.cli" or t.startswith("phgmm.cli.") for t in targets):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, offenders


def test_python_dash_m_phgmm():
    for module in ("phgmm", "phgmm.cli"):
        done = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stdout.startswith("phgmm "), (module, done.stderr)
