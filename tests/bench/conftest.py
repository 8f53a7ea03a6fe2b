"""The bench/ scripts under test, imported as modules by their own names (bench/ is no package; its
scripts import `_common` and each other from their folder)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_module(name: str) -> Iterator[ModuleType]:
    """Import bench/NAME.py (and the bench modules it imports), yield it, and unregister those afterwards."""
    before = set(sys.modules)
    sys.path.insert(0, str(BENCH))
    try:
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))
    yield module
    for loaded in set(sys.modules) - before:
        if Path(getattr(sys.modules[loaded], "__file__", None) or "/").parent == BENCH:
            sys.modules.pop(loaded, None)


def _fixture(name: str):
    """A module-scoped fixture `name`: bench/NAME.py imported."""

    @pytest.fixture(scope="module", name=name)
    def bench_module() -> Iterator[ModuleType]:
        yield from _bench_module(name)

    return bench_module


fidelity = _fixture("fidelity")
fidelity_analysis = _fixture("fidelity_analysis")
fidelity_tables = _fixture("fidelity_tables")
fidelity_grid = _fixture("fidelity_grid")
fixed_point = _fixture("fixed_point")
dice_pull = _fixture("dice_pull")
report_stages = _fixture("report_stages")
