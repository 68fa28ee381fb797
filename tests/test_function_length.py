"""Every function in src/phgmm is at most 60 lines, so that each can be read at once.

A function's length runs from its first statement after the docstring to its last line: the limit
is on code to follow, and a public entry point's argument list documented in full (e.g.
``run_benchmark``, one argument per line as ``ruff format`` writes it) is not a reason to split it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "phgmm"
LIMIT = 60


def code_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the body's first statement after the docstring to the function's end."""
    body = fn.body
    first = body[0]
    if len(body) > 1 and isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            body = body[1:]
    return fn.end_lineno - body[0].lineno + 1


def long_functions(root: Path = SRC, limit: int = LIMIT) -> list[str]:
    """``path:line name (N lines)`` of every function in ``root`` longer than ``limit``."""
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(node) > limit:
                out.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({code_lines(node)} lines)")
    return out


def test_every_function_is_at_most_60_lines():
    too_long = long_functions()
    assert not too_long, f"functions over {LIMIT} lines (split them into named parts):\n" + "\n".join(too_long)


def test_the_check_can_fail(tmp_path):
    def statements(n: int) -> str:
        return "".join(f"    x{i} = {i}\n" for i in range(n))

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    # short: LIMIT lines once its signature (one argument per line) and docstring are left out;
    # long: one line more
    signature = "".join(f"    a{i},\n" for i in range(30))
    (pkg / "m.py").write_text(
        f'def short(\n{signature}):\n    """A docstring\n    of three lines\n    is not code."""\n'
        f"{statements(LIMIT)}\n\ndef long():\n{statements(LIMIT + 1)}"
    )
    assert long_functions(pkg) == [f"pkg/m.py:{LIMIT + 38} long ({LIMIT + 1} lines)"]
