"""Every registered trainer on CUDA under nnU-Net's defaults: compiled loss equals eager, and real train steps.

nnU-Net on CUDA compiles the network and the Dice term (`nnUNet_compile` unset), trains under float16
autocast with a GradScaler; the region-based SurgeryTrainer once crashed there at its first step. Both
tests run every registered trainer (and nnU-Net's own `nnUNetTrainer`, the reference) on a softmax (label
map) and a region-based dataset.
"""

from __future__ import annotations

import math

import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from trainer_builders import deep_supervision_inputs, make_trainer

from nnunet_surgery.trainers import TRAINERS

pytestmark = pytest.mark.cuda

CLASSES = [*TRAINERS, nnUNetTrainer]


def _cuda_trainer(cls: type, regions: bool, request, monkeypatch: pytest.MonkeyPatch, cuda: torch.device):
    dataset = request.getfixturevalue("region_dataset" if regions else "label_dataset")
    trainer = make_trainer(cls, dataset, monkeypatch, device=cuda)
    monkeypatch.delenv("nnUNet_compile", raising=False)  # nnU-Net's default: compile on CUDA
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")  # one batch is all the test needs
    assert trainer._do_i_compile()
    return trainer


@pytest.mark.parametrize("regions", [False, True], ids=["labels", "regions"])
@pytest.mark.parametrize("trainer_class", TRAINERS, ids=lambda c: c.__name__)
def test_compiled_loss_equals_eager_on_cuda(trainer_class, regions, request, monkeypatch, cuda):
    trainer = _cuda_trainer(trainer_class, regions, request, monkeypatch, cuda)
    logits, targets = deep_supervision_inputs(trainer, torch.float32, torch.float16, cuda)
    results = {}
    for compiled in (False, True):
        monkeypatch.setattr(trainer, "_do_i_compile", lambda compiled=compiled: compiled)
        torch._dynamo.reset()
        loss = trainer._build_loss()
        leaves = [x.detach().clone().requires_grad_() for x in logits]
        with torch.autocast("cuda", dtype=torch.float16):
            value = loss(leaves, targets)
        value.backward()
        results[compiled] = (value.detach().float(), [x.grad for x in leaves])
    (eager_value, eager_grads), (compiled_value, compiled_grads) = results[False], results[True]
    assert torch.isfinite(eager_value)
    torch.testing.assert_close(compiled_value, eager_value, rtol=1e-3, atol=1e-4)
    for got, expected in zip(compiled_grads, eager_grads):
        assert (got is None) == (expected is None)
        if expected is not None:  # float16 gradients: a few of its roundings of the largest one
            scale = expected.float().abs().max().item() or 1.0
            torch.testing.assert_close(got.float(), expected.float(), rtol=0, atol=8e-3 * scale)


@pytest.mark.parametrize("regions", [False, True], ids=["labels", "regions"])
@pytest.mark.parametrize("trainer_class", CLASSES, ids=lambda c: c.__name__)
def test_train_steps_under_nnunet_cuda_defaults_are_finite(
    trainer_class, regions, request, monkeypatch, cuda
):
    """initialize() (network compiled), nnU-Net's own dataloader, three `train_step`s: autocast float16,
    GradScaler, compiled Dice term; finite losses and parameters, and finite unscaled gradients (a first
    step whose scaled gradients overflow is skipped by the GradScaler, as in any nnU-Net run)."""
    trainer = _cuda_trainer(trainer_class, regions, request, monkeypatch, cuda)
    trainer.initialize()
    assert trainer.grad_scaler is not None
    dataloader, _ = trainer.get_dataloaders()
    batch = next(dataloader)
    if regions:
        assert all(t.dtype == torch.bool for t in batch["target"])  # nnU-Net 2.8 hands regions over as bool
    trainer.network.train()
    losses, finite_gradients = [], []
    for _ in range(3):
        losses.append(float(trainer.train_step(batch)["loss"]))
        grads = [p.grad for p in trainer.network.parameters() if p.grad is not None]
        finite_gradients.append(bool(grads) and all(bool(torch.isfinite(g).all()) for g in grads))
    assert all(math.isfinite(value) for value in losses), losses
    assert any(finite_gradients)
    assert all(bool(torch.isfinite(p).all()) for p in trainer.network.parameters())
