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


@pytest.fixture(scope="module")
def fidelity() -> Iterator[ModuleType]:
    yield from _bench_module("fidelity")


@pytest.fixture(scope="module")
def fidelity_analysis() -> Iterator[ModuleType]:
    yield from _bench_module("fidelity_analysis")


@pytest.fixture(scope="module")
def fidelity_tables() -> Iterator[ModuleType]:
    yield from _bench_module("fidelity_tables")


@pytest.fixture(scope="module")
def fidelity_grid() -> Iterator[ModuleType]:
    yield from _bench_module("fidelity_grid")


@pytest.fixture(scope="module")
def fixed_point() -> Iterator[ModuleType]:
    yield from _bench_module("fixed_point")


@pytest.fixture(scope="module")
def dice_pull() -> Iterator[ModuleType]:
    yield from _bench_module("dice_pull")
