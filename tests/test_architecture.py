"""The module structure: no import circle, a foundation that imports nothing above it, and every
module importable on its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from ferbench import registry

PACKAGE = Path(__file__).resolve().parents[1] / "ferbench"

FOUNDATION = {
    "ferbench.errors": set(),
    "ferbench.plugins": {"ferbench.errors"},
    "ferbench.registry": {"ferbench.errors", "ferbench.plugins"},
    "ferbench.spec": {"ferbench.errors", "ferbench.registry"},
}
"""The lowest layer and the only ferbench modules each may import."""


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (``__init__`` names the package)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the ferbench modules it imports anywhere in its file (function bodies and
    ``TYPE_CHECKING`` blocks included). ``from a.b import c`` counts as importing ``a.b.c`` when
    that is a module, else ``a.b``."""
    modules = module_files()

    def owner(name: str) -> str:
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {owner(alias.name) for alias in node.names if alias.name.split(".")[0] == "ferbench"}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "ferbench":
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    imported.add(full if full in modules else owner(node.module))
        graph[module] = imported - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or ``None`` (depth-first search)."""
    done: set[str] = set()
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in stack:
            return [*stack[stack.index(module):], module]
        if module in done:
            return None
        stack.append(module)
        for imported in sorted(graph[module]):
            cycle = visit(imported)
            if cycle:
                return cycle
        stack.pop()
        done.add(module)
        return None

    return next((cycle for module in sorted(graph) if (cycle := visit(module))), None)


def test_find_cycle_finds_a_circle_and_only_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "ferbench.models.factories" in graph["ferbench.cards"]  # imported inside timm_card
    assert "ferbench.models.build" in graph["ferbench.cli.train"]


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("module", sorted(FOUNDATION))
def test_the_foundation_imports_nothing_above_it(module):
    assert import_graph()[module] <= FOUNDATION[module]


def test_every_module_imports_on_its_own():
    """Each module imported first, in a process where no other ferbench module was loaded yet
    (third-party packages stay loaded, for speed): a circle at run time fails here."""
    script = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "ferbench" or m.startswith("ferbench.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=-3))
print("\\n".join(failed))
"""
    modules = sorted(module_files())
    result = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True, text=True, timeout=600,
                            cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("entries", [registry.DATASETS, registry.MODELS, registry.OBJECTIVES, registry.AUGMENTATIONS],
                         ids=lambda r: r.kind)
def test_every_registry_names_a_module_of_built_ins_that_fills_it(entries):
    assert entries.builtins in module_files()
    assert entries.names()  # importing the built-ins registered something
