"""The test suite's own layout: test files import shared helpers from tests/support.py only (never
from each other), are named ``test_<subject>.py`` after what they test, not after past work, and
every test the README and docs/ name by file or function exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TEST_FILES = sorted(TESTS.glob("test_*.py"))

#: words that name past work rather than a subject
HISTORY = re.compile(r"round\d|issue\d|part_[a-z]\b|_and_|fixes|regression|misc|new_|old_")


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_test_module_imports_another():
    offenders = {p.name: sorted(n for n in _imported_modules(p) if n.startswith("test_")) for p in TEST_FILES}
    assert not {k: v for k, v in offenders.items() if v}, "import shared helpers from tests/support.py"


def test_test_files_are_named_by_subject():
    assert TEST_FILES
    bad = [
        p.name for p in TEST_FILES if not re.fullmatch(r"test_[a-z][a-z0-9_]*\.py", p.name) or HISTORY.search(p.stem)
    ]
    assert not bad, "name a test file test_<subject>.py after what it tests"
    assert not [
        p.name for p in TESTS.glob("*.py") if p.name not in ("conftest.py", "support.py") and p not in TEST_FILES
    ]


#: a test named in the docs: `test_x.py::test_y`, or `…::test_y` for another test of the file named before it
TEST_REFERENCE = re.compile(r"`(?:tests/)?(test_\w+\.py)(?:::(test_\w+))?`|`…::(test_\w+)`")


def stale_test_references(text: str, tests: Path = TESTS) -> list[str]:
    """Each reference in ``text`` to a test file or test function that does not exist in ``tests``."""
    stale, current = [], None
    for m in TEST_REFERENCE.finditer(text):
        current = m.group(1) or current
        name = m.group(2) or m.group(3)
        path = tests / current if current else None
        if path is None or not path.is_file():
            stale.append(f"{current}: no such test file")
        elif name and not re.search(rf"^\s*def {name}\(", path.read_text(), re.M):
            stale.append(f"{current}::{name}: no such test")
    return stale


def test_the_tests_the_docs_name_exist():
    pages = [TESTS.parent / "README.md", *sorted((TESTS.parent / "docs").glob("*.md"))]
    found = {p.name: stale_test_references(p.read_text()) for p in pages}
    assert not {k: v for k, v in found.items() if v}, "a page names a test by a file or name it no longer has"
    # the check itself: a renamed file, a missing test and a continuation into the wrong file are caught
    text = (
        "`test_old_name.py::test_x`, `test_test_layout.py::test_no_test_module_imports_another`, "
        "`…::test_missing`, `…::test_test_files_are_named_by_subject`"
    )
    assert stale_test_references(text) == [
        "test_old_name.py: no such test file",
        "test_test_layout.py::test_missing: no such test",
    ]
