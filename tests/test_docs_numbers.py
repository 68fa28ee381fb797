"""Every measured figure in README.md and docs/*.md is printed by a generator from a committed file.

The pages carry cog generators (``<!-- [[[cog … ]]] -->`` … ``<!-- [[[end]]] -->``) that read
docs/results/ through :mod:`phgmm.experiments.numbers`; ``make docs`` regenerates them. These tests
fail when a page differs from what its generators print (naming the page and the line), when a
generator reads no file, and when a decimal figure, a percentage or a factor stands outside a
generated block without being listed below as a setting or the paper's own number.
"""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path

import cogapp  # the test extra installs it; without it the pages go unchecked, so fail, never skip

from phgmm.experiments import numbers

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]

#: figures typed outside generated blocks that are not measured results: settings, sizes of
#: inputs, targets, the paper's own numbers (marked as the paper's in the text). A new entry is a
#: decision that the figure is not a result of a run; a result belongs in a generated block.
TYPED: dict[str, set[str]] = {
    "README.md": {"3.11", "0.4", "1.1", "0.5", "0.3", "0.75", "1.0", "1.25", "0.75,1.0,1.25", "82.12"},
    "docs/comparisons.md": {"1.0"},
    "docs/data.md": {"1.0", "1.5", "0.5", "0.2", "0.8", "1.2", "0.2·255"},
    "docs/design.md": {
        "1.1",
        "0.4",
        "0.9",
        "0.01",
        "0.05",
        "1.0",
        "1.5",
        "82.12",
        "81.90",
        "75.21",
        "65.43",
        "86.04",
        "85.68",
        "77.38",
        "1.167",
        "0.4×",
        "0.9×",
        "3 %",
        "2.13",
    },  # PyTorch's version
    "docs/latent.md": {"0.01", "0.5", "0.3", "0.1", "1.0", "4.6"},
    "docs/models.md": {"0.4", "0.05", "3.9", "29.5", "65.8", "0.37", "2×"},
    "docs/performance.md": {"0.9", "1.5×", "2.5×", "1.0", "2.13"},  # 2.13: PyTorch's version
    "docs/gpu.md": {"1.5", "0.4", "35 %"},
    "docs/reliability.md": {"0.001", "0.5", "1 %", "5 %"},
    "docs/uncertainty.md": {"0.5"},
}

_FIGURE = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)*(?:\s?%|×)|\d+\.\d+(?:·\d+)?)(?![\w])")


def _diff_line(page: str, stated: str, generated: str, most: int = 8) -> str:
    """'page line N: the page says … / its generator prints …' for each line that differs."""
    a, b = stated.splitlines(), generated.splitlines()
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            was = a[i1 + k] if i1 + k < i2 else "(nothing)"
            now = b[j1 + k] if j1 + k < j2 else "(nothing)"
            out.append(f"{page} line {i1 + k + 1}: the page says\n    {was}\n  its generator prints\n    {now}")
    return "\n".join(out[:most]) if out else f"{page}: differs in line endings"


def check_pages(root: Path, pages: list[str]) -> list[str]:
    """Run every generator of ``pages`` under ``root`` (in check mode: nothing is written) and
    return one problem per page that differs, and per generator that reads no file."""
    problems: list[str] = []
    original = cogapp.cogapp.CogGenerator.evaluate
    current: dict[str, str] = {}

    def evaluate(self, cog, globals, fname):  # noqa: A002 (cog's own signature)
        numbers.reset_files_read()
        out = original(self, cog, globals, fname)
        if not numbers.files_read():
            first = next((line.strip() for line in self.lines if line.strip()), "")
            line = next((i + 1 for i, t in enumerate(current["text"].splitlines()) if first and first in t), "?")
            problems.append(f"{current['page']} line {line}: a generated block that reads no committed file")
        return out

    import os

    cwd = os.getcwd()
    os.chdir(root)
    cogapp.cogapp.CogGenerator.evaluate = evaluate
    try:
        for page in pages:
            text = (root / page).read_text(encoding="utf-8")
            current["text"], current["page"] = text, page
            out = cogapp.Cog().process_string(text, fname=page)
            if out != text:
                problems.append(_diff_line(page, text, out))
    finally:
        cogapp.cogapp.CogGenerator.evaluate = original
        os.chdir(cwd)
    return problems


def _outside_generated(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the text a reader sees that no generator wrote: outside cog blocks
    and fenced code, with inline code and link targets blanked."""
    lines, out, in_block, in_fence = text.splitlines(), [], False, False
    for i, line in enumerate(lines, 1):
        if "[[[cog" in line:
            in_block = True
        if in_block:
            in_block = "[[[end]]]" not in line
            continue
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        line = re.sub(r"`[^`]*`", "", line)
        line = re.sub(r"\]\([^)]*\)", "]", line)
        out.append((i, line))
    return out


def test_every_page_matches_what_its_generators_print():
    problems = check_pages(ROOT, PAGES)
    assert not problems, "run `make docs` (or fix the generator):\n" + "\n".join(problems)


def test_no_measured_figure_stands_outside_a_generated_block():
    found = []
    for page in PAGES:
        for i, line in _outside_generated((ROOT / page).read_text(encoding="utf-8")):
            for m in _FIGURE.finditer(line):
                if m.group(1).replace(" ", "") not in {t.replace(" ", "") for t in TYPED.get(page, set())}:
                    found.append(f"{page} line {i}: {m.group(1)!r} in: {line.strip()[:100]}")
    assert not found, (
        "figures typed by hand: print them from their file in a cog block, or list a setting "
        "in TYPED:\n" + "\n".join(found)
    )


def test_the_figure_pattern_finds_results_and_skips_code():
    text = "mIoU 35.76 and 2.3× faster, 16 % of pixels\n`--set train.lr=1.5` [a](x/1.5.md)\n```\n9.99\n```\n"
    seen = [m.group(1) for _, line in _outside_generated(text) for m in _FIGURE.finditer(line)]
    assert seen == ["35.76", "2.3×", "16 %"]


def test_the_check_fails_when_a_metrics_value_changes(tmp_path):
    """Tried as a careful reviewer would: one metrics.json value edited in a scratch copy."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    assert check_pages(tmp_path, ["docs/comparisons.md"]) == []
    path = tmp_path / "docs/results/compare_camvid/phgmm/metrics.json"
    path.write_text(path.read_text().replace('"miou": 0.357597365992271', '"miou": 0.367597365992271', 1))
    problems = check_pages(tmp_path, ["docs/comparisons.md"])
    assert len(problems) == 1
    assert problems[0].startswith("docs/comparisons.md line ")
    assert "the page says\n    | phgmm | 35.76 | 80.70" in problems[0]
    assert "its generator prints\n    | phgmm | 36.76 | 80.70" in problems[0]


def test_a_block_that_reads_no_file_is_named(tmp_path):
    (tmp_path / "docs").mkdir()
    page = "<!-- [[[cog\ncog.outl('42.00')\n]]] -->\n42.00\n<!-- [[[end]]] -->\n"
    (tmp_path / "p.md").write_text(page)
    assert check_pages(tmp_path, ["p.md"]) == ["p.md line 2: a generated block that reads no committed file"]
