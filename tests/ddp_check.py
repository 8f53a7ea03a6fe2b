"""DDP with two processes: batch Dice with surgery pools over ranks like one process on the batch.

Shared by tests/surgery/test_surgery_ddp.py (gloo, CPU) and tests/cuda (nccl on two GPUs, else gloo on CUDA
tensors).

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


def _batch(channels: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + channels)
    logits = torch.randn(BATCH, channels, 5, 4, generator=gen, dtype=torch.float64) * 2
    target = torch.randint(0, channels, (BATCH, 1, 5, 4), generator=gen)
    return logits.to(device=device, dtype=dtype), target.to(device)


def _loss_and_grad(name: str, logits: torch.Tensor, target: torch.Tensor, ddp: bool):
    leaf = logits.clone().requires_grad_()
    loss = _make_loss(name, ddp)(leaf, target)
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad


def _worker(rank: int, port: int, out_dir: str, backend: str, devices: list, dtype: torch.dtype) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    device = torch.device(devices[rank])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        results = {}
        for name, channels in CASES:
            logits, target = _batch(channels, device, dtype)
            rows = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
            loss, grad = _loss_and_grad(name, logits[rows], target[rows], ddp=True)
            results[(name, channels)] = (loss.cpu(), grad.cpu())
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_ranks(out_dir: Path, backend: str, devices: list[torch.device], dtype: torch.dtype) -> list[dict]:
    """Run `CASES` on `WORLD` spawned ranks (rank r on `devices[r]`); their `{(name, channels): (loss, grad)}`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    args = (port, str(out_dir), backend, [str(d) for d in devices], dtype)
    processes = [context.Process(target=_worker, args=(rank, *args)) for rank in range(WORLD)]
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


def check_ranks_against_single_process(
    ddp_results, name: str, channels: int, device: torch.device, dtype: torch.dtype, rtol: float, atol: float
) -> torch.Tensor:
    """Every rank's gradient is WORLD times its rows of the one-process gradient (on `device`, in `dtype`), and
    its Dice the one-process Dice; returns the one-process gradient."""
    logits, target = _batch(channels, device, dtype)
    full_loss, full_grad = _loss_and_grad(name, logits, target, ddp=False)
    full_loss, full_grad = full_loss.cpu(), full_grad.cpu()
    for rank, results in enumerate(ddp_results):
        loss, grad = results[(name, channels)]
        rows = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        torch.testing.assert_close(grad, WORLD * full_grad[rows], rtol=rtol, atol=atol)
        if name != "surgical_dc_and_ce":  # the Dice of the global sums is the same on every rank
            torch.testing.assert_close(loss, full_loss, rtol=rtol, atol=atol)
    return full_grad
