"""Numbers for the docs: read the committed raw files, compute and format what a page states.

README.md and docs/*.md state no measured figure by hand: each one is printed by a `cog`
generator inside the page (``<!-- [[[cog … ]]] -->`` … ``<!-- [[[end]]] -->``) that reads the
files under ``docs/results/`` with the loaders below and formats them with the helpers below.
``make docs`` regenerates every page; ``tests/test_docs_numbers.py`` fails when a page differs
from what its generators print, or when a generator reads no file.

Paths are relative to the repository root (cog runs there). Every file a loader opens is
recorded (:func:`files_read`), so the check can tell a generated block that names no file.
The helpers are kept here, in the package, rather than beside the pages, so that the blocks
import them without a path set-up and ruff and the suite check them like any other code.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS",
    "read_json",
    "read_csv",
    "read_text",
    "read_yaml",
    "study",
    "metrics",
    "history",
    "get",
    "files_read",
    "reset_files_read",
    "mean_sd",
    "pm",
    "fmt",
    "signed",
    "pct",
    "span",
    "ratio",
    "times",
    "minutes_seconds",
    "ordering",
    "rank",
    "kendall_tau",
    "pairs_agreeing",
    "welch_p",
    "link",
    "table",
]

#: where the committed results live, relative to the repository root
RESULTS = Path("docs/results")
MINUS = "−"  # U+2212: the pages print negative numbers with a minus sign, not a hyphen

_read: list[str] = []


# ---------------------------------------------------------------------------------------------
# loading (every opened file is recorded)


def _resolve(path: str | os.PathLike) -> Path:
    """``path`` as given, or under docs/results/ when it is a bare study path."""
    p = Path(path)
    return p if p.exists() or p.parts[:2] == RESULTS.parts else RESULTS / p


def _note(path: Path) -> None:
    _read.append(path.as_posix())


def files_read() -> list[str]:
    """The files the loaders opened since the last :func:`reset_files_read`."""
    return list(_read)


def reset_files_read() -> None:
    _read.clear()


@cache
def _json_cached(absolute: str, mtime: float) -> Any:
    with open(absolute, encoding="utf-8") as f:
        return json.load(f)


def read_json(path: str | os.PathLike) -> Any:
    """A committed JSON file (``docs/results/…`` or a path under it, e.g. ``gpu_h100/bench_bf16.json``)."""
    p = _resolve(path)
    _note(p)
    return _json_cached(str(p.resolve()), p.stat().st_mtime)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """A committed CSV file as a list of rows (strings, as written)."""
    p = _resolve(path)
    _note(p)
    with open(p, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_text(path: str | os.PathLike) -> str:
    """A committed text file (a log, a benchmark's printed output)."""
    p = _resolve(path)
    _note(p)
    return p.read_text(encoding="utf-8")


def read_yaml(path: str | os.PathLike) -> Any:
    """A committed YAML file (a run's config.yaml)."""
    import yaml

    return yaml.safe_load(read_text(path))


def metrics(name: str, run: str) -> dict[str, Any]:
    """``docs/results/<name>/<run>/metrics.json``."""
    return read_json(RESULTS / name / run / "metrics.json")


def history(name: str, run: str, file: str = "history.json") -> list[dict[str, Any]]:
    """``docs/results/<name>/<run>/history.json`` (one record per epoch)."""
    return read_json(RESULTS / name / run / file)


def study(name: str) -> dict[str, dict[str, Any]]:
    """Every finished run of an experiment: run name → its metrics.json (the raw file, not
    results.csv, which is derived from it), in folder order."""
    folder = _resolve(name)
    return {d.name: metrics(name, d.name) for d in sorted(folder.iterdir()) if (d / "metrics.json").is_file()}


def get(m: Mapping[str, Any], key: str) -> float:
    """A number of one run's metrics.json by its results.csv name: top level (``miou``), else under
    ``latent``, ``timing`` or ``trimap``; ``trimap_mean`` is the mean over every width.
    Raises KeyError when the run has no such number (a page must not print a blank)."""
    if key == "trimap_mean":
        vals = [v for v in (m.get("trimap") or {}).values() if v is not None]
        if not vals:
            raise KeyError(key)
        return sum(vals) / len(vals)
    if key.startswith("iou_"):
        return m["iou"][key[4:]]
    for section in (m, m.get("latent") or {}, m.get("timing") or {}):
        if section.get(key) is not None:
            return section[key]
    raise KeyError(f"{m.get('run', '?')}: no {key!r}")


# ---------------------------------------------------------------------------------------------
# statistics


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1); the sd of one value is 0."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("mean_sd of no values")
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def ratio(a: float, b: float) -> float:
    return a / b


def ordering(values: Mapping[str, float], descending: bool = True) -> list[str]:
    """Names sorted by value, highest first (ties keep the mapping's order)."""
    return sorted(values, key=lambda k: -values[k] if descending else values[k])


def rank(values: Mapping[str, float], name: str, descending: bool = True) -> int:
    """1-based place of ``name`` (1 = the highest value)."""
    return ordering(values, descending).index(name) + 1


def pairs_agreeing(a: Sequence[float], b: Sequence[float]) -> tuple[int, int]:
    """(pairs ordered the same way in ``a`` and ``b``, all pairs)."""
    n = len(a)
    if n != len(b):
        raise ValueError("sequences of different length")
    same = sum((a[i] - a[j]) * (b[i] - b[j]) > 0 for i in range(n) for j in range(i + 1, n))
    return same, n * (n - 1) // 2


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's τ-b (ties in either sequence corrected, as scipy's default)."""
    n = len(a)
    if n != len(b) or n < 2:
        raise ValueError("need two sequences of the same length ≥ 2")
    conc = disc = ties_a = ties_b = 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif da * db > 0:
                conc += 1
            else:
                disc += 1
    return (conc - disc) / math.sqrt((conc + disc + ties_a) * (conc + disc + ties_b))


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p of Welch's t-test (unequal variances)."""
    from scipy.stats import ttest_ind

    return float(ttest_ind(a, b, equal_var=False).pvalue)


# ---------------------------------------------------------------------------------------------
# formatting


def fmt(x: float, digits: int = 2, scale: float = 1.0) -> str:
    """``x·scale`` with ``digits`` decimals and a minus sign; thousands separated in integers."""
    v = x * scale
    s = f"{v:,.{digits}f}" if digits == 0 else f"{v:.{digits}f}"
    if s.startswith("-") and not s.strip("-0.,"):
        s = s[1:]  # no "−0.00" for a value that rounds to zero
    return s.replace("-", MINUS)


def signed(x: float, digits: int = 2, scale: float = 1.0) -> str:
    """Like :func:`fmt` with an explicit + on positive values (changes, differences)."""
    s = fmt(x, digits, scale)
    return s if s.startswith(MINUS) else "+" + s


def pct(x: float, digits: int = 1) -> str:
    """A fraction as a percentage number (no % sign): 0.3576 → '35.8'."""
    return fmt(x, digits, 100.0)


def pm(values: Iterable[float], digits: int = 2, scale: float = 1.0) -> str:
    """'mean ± sd' over seeds (sample sd): [35.4, 35.7, 36.0] → '35.70 ± 0.30'."""
    m, s = mean_sd(values)
    return f"{fmt(m, digits, scale)} ± {fmt(s, digits, scale)}"


def span(values: Iterable[float], digits: int = 2, scale: float = 1.0) -> str:
    """'lowest–highest' ('1.38–3.06'; '−7.09 to 2.39' when the lowest is negative), or one
    number when they print the same."""
    v = list(values)
    lo, hi = fmt(min(v), digits, scale), fmt(max(v), digits, scale)
    return lo if lo == hi else f"{lo} to {hi}" if lo.startswith(MINUS) else f"{lo}–{hi}"


def minutes_seconds(seconds: float) -> str:
    """433.2 → '7 min 13 s' (rounded to the second)."""
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s"


def times(x: float, digits: int = 2) -> str:
    """A ratio as a factor: 2.2857 → '2.29×'."""
    return f"{fmt(x, digits)}×"


def link(target: str | os.PathLike, text: str | None = None, page: str = "docs/x.md") -> str:
    """A Markdown link to ``target`` (relative to the repository root) from ``page``."""
    rel = os.path.relpath(Path(target), Path(page).parent).replace(os.sep, "/")
    return f"[{text or Path(target).name}]({rel})"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one letter per column, 'l' or 'r' (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header):
        raise ValueError("one alignment letter per column")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
