"""Helpers the loss tests share: seeded random cases, one-hot targets, a loss's value and logit gradient.

Each helper is a plain function, handed to the tests by a fixture of the same name without the leading
underscore (conftest modules are not reliably importable under pytest's rootdir-based imports).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


def _gen(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed`."""
    return torch.Generator().manual_seed(seed)


def _make_case(
    kind: str,
    channels: int,
    seed: int,
    dtype: torch.dtype = torch.float32,
    spatial: tuple[int, ...] = (5, 4, 3),
    batch: int = 3,
    scale: float = 2.0,
    fraction: float = 0.7,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded logits, target and a random voxel selection.

    Args:
        kind: 'softmax' (label map target) or 'sigmoid' (region target, 40 % of the elements set).
        channels: number of logit channels.
        seed: logits from `seed`, target from `seed + 1`, selection from `seed + 2`.
        dtype: dtype of the logits (drawn in float64, then cast).
        spatial: spatial shape.
        batch: number of images.
        scale: standard deviation of the logits.
        fraction: chance of a voxel to be selected (a loss mask, or the ignored voxels).

    Returns:
        logits `(batch, channels, *spatial)`; target `(batch, 1, *spatial)` int64 labels ('softmax') or
        `(batch, channels, *spatial)` bool ('sigmoid'); selection `(batch, 1, *spatial)` bool.
    """
    shape = (batch, channels, *spatial)
    logits = (torch.randn(shape, generator=_gen(seed), dtype=torch.float64) * scale).to(dtype)
    if kind == "softmax":
        target = torch.randint(0, channels, (batch, 1, *spatial), generator=_gen(seed + 1))
    else:
        target = torch.rand(shape, generator=_gen(seed + 1)) < 0.4
    selection = torch.rand(batch, 1, *spatial, generator=_gen(seed + 2)) < fraction
    return logits, target, selection


def _loss_and_grad(
    loss_fn: Callable[..., torch.Tensor], logits: torch.Tensor, *args, **kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """`loss_fn(logits, *args, **kwargs)` and its gradient with respect to the logits (of their shape)."""
    leaf = logits.detach().clone().requires_grad_()
    loss = loss_fn(leaf, *args, **kwargs)
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad


def _onehot(target: torch.Tensor, channels: int) -> torch.Tensor:
    """float64 one-hot `(b, channels, *spatial)` of a label map `(b, 1, *spatial)`; a one-hot target as is."""
    if target.shape[1] == channels:
        return target.to(torch.float64)
    return torch.nn.functional.one_hot(target[:, 0], channels).movedim(-1, 1).to(torch.float64)


@pytest.fixture
def gen() -> Callable[[int], torch.Generator]:
    """`gen(seed)`: a seeded CPU generator."""
    return _gen


@pytest.fixture
def make_case() -> Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """`make_case(kind, channels, seed, ...)`: logits, target, selection (see `_make_case`)."""
    return _make_case


@pytest.fixture
def loss_and_grad() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """`loss_and_grad(loss_fn, logits, *args, **kwargs)`: loss value and logit gradient."""
    return _loss_and_grad


@pytest.fixture
def onehot() -> Callable[[torch.Tensor, int], torch.Tensor]:
    """`onehot(target, channels)`: float64 one-hot target."""
    return _onehot
