"""The test suite's own layout: test files import shared helpers from tests/support.py only (never
from each other), and are named ``test_<subject>.py`` after what they test, not after past work."""

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
