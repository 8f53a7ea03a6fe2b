"""Gradient vector field surgery: softmax / sigmoid whose backward pass is error-linear.

The paper's surgery (its Section 3.2 and Appendix C; derivations in docs/surgery.md) keeps the forward
pass and the loss's own `dL/dp`, and replaces the activation's derivative `p(1 - p)` by the error weight
of Eq. 10 (docs/surgery.md#error-weight-and-decline-exponent)

    w(e) = 0.25 * e * (1 - e**n) * (1 - (1 - e)**n),        e = |y - p|,

where `n` is the decline exponent (`exponent=None` drops both decline factors: `w = 0.25 * e`).

The rooms, one job each:
- `weights`: the formulas (Eq. 10's error weight, the K-channel rescale) as ATen operations;
- `functions`: the autograd functions and the public activations, and where each step runs
  (under `torch.compile`, eager on CUDA, eager on CPU);
- `blocked`: the sigmoid's eager backward with ATen operators in cache-sized blocks (CPU);
- `fused`: the same steps as fused Triton kernels, one pass each (eager on CUDA).
"""

from nnunet_surgery.surgery.blocked import SIGMOID_BLOCK
from nnunet_surgery.surgery.functions import surgical_sigmoid, surgical_sigmoid_sums, surgical_softmax
from nnunet_surgery.surgery.weights import (
    P_Y_MIN,
    decline_sum_is_exact,
    error_weight,
    softmax_rescale,
    validate_exponent,
)

__all__ = [
    "P_Y_MIN",
    "SIGMOID_BLOCK",
    "decline_sum_is_exact",
    "error_weight",
    "softmax_rescale",
    "surgical_sigmoid",
    "surgical_sigmoid_sums",
    "surgical_softmax",
    "validate_exponent",
]
