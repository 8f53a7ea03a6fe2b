"""The surgical sigmoid's backward with ATen operators, in cache-sized blocks (the eager path off CUDA).

`dL/dp * w(|y - p|)` (Eq. 10) is about a dozen elementwise operations; run over the whole tensor each one
is a pass through memory, so they run block by block, each block's operands and two temporaries staying in
the cores' L2 caches (docs/surgery.md#numerics). On CUDA eager the fused kernels of `fused.py` do it in
one pass instead; under `torch.compile` the plain operations of `functions.py` are traced and fused.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from nnunet_surgery.surgery.weights import decline_floor, decline_sum_is_exact
from nnunet_surgery.targets import bool_as_uint8

__all__ = ["SIGMOID_BLOCK", "ProbsGrad", "sigmoid_grad"]

#: Elements per thread in a block of `sigmoid_grad`: each thread's share of the block's operands and of its
#: two block-sized temporaries stays in its core's L2 cache, and the ~13 operator calls per block cost little
#: against the block's work (docs/surgery.md#numerics).
SIGMOID_BLOCK = 1 << 17

#: `dL/dp` of the sigmoid's output: a tensor of its shape, or `(offset, slope)`, `(b * c, 1)` each, meaning
#: `offset + slope * y` per (image, channel), as for any loss built from `sum(p)` and `sum(p * y)`.
ProbsGrad = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def _sigmoid_grad_block_(
    out: torch.Tensor,
    probs: torch.Tensor,
    target: torch.Tensor,
    grad: ProbsGrad,
    scratch: torch.Tensor,
    exponent: float | None,
) -> None:
    """`out = dL/dp * error_weight(|target - probs|)` on one block, in `out` and `scratch`.

    `out`, `probs`, `target` (and `grad` if a tensor) are `(k, m)` blocks, `grad`'s pair `(k, 1)`, `scratch`
    flat with at least `2 k m` elements. Eq. 10 (docs/surgery.md#error-weight-and-decline-exponent): both
    decline factors come from one `exp(n log x)` over `[e, 1 - e]`, clamped at `decline_floor` (no result
    changes, no subnormals); their product is `1 - a - b` where `decline_sum_is_exact`, else
    `(a - 1)(b - 1)`. 11 operator calls (13 for a pair, one more for a target that is not of the dtype of
    `out`).
    """
    powers = scratch[: 2 * out.numel()].view(2, *out.shape)
    error, tail = powers[0], powers[1]
    if target.dtype != out.dtype:  # converted once, in cache: mixed-dtype operations cost twice as much
        target = tail.copy_(target)
    torch.sub(probs, target, out=error).abs_()  # e = |y - p|
    if isinstance(grad, tuple):
        offset, slope = grad
        torch.mul(target, slope, out=out).add_(offset).mul_(error)  # (offset + slope y) e
    else:
        torch.mul(grad, error, out=out)
    if exponent is None:
        out.mul_(0.25)
        return
    torch.sub(1, error, out=tail)
    powers.clamp_min_(decline_floor(exponent, out.dtype)).log_().mul_(
        exponent
    ).exp_()  # a = e**n, b = (1-e)**n
    head = error
    if decline_sum_is_exact(exponent, out.dtype):
        torch.add(0.25, head.add_(tail), alpha=-0.25, out=head)  # 0.25 (1 - a - b)
    else:
        torch.add(-0.5, powers, alpha=0.5, out=powers)  # 0.5 (a - 1), 0.5 (b - 1): exact halvings
        head.mul_(tail)  # 0.25 (1 - a)(1 - b)
    out.mul_(head)


def _blocks(rows: int, cols: int, block: int) -> Iterator[tuple[slice, slice]]:
    """`(row slice, column slice)` pairs that tile a `(rows, cols)` array in blocks of <= `block` elements
    (whole rows when a row is shorter than `block`)."""
    row_step, col_step = max(1, block // cols), min(cols, block)
    for r in range(0, rows, row_step):
        for c in range(0, cols, col_step):
            yield slice(r, r + row_step), slice(c, c + col_step)


def sigmoid_grad(
    probs: torch.Tensor,
    target: torch.Tensor,
    grad: ProbsGrad,
    exponent: float | None,
    reuse_probs: bool = False,
) -> torch.Tensor:
    """`dL/dp * error_weight(|target - probs|)`: the surgical sigmoid's logit gradient (Eq. 10), in blocks.

    Args:
        probs: `(b, c, *spatial)` float32 or float64.
        target: of the same shape, bool, integer or of the dtype of `probs`, values in `[0, 1]`.
        grad: `dL/dp` of the same shape (any strides), or an `(offset, slope)` pair (`ProbsGrad`).
        exponent: decline exponent `n`; `None` drops the decline factors.
        reuse_probs: write the result into `probs` (if contiguous), which is then lost.

    Returns:
        `(b, c, *spatial)`, contiguous, of the dtype of `probs`, computed in blocks of up to `SIGMOID_BLOCK`
        elements per thread (`_sigmoid_grad_block_`, each block read before it is written), allocating only
        the result (none with `reuse_probs`) and two blocks.
    """
    if isinstance(grad, torch.Tensor):
        grad = grad.to(probs.dtype)
    else:
        grad = tuple(g.to(probs.dtype) for g in grad)
    target = bool_as_uint8(target)  # same bytes; ATen's mixed-dtype kernels are slow for bool
    if probs.numel() == 0:
        return torch.empty_like(probs)
    rows = probs.shape[0] * probs.shape[1]
    out = probs.view(rows, -1) if reuse_probs and probs.is_contiguous() else None
    probs, target = (t.contiguous().view(rows, -1) for t in (probs, target))
    if isinstance(grad, torch.Tensor):
        grad = grad.contiguous().view(rows, -1)
    out = torch.empty_like(probs) if out is None else out
    block = min(SIGMOID_BLOCK * torch.get_num_threads(), out.numel())
    scratch = torch.empty(2 * block, dtype=out.dtype, device=out.device)
    for r, c in _blocks(*out.shape, block):
        block_grad = grad[r, c] if isinstance(grad, torch.Tensor) else (grad[0][r], grad[1][r])
        _sigmoid_grad_block_(out[r, c], probs[r, c], target[r, c], block_grad, scratch, exponent)
    return out
