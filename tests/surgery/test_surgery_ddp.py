"""DDP (gloo, 2 CPU processes): batch Dice with surgery pools over ranks like one process on the batch.

Why per-rank logit gradient == WORLD * single-process gradient (W = world size):
with batch_dice and ddp, every rank all-gathers the per-image sums (AllGatherGrad), sums them over ranks
and images, and so computes the same global loss L. Its backward on rank q gives the same dL/dsum for
every gathered slot; AllGatherGrad's backward all-reduces those with SUM, i.e. W * dL/dsum, and returns
the slot of rank q. Hence dL_q/dz = W * dL/dz for the rank's own logits z. DDP then averages the
parameter gradients over ranks: (1/W) sum_q W dL/dz_q dz_q/dtheta = dL/dtheta, the single-process one.
The CE term of DC_and_CE_loss is a mean over the rank's own voxels (half of them), so its per-rank
gradient is also W times the full-batch one, and the compound loss keeps the same factor.
nnU-Net's stock MemoryEfficientSoftDiceLoss is checked alongside as the reference for this factor.
"""

from __future__ import annotations

import datetime
import multiprocessing
import socket
from pathlib import Path

import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1

from nnunet_surgery.losses import SoftTverskyLoss

WORLD = 2
BATCH = 4
CASES = [
    ("surgical_dice", 2),
    ("surgical_dice", 3),
    ("surgical_dc_and_ce", 2),
    ("surgical_dc_and_ce", 3),
    ("stock_dice", 3),
]


def _make_loss(name: str, ddp: bool):
    dice_kwargs = {"batch_dice": True, "do_bg": False, "smooth": 1e-5, "ddp": ddp}
    if name == "surgical_dice":
        return SoftTverskyLoss(softmax_helper_dim1, surgery=True, exponent=20, **dice_kwargs)
    if name == "surgical_dc_and_ce":
        return DC_and_CE_loss(
            {**dice_kwargs, "surgery": True, "exponent": 20}, {}, 1, 1, dice_class=SoftTverskyLoss
        )
    return MemoryEfficientSoftDiceLoss(softmax_helper_dim1, **dice_kwargs)


def _batch(channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + channels)
    logits = torch.randn(BATCH, channels, 5, 4, generator=gen, dtype=torch.float64) * 2
    target = torch.randint(0, channels, (BATCH, 1, 5, 4), generator=gen)
    return logits, target


def _loss_and_grad(name: str, logits: torch.Tensor, target: torch.Tensor, ddp: bool):
    leaf = logits.clone().requires_grad_()
    loss = _make_loss(name, ddp)(leaf, target)
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad


def _worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        results = {}
        for name, channels in CASES:
            logits, target = _batch(channels)
            rows = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
            results[(name, channels)] = _loss_and_grad(name, logits[rows], target[rows], ddp=True)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(rank, port, str(out_dir))) for rank in range(WORLD)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    exit_codes = [process.exitcode for process in processes]
    assert exit_codes == [0] * WORLD, f"DDP workers failed with exit codes {exit_codes}"
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD)]


def _check_ranks_against_single_process(ddp_results, name, channels, rtol, atol):
    logits, target = _batch(channels)
    full_loss, full_grad = _loss_and_grad(name, logits, target, ddp=False)
    for rank, results in enumerate(ddp_results):
        loss, grad = results[(name, channels)]
        rows = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        torch.testing.assert_close(grad, WORLD * full_grad[rows], rtol=rtol, atol=atol)
        if name != "surgical_dc_and_ce":  # the Dice of the global sums is the same on every rank
            torch.testing.assert_close(loss, full_loss, rtol=rtol, atol=atol)
    return full_grad


@pytest.mark.parametrize("channels", [2, 3])
def test_ddp_surgical_batch_dice_gradient_is_world_size_times_single_process(ddp_results, channels):
    full_grad = _check_ranks_against_single_process(ddp_results, "surgical_dice", channels, 1e-12, 1e-15)
    assert full_grad.abs().max() > 0


@pytest.mark.parametrize("channels", [2, 3])
def test_ddp_surgical_dc_and_ce_gradient_is_world_size_times_single_process(ddp_results, channels):
    _check_ranks_against_single_process(ddp_results, "surgical_dc_and_ce", channels, 1e-12, 1e-15)


def test_ddp_stock_nnunet_dice_has_the_same_world_size_factor(ddp_results):
    # nnU-Net's own loss sums in float32 (dtype=torch.float32), hence the float32 tolerance
    _check_ranks_against_single_process(ddp_results, "stock_dice", 3, 1e-5, 1e-7)
