"""DDP on CUDA: batch Dice with surgery over two processes equals one process on the whole batch.

nccl with a GPU per rank where there are two, else gloo with both ranks' CUDA tensors on one device; float32
(the fused kernels' path). Why the per-rank gradient is WORLD times the one-process one: tests/ddp_check.py.
"""

from __future__ import annotations

import pytest
import torch
from ddp_check import CASES, check_ranks_against_single_process, run_ranks

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def ddp_setup(tmp_path_factory):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if torch.cuda.device_count() >= 2 and torch.distributed.is_nccl_available():
        backend, devices = "nccl", [torch.device("cuda", 0), torch.device("cuda", 1)]
    else:
        backend, devices = "gloo", [torch.device("cuda", 0)] * 2
    return backend, run_ranks(tmp_path_factory.mktemp("ddp_cuda"), backend, devices, torch.float32)


@pytest.mark.parametrize(("name", "channels"), CASES)
def test_ddp_on_cuda_gradient_is_world_size_times_single_process(ddp_setup, name, channels):
    _, results = ddp_setup
    # float32 sums over 2 x 2 images: a few roundings
    full_grad = check_ranks_against_single_process(
        results, name, channels, torch.device("cuda", 0), torch.float32, 1e-5, 1e-7
    )
    assert full_grad.abs().max() > 0
