"""The CUDA suite: what nnU-Net runs on a GPU (float16 autocast, GradScaler, torch.compile, DDP).

Every test here is marked `cuda` and skipped without a CUDA device; `make test-cuda` runs them. The CPU suite
cannot stand in for it: nnU-Net compiles nothing on CPU, and CPU Inductor lowers graphs that CUDA Inductor
refuses (tests/trainers/test_compile_for_cuda.py guards what a CPU can see of that).
"""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda") is not None and not torch.cuda.is_available():
            item.add_marker(skip)


@pytest.fixture
def cuda() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())
