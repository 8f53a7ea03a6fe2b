"""Gradient vector field surgery: softmax / sigmoid whose backward pass is error-linear.

The paper's surgery (its Section 3.2 and Appendix C; derivations in docs/surgery.md) keeps the forward
pass and the loss's own `dL/dp`, and replaces the activation's derivative `p(1 - p)` by the error weight
of Eq. 10 (docs/surgery.md#error-weight-and-decline-exponent)

    w(e) = 0.25 * e * (1 - e**n) * (1 - (1 - e)**n),        e = |y - p|,

where `n` is the decline exponent (`exponent=None` drops both decline factors: `w = 0.25 * e`).

* Two softmax channels (nnU-Net's binary case): exactly the paper's Listing 1
  (docs/surgery.md#two-softmax-channels-listing-1), `grad_z_fg = w * (g_fg - g_bg)`,
  `grad_z_bg = -grad_z_fg`, with `g = dL/dp` and `w` from the foreground channel. No division, no
  clamping.
* K > 2 softmax channels (our generalisation, docs/surgery.md#multi-class-rescale): the plain softmax
  vector-Jacobian product `p * (g - <p, g>)` is rescaled per voxel by `s = w(e) / (p_y * e)` with
  `e = 1 - p_y`,

      s = 0.25 * (1 - e**n) * (1 - p_y**n) / p_y,

  which reduces to Listing 1 for two channels, keeps the direction of the loss's own logit gradient
  and its zero channel sum, and is bounded by `0.25 * n` (its limit as `p_y -> 0`). With
  `exponent=None`, `s = 0.25 / max(p_y, P_Y_MIN)`: the clamp bounds `s` by `0.25 / P_Y_MIN`
  (docs/surgery.md#the-clamp-for-n--none).
* Sigmoid (region-based training): `p(1 - p)` is replaced by `w(|y - p|)` per channel
  (docs/surgery.md#sigmoid-and-region-based-training), computed in the backward in cache-sized blocks;
  `surgical_sigmoid_sums` gives a region loss's sums `sum(p y)`, `sum(p)`, `sum(y)` in one node whose
  backward never builds `dL/dp` (docs/surgery.md#numerics).

Powers are computed in place as `exp(n log x)` on `x` clamped just above where `x**n` underflows
(no result changes), so the factors are finite for probabilities of exactly 0 or 1 and logits of
+-1e4, and cost a few multiplies per voxel (see bench/loss.py). The math runs in float32 (float64 for
float64 logits) with autocast disabled; the probabilities are returned in that dtype, as autocast
returns softmax in float32, and the logits' gradient in the logits' dtype (docs/surgery.md#numerics).
"""

from __future__ import annotations

import math
import numbers

import torch

from nnunet_surgery.targets import as_channel_target, is_onehot

__all__ = [
    "P_Y_MIN",
    "error_weight",
    "softmax_rescale",
    "surgical_sigmoid",
    "surgical_sigmoid_sums",
    "surgical_softmax",
    "validate_exponent",
]

#: Clamp of the true-class probability in `softmax_rescale` for K > 2 channels and `exponent=None`.
P_Y_MIN = 1e-2


def _pow_minus_one_(x: torch.Tensor, exponent: float) -> torch.Tensor:
    """`x**n - 1` for `x` in [0, 1], in place, as `exp(n log x) - 1`.

    `x` is first clamped at `(eps / 8)**(1/n)`: below it `x**n - 1` rounds to -1 exactly, so no result
    changes, and no subnormal intermediate appears (subnormal arithmetic is about 5x slower on x86).
    `log`/`exp` cost about one multiply each on CPU; `pow`, `expm1` and `log1p` three to eight.
    """
    floor = (torch.finfo(x.dtype).eps / 8) ** (1.0 / exponent)
    return x.clamp_min_(floor).log_().mul_(exponent).exp_().sub_(1)


def _error_weight_(error: torch.Tensor, exponent: float | None) -> torch.Tensor:
    """`error_weight`, computed in the buffer of `error` (consumed) plus one more of its size."""
    if exponent is None:
        return error.mul_(0.25)
    head = _pow_minus_one_(error.clone(), exponent).mul_(error)  # (e**n - 1) e
    tail = _pow_minus_one_(error.neg_().add_(1), exponent)  # (1 - e)**n - 1, in error's buffer
    return head.mul_(tail).mul_(0.25)  # the two factors are <= 0: their product is (1 - e**n)(1 - (1-e)**n)


def error_weight(error: torch.Tensor, exponent: float | None) -> torch.Tensor:
    """The error-linear factor that replaces `p(1 - p)` (Eq. 10, Appendix C's `error_weight`).

    Args:
        error: `e = |y - p|` in `[0, 1]`, any shape (not modified).
        exponent: decline exponent `n`; `None` drops the decline factors.

    Returns:
        `0.25 * e * (1 - e**n) * (1 - (1 - e)**n)`, or `0.25 * e` for `exponent=None`; same shape.
    """
    return _error_weight_(error.clone(), exponent)


def softmax_rescale(p_y: torch.Tensor, exponent: float | None) -> torch.Tensor:
    """Per-voxel rescale `s` of the plain softmax gradient for K >= 2 channels.

    `s = error_weight(e) / (p_y * e)` with `e = 1 - p_y`, i.e. `0.25 (1 - e**n)(1 - p_y**n) / p_y`,
    evaluated without dividing by `e`. `(1 - e**n) / p_y = -expm1(n log1p(-p_y)) / p_y` is exact for
    small `p_y`; clamping `p_y` at the smallest normal number gives its limit `n` at `p_y = 0`.
    Derivation and properties: docs/surgery.md#multi-class-rescale.

    Args:
        p_y: probability of the true class, `(b, 1, *spatial)` (not modified).
        exponent: decline exponent `n`; `None` gives `0.25 / max(p_y, P_Y_MIN)`.

    Returns:
        `s`, same shape as `p_y`, finite and in `[0, 0.25 n]` (or `[0, 0.25 / P_Y_MIN]`).
    """
    if exponent is None:
        return p_y.clamp_min(P_Y_MIN).reciprocal_().mul_(0.25)
    p = p_y.clamp_min(torch.finfo(p_y.dtype).tiny)
    head = torch.log1p(p.neg()).mul_(exponent).expm1_().div_(p)  # (e**n - 1) / p_y
    return head.mul_(_pow_minus_one_(p, exponent)).mul_(0.25)  # times (p_y**n - 1), both <= 0


def _math_dtype(logits: torch.Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


class _SurgicalSoftmax(torch.autograd.Function):
    """softmax over dim 1 with the surgical backward; see the module docstring."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, exponent: float | None) -> torch.Tensor:
        ctx.logits_dtype = logits.dtype
        with torch.autocast(device_type=logits.device.type, enabled=False):
            probs = torch.softmax(logits.to(_math_dtype(logits)), 1)
            onehot_target = is_onehot(logits, target)
            if probs.shape[1] == 2:
                # Listing 1: weight from the foreground channel
                y_fg = target[:, 1:2] if onehot_target else (target == 1)
                weight = _error_weight_((y_fg.to(probs.dtype) - probs[:, 1:2]).abs_(), exponent)
                ctx.two_channel = True
                ctx.save_for_backward(weight)
            else:
                if onehot_target:
                    p_y = (probs * target.to(probs.dtype)).sum(1, keepdim=True)
                else:
                    p_y = probs.gather(1, target.long())
                ctx.two_channel = False
                ctx.save_for_backward(probs, softmax_rescale(p_y, exponent))
        return probs

    @staticmethod
    def backward(ctx, grad_probs: torch.Tensor):
        if ctx.two_channel:
            (weight,) = ctx.saved_tensors
            grad_probs = grad_probs.to(weight.dtype)
            if torch.compiler.is_compiling():  # dynamo refuses `out=` views; inductor fuses this anyway
                grad_fg = (grad_probs[:, 1:2] - grad_probs[:, 0:1]) * weight
                grad_logits = torch.cat((-grad_fg, grad_fg), 1)
            else:  # Listing 1 written into one buffer: grad_fg = w (g_fg - g_bg), grad_bg = -grad_fg
                grad_logits = torch.empty(grad_probs.shape, dtype=weight.dtype, device=weight.device)
                grad_fg = grad_logits[:, 1:2]
                torch.sub(grad_probs[:, 1:2], grad_probs[:, 0:1], out=grad_fg).mul_(weight)
                torch.neg(grad_fg, out=grad_logits[:, 0:1])
        else:
            probs, scale = ctx.saved_tensors
            grad_probs = grad_probs.to(probs.dtype)
            # s times the plain softmax VJP p (g - <p, g>), the latter by ATen's fused softmax backward
            grad_logits = torch.ops.aten._softmax_backward_data(grad_probs, probs, 1, probs.dtype).mul_(scale)
        return grad_logits.to(ctx.logits_dtype), None, None


#: Elements per thread in a block of the eager sigmoid backward (`_sigmoid_grad`): each thread's share of
#: the block's operands and of its two block-sized temporaries stays in its core's L2 cache, and the ~13
#: operator calls per block cost little against the block's work (docs/surgery.md#numerics).
SIGMOID_BLOCK = 1 << 17

#: `dL/dp` of the sigmoid's output: a tensor of its shape, or `(offset, slope)`, `(b * c, 1)` each, meaning
#: `offset + slope * y` per (image, channel), as for any loss built from `sum(p)` and `sum(p * y)`.
ProbsGrad = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def decline_sum_is_exact(exponent: float | None, dtype: torch.dtype) -> bool:
    """Whether `(1 - a)(1 - b)` may be evaluated as `1 - a - b` (`a = e**n`, `b = (1 - e)**n`, `e` in [0, 1]).

    The two differ by `ab`, at most `4**(1 - n) / (1 - 2**-n)` times the product for `n >= 1`
    (docs/surgery.md#numerics): True where that is below `eps / 128` of `dtype`, far below the rounding
    of the product itself. float32: from `n = 17` on (the paper's 20); float64: from `n = 31` on.
    """
    if exponent is None or exponent < 1:
        return False
    return 4.0 ** (1 - exponent) / (1 - 2.0**-exponent) <= torch.finfo(dtype).eps / 128


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
    decline factors come from one `exp(n log x)` over `[e, 1 - e]`, clamped at `(eps/8)**(1/n)` as in
    `_pow_minus_one_` (no result changes, no subnormals); their product is `1 - a - b` where
    `decline_sum_is_exact`, else `(a - 1)(b - 1)`. 11 operator calls (13 for a pair, one more for a
    target that is not of the dtype of `out`).
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
    floor = (torch.finfo(out.dtype).eps / 8) ** (1.0 / exponent)
    powers.clamp_min_(floor).log_().mul_(exponent).exp_()  # a = e**n, b = (1 - e)**n
    head = error
    if decline_sum_is_exact(exponent, out.dtype):
        torch.add(0.25, head.add_(tail), alpha=-0.25, out=head)  # 0.25 (1 - a - b)
    else:
        torch.add(-0.5, powers, alpha=0.5, out=powers)  # 0.5 (a - 1), 0.5 (b - 1): exact halvings
        head.mul_(tail)  # 0.25 (1 - a)(1 - b)
    out.mul_(head)


def _blocks(rows: int, cols: int, block: int):
    """`(row slice, column slice)` pairs that tile a `(rows, cols)` array in blocks of <= `block` elements
    (whole rows when a row is shorter than `block`)."""
    row_step, col_step = max(1, block // cols), min(cols, block)
    for r in range(0, rows, row_step):
        for c in range(0, cols, col_step):
            yield slice(r, r + row_step), slice(c, c + col_step)


def _sigmoid_grad(
    probs: torch.Tensor,
    target: torch.Tensor,
    grad: ProbsGrad,
    exponent: float | None,
    reuse_probs: bool = False,
) -> torch.Tensor:
    """`dL/dp * error_weight(|target - probs|)`: the surgical sigmoid's logit gradient (Eq. 10).

    Args:
        probs: `(b, c, *spatial)` float32 or float64.
        target: of the same shape, bool, integer or of the dtype of `probs`, values in `[0, 1]`.
        grad: `dL/dp` of the same shape (any strides), or an `(offset, slope)` pair (`ProbsGrad`).
        exponent: decline exponent `n`; `None` drops the decline factors.
        reuse_probs: write the result into `probs` (if contiguous), which is then lost.

    Returns:
        `(b, c, *spatial)`, contiguous, of the dtype of `probs`. Eager, it is computed in cache-resident
        blocks of up to `SIGMOID_BLOCK` elements per thread (`_sigmoid_grad_block_`, each block read before
        it is written), allocating only the result (none with `reuse_probs`) and two blocks.
    """
    if isinstance(grad, torch.Tensor):
        grad = grad.to(probs.dtype)
    else:
        grad = tuple(g.to(probs.dtype) for g in grad)
    if torch.compiler.is_compiling():  # dynamo refuses `out=` views; inductor fuses this anyway
        target = target.to(probs.dtype)
        if isinstance(grad, tuple):
            grad = (
                grad[0].view(*probs.shape[:2], *[1] * (probs.ndim - 2))
                + grad[1].view(*probs.shape[:2], *[1] * (probs.ndim - 2)) * target
            )
        return grad * error_weight((target - probs).abs(), exponent)
    if target.dtype == torch.bool:
        target = target.view(torch.uint8)  # same bytes; ATen's mixed-dtype kernels are slow for bool
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


def _sigmoid_forward(ctx, logits: torch.Tensor, target: torch.Tensor, exponent: float | None) -> torch.Tensor:
    """The probabilities (autocast off, float32 or float64); saves them and the target in `ctx`."""
    ctx.logits_shape, ctx.logits_dtype, ctx.exponent = logits.shape, logits.dtype, exponent
    with torch.autocast(device_type=logits.device.type, enabled=False):
        probs = torch.sigmoid(logits.to(_math_dtype(logits)))
    if target.is_floating_point():
        target = target.to(probs.dtype)
    ctx.save_for_backward(probs, target)
    return probs


class _SurgicalSigmoid(torch.autograd.Function):
    """Element-wise sigmoid with `p(1 - p)` replaced by `error_weight(|y - p|)` in the backward.

    Saves only the probabilities (as torch's sigmoid does) and the target; the weight is computed in the
    backward, fused with the product by `dL/dp` (`_sigmoid_grad`).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, exponent: float | None) -> torch.Tensor:
        return _sigmoid_forward(ctx, logits, target, exponent)

    @staticmethod
    def backward(ctx, grad_probs: torch.Tensor):
        probs, target = ctx.saved_tensors
        grad_logits = _sigmoid_grad(probs, target, grad_probs, ctx.exponent)
        return grad_logits.view(ctx.logits_shape).to(ctx.logits_dtype), None, None


class _SurgicalSigmoidSums(torch.autograd.Function):
    """`(sum(p * y), sum(p), sum(y))` over the spatial axes of `p = surgical_sigmoid(logits, y)`, one node.

    The gradients of the first two reach `p` as `dL/dp = g_sum_p + g_sum_py * y`; the backward applies that
    pair per (image, channel) inside the blocks of `_sigmoid_grad` instead of building `dL/dp`, and writes
    the logit gradient into the buffer of `p`, which nothing else holds. The forward converts the target
    once and multiplies `p` into that copy. Fresh tensors of the logits' size: two (`p` and the copy),
    where autograd through `sigmoid`, `p * y` and the sums makes six (docs/surgery.md#numerics).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, exponent: float | None):
        probs = _sigmoid_forward(ctx, logits, target, exponent)
        axes = tuple(range(2, probs.ndim))
        y = (target.view(torch.uint8) if target.dtype == torch.bool else target).to(probs.dtype)
        # the same operations as the unfused loss (SoftTverskyLoss), hence the same values
        sum_y = y.sum(axes, dtype=probs.dtype)
        product = torch.mul(probs, y, out=y) if y is not target else probs * y
        ctx.mark_non_differentiable(sum_y)
        ctx.spent = False
        return product.sum(axes, dtype=probs.dtype), probs.sum(axes, dtype=probs.dtype), sum_y

    @staticmethod
    def backward(ctx, grad_intersect: torch.Tensor, grad_sum_pred: torch.Tensor, _):
        if ctx.spent:
            raise RuntimeError(
                "surgical_sigmoid_sums: its backward reuses the probabilities' buffer and can run only once "
                "(retain_graph is not supported)"
            )
        ctx.spent = True
        probs, target = ctx.saved_tensors
        pair = (grad_sum_pred.reshape(-1, 1), grad_intersect.reshape(-1, 1))
        grad_logits = _sigmoid_grad(probs, target, pair, ctx.exponent, reuse_probs=True)
        return grad_logits.view(ctx.logits_shape).to(ctx.logits_dtype), None, None


def validate_exponent(exponent: float | None) -> float | None:
    """Check a decline exponent: None or a finite positive number (returned as float).

    Raises:
        ValueError: naming `exponent` and the value it got.
    """
    if exponent is None:
        return None
    if (
        isinstance(exponent, bool)
        or not isinstance(exponent, numbers.Real)
        or not math.isfinite(exponent)
        or not exponent > 0
    ):
        raise ValueError(f"exponent must be None or a finite positive number, but got {exponent!r}")
    return float(exponent)


def surgical_softmax(
    logits: torch.Tensor, target: torch.Tensor, exponent: float | None = None
) -> torch.Tensor:
    """`torch.softmax(logits, 1)` whose backward is the paper's vector field (Eq. 10, Listing 1).

    Args:
        logits: `(b, c, *spatial)` with c >= 2, 2D or 3D, any float dtype.
        target: label map `(b, 1, *spatial)` / `(b, *spatial)` with values in `[0, c)`, or a one-hot tensor of
            the logits' shape. Voxels that a loss mask removes may hold any valid label: their `dL/dp` is 0,
            and so is their logit gradient.
        exponent: decline exponent `n` (the paper uses 20); `None` drops the decline factors.

    Returns:
        Probabilities `(b, c, *spatial)` in float32 (float64 for float64 logits).
    """
    if logits.ndim < 3 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (b, c >= 2, *spatial), but got {tuple(logits.shape)}")
    target = as_channel_target(logits, target)
    return _SurgicalSoftmax.apply(logits, target.detach(), validate_exponent(exponent))


def surgical_sigmoid(
    logits: torch.Tensor, target: torch.Tensor, exponent: float | None = None
) -> torch.Tensor:
    """`torch.sigmoid(logits)` with `p(1 - p)` replaced by `0.25 |y-p| (1-|y-p|^n)(1-(1-|y-p|)^n)`.

    For region-based training: every channel is an independent binary problem.

    Args:
        logits: `(b, c, *spatial)`, any float dtype.
        target: region tensor of the logits' shape with values in `[0, 1]` (a label map is accepted when c == 1).
        exponent: decline exponent `n`; `None` drops the decline factors.

    Returns:
        Probabilities `(b, c, *spatial)` in float32 (float64 for float64 logits).
    """
    target = as_channel_target(logits, target)
    if not is_onehot(logits, target):
        raise ValueError(
            f"surgical_sigmoid needs a region target of the logits' shape {tuple(logits.shape)}, "
            f"but got {tuple(target.shape)}"
        )
    return _SurgicalSigmoid.apply(logits, target.detach(), validate_exponent(exponent))


def surgical_sigmoid_sums(
    logits: torch.Tensor, target: torch.Tensor, exponent: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Region sums `(sum(p * y), sum(p), sum(y))` of `p = surgical_sigmoid(logits, target, exponent)`.

    Values and gradients are those of `(p * y).sum(axes)`, `p.sum(axes)` and `y.sum(axes)` (axes: the
    spatial ones, `y` the target as float32, float64 for float64 logits; `sum(y)` has no gradient), in one
    autograd node with fewer passes and allocations (`_SurgicalSigmoidSums`). Its backward can run only
    once (no `retain_graph`). `SoftTverskyLoss` uses it for region-based training
    (docs/surgery.md#sigmoid-and-region-based-training).

    Args:
        logits: `(b, c, *spatial)`, any float dtype.
        target: region tensor of the logits' shape, values in `[0, 1]`, any dtype (bool is cheapest).
        exponent: decline exponent `n`; `None` drops the decline factors.

    Returns:
        `(b, c)` each, float32 (float64 for float64 logits).
    """
    target = as_channel_target(logits, target)
    if not is_onehot(logits, target):
        raise ValueError(
            f"surgical_sigmoid_sums needs a region target of the logits' shape {tuple(logits.shape)}, "
            f"but got {tuple(target.shape)}"
        )
    return _SurgicalSigmoidSums.apply(logits, target.detach(), validate_exponent(exponent))
