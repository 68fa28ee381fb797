"""The package's import graph: no cycle, and no import from a lower layer to a higher one.

Layers, low to high (README "Architecture"): basics (version, io, conventions, configs, threads) →
config → data, metrics, report, visualize → models, losses → engine → experiments, benchmark, pretrained → cli and the
package root. Inside the engine, the shared modules kept flat in engine/ → inference → evaluation → training. Imports
inside functions count too: a lazy import is still a dependency. Every phgmm import names a module that exists, and
no module takes another module's private (underscore) name, by import or as an attribute: a name used across
modules has a public home.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "phgmm"

LAYERS = [
    ("phgmm.version", "phgmm.io", "phgmm.conventions", "phgmm.configs", "phgmm.threads", "phgmm.lazy"),
    ("phgmm.config",),
    ("phgmm.data", "phgmm.metrics", "phgmm.report", "phgmm.visualize"),
    ("phgmm.models", "phgmm.losses"),
    ("phgmm.engine",),
    ("phgmm.experiments", "phgmm.benchmark", "phgmm.pretrained"),
    ("phgmm.cli", "phgmm.__main__", "phgmm"),
]

#: inside the engine, low to high: the shared modules kept flat (builders, loaders, checkpoint, …), then the
#: pipelines: evaluation scores what inference computes (tiling), training validates with evaluation
ENGINE_LEVELS = [
    ("phgmm.engine",),
    ("phgmm.engine.inference",),
    ("phgmm.engine.evaluation",),
    ("phgmm.engine.training",),
]


def modules(root: Path = SRC) -> dict[str, Path]:
    out = {}
    for f in root.rglob("*.py"):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()

    def owner(name: str) -> str | None:
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in mods else None

    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
                if not target or not target.startswith("phgmm"):
                    continue
                for alias in node.names:  # `from . import x` imports the module x
                    dep = owner(f"{target}.{alias.name}") if f"{target}.{alias.name}" in mods else owner(target)
                    if dep and dep != mod:
                        deps.add(dep)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    dep = owner(alias.name) if alias.name.startswith("phgmm") else None
                    if dep and dep != mod:
                        deps.add(dep)
        graph[mod] = deps
    return graph


def layer(mod: str, layers: list[tuple[str, ...]] = LAYERS) -> int:
    best = None
    for i, prefixes in enumerate(layers):
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"{mod} is in no layer: add it to LAYERS"
    return best[0]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w) :] + [w]
            if w not in state and (c := visit(w)):
                return c
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (c := visit(v)):
            return c
    return None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_no_module_imports_a_higher_layer():
    upward = [f"{a} → {b}" for a, deps in import_graph().items() for b in deps if layer(b) > layer(a)]
    assert not upward, "imports that point upward:\n" + "\n".join(sorted(upward))


def test_inside_the_engine_no_module_imports_a_higher_level():
    upward = [
        f"{a} → {b}"
        for a, deps in import_graph().items()
        if a.startswith("phgmm.engine")
        for b in deps
        if b.startswith("phgmm.engine") and layer(b, ENGINE_LEVELS) > layer(a, ENGINE_LEVELS)
    ]
    assert not upward, "engine imports that point upward:\n" + "\n".join(sorted(upward))


def missing_modules(mods: dict[str, Path]) -> list[str]:
    """``module: target`` for every phgmm import of ``mods`` whose module does not exist (a module moved
    or renamed and an import left behind: the graph above would count it as its package's)."""
    out = []
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                targets = [".".join(base + ([node.module] if node.module else [])) if node.level else node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            out += [f"{mod}: {t}" for t in targets if t and t.startswith("phgmm") and t not in mods]
    return out


def test_every_import_names_a_module_that_exists():
    missing = missing_modules(modules())
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def private(name: str) -> bool:
    """``_name``, not ``__dunder__`` (``__version__`` is public)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_bindings(mod: str, path: Path, tree: ast.Module, mods: dict[str, Path]) -> dict[str, str]:
    """The local names in ``tree`` bound to a phgmm module: ``import phgmm.x as y``, ``from . import x``, …"""
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
            out |= {a.asname or a.name: f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods}
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("phgmm"):
                    out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
    return out


def dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None for anything but names and attributes."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute) and (head := dotted(node.value)):
        return [*head, node.attr]
    return None


def private_imports(mods: dict[str, Path], base: Path = SRC.parents[1]) -> list[str]:
    """``file:line: from target import _name`` (or ``target._name``) for every private name one module of
    ``mods`` takes from another phgmm module: imported by name, or read as an attribute of the module."""
    out = []
    for mod, path in sorted(mods.items()):
        where = path.relative_to(base) if path.is_relative_to(base) else path
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        tree = ast.parse(path.read_text())
        bound = module_bindings(mod, path, tree, mods)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                start = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(start + ([node.module] if node.module else [])) if node.level else node.module
                if target and target.startswith("phgmm") and target != mod:
                    names = [a.name for a in node.names if private(a.name)]
                    out += [(str(where), node.lineno, f"from {target} import {n}") for n in names]
            elif isinstance(node, ast.Attribute) and private(node.attr) and (chain := dotted(node.value)):
                owner = ".".join([bound.get(chain[0], chain[0]), *chain[1:]])
                if chain[0] in bound and owner in mods and owner != mod:
                    out.append((str(where), node.lineno, f"{owner}.{node.attr}"))
    return [f"{where}:{line}: {what}" for where, line, what in sorted(out)]


def test_no_module_imports_a_private_name():
    found = private_imports(modules())
    assert not found, "private names taken from another module (give each a public name):\n" + "\n".join(found)


def fake_package(tmp_path: Path) -> dict[str, Path]:
    """A small phgmm tree under ``tmp_path`` that takes private names in every way the check knows, and
    public ones, dunders and its own private names in ways it must let pass."""
    files = {
        "phgmm/__init__.py": "",
        "phgmm/version.py": "__version__ = '0'\n",
        "phgmm/models/__init__.py": "",
        "phgmm/models/base.py": "_init = 1\n_Base = 2\nBase = 3\nBase._hidden = _init\n",
        "phgmm/models/a.py": "from .base import Base, _Base\nfrom ..version import __version__\nBase._hidden\n",
        "phgmm/engine/__init__.py": "",
        "phgmm/engine/checkpoint.py": "_load = _save = 0\n",
        "phgmm/engine/training/__init__.py": "",
        "phgmm/engine/training/state.py": "_regroup = 0\n",
        "phgmm/engine/training/m.py": (
            "from .state import TrainingState, _regroup\nimport phgmm.engine.checkpoint\n"
            "phgmm.engine.checkpoint._load()\nfrom .. import checkpoint as ck; ck._save\n"
            "import phgmm.models.base as b; b._init, b.Base, self._own, phgmm.__version__\n"
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return modules(tmp_path / "phgmm")


def test_the_checks_can_fail(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer("phgmm.cli.train") > layer("phgmm.engine.training.trainer") > layer("phgmm.models.phgmm")
    assert layer("phgmm.models.phgmm") > layer("phgmm.io")
    levels = [layer(m, ENGINE_LEVELS) for m in ("phgmm.engine.checkpoint", "phgmm.engine.inference.tiling")]
    levels += [layer(m, ENGINE_LEVELS) for m in ("phgmm.engine.evaluation.evaluate", "phgmm.engine.training.trainer")]
    assert levels == [0, 1, 2, 3]
    assert private_imports(fake_package(tmp_path), base=tmp_path) == [
        "phgmm/engine/training/m.py:1: from phgmm.engine.training.state import _regroup",
        "phgmm/engine/training/m.py:3: phgmm.engine.checkpoint._load",
        "phgmm/engine/training/m.py:4: phgmm.engine.checkpoint._save",
        "phgmm/engine/training/m.py:5: phgmm.models.base._init",
        "phgmm/models/a.py:1: from phgmm.models.base import _Base",
    ]
    fake = fake_package(tmp_path)
    assert missing_modules(fake) == []
    del fake["phgmm.engine.training.state"]
    assert missing_modules(fake) == ["phgmm.engine.training.m: phgmm.engine.training.state"]
