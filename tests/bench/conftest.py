"""The bench/ scripts under test, loaded as modules (bench/ is no package; its scripts import `_common`
from their folder)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_module(name: str) -> Iterator[ModuleType]:
    """Load bench/NAME.py as `bench_NAME`, yield it, and unregister it afterwards."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def fidelity() -> Iterator[ModuleType]:
    yield from _bench_module("fidelity")


@pytest.fixture(scope="module")
def fixed_point() -> Iterator[ModuleType]:
    yield from _bench_module("fixed_point")


@pytest.fixture(scope="module")
def dice_pull() -> Iterator[ModuleType]:
    yield from _bench_module("dice_pull")
