"""The surgical activations: softmax / sigmoid whose backward pass is error-linear (Eq. 9-10), as autograd
functions, and where each step of their math runs.

* Two softmax channels (nnU-Net's binary case): exactly the paper's Listing 1
  (docs/surgery.md#two-softmax-channels-listing-1), `grad_z_fg = w * (g_fg - g_bg)`,
  `grad_z_bg = -grad_z_fg`, with `g = dL/dp` and `w` (`weights.error_weight`) from the foreground channel.
* K > 2 softmax channels (our generalisation, docs/surgery.md#multi-class-rescale): the plain softmax
  vector-Jacobian product `p * (g - <p, g>)` rescaled per voxel by `s = weights.softmax_rescale(p_y)`.
* Sigmoid (region-based training): `p(1 - p)` replaced by `w(|y - p|)` per channel
  (docs/surgery.md#sigmoid-and-region-based-training); `surgical_sigmoid_sums` gives a region loss's sums
  `sum(p y)`, `sum(p)`, `sum(y)` in one node whose backward never builds `dL/dp`.

Each step runs one of three ways (docs/surgery.md#cuda-and-torchcompile):
- under `torch.compile` (nnU-Net compiles its Dice term on CUDA): plain torch operations, which dynamo traces
  into the compiled graph and Inductor fuses; no `out=`, no dtype views, no value-dependent branches;
- eager on CUDA with float32 math: the fused Triton kernels of `fused.py`, one pass each;
- eager otherwise (CPU): ATen operators, in place, the sigmoid's in cache-sized blocks (`blocked.py`).

The math runs in float32 (float64 for float64 logits) with autocast disabled; the probabilities are returned
in that dtype, as autocast returns softmax in float32, and the logits' gradient in the logits' dtype
(docs/surgery.md#numerics).
"""

from __future__ import annotations

import torch

from nnunet_surgery.surgery import blocked, fused
from nnunet_surgery.surgery.blocked import ProbsGrad
from nnunet_surgery.surgery.weights import error_weight, error_weight_, softmax_rescale, validate_exponent
from nnunet_surgery.targets import as_channel_target, as_float, is_onehot

__all__ = ["surgical_sigmoid", "surgical_sigmoid_sums", "surgical_softmax"]


def _region_target(logits: torch.Tensor, target: torch.Tensor, caller: str) -> torch.Tensor:
    """`target` as a region tensor of the logits' shape (`as_channel_target`), else ValueError naming `caller`."""
    target = as_channel_target(logits, target)
    if not is_onehot(logits, target):
        raise ValueError(
            f"{caller} needs a region target of the logits' shape {tuple(logits.shape)}, "
            f"but got {tuple(target.shape)}"
        )
    return target


def _math_dtype(logits: torch.Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _fused(t: torch.Tensor) -> bool:
    """Whether `t`'s step runs in a fused kernel: eager, on CUDA, float32 math, non-empty, Triton available."""
    return (
        t.is_cuda
        and t.dtype == torch.float32
        and t.numel() > 0
        and not torch.compiler.is_compiling()
        and fused.available()
    )


def _softmax_factor(probs: torch.Tensor, target: torch.Tensor, onehot: bool, exponent: float | None):
    """ATen: Listing 1's weight `w(|y_fg - p_fg|)` from the foreground channel (two channels) or the rescale
    `s(p_y)` (K channels), `(b, 1, *spatial)`."""
    if probs.shape[1] == 2:
        y_fg = target[:, 1:2] if onehot else (target == 1)
        return error_weight_((as_float(y_fg, probs.dtype) - probs[:, 1:2]).abs_(), exponent)
    if onehot:
        p_y = (probs * as_float(target, probs.dtype)).sum(1, keepdim=True)
    else:
        p_y = probs.gather(1, target.long())
    return softmax_rescale(p_y, exponent)


def _softmax_backward(
    grad_probs: torch.Tensor, probs: torch.Tensor | None, factor: torch.Tensor, logits_dtype: torch.dtype
) -> torch.Tensor:
    """ATen: Listing 1 (`factor` = w; `probs` unused) or `s p (g - <p, g>)` (`factor` = s), of `logits_dtype`."""
    grad_probs = grad_probs.to(factor.dtype)
    if (
        grad_probs.shape[1] > 2
    ):  # the plain softmax VJP by ATen's fused softmax backward (Inductor decomposes it)
        plain = torch.ops.aten._softmax_backward_data(grad_probs, probs, 1, probs.dtype)
        return plain.mul_(factor).to(logits_dtype)
    if torch.compiler.is_compiling():  # dynamo refuses `out=` views; inductor fuses this anyway
        grad_fg = (grad_probs[:, 1:2] - grad_probs[:, 0:1]) * factor
        return torch.cat((-grad_fg, grad_fg), 1).to(logits_dtype)
    grad_logits = torch.empty(grad_probs.shape, dtype=factor.dtype, device=factor.device)  # one buffer
    grad_fg = grad_logits[:, 1:2]
    torch.sub(grad_probs[:, 1:2], grad_probs[:, 0:1], out=grad_fg).mul_(factor)
    torch.neg(grad_fg, out=grad_logits[:, 0:1])
    return grad_logits.to(logits_dtype)


def _sigmoid_grad(
    probs: torch.Tensor,
    target: torch.Tensor,
    grad: ProbsGrad,
    exponent: float | None,
    logits_dtype: torch.dtype,
    reuse_probs: bool = False,
) -> torch.Tensor:
    """`dL/dp * error_weight(|target - probs|)`: the surgical sigmoid's logit gradient (Eq. 10).

    Args:
        probs: `(b, c, *spatial)` float32 or float64.
        target: of the same shape, bool, integer or of the dtype of `probs`, values in `[0, 1]`.
        grad: `dL/dp` of the same shape (any strides), or an `(offset, slope)` pair (`blocked.ProbsGrad`).
        exponent: decline exponent `n`; `None` drops the decline factors.
        logits_dtype: the dtype of the result.
        reuse_probs: on the eager ATen path, write the result into `probs`, which is then lost.

    Returns:
        `(b, c, *spatial)` of `logits_dtype`.
    """
    if torch.compiler.is_compiling():  # plain operations that Inductor fuses
        target = target.to(probs.dtype)
        if isinstance(grad, tuple):
            per_channel = (*probs.shape[:2], *[1] * (probs.ndim - 2))
            grad = (
                grad[0].to(probs.dtype).view(per_channel) + grad[1].to(probs.dtype).view(per_channel) * target
            )
        return (grad.to(probs.dtype) * error_weight((target - probs).abs(), exponent)).to(logits_dtype)
    if _fused(probs):
        grad_logits = fused.sigmoid_backward(probs.contiguous(), target, grad, exponent, logits_dtype)
        if grad_logits is not None:
            return grad_logits
    return blocked.sigmoid_grad(probs, target, grad, exponent, reuse_probs=reuse_probs).to(logits_dtype)


class _SurgicalSoftmax(torch.autograd.Function):
    """softmax over dim 1 with the surgical backward; see the module docstring.

    Saved for the backward: on the fused path the probabilities and the target (the kernel computes the
    weight or rescale itself); on the ATen path Listing 1's weight (two channels) or the probabilities and
    the rescale (K channels).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, exponent: float | None) -> torch.Tensor:
        ctx.logits_dtype, ctx.exponent = logits.dtype, exponent
        with torch.autocast(device_type=logits.device.type, enabled=False):
            probs = torch.softmax(logits.to(_math_dtype(logits)), 1)
            ctx.onehot = is_onehot(logits, target)
            ctx.fused = _fused(probs)
            if ctx.fused:
                ctx.save_for_backward(probs, target)
            else:
                factor = _softmax_factor(probs, target, ctx.onehot, exponent)
                ctx.save_for_backward(*(() if probs.shape[1] == 2 else (probs,)), factor)
        return probs

    @staticmethod
    def backward(ctx, grad_probs: torch.Tensor):
        if ctx.fused:
            probs, target = ctx.saved_tensors
            grad_logits = fused.softmax_backward(
                grad_probs, probs.contiguous(), target, ctx.onehot, ctx.exponent, ctx.logits_dtype
            )
            if grad_logits is not None:
                return grad_logits, None, None
            factor = _softmax_factor(probs, target, ctx.onehot, ctx.exponent)  # the kernel failed: ATen
        else:
            *rest, factor = ctx.saved_tensors
            probs = rest[0] if rest else None
        return _softmax_backward(grad_probs, probs, factor, ctx.logits_dtype), None, None


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
        grad_logits = _sigmoid_grad(probs, target, grad_probs, ctx.exponent, ctx.logits_dtype)
        return grad_logits.view(ctx.logits_shape), None, None


class _SurgicalSigmoidSums(torch.autograd.Function):
    """`(sum(p * y), sum(p), sum(y))` over the spatial axes of `p = surgical_sigmoid(logits, y)`, one node.

    The gradients of the first two reach `p` as `dL/dp = g_sum_p + g_sum_py * y`; the backward applies that
    pair per (image, channel) inside `_sigmoid_grad` instead of building `dL/dp` (on the ATen path writing
    the logit gradient into the buffer of `p`, which nothing else holds). The forward converts the target
    once and multiplies `p` into that copy. Fresh tensors of the logits' size: two (`p` and the copy),
    where autograd through `sigmoid`, `p * y` and the sums makes six (docs/surgery.md#numerics). Eager only
    (`SoftTverskyLoss` uses the unfused sums under `torch.compile`).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, exponent: float | None):
        probs = _sigmoid_forward(ctx, logits, target, exponent)
        axes = tuple(range(2, probs.ndim))
        y = as_float(target, probs.dtype)
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
        grad_logits = _sigmoid_grad(probs, target, pair, ctx.exponent, ctx.logits_dtype, reuse_probs=True)
        return grad_logits.view(ctx.logits_shape), None, None


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
    target = _region_target(logits, target, "surgical_sigmoid")
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
    target = _region_target(logits, target, "surgical_sigmoid_sums")
    return _SurgicalSigmoidSums.apply(logits, target.detach(), validate_exponent(exponent))
