"""The package's import graph: no cycles anywhere, and the layers import one way only.

    commands/, cli                      the console script: nothing in the library imports it
    demo/                               runs the commands as nnU-Net's and our console scripts
    report/  recalibration/  maps/      one room per command, peers: none imports another
    risk_control/                       (conformal; may import conformal/ too)
    cases/                              the case layer under every command: imports only calibration/
    calibration/, conformal/            the math: imports nothing else of the package

Inside report/, data flow inputs -> scoring -> outputs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nnunet_surgery"
# report stage -> stages it must never import (data flows inputs -> scoring -> outputs)
FORBIDDEN = {
    "nnunet_surgery.report.inputs": (
        "nnunet_surgery.report.scoring",
        "nnunet_surgery.report.outputs",
        "nnunet_surgery.report.pipeline",
    ),
    "nnunet_surgery.report.scoring": ("nnunet_surgery.report.outputs", "nnunet_surgery.report.pipeline"),
    "nnunet_surgery.report.outputs": ("nnunet_surgery.report.inputs", "nnunet_surgery.report.pipeline"),
}
# the commands' rooms, which stand side by side on the case layer
PEERS = (
    "nnunet_surgery.report",
    "nnunet_surgery.recalibration",
    "nnunet_surgery.maps",
    "nnunet_surgery.risk_control",
)
# layer -> the only parts of the package it may import (besides itself)
BELOW = {
    "nnunet_surgery.cases": ("nnunet_surgery.calibration",),
    "nnunet_surgery.calibration": (),
    "nnunet_surgery.conformal": (),
}
# the console script: the only modules that may import it are its own
CONSOLE = ("nnunet_surgery.commands", "nnunet_surgery.cli")


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


def _within(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".")


def _imports_of(graph: dict[str, set[str]], part: str) -> set[tuple[str, str]]:
    """(module, target) for every import that a module of `part` makes of a module outside `part`."""
    return {
        (module, target)
        for module, targets in graph.items()
        if _within(module, part)
        for target in targets
        if not _within(target, part)
    }


def test_the_graph_sees_the_layers():
    graph = _graph()
    assert "nnunet_surgery.report.scoring.case" in graph["nnunet_surgery.report.scoring.aggregate"]
    assert "nnunet_surgery.report.inputs.options" in graph["nnunet_surgery.report.inputs.models"]
    assert "nnunet_surgery.cases" in graph["nnunet_surgery.recalibration.fit"]
    assert "nnunet_surgery.calibration" in graph["nnunet_surgery.cases.npz"]  # an import inside a function
    assert "nnunet_surgery.commands._options" in graph["nnunet_surgery.commands.report"]


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


@pytest.mark.parametrize("layer", sorted(BELOW))
def test_a_lower_layer_imports_nothing_above_it(layer):
    graph = _graph()
    offending = {
        (module, target)
        for module, target in _imports_of(graph, layer)
        if not any(_within(target, allowed) for allowed in BELOW[layer])
    }
    assert offending == set()


@pytest.mark.parametrize("room", PEERS)
def test_the_command_rooms_import_nothing_of_each_other(room):
    graph = _graph()
    others = [peer for peer in PEERS if peer != room]
    offending = {
        (module, target)
        for module, target in _imports_of(graph, room)
        if any(_within(target, other) for other in others)
    }
    assert offending == set()


def test_no_library_module_imports_the_console_script():
    graph = _graph()
    offending = {
        (module, target)
        for module, targets in graph.items()
        if not any(_within(module, part) for part in CONSOLE)
        for target in targets
        if any(_within(target, part) for part in CONSOLE)
    }
    assert offending == set()


def test_the_layer_rules_catch_a_planted_import():
    graph = {
        "nnunet_surgery.cases.npz": {"nnunet_surgery.report.scoring.case", "nnunet_surgery.cases.errors"}
    }
    assert _imports_of(graph, "nnunet_surgery.cases") == {
        ("nnunet_surgery.cases.npz", "nnunet_surgery.report.scoring.case")
    }
