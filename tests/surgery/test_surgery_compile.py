"""`torch.compile` (CPU, inductor) of the surgical loss gives eager's loss and logit gradient."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
from nnunetv2.utilities.helpers import softmax_helper_dim1

from nnunet_surgery.losses import SoftTverskyLoss


@pytest.mark.parametrize("channels", [2, 3])
def test_compiled_surgical_loss_matches_eager_loss_and_gradient(fresh_dynamo, channels):
    torch._dynamo.reset()  # each channel count gets its own graphs
    loss = SoftTverskyLoss(
        softmax_helper_dim1, batch_dice=False, do_bg=False, ddp=False, surgery=True, exponent=20
    )
    gen = torch.Generator().manual_seed(channels)
    logits = torch.randn(2, channels, 4, 4, generator=gen) * 2
    target = torch.randint(0, channels, (2, 1, 4, 4), generator=gen)

    eager_leaf = logits.clone().requires_grad_()
    eager_loss = loss(eager_leaf, target)
    (eager_grad,) = torch.autograd.grad(eager_loss, eager_leaf)

    compiled = torch.compile(loss, backend="inductor", fullgraph=False)
    leaf = logits.clone().requires_grad_()
    compiled_loss = compiled(leaf, target)
    (compiled_grad,) = torch.autograd.grad(compiled_loss, leaf)

    # the surgery must still be active in the compiled graph: it differs from the plain gradient
    plain_leaf = logits.clone().requires_grad_()
    plain = SoftTverskyLoss(softmax_helper_dim1, do_bg=False, ddp=False)(plain_leaf, target)
    (plain_grad,) = torch.autograd.grad(plain, plain_leaf)
    assert (compiled_grad - plain_grad).abs().max() > 1e-3 * plain_grad.abs().max()

    # inductor may fuse and reorder float32 sums: allow a few ulp
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-5, atol=1e-8)
