"""Run the tests on one intra-op thread: their tensors are tiny, and on a busy machine OpenMP's
thread hand-off costs milliseconds per operation (torch.log on 3000 values: 10 ms with 2 threads)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
