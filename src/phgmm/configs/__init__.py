"""Configs shipped with phgmm, found by name: ``phgmm train --config demo`` works from any folder.

Training configs sit in this folder (``demo.yaml``, ``cityscapes_phgmm_r101.yaml`` …), experiment
files in ``experiments/``. The repository's top-level ``configs`` is a link to this folder.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_DIR", "find_config", "require_config", "list_configs"]

CONFIG_DIR = Path(__file__).resolve().parent


def _first_comment(path: Path) -> str:
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line:
            break
    return ""


def list_configs() -> list[tuple[str, str]]:
    """(name, first comment line) of every shipped config; experiments as ``experiments/NAME``."""
    out = []
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        name = path.relative_to(CONFIG_DIR).with_suffix("").as_posix()
        out.append((name, _first_comment(path)))
    return out


def find_config(name: str) -> Path | None:
    """The shipped config called ``name`` (with or without ``.yaml``, e.g. ``demo`` or
    ``experiments/compare_camvid``; ``configs/demo.yaml`` too, the path in a clone), or None."""
    stem = name[:-5] if name.endswith(".yaml") else name
    # "configs/demo.yaml", as the docs write it from a clone (whose configs/ is this folder), is the
    # shipped "demo" from any folder
    parts = Path(stem).parts
    if len(parts) > 1 and parts[0] == "configs":
        stem = Path(*parts[1:]).as_posix()
    for candidate in (CONFIG_DIR / f"{stem}.yaml", CONFIG_DIR / "experiments" / f"{stem}.yaml"):
        if candidate.is_file():
            return candidate
    return None


def require_config(name: str, error: type[Exception] = FileNotFoundError) -> Path:
    """:func:`find_config`, raising ``error`` that lists the shipped names when there is none."""
    found = find_config(name)
    if found is None:
        names = ", ".join(n for n, _ in list_configs())
        raise error(f"{name}: config file not found (and no shipped config of that name: {names})")
    return found
