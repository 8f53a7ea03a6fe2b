"""Each trainer's built loss, deep supervision included, has the intended gradient.

Surgical trainers differ from nnU-Net's stock trainer exactly by the surgery's per-voxel rescale of the
Dice term's logit gradient; baselines equal their definitions, written here independently. Each trainer
compiles exactly the terms it declares (when nnU-Net compiles), and a compiled term equals the eager one.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch._dynamo
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss, SoftDiceLoss
from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch._dynamo.eval_frame import OptimizedModule
from torch._dynamo.utils import counters
from trainer_builders import make_trainer

from nnunet_surgery.losses import DicePlusPlusLoss, MarginalL1ACELoss, SoftTverskyLoss
from nnunet_surgery.trainers import (
    REGISTRY,
    TRAINERS,
    BaselineTrainerCE,
    BaselineTrainerDice,
    BaselineTrainerDiceML1ACE,
    BaselineTrainerDicePlusPlus,
    BaselineTrainerTversky,
    SurgeryTrainer,
    SurgeryTrainerDice,
    SurgeryTrainerTversky,
)

SMOOTH = 1e-5  # nnU-Net's Dice smoothing
# Training dtype: nnU-Net's Dice sums run in float32 whatever the input dtype, so compare in float32 with
# tolerances of a few float32 roundings (eps 1.2e-7) of the largest gradient; a wrong rescale is off by O(1).
DTYPE = torch.float32


def assert_close_f32(got: torch.Tensor, expected: torch.Tensor) -> None:
    scale = expected.abs().max().item() or 1.0
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * scale)


def ds_weights(n: int) -> list[float]:
    """nnU-Net's deep supervision weights: 1/2^i, the lowest output off, normalised."""
    raw = [1 / 2**i for i in range(n)]
    raw[-1] = 0.0
    return [w / sum(raw) for w in raw]


def ds_inputs(trainer: nnUNetTrainer, regions: bool, seed: int = 0):
    """Random logits per deep-supervision output and matching (nearest-downsampled) targets."""
    gen = torch.Generator().manual_seed(seed)
    n_out = len(trainer._get_deep_supervision_scales())
    channels = (
        len(trainer.label_manager.foreground_regions)
        if regions
        else trainer.label_manager.num_segmentation_heads
    )
    labels = torch.randint(0, trainer.label_manager.num_segmentation_heads, (2, 1, 32, 32), generator=gen)
    logits, targets = [], []
    for i in range(n_out):
        size = max(32 // 2**i, 1)
        z = torch.randn(2, channels, size, size, generator=gen, dtype=DTYPE) * 2
        logits.append(z.requires_grad_())
        y = torch.nn.functional.interpolate(labels.to(DTYPE), size=(size, size), mode="nearest")
        if regions:  # nested regions of this synthetic dataset, in label-manager order
            y = torch.cat(
                [
                    torch.isin(y, torch.tensor(r, dtype=y.dtype))
                    for r in trainer.label_manager.foreground_regions
                ],
                1,
            )
            y = y.to(DTYPE)
        targets.append(y)
    return logits, targets


def grads(loss: torch.Tensor, logits: list[torch.Tensor]) -> list[torch.Tensor]:
    """Logit gradients per output; outputs with deep-supervision weight 0 get zeros."""
    found = torch.autograd.grad(loss, logits, allow_unused=True)
    return [torch.zeros_like(z) if g is None else g for g, z in zip(found, logits)]


def plain_dice_grads(logits, targets, batch_dice: bool, regions: bool) -> list[torch.Tensor]:
    nonlin = torch.sigmoid if regions else (lambda x: torch.softmax(x, 1))
    dice = MemoryEfficientSoftDiceLoss(nonlin, batch_dice=batch_dice, do_bg=regions, smooth=SMOOTH, ddp=False)
    return [torch.autograd.grad(dice(z, y), z)[0] for z, y in zip(logits, targets)]


def surgery_rescale(z: torch.Tensor, y: torch.Tensor, n: float, regions: bool) -> torch.Tensor:
    """w(e) / (plain activation derivative): Eq. 10's factor over p(1-p), written independently."""
    if regions:
        p = torch.sigmoid(z)
        e = (y - p).abs()
        return 0.25 * e * (1 - e**n) * (1 - (1 - e) ** n) / (p * (1 - p))
    p_y = torch.softmax(z, 1).gather(1, y.long())
    e = 1 - p_y
    return 0.25 * (1 - e**n) * (1 - p_y**n) / p_y


@pytest.mark.parametrize("regions", [False, True], ids=["labels", "regions"])
@pytest.mark.parametrize("surgical", REGISTRY.classes("surgical"), ids=lambda c: c.__name__)
def test_surgical_trainer_gradient_is_stock_plus_rescaled_dice_term(
    surgical: type, regions: bool, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = request.getfixturevalue("region_dataset" if regions else "label_dataset")
    trainer = make_trainer(surgical, dataset, monkeypatch)
    assert trainer.label_manager.has_regions == regions
    logits, targets = ds_inputs(trainer, regions)
    batch_dice = trainer.configuration_manager.batch_dice
    weights = ds_weights(len(logits))

    got = grads(trainer._build_loss()(logits, targets), logits)
    if surgical is SurgeryTrainer:  # stock = nnU-Net's own CE + Dice trainer
        stock = grads(
            make_trainer(nnUNetTrainer, dataset, monkeypatch)._build_loss()(logits, targets), logits
        )
    else:  # stock = the same region loss without surgery
        twin = {SurgeryTrainerDice: BaselineTrainerDice, SurgeryTrainerTversky: BaselineTrainerTversky}[
            surgical
        ]
        stock = grads(make_trainer(twin, dataset, monkeypatch)._build_loss()(logits, targets), logits)

    if surgical is SurgeryTrainerTversky:
        region_grads = [
            torch.autograd.grad(tversky_loss(z, y, 0.3, batch_dice, regions), z)[0]
            for z, y in zip(logits, targets)
        ]
    else:
        region_grads = plain_dice_grads(logits, targets, batch_dice, regions)
    for i, (z, y) in enumerate(zip(logits, targets)):
        rescale = surgery_rescale(z.detach(), y, surgical.surgery_exponent, regions)
        expected = stock[i] + weights[i] * (rescale - 1) * region_grads[i]
        assert_close_f32(got[i], expected)
    assert any(not torch.allclose(g, s) for g, s in zip(got, stock))  # the surgery changed something


def tversky_loss(z, y, alpha: float, batch_dice: bool, regions: bool) -> torch.Tensor:
    """-mean Tversky index, TI = (TP + s/2) / (TP + alpha FP + beta FN + s/2), nnU-Net's Dice settings."""
    p = torch.sigmoid(z) if regions else torch.softmax(z, 1)[:, 1:]
    t = y if regions else torch.cat([(y == c).to(DTYPE) for c in range(1, z.shape[1])], 1)
    axes = (0, 2, 3) if batch_dice else (2, 3)
    tp, fp, fn = (p * t).sum(axes), (p * (1 - t)).sum(axes), ((1 - p) * t).sum(axes)
    return -((tp + SMOOTH / 2) / (tp + alpha * fp + (1 - alpha) * fn + SMOOTH / 2)).mean()


def dice_plus_plus_loss(z, y, regions: bool, gamma: float = 2.0, eps: float = 1e-7) -> torch.Tensor:
    """Dice++ as docs/losses.md defines it: per image and class, background included, p and y clipped to [eps, 1-eps]."""
    p = torch.sigmoid(z) if regions else torch.softmax(z, 1)
    t = y if regions else torch.cat([(y == c).to(DTYPE) for c in range(z.shape[1])], 1)
    p, t = p.clamp(eps, 1 - eps), t.clamp(eps, 1 - eps)
    tp = (t * p).sum((2, 3))
    fn = ((t * (1 - p)) ** gamma).sum((2, 3))
    fp = (((1 - t) * p) ** gamma).sum((2, 3))
    return (1 - (2 * tp + eps) / (2 * tp + fn + fp + eps)).mean()


def baseline_definitions(trainer: nnUNetTrainer, regions: bool) -> dict[type, Callable]:
    batch_dice = trainer.configuration_manager.batch_dice
    nonlin = torch.sigmoid if regions else (lambda x: torch.softmax(x, 1))
    dice = MemoryEfficientSoftDiceLoss(nonlin, batch_dice=batch_dice, do_bg=regions, smooth=SMOOTH, ddp=False)
    ace = MarginalL1ACELoss(nonlin, num_bins=20, do_bg=True)

    def ce(z, y):
        if regions:
            return torch.nn.functional.binary_cross_entropy_with_logits(z, y)
        return RobustCrossEntropyLoss()(z, y[:, 0].long())

    return {
        BaselineTrainerDice: dice,
        BaselineTrainerTversky: lambda z, y: tversky_loss(z, y, 0.3, batch_dice, regions),
        BaselineTrainerDicePlusPlus: lambda z, y: dice_plus_plus_loss(z, y, regions),
        BaselineTrainerDiceML1ACE: lambda z, y: 0.5 * dice(z, y) + 0.5 * ace(z, y),
        BaselineTrainerCE: ce,
    }


@pytest.mark.parametrize("regions", [False, True], ids=["labels", "regions"])
@pytest.mark.parametrize("baseline", REGISTRY.classes("baseline"), ids=lambda c: c.__name__)
def test_baseline_trainer_loss_equals_its_definition(
    baseline: type, regions: bool, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = request.getfixturevalue("region_dataset" if regions else "label_dataset")
    trainer = make_trainer(baseline, dataset, monkeypatch)
    logits, targets = ds_inputs(trainer, regions, seed=1)
    definition = baseline_definitions(trainer, regions)[baseline]
    weights = ds_weights(len(logits))

    got_value = trainer._build_loss()(logits, targets)
    expected_value = sum(w * definition(z, y) for w, z, y in zip(weights, logits, targets) if w != 0)
    assert_close_f32(got_value, expected_value)
    for got_grad, expected_grad in zip(grads(got_value, logits), grads(expected_value, logits)):
        assert_close_f32(got_grad, expected_grad)


def test_trainers_log_their_surgery_settings(label_dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = make_trainer(SurgeryTrainer, label_dataset, monkeypatch)
    trainer._build_loss()
    log = open(trainer.log_file).read()
    assert "SurgeryTrainer trains with" in log and "surgery=True, exponent=20" in log


@pytest.mark.parametrize("compiled", [False, True])
def test_deep_supervision_keeps_nnunet_ddp_weight_fix(
    compiled: bool, label_dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = make_trainer(SurgeryTrainer, label_dataset, monkeypatch)
    trainer.is_ddp = True  # what nnU-Net sets under torch.distributed; only the weights are inspected here
    monkeypatch.setattr(trainer, "_do_i_compile", lambda: compiled)
    monkeypatch.setattr(torch, "compile", lambda module: module)  # keep the test free of compilation
    weights = trainer._build_loss().weight_factors
    raw = [1 / 2**i for i in range(len(weights))]
    raw[-1] = 0.0 if compiled else 1e-6  # uncompiled DDP errors on an unused output with weight 0
    assert weights == pytest.approx([w / sum(raw) for w in raw], rel=1e-12, abs=0)


# torch.compile: each trainer says at construction what it compiles ----------------------------------------
def expected_compiled_terms(trainer_class: type, regions: bool) -> dict[str, type]:
    """Submodules of a trainer's built loss (deep supervision included) that `compiled` wraps, and their class.

    The region term, as nnU-Net compiles its own Dice term (`loss.dc`), and both terms of Dice + mL1-ACE
    (mL1-ACE's bucketize and scatter_add compile: see `test_compiled_term_matches_eager_loss_and_gradient`).
    """
    # nnU-Net's default Dice of DC_and_BCE_loss / DC_and_CE_loss: the CE baseline's (weight 0) Dice term
    nnunet_dice = MemoryEfficientSoftDiceLoss if regions else SoftDiceLoss
    return {
        SurgeryTrainer: {"loss.dc": SoftTverskyLoss},
        SurgeryTrainerDice: {"loss.loss": SoftTverskyLoss},
        SurgeryTrainerTversky: {"loss.loss": SoftTverskyLoss},
        BaselineTrainerDice: {"loss.loss": SoftTverskyLoss},
        BaselineTrainerTversky: {"loss.loss": SoftTverskyLoss},
        BaselineTrainerDicePlusPlus: {"loss.loss": DicePlusPlusLoss},
        BaselineTrainerDiceML1ACE: {
            "loss.loss.losses.0": SoftTverskyLoss,
            "loss.loss.losses.1": MarginalL1ACELoss,
        },
        BaselineTrainerCE: {"loss.dc": nnunet_dice},
    }[trainer_class]


def compiled_terms(loss: torch.nn.Module) -> dict[str, type]:
    """`{submodule path: class of the compiled module}` for every `torch.compile` wrapper in `loss`."""
    found = {}
    for name, module in loss.named_modules():
        if isinstance(module, OptimizedModule) and "_orig_mod" not in name.split("."):
            found[name] = type(module._orig_mod)
    return found


@pytest.mark.parametrize("compile_on", [True, False], ids=["compile", "no-compile"])
@pytest.mark.parametrize("regions", [False, True], ids=["labels", "regions"])
@pytest.mark.parametrize("trainer_class", TRAINERS, ids=lambda c: c.__name__)
def test_each_trainer_compiles_exactly_its_declared_terms(
    trainer_class: type,
    regions: bool,
    compile_on: bool,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = request.getfixturevalue("region_dataset" if regions else "label_dataset")
    trainer = make_trainer(trainer_class, dataset, monkeypatch)
    monkeypatch.setattr(trainer, "_do_i_compile", lambda: compile_on)  # nnU-Net's decision (CUDA only)
    loss = trainer._build_loss()  # torch.compile is lazy: nothing compiles until a call
    assert trainer.enable_deep_supervision and isinstance(loss, DeepSupervisionWrapper)
    assert compiled_terms(loss) == (expected_compiled_terms(trainer_class, regions) if compile_on else {})


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "loss-mask"])
@pytest.mark.parametrize(
    ("trainer_class", "term"),
    [(BaselineTrainerDicePlusPlus, "loss"), (BaselineTrainerDiceML1ACE, "loss.losses.1")],
    ids=["DicePlusPlus", "mL1-ACE"],
)
def test_compiled_term_matches_eager_loss_and_gradient(
    trainer_class: type, term: str, masked: bool, fresh_dynamo, label_dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inductor on CPU compiles Dice++ and mL1-ACE (bucketize, scatter_add) as one graph, equal to eager."""
    trainer = make_trainer(trainer_class, label_dataset, monkeypatch)
    monkeypatch.setattr(trainer, "_do_i_compile", lambda: True)
    compiled = trainer.build_output_loss().get_submodule(term)
    assert isinstance(compiled, OptimizedModule)
    eager = compiled._orig_mod

    gen = torch.Generator().manual_seed(7)
    channels = trainer.label_manager.num_segmentation_heads
    logits = torch.randn(2, channels, 12, 12, generator=gen, dtype=DTYPE) * 2
    target = torch.randint(0, channels, (2, 1, 12, 12), generator=gen)
    mask = torch.rand(2, 1, 12, 12, generator=gen) > 0.25 if masked else None

    def loss_and_grad(loss: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        leaf = logits.clone().requires_grad_()
        value = loss(leaf, target, loss_mask=mask)
        (grad,) = torch.autograd.grad(value, leaf)
        return value.detach(), grad

    eager_value, eager_grad = loss_and_grad(eager)
    compiled_value, compiled_grad = loss_and_grad(compiled)
    # compiled cleanly: dynamo captured the whole term as one graph, without falling back to eager
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    assert eager_grad.abs().max() > 0
    # inductor may fuse and reorder float32 sums: a few ulp of the loss and of the largest gradient
    torch.testing.assert_close(compiled_value, eager_value, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(
        compiled_grad, eager_grad, rtol=1e-5, atol=1e-6 * eager_grad.abs().max().item()
    )
