"""The package's import graph: no cycles anywhere, and the report's stages import one way only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nnunet_surgery"
# report stage -> stages it must never import (data flows inputs -> scoring -> outputs)
FORBIDDEN = {
    "nnunet_surgery.report.inputs": ("nnunet_surgery.report.scoring", "nnunet_surgery.report.outputs"),
    "nnunet_surgery.report.scoring": ("nnunet_surgery.report.outputs", "nnunet_surgery.report.pipeline"),
    "nnunet_surgery.report.outputs": ("nnunet_surgery.report.inputs", "nnunet_surgery.report.pipeline"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that `path` imports anywhere (top level, functions, TYPE_CHECKING)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module import name` the module
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_graph_sees_the_report_stages():
    graph = _graph()
    assert "nnunet_surgery.report.scoring.case" in graph["nnunet_surgery.report.scoring.aggregate"]
    assert "nnunet_surgery.report.inputs.options" in graph["nnunet_surgery.report.inputs.models"]


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_package():
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_report_stages_import_one_way(stage):
    graph = _graph()
    offending = {
        (module, target)
        for module, targets in graph.items()
        if module == stage or module.startswith(stage + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in FORBIDDEN[stage])
    }
    assert offending == set()
