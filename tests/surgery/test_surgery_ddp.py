"""DDP (gloo, 2 CPU processes): batch Dice with surgery pools over ranks like one process on the batch.

Why per-rank logit gradient == WORLD * single-process gradient: tests/ddp_check.py. nnU-Net's stock
MemoryEfficientSoftDiceLoss is checked alongside as the reference for this factor.
"""

from __future__ import annotations

import pytest
import torch
from ddp_check import check_ranks_against_single_process, run_ranks

DEVICE = torch.device("cpu")


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    return run_ranks(tmp_path_factory.mktemp("ddp"), "gloo", [DEVICE, DEVICE], torch.float64)


@pytest.mark.parametrize("channels", [2, 3])
def test_ddp_surgical_batch_dice_gradient_is_world_size_times_single_process(ddp_results, channels):
    full_grad = check_ranks_against_single_process(
        ddp_results, "surgical_dice", channels, DEVICE, torch.float64, 1e-12, 1e-15
    )
    assert full_grad.abs().max() > 0


@pytest.mark.parametrize("channels", [2, 3])
def test_ddp_surgical_dc_and_ce_gradient_is_world_size_times_single_process(ddp_results, channels):
    check_ranks_against_single_process(
        ddp_results, "surgical_dc_and_ce", channels, DEVICE, torch.float64, 1e-12, 1e-15
    )


def test_ddp_stock_nnunet_dice_has_the_same_world_size_factor(ddp_results):
    # nnU-Net's own loss sums in float32 (dtype=torch.float32), hence the float32 tolerance
    check_ranks_against_single_process(ddp_results, "stock_dice", 3, DEVICE, torch.float64, 1e-5, 1e-7)
