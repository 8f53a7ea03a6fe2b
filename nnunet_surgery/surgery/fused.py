"""Fused CUDA kernels (Triton) for the surgery in eager mode: each step one pass through memory.

With ATen operators the error weight of Eq. 10 is about a dozen elementwise kernels, each a pass over a
tensor of the logits' size: on a GPU, where such kernels are bound by memory bandwidth, that made the
surgical loss 1.5-3.3x nnU-Net's stock loss. Here each step is one kernel that reads its operands once:

- `softmax_backward`: two channels, Listing 1 (`w = w(|y_fg - p_fg|)` from the foreground channel,
  `grad_fg = w (g_fg - g_bg)`, `grad_bg = -grad_fg`); K channels, `s(p_y) p (g - <p, g>)`, the plain softmax
  vector-Jacobian product rescaled (docs/surgery.md#multi-class-rescale). The weight or rescale is computed
  in the backward from the saved probabilities and the target, so the forward is a plain softmax;
- `sigmoid_backward`: `dL/dp * w(|y - p|)`, `dL/dp` a tensor or the `offset + slope y` pair of a region
  loss's sums.

Each writes its result in the logits' dtype, so no separate cast follows.

The formulas are those of `weights.py`, evaluated in float32 with `exp` and `log` only: `log1p` and
`expm1` are written with Goldberg's and Kahan's compensations (`_log1p`, `_expm1`), exact to a few
rounding errors where a plain `log(1 + x)` or `exp(x) - 1` would cancel (docs/surgery.md#numerics).

`functions.py` calls these for CUDA tensors with float32 math, outside `torch.compile` (where Inductor fuses
the plain operations itself), when `available()`; `NNUNET_SURGERY_FUSED=0` turns them off. Every launcher
takes `(b, c, S)`-contiguous tensors (`S` the spatial voxels of one image); it also runs on CPU tensors
under Triton's interpreter (`TRITON_INTERPRET=1`), which is how the tests check it without a GPU. For that
the kernels use Triton's builtins only, none of its library functions written as `@triton.jit` (`tl.sum`,
`tl.zeros`): those are compiled kernels unless the interpreter was on when Triton was first imported.
"""

from __future__ import annotations

import os
import warnings

import torch

from nnunet_surgery.surgery.weights import P_Y_MIN, decline_floor, decline_sum_is_exact

try:  # Triton ships with PyTorch's CUDA wheels on Linux; elsewhere the ATen path is used
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the installation
    triton = None

__all__ = ["ENV_SWITCH", "available", "sigmoid_backward", "softmax_backward"]

#: Environment variable that turns the fused kernels off when set to 0 (the ATen operators are used).
ENV_SWITCH = "NNUNET_SURGERY_FUSED"
#: Voxels per program (one image, a block of voxels, every channel).
BLOCK = 1024

_failed: list[str] = []  # the first launch error, after which the fused path is off in this process


def available() -> bool:
    """Whether the fused kernels may be used: Triton imports, `NNUNET_SURGERY_FUSED` is not 0, and no kernel
    has failed to compile in this process."""
    return triton is not None and os.environ.get(ENV_SWITCH, "1") != "0" and not _failed


def _run(kernel, rows: int, voxels: int, result: torch.Tensor, *args, **meta) -> torch.Tensor | None:
    """Launch `kernel` on a grid of `rows` x blocks of `BLOCK` voxels; `result` (which it writes) if it ran,
    None if it failed to compile: then it warns once and turns the fused path off for this process."""
    try:
        kernel[(triton.cdiv(voxels, BLOCK), rows)](*args, BLOCK=BLOCK, **meta)
    except Exception as err:  # Triton raises its own error types while compiling for a device
        _failed.append(f"{type(err).__name__}: {err}")
        warnings.warn(
            f"nnunet-surgery: the fused CUDA kernel {kernel.fn.__name__} failed ({_failed[0][:300]}); "
            f"using ATen operators from now on (set {ENV_SWITCH}=0 to skip the attempt)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return result


def _exponent_args(exponent: float | None) -> dict:
    """The kernels' exponent arguments: `n`, its decline floor (float32), and the constexpr switches."""
    if exponent is None:
        return {"exponent": 1.0, "floor": 0.0, "HAS_EXPONENT": False, "EXACT_SUM": False}
    return {
        "exponent": float(exponent),
        "floor": decline_floor(exponent, torch.float32),
        "HAS_EXPONENT": True,
        "EXACT_SUM": decline_sum_is_exact(exponent, torch.float32),
    }


if triton is not None:

    @triton.jit
    def _log1p(x):
        """log(1 + x), Goldberg: `x log(w) / (w - 1)` with `w = 1 + x` rounded, exact as w -> 1."""
        w = 1.0 + x
        d = w - 1.0
        safe = tl.where(d == 0.0, 1.0, d)
        return tl.where(d == 0.0, x, x * (tl.log(w) / safe))

    @triton.jit
    def _expm1(x):
        """exp(x) - 1; for |x| < 1/2 by Kahan's `(u - 1) x / log(u)`, `u = exp(x)` rounded, exact as u -> 1
        (further out `u - 1` does not cancel, and a subnormal `u` would spoil `log(u)`)."""
        u = tl.exp(x)
        d = u - 1.0
        kahan = tl.abs(x) < 0.5
        log_u = tl.log(tl.where(kahan & (d != 0.0), u, 2.0))  # 2.0: a placeholder where it is not used
        return tl.where(kahan, tl.where(d == 0.0, x, d * (x / log_u)), d)

    @triton.jit
    def _voxel_block(S, BLOCK: tl.constexpr):
        """This program's row (grid axis 1: an image, or an image's channel) as int64, its block of voxel
        offsets (grid axis 0) and their mask (`< S`)."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        return tl.program_id(1).to(tl.int64), offs, offs < S

    @triton.jit
    def _decline(x, exponent, floor):
        """x**n as exp(n log x), x clamped at the decline floor (weights.pow_minus_one_ plus one)."""
        return tl.exp(tl.log(tl.maximum(x, floor)) * exponent)

    @triton.jit
    def _error_weight(e, exponent, floor, HAS_EXPONENT: tl.constexpr, EXACT_SUM: tl.constexpr):
        """Eq. 10: 0.25 e (1 - e**n)(1 - (1 - e)**n), or 0.25 e without the decline factors."""
        if HAS_EXPONENT:
            a = _decline(e, exponent, floor)
            b = _decline(1.0 - e, exponent, floor)
            if EXACT_SUM:
                factor = 0.25 - 0.25 * (a + b)
            else:
                factor = (0.5 * a - 0.5) * (0.5 * b - 0.5)
            weight = e * factor
        else:
            weight = 0.25 * e
        return weight

    @triton.jit
    def _listing1_backward_kernel(
        g_ptr,
        p_ptr,
        y_ptr,
        out_ptr,
        S,
        y_batch_stride,
        exponent,
        floor,
        LABEL_MAP: tl.constexpr,
        HAS_EXPONENT: tl.constexpr,
        EXACT_SUM: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        """Two channels: w from the foreground channel, grad_fg = w (g_fg - g_bg), grad_bg = -grad_fg."""
        b, offs, mask = _voxel_block(S, BLOCK)
        start = b * 2 * S + offs
        p_fg = tl.load(p_ptr + start + S, mask=mask, other=0.0)
        if LABEL_MAP:  # the foreground: the voxels labelled 1
            y = tl.load(y_ptr + b * y_batch_stride + offs, mask=mask, other=0)
            y_fg = tl.where(y == 1, 1.0, 0.0)
        else:  # channel 1 of a one-hot target
            y_fg = tl.load(y_ptr + b * y_batch_stride + S + offs, mask=mask, other=0).to(tl.float32)
        weight = _error_weight(tl.abs(y_fg - p_fg), exponent, floor, HAS_EXPONENT, EXACT_SUM)
        g_bg = tl.load(g_ptr + start, mask=mask, other=0.0).to(tl.float32)
        g_fg = tl.load(g_ptr + start + S, mask=mask, other=0.0).to(tl.float32)
        grad_fg = (g_fg - g_bg) * weight
        out_ty = out_ptr.dtype.element_ty
        tl.store(out_ptr + start, (-grad_fg).to(out_ty), mask=mask)
        tl.store(out_ptr + start + S, grad_fg.to(out_ty), mask=mask)

    @triton.jit
    def _rescaled_softmax_backward_kernel(
        g_ptr,
        p_ptr,
        y_ptr,
        out_ptr,
        S,
        C,
        y_batch_stride,
        exponent,
        floor,
        p_y_min,
        LABEL_MAP: tl.constexpr,
        HAS_EXPONENT: tl.constexpr,
        EXACT_SUM: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        """K channels: s(p_y) p (g - <p, g>), channel by channel (pointers advance by S: 64-bit offsets)."""
        b, offs, mask = _voxel_block(S, BLOCK)
        start = b * C * S + offs
        if LABEL_MAP:  # p_y = p[y]; a label outside [0, C) reads the nearest channel, never out of bounds
            y = tl.load(y_ptr + b * y_batch_stride + offs, mask=mask, other=0).to(tl.int32)
            y = tl.minimum(tl.maximum(y, 0), C - 1)
            p_y = tl.load(p_ptr + start + y.to(tl.int64) * S, mask=mask, other=1.0)
        else:  # one-hot: p_y = sum_c p_c y_c
            p_at, y_at = p_ptr + start, y_ptr + b * y_batch_stride + offs
            p_y = tl.full([BLOCK], 0.0, tl.float32)
            for _ in range(C):
                y = tl.load(y_at, mask=mask, other=0).to(tl.float32)
                p_y += tl.load(p_at, mask=mask, other=0.0) * y
                p_at += S
                y_at += S
        if (
            HAS_EXPONENT
        ):  # s = 0.25 (1 - (1 - p_y)**n) / p_y * (1 - p_y**n), p_y clamped at the smallest normal
            p = tl.maximum(p_y, 1.1754943508222875e-38)
            head = -_expm1(exponent * _log1p(-p)) / p
            scale = 0.25 * head * (1.0 - _decline(p, exponent, floor))
        else:
            scale = 0.25 / tl.maximum(p_y, p_y_min)
        dot = tl.full([BLOCK], 0.0, tl.float32)  # <p, g>
        p_at, g_at = p_ptr + start, g_ptr + start
        for _ in range(C):
            g = tl.load(g_at, mask=mask, other=0.0).to(tl.float32)
            dot += tl.load(p_at, mask=mask, other=0.0) * g
            p_at += S
            g_at += S
        p_at, g_at, out_at = p_ptr + start, g_ptr + start, out_ptr + start
        for _ in range(C):  # the second read of a block's channels comes from the cache
            g = tl.load(g_at, mask=mask, other=0.0).to(tl.float32)
            out = scale * (tl.load(p_at, mask=mask, other=0.0) * (g - dot))
            tl.store(out_at, out.to(out_ptr.dtype.element_ty), mask=mask)
            p_at += S
            g_at += S
            out_at += S

    @triton.jit
    def _sigmoid_backward_kernel(
        p_ptr,
        y_ptr,
        g_ptr,
        offset_ptr,
        slope_ptr,
        out_ptr,
        S,
        exponent,
        floor,
        PAIR: tl.constexpr,
        HAS_EXPONENT: tl.constexpr,
        EXACT_SUM: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        row, offs, mask = _voxel_block(S, BLOCK)
        p = tl.load(p_ptr + row * S + offs, mask=mask, other=0.0)
        y = tl.load(y_ptr + row * S + offs, mask=mask, other=0).to(tl.float32)
        if PAIR:
            grad = tl.load(offset_ptr + row) + tl.load(slope_ptr + row) * y
        else:
            grad = tl.load(g_ptr + row * S + offs, mask=mask, other=0.0).to(tl.float32)
        out = grad * _error_weight(tl.abs(y - p), exponent, floor, HAS_EXPONENT, EXACT_SUM)
        tl.store(out_ptr + row * S + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


def _rows_and_voxels(t: torch.Tensor) -> tuple[int, int, int]:
    """`(b, c, S)` of a `(b, c, *spatial)` tensor."""
    voxels = t[0, 0].numel() if t.ndim > 2 else 1
    return t.shape[0], t.shape[1], voxels


def _target_layout(target: torch.Tensor) -> torch.Tensor:
    """The target, `(b, 1 or c, *spatial)`, contiguous and as a dtype Triton reads (bool as its uint8 bytes)."""
    if target.dtype == torch.bool:
        target = target.view(torch.uint8)  # eager only: this module never runs under torch.compile
    return target.contiguous()


def softmax_backward(
    grad_probs: torch.Tensor,
    probs: torch.Tensor,
    target: torch.Tensor,
    onehot: bool,
    exponent: float | None,
    out_dtype: torch.dtype,
) -> torch.Tensor | None:
    """The surgical softmax's logit gradient, `(b, c, *spatial)` of `out_dtype`, or None if the kernel failed.

    Two channels: Listing 1, `w` from the foreground channel. K channels: `s(p_y) p (g - <p, g>)`. The
    weight or rescale is computed here from the probabilities and the target, so the forward saves only
    what a plain softmax saves (the probabilities) besides a reference to the target.

    Args:
        grad_probs: `dL/dp`, `(b, c, *spatial)`, any float dtype and strides.
        probs: softmax output, float32, contiguous.
        target: label map `(b, 1, *spatial)` with values in `[0, c)` (two channels: foreground = 1), or
            one-hot `(b, c, *spatial)`; any dtype.
        onehot: whether `target` is one-hot.
        exponent: decline exponent `n`, or None.
        out_dtype: the logits' dtype.
    """
    grad_probs, target = grad_probs.contiguous(), _target_layout(target)
    b, channels, voxels = _rows_and_voxels(probs)
    out = torch.empty(probs.shape, dtype=out_dtype, device=probs.device)
    y_batch_stride = target.shape[1] * voxels
    meta = {"LABEL_MAP": not onehot, **_exponent_args(exponent)}
    if channels == 2:
        kernel, args = _listing1_backward_kernel, (grad_probs, probs, target, out, voxels, y_batch_stride)
    else:
        kernel, args = _rescaled_softmax_backward_kernel, (grad_probs, probs, target, out, voxels, channels)
        args = (*args, y_batch_stride)
        meta["p_y_min"] = P_Y_MIN
    return _run(kernel, b, voxels, out, *args, **meta)


def sigmoid_backward(
    probs: torch.Tensor,
    target: torch.Tensor,
    grad: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    exponent: float | None,
    out_dtype: torch.dtype,
) -> torch.Tensor | None:
    """`dL/dp * w(|y - p|)` (Eq. 10), `(b, c, *spatial)` of `out_dtype`, or None if the kernel failed.

    Args:
        probs: sigmoid output `(b, c, *spatial)`, float32, contiguous.
        target: region target of the same shape, values in `[0, 1]`, any dtype.
        grad: `dL/dp` of the same shape (any float dtype and strides), or `(offset, slope)`, `(b * c, 1)`
            each, meaning `offset + slope * y` per (image, channel).
        exponent: decline exponent `n`, or None.
        out_dtype: the logits' dtype.
    """
    b, channels, voxels = _rows_and_voxels(probs)
    target = _target_layout(target)
    out = torch.empty(probs.shape, dtype=out_dtype, device=probs.device)
    pair = isinstance(grad, tuple)
    if pair:
        offset, slope = (g.reshape(-1).to(torch.float32).contiguous() for g in grad)
        grad_tensor = probs  # unused by the kernel
    else:
        offset = slope = probs  # unused by the kernel
        grad_tensor = grad.contiguous()
    return _run(
        _sigmoid_backward_kernel,
        b * channels,
        voxels,
        out,
        probs,
        target,
        grad_tensor,
        offset,
        slope,
        out,
        voxels,
        PAIR=pair,
        **_exponent_args(exponent),
    )
