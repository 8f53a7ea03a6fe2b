"""Fixtures for every test folder.

The tests run on one intra-op thread: their tensors are tiny, and on a busy machine OpenMP's thread
hand-off costs milliseconds per operation (torch.log on 3000 values: 10 ms with 2 threads).
"""

from __future__ import annotations

import shutil

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def fresh_dynamo():
    """Reset torch.compile's caches and counters around a test; skip where inductor has no C++ compiler
    for CPU."""
    from torch._dynamo.utils import counters

    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        compiler = get_cpp_compiler()
    except Exception as err:  # inductor raises when it finds no C++ compiler
        pytest.skip(f"torch.compile on CPU needs a C++ compiler for inductor: {err}")
    if shutil.which(compiler) is None:
        pytest.skip(f"torch.compile on CPU needs inductor's C++ compiler {compiler!r}, not on PATH")
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()
