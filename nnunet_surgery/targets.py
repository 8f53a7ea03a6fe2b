"""Target handling shared by the surgery and the losses: label maps versus one-hot / region tensors.

nnU-Net passes targets either as a label map of shape `(b, 1, *spatial)` (or `(b, *spatial)`) or, for
region-based training, as a tensor of the logits' shape `(b, c, *spatial)`.
"""

from __future__ import annotations

import torch

__all__ = ["as_channel_target", "as_float", "bool_as_uint8", "is_onehot", "onehot"]


def bool_as_uint8(target: torch.Tensor) -> torch.Tensor:
    """A bool target's bytes read as uint8 (values 0 and 1, no copy) in eager mode; else `target` itself.

    ATen's kernels that mix dtypes are several times slower for a bool operand than for uint8 on CPU
    (bench/loss.py --profile: converting a bool region target cost as much as the sigmoid). Under
    `torch.compile` the target passes unchanged: Inductor fuses the conversion into its consumer anyway,
    and its CUDA backend cannot lower a dtype view of bool (`aten.view.dtype`: bool has no bit width in
    Triton's type system), which nnU-Net's compiled Dice term would hit at the first step
    (docs/surgery.md#cuda-and-torchcompile).

    Args:
        target: any shape and dtype.

    Returns:
        `target` as uint8 (same shape and strides) if it is bool and nothing is being compiled, else `target`.
    """
    if target.dtype == torch.bool and not torch.compiler.is_compiling():
        return target.view(torch.uint8)
    return target


def as_float(target: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`target.to(dtype)`, with a bool target converted through its uint8 bytes in eager mode (`bool_as_uint8`).

    Args:
        target: any shape and dtype.
        dtype: a floating dtype.

    Returns:
        `target` as `dtype`, same shape (`target` itself if it already has that dtype).
    """
    return bool_as_uint8(target).to(dtype)


def as_channel_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Give a label map its channel axis and check that `target` fits `logits`.

    Args:
        logits: network output `(b, c, *spatial)`.
        target: label map `(b, 1, *spatial)` or `(b, *spatial)`, or one-hot / region tensor `(b, c, *spatial)`.

    Returns:
        `target` viewed as `(b, 1, *spatial)` or `(b, c, *spatial)`.

    Raises:
        ValueError: if the batch or spatial shape of `target` differs from that of `logits`.
    """
    if target.ndim == logits.ndim - 1:
        target = target.view(target.shape[0], 1, *target.shape[1:])
    if (
        target.ndim != logits.ndim
        or target.shape[0] != logits.shape[0]
        or target.shape[2:] != logits.shape[2:]
        or target.shape[1] not in (1, logits.shape[1])
    ):
        raise ValueError(
            f"target must be a label map (b, 1, *spatial) or a one-hot/region tensor of the logits' shape "
            f"{tuple(logits.shape)}, but got {tuple(target.shape)}"
        )
    return target


def is_onehot(logits: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether `target` (already passed through `as_channel_target`) is one-hot / region encoded.

    As in nnU-Net, a target with the logits' full shape is taken as one-hot; with a single logit
    channel a label map and a one-hot tensor are the same thing.
    """
    return target.shape == logits.shape


def onehot(
    logits: torch.Tensor, target: torch.Tensor, dtype: torch.dtype = torch.bool, first_channel: int = 0
) -> torch.Tensor:
    """One-hot encode a label map as channels `first_channel..c-1` of the logits; one-hot / region targets
    pass through (those channels, their own dtype).

    Building only the channels a loss scores (nnU-Net's Dice skips the background) directly in the
    loss's dtype avoids a bool operand that every product would convert again, forward and backward.

    Args:
        logits: `(b, c, *spatial)`, used for its shape and device only.
        target: label map `(b, 1, *spatial)` with values in `[0, c)`, or a tensor of the logits' shape.
        dtype: dtype of the encoding built from a label map.
        first_channel: first channel to encode.

    Returns:
        `(b, c - first_channel, *spatial)`.
    """
    target = as_channel_target(logits, target)
    if is_onehot(logits, target):
        return target[:, first_channel:]
    channels = range(first_channel, logits.shape[1])
    if torch.compiler.is_compiling():  # dynamo refuses `out=` views
        return torch.cat([target == c for c in channels], 1).to(dtype)
    encoded = torch.empty(
        (target.shape[0], len(channels), *target.shape[2:]), dtype=dtype, device=logits.device
    )
    for i, c in enumerate(channels):
        torch.eq(target, c, out=encoded[:, i : i + 1])
    return encoded
