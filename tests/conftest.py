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


# tiny nnU-Net datasets, planned and preprocessed once per session (tests/nnunet_datasets.py) ---------------
@pytest.fixture(name="run_nnunet", scope="session")
def run_nnunet_fixture():
    """`run_nnunet(command, env)`: run an nnU-Net console script, failing the test with its output."""
    from nnunet_datasets import run_nnunet

    return run_nnunet


@pytest.fixture(scope="session")
def label_dataset(tmp_path_factory: pytest.TempPathFactory):
    """Binary lesion dataset (labels background/lesion), 2D 64x64, preprocessed for `2d`."""
    from nnunet_datasets import prepared_dataset

    return prepared_dataset(tmp_path_factory.mktemp("nnunet_labels"), 981, regions=False)


@pytest.fixture(scope="session")
def region_dataset(tmp_path_factory: pytest.TempPathFactory):
    """Region-based dataset (nested regions in dataset.json), 2D 64x64, preprocessed for `2d`."""
    from nnunet_datasets import prepared_dataset

    return prepared_dataset(tmp_path_factory.mktemp("nnunet_regions"), 982, regions=True)
