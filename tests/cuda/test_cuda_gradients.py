"""On CUDA, the surgical activations' gradients are Eq. 10 (float64 reference), fused kernels and ATen alike.

The reference is evaluated on the CPU in float64 from the probabilities the operation itself returned, so only
the weight's arithmetic differs; bounds as in docs/surgery.md#numerics, with the GPU's transcendental
functions allowed 4 float32 units in the last place (`U_GPU`), and one rounding to the logits' dtype.
"""

from __future__ import annotations

import pytest
import torch

from nnunet_surgery.surgery import P_Y_MIN, fused, surgical_sigmoid, surgical_sigmoid_sums, surgical_softmax

pytestmark = pytest.mark.cuda

U_GPU = 2.0**-22
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
EXPONENTS = [None, 5, 20]


@pytest.fixture(params=["fused", "aten"])
def path(request, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both eager CUDA paths: the Triton kernels and the ATen operators (`NNUNET_SURGERY_FUSED=0`)."""
    if request.param == "fused" and not fused.available():
        pytest.skip("Triton is not available: the fused kernels cannot run")
    monkeypatch.setenv(fused.ENV_SWITCH, "1" if request.param == "fused" else "0")
    return request.param


def _paper_weight(e: torch.Tensor, n: float | None) -> torch.Tensor:
    return 0.25 * e if n is None else 0.25 * e * (1 - e**n) * (1 - (1 - e) ** n)


def _rescale(p_y: torch.Tensor, n: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """docs/surgery.md#multi-class-rescale in float64: `s = 0.25 h (1 - p_y^n)` and `h = (1 - (1 - p_y)^n) / p_y`
    (limit n at p_y = 0); n = None: `s = 0.25 / max(p_y, P_Y_MIN)`, h = 1 / max(p_y, P_Y_MIN)."""
    if n is None:
        head = 1 / p_y.clamp_min(P_Y_MIN)
        return 0.25 * head, head
    head = torch.where(p_y > 0, -torch.expm1(n * torch.log1p(-p_y)) / p_y.clamp_min(1e-300), n)
    return 0.25 * head * (1 - p_y**n), head


def _vjp(fn, z: torch.Tensor, g: torch.Tensor):
    leaf = z.detach().clone().requires_grad_()
    out = fn(leaf)
    (grad,) = torch.autograd.grad((out * g).sum(), leaf)
    return out.detach(), grad


def _within(grad: torch.Tensor, expected: torch.Tensor, arithmetic: torch.Tensor) -> bool:
    """|grad - expected| <= the float32 arithmetic's error bound, plus one rounding to the gradient's dtype."""
    info = torch.finfo(grad.dtype)
    eps = info.eps if grad.dtype != torch.float32 else 0.0
    bound = arithmetic + eps * expected.abs() + info.tiny * info.eps  # the last term: subnormal spacing
    return bool(((grad.double().cpu() - expected).abs() <= bound).all())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("channels", [2, 4])
@pytest.mark.parametrize("spatial", [(64, 48), (16, 24, 20)], ids=["2d", "3d"])
def test_softmax_gradient_is_eq10_in_float64(cuda, path, dtype, exponent, channels, spatial):
    gen = torch.Generator().manual_seed(channels)
    z = (torch.randn(2, channels, *spatial, generator=gen) * 4).to(device=cuda, dtype=dtype)
    labels = torch.randint(0, channels, (2, 1, *spatial), generator=gen).to(cuda)
    g = torch.randn(2, channels, *spatial, generator=gen).to(cuda)
    probs, grad = _vjp(lambda x: surgical_softmax(x, labels, exponent), z, g)
    assert probs.dtype == torch.float32 and grad.dtype == dtype
    p, g64, y = probs.double().cpu(), g.double().cpu(), labels.cpu()
    plain = p * (g64 - (p * g64).sum(1, keepdim=True))  # the softmax VJP
    p_y = p.gather(1, y)
    n = exponent or 0
    if channels == 2:  # Listing 1: the weight's error (n + 10) u per unit of 0.25 e, 8 u of the products
        e = (y.double() - p[:, 1:2]).abs()
        grad_fg = _paper_weight(e, exponent) * (g64[:, 1:2] - g64[:, 0:1])
        expected = torch.cat([-grad_fg, grad_fg], 1)
        arithmetic = (
            0.25 * e * (g64[:, 1:2] - g64[:, 0:1]).abs() * (n + 10) * U_GPU + 8 * U_GPU * expected.abs()
        )
    else:  # s p (g - <p, g>): 1 - p_y^n to (n + 4) u absolute, h to 12 u relative; the VJP to 8 u of its terms
        scale, head = _rescale(p_y, exponent)
        expected = plain * scale
        terms = p * (g64.abs() + (p * g64.abs()).sum(1, keepdim=True))
        arithmetic = 0.25 * head * (n + 16) * U_GPU * plain.abs() + 8 * U_GPU * scale * terms
    assert _within(grad, expected, arithmetic)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("sums", [False, True], ids=["sigmoid", "sigmoid-sums"])
def test_sigmoid_gradient_is_eq10_in_float64(cuda, path, dtype, exponent, sums):
    gen = torch.Generator().manual_seed(3)
    shape = (2, 3, 20, 24, 16)
    z = (torch.randn(shape, generator=gen) * 4).to(device=cuda, dtype=dtype)
    regions = (torch.rand(shape, generator=gen) < 0.4).to(cuda)  # bool, as nnU-Net hands them over
    if sums:
        g_py, g_p = torch.randn(2, 3, generator=gen).to(cuda), torch.randn(2, 3, generator=gen).to(cuda)
        leaf = z.detach().clone().requires_grad_()
        intersect, sum_pred, _ = surgical_sigmoid_sums(leaf, regions, exponent)
        ((intersect * g_py).sum() + (sum_pred * g_p).sum()).backward()
        grad = leaf.grad
        probs = torch.sigmoid(z.float())
        g64 = g_p.double().cpu().view(2, 3, 1, 1, 1) + g_py.double().cpu().view(2, 3, 1, 1, 1) * regions.cpu()
    else:
        g = torch.randn(shape, generator=gen).to(cuda)
        probs, grad = _vjp(lambda x: surgical_sigmoid(x, regions, exponent), z, g)
        g64 = g.double().cpu()
    assert grad.dtype == dtype
    e = (regions.cpu().double() - probs.double().cpu()).abs()
    expected = g64 * _paper_weight(e, exponent)
    arithmetic = 0.25 * e * g64.abs() * ((exponent or 0) + 10) * U_GPU + 8 * U_GPU * expected.abs()
    assert _within(grad, expected, arithmetic)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("activation", ["softmax2", "softmax4", "sigmoid"])
def test_extreme_logits_give_finite_gradients(cuda, path, dtype, exponent, activation):
    channels = {"softmax2": 2, "softmax4": 4, "sigmoid": 3}[activation]
    z = torch.tensor([-1e4, 1e4, 0.0, 30.0, -30.0]).repeat(2, channels, 8, 1).to(device=cuda, dtype=dtype)
    z[:, 0] = -z[:, 0]
    g = torch.randn(z.shape, generator=torch.Generator().manual_seed(0)).to(cuda)
    if activation == "sigmoid":
        target = torch.rand(z.shape, generator=torch.Generator().manual_seed(1)).to(cuda) < 0.5
        probs, grad = _vjp(lambda x: surgical_sigmoid(x, target, exponent), z, g)
    else:
        target = torch.randint(0, channels, (2, 1, 8, 5), generator=torch.Generator().manual_seed(1)).to(cuda)
        probs, grad = _vjp(lambda x: surgical_softmax(x, target, exponent), z, g)
    assert torch.isfinite(probs).all() and torch.isfinite(grad).all()
