"""`surgical_softmax` / `surgical_sigmoid`: forward, backward (Eq. 9-10, Listing 1), extremes, dtypes.

Every expected gradient is written here from the paper's formula with plain `pow` (the code under test
uses `expm1`/`log1p`), or is torch's own plain softmax / sigmoid gradient rescaled by a factor derived here.
"""

from __future__ import annotations

import math

import pytest
import torch

import nnunet_surgery.surgery.blocked as blocked_module
from nnunet_surgery.surgery import (
    P_Y_MIN,
    decline_sum_is_exact,
    softmax_rescale,
    surgical_sigmoid,
    surgical_sigmoid_sums,
    surgical_softmax,
)

EXPONENTS = [None, 1, 5, 20]
# (batch, channels, *spatial): 2D and 3D, batch 1 and 3, two and three channels
SHAPES = [(1, 2, 5, 4), (3, 3, 5, 4), (1, 3, 4, 3, 2), (3, 2, 4, 3, 2)]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logits(batch: int, channels: int, spatial: tuple[int, ...], seed: int, scale: float = 3.0, dtype=None):
    z = torch.randn(batch, channels, *spatial, generator=_gen(seed), dtype=torch.float64) * scale
    return z.to(dtype or torch.float64)


def _labels(batch: int, channels: int, spatial: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randint(0, channels, (batch, 1, *spatial), generator=_gen(seed))


def _onehot(labels: torch.Tensor, channels: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels[:, 0], channels).movedim(-1, 1).to(torch.float64)


def _vjp(activation, z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Logit gradient of `sum(activation(z) * g)`, i.e. the activation's vector-Jacobian product with g."""
    z = z.detach().clone().requires_grad_()
    (grad,) = torch.autograd.grad((activation(z) * g).sum(), z)
    return grad


def _paper_weight(e: torch.Tensor, n: float | None) -> torch.Tensor:
    """Eq. 10 / Listing 1's error weight, plain pow: 0.25 e (1 - e^n)(1 - (1 - e)^n)."""
    if n is None:
        return 0.25 * e
    return 0.25 * e * (1 - e**n) * (1 - (1 - e) ** n)


def _listing1_logit_grad(
    z: torch.Tensor, y_fg: torch.Tensor, g: torch.Tensor, n: float | None
) -> torch.Tensor:
    """Appendix C, Listing 1: grad_fg = w (g_fg - g_bg), grad_bg = -grad_fg, w from the fg channel."""
    p_fg = torch.softmax(z, 1)[:, 1:2]
    w = _paper_weight((y_fg - p_fg).abs(), n)
    grad_fg = w * (g[:, 1:2] - g[:, 0:1])
    return torch.cat([-grad_fg, grad_fg], 1)


def _reference_rescale(p_y: torch.Tensor, n: float | None) -> torch.Tensor:
    """docs/surgery.md#multi-class-rescale: s = w(e) / (p_y e) = 0.25 (1 - e^n)(1 - p_y^n) / p_y, e = 1 - p_y.

    n=None clamps p_y at P_Y_MIN (docs/surgery.md#the-clamp-for-n--none).
    """
    if n is None:
        return 0.25 / p_y.clamp_min(P_Y_MIN)
    e = 1 - p_y
    return 0.25 * (1 - e**n) * (1 - p_y**n) / p_y


# ---------------------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("exponent", EXPONENTS)
def test_surgical_softmax_forward_equals_torch_softmax(dtype, shape, exponent):
    b, c, *spatial = shape
    z = _logits(b, c, tuple(spatial), seed=1, dtype=dtype)
    p = surgical_softmax(z, _labels(b, c, tuple(spatial), seed=2), exponent)
    assert p.dtype == dtype
    assert torch.equal(p, torch.softmax(z, 1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("exponent", EXPONENTS)
def test_surgical_sigmoid_forward_equals_torch_sigmoid(dtype, shape, exponent):
    b, c, *spatial = shape
    z = _logits(b, c, tuple(spatial), seed=3, dtype=dtype)
    regions = torch.rand(z.shape, generator=_gen(4), dtype=torch.float64) < 0.4
    p = surgical_sigmoid(z, regions, exponent)
    assert p.dtype == dtype
    assert torch.equal(p, torch.sigmoid(z))


# ----------------------------------------------------------------------------- two-channel backward


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("target_kind", ["label_map", "label_map_no_channel_axis", "onehot"])
@pytest.mark.parametrize("spatial", [(6, 5), (3, 4, 2)], ids=["2d", "3d"])
def test_two_channel_backward_equals_listing1(exponent, target_kind, spatial):
    z = _logits(3, 2, spatial, seed=10)
    labels = _labels(3, 2, spatial, seed=11)
    g = torch.randn(z.shape, generator=_gen(12), dtype=torch.float64)
    target = {"label_map": labels, "label_map_no_channel_axis": labels[:, 0], "onehot": _onehot(labels, 2)}
    grad = _vjp(lambda x: surgical_softmax(x, target[target_kind], exponent), z, g)
    expected = _listing1_logit_grad(z, labels.to(torch.float64), g, exponent)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("onehot_target", [False, True])
def test_two_channel_backward_is_plain_softmax_vjp_times_w_over_py_e(exponent, onehot_target):
    spatial = (7, 6)
    z = _logits(2, 2, spatial, seed=20)
    labels = _labels(2, 2, spatial, seed=21)
    g = torch.randn(z.shape, generator=_gen(22), dtype=torch.float64)
    target = _onehot(labels, 2) if onehot_target else labels
    grad = _vjp(lambda x: surgical_softmax(x, target, exponent), z, g)
    plain = _vjp(lambda x: torch.softmax(x, 1), z, g)
    p_y = torch.softmax(z, 1).gather(1, labels)
    e = 1 - p_y
    assert (p_y * e).min() > 0  # the identity is stated where p_y e > 0
    s = _paper_weight(e, exponent) / (p_y * e)
    torch.testing.assert_close(grad, s * plain, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_two_channel_backward_at_saturated_logits_is_finite_and_equals_listing1(exponent, dtype):
    # all four (label, saturated side) combinations: p_fg is exactly 0 or 1, so e is exactly 0 or 1
    z = torch.tensor([[1e4, -1e4, 1e4, -1e4], [-1e4, 1e4, -1e4, 1e4]], dtype=dtype).unsqueeze(0)
    labels = torch.tensor([[[0, 0, 1, 1]]])
    g = torch.tensor([[0.3, -1.2, 2.0, 0.7], [-0.4, 0.9, -1.1, 0.2]], dtype=dtype).unsqueeze(0)
    grad = _vjp(lambda x: surgical_softmax(x, labels, exponent), z, g)
    assert torch.isfinite(grad).all()
    expected = _listing1_logit_grad(
        z.to(torch.float64), labels.to(torch.float64), g.to(torch.float64), exponent
    )
    torch.testing.assert_close(grad.to(torch.float64), expected, rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------- K > 2 channels backward


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("channels", [3, 5])
@pytest.mark.parametrize("onehot_target", [False, True])
def test_multichannel_logit_gradient_sums_to_zero_over_channels(exponent, channels, onehot_target):
    z = _logits(2, channels, (6, 5), seed=30)
    labels = _labels(2, channels, (6, 5), seed=31)
    g = torch.randn(z.shape, generator=_gen(32), dtype=torch.float64)
    target = _onehot(labels, channels) if onehot_target else labels
    grad = _vjp(lambda x: surgical_softmax(x, target, exponent), z, g)
    assert grad.abs().max() > 0
    torch.testing.assert_close(
        grad.sum(1), torch.zeros_like(grad.sum(1)), rtol=0, atol=1e-14 * grad.abs().max()
    )


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("channels", [3, 5])
@pytest.mark.parametrize("onehot_target", [False, True])
def test_multichannel_logit_gradient_is_parallel_to_plain_with_ratio_s(exponent, channels, onehot_target):
    z = _logits(3, channels, (8, 6), seed=40, scale=3.0)
    labels = _labels(3, channels, (8, 6), seed=41)
    g = torch.randn(z.shape, generator=_gen(42), dtype=torch.float64)
    target = _onehot(labels, channels) if onehot_target else labels
    grad = _vjp(lambda x: surgical_softmax(x, target, exponent), z, g)
    plain = _vjp(lambda x: torch.softmax(x, 1), z, g)
    p_y = torch.softmax(z, 1).gather(1, labels)
    if exponent is None:  # both branches of the clamp must occur
        assert (p_y < P_Y_MIN).any() and (p_y > P_Y_MIN).any()
    s = _reference_rescale(p_y, exponent)

    # same direction: cosine 1 per voxel where the plain gradient is non-zero
    plain_norm = plain.norm(dim=1)
    nonzero = plain_norm > 1e-12
    cosine = (grad * plain).sum(1) / (grad.norm(dim=1) * plain_norm)
    torch.testing.assert_close(cosine[nonzero], torch.ones_like(cosine[nonzero]), rtol=0, atol=1e-12)
    # and the ratio is s
    ratio = grad.norm(dim=1, keepdim=True) / plain_norm.unsqueeze(1)
    torch.testing.assert_close(ratio[nonzero.unsqueeze(1)], s[nonzero.unsqueeze(1)], rtol=1e-9, atol=0)
    torch.testing.assert_close(grad, s * plain, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("exponent", [1, 5, 20])
def test_multichannel_rescale_is_bounded_by_quarter_exponent(exponent):
    # Bernoulli: (1 - p)^n >= 1 - n p for n >= 1, so (1 - (1 - p)^n) / p <= n, and (1 - p^n) <= 1
    p_y = torch.cat([torch.zeros(1), torch.logspace(-300, 0, 601), torch.linspace(0, 1, 1001)[1:]])
    p_y = p_y.to(torch.float64).view(1, 1, -1)
    s = softmax_rescale(p_y, exponent)
    assert torch.isfinite(s).all() and (s >= 0).all()
    assert s.max() <= 0.25 * exponent * (1 + 1e-12)
    # the bound is the limit at p_y -> 0: lim (1 - (1 - p)^n) / p = n
    assert s[0, 0, 0] == pytest.approx(0.25 * exponent, rel=1e-12)
    assert s[0, 0, 1] == pytest.approx(0.25 * exponent, rel=1e-12)  # p_y = 1e-300


def test_multichannel_rescale_without_exponent_uses_p_y_min_clamp():
    p_y = torch.tensor([0.0, 1e-30, P_Y_MIN / 2, P_Y_MIN, 2 * P_Y_MIN, 0.5, 1.0], dtype=torch.float64)
    s = softmax_rescale(p_y.view(1, 1, -1), None).flatten()
    torch.testing.assert_close(s, 0.25 / torch.maximum(p_y, torch.tensor(P_Y_MIN, dtype=torch.float64)))


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_multichannel_gradient_at_zero_true_class_probability_is_plain_times_limit(exponent, dtype):
    # p = [0.5, 0.5, 0] exactly, true class 2: p_y = 0 but the plain softmax VJP is non-zero
    z = torch.tensor([0.0, 0.0, -1e4], dtype=dtype).view(1, 3, 1)
    labels = torch.tensor([[[2]]])
    g = torch.tensor([1.5, -0.5, 0.25], dtype=dtype).view(1, 3, 1)
    grad = _vjp(lambda x: surgical_softmax(x, labels, exponent), z, g)
    plain = _vjp(lambda x: torch.softmax(x, 1), z, g)
    assert plain.abs().max() > 0
    limit = 0.25 / P_Y_MIN if exponent is None else 0.25 * exponent
    torch.testing.assert_close(grad, limit * plain)


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels", [2, 3, 5])
def test_logit_gradient_is_finite_at_extreme_logits(exponent, dtype, channels):
    # every permutation-free pattern of saturated logits (probabilities exactly 0 or 1) and every label,
    # plus random logits of magnitude ~1e4
    patterns = [[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 1e4, -1e4], [1e4, 1e4, -1e4], [0.0, 0.0, -1e4]]
    cols = [torch.tensor(pat[:channels] + [0.0] * (channels - 3)) for pat in patterns]
    cols += list(torch.randn(6, channels, generator=_gen(50)).sign() * 1e4)
    # image b of the batch holds all columns with label b everywhere: every label meets every column
    z = torch.stack(cols, 1).to(dtype).unsqueeze(0).repeat(channels, 1, 1)
    labels = torch.arange(channels).view(channels, 1, 1).expand(channels, 1, z.shape[2])
    g = torch.randn(z.shape, generator=_gen(51), dtype=torch.float64).to(dtype)
    grad = _vjp(lambda x: surgical_softmax(x, labels, exponent), z, g)
    assert grad.dtype == dtype
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("exponent", [None, 20])
@pytest.mark.parametrize("channels", [2, 3])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_logits_get_gradient_of_their_dtype_close_to_float32(exponent, channels, dtype):
    z = _logits(2, channels, (5, 4), seed=60).to(dtype)
    labels = _labels(2, channels, (5, 4), seed=61)
    g = torch.randn(z.shape, generator=_gen(62))
    p = surgical_softmax(z, labels, exponent)
    assert p.dtype == torch.float32
    assert torch.equal(p, torch.softmax(z.float(), 1))
    grad = _vjp(lambda x: surgical_softmax(x, labels, exponent), z, g)
    reference = _vjp(lambda x: surgical_softmax(x, labels, exponent), z.float(), g)
    assert grad.dtype == dtype
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(grad.float(), reference, rtol=eps, atol=eps * reference.abs().max().item())


@pytest.mark.parametrize("exponent", [None, 20])
@pytest.mark.parametrize("channels", [2, 3])
def test_autocast_bf16_forward_is_float32_and_backward_matches_float32(exponent, channels):
    z = _logits(2, channels, (5, 4), seed=70).float()
    labels = _labels(2, channels, (5, 4), seed=71)
    g = torch.randn(z.shape, generator=_gen(72))
    reference = _vjp(lambda x: surgical_softmax(x, labels, exponent), z, g)

    # float32 logits under autocast: float32 forward, backward identical to the eager float32 one
    leaf = z.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p = surgical_softmax(leaf, labels, exponent)
        loss = (p * g).sum()
    assert p.dtype == torch.float32
    (grad,) = torch.autograd.grad(loss, leaf)
    assert torch.equal(grad, reference)

    # bf16 logits made by an autocast matmul: the forward is still float32, the gradient bf16 and close
    weight = torch.eye(channels, dtype=torch.float32)
    leaf = z.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = torch.einsum("dc,bc...->bd...", weight, leaf)
        assert logits.dtype == torch.bfloat16
        p = surgical_softmax(logits, labels, exponent)
        loss = (p * g).sum()
    assert p.dtype == torch.float32
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad.dtype == torch.bfloat16
    reference_bf16 = _vjp(lambda x: surgical_softmax(x, labels, exponent), logits.detach().float(), g)
    eps = torch.finfo(torch.bfloat16).eps
    tol = eps * reference_bf16.abs().max().item()
    torch.testing.assert_close(grad.float(), reference_bf16, rtol=eps, atol=tol)


# ------------------------------------------------------------------------------------------ sigmoid


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("soft_target", [False, True])
@pytest.mark.parametrize("spatial", [(6, 5), (3, 4, 2)], ids=["2d", "3d"])
def test_sigmoid_backward_is_grad_times_error_weight(exponent, soft_target, spatial):
    z = _logits(3, 3, spatial, seed=80)
    u = torch.rand(z.shape, generator=_gen(81), dtype=torch.float64)
    target = u if soft_target else (u < 0.4).to(torch.float64)
    g = torch.randn(z.shape, generator=_gen(82), dtype=torch.float64)
    grad = _vjp(lambda x: surgical_sigmoid(x, target, exponent), z, g)
    e = (target - torch.sigmoid(z)).abs()
    torch.testing.assert_close(grad, g * _paper_weight(e, exponent), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sigmoid_backward_at_saturated_logits_is_finite_and_error_weighted(exponent, dtype):
    z = torch.tensor([1e4, -1e4, 1e4, -1e4], dtype=dtype).view(1, 4, 1)
    target = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=dtype).view(1, 4, 1)
    g = torch.tensor([0.5, -2.0, 1.5, 0.75], dtype=dtype).view(1, 4, 1)
    grad = _vjp(lambda x: surgical_sigmoid(x, target, exponent), z, g)
    assert grad.dtype == dtype
    assert torch.isfinite(grad).all()
    # e is exactly 0 (correct) or 1 (confidently wrong): w = 0, or 0.25 without the decline factors
    e = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64).view(1, 4, 1)
    torch.testing.assert_close(grad.to(torch.float64), g.to(torch.float64) * _paper_weight(e, exponent))


@pytest.mark.parametrize("exponent", [None, 5, 20])
@pytest.mark.parametrize("block", [7, 20, 1 << 17], ids=["rows-split", "rows-joined", "default"])
def test_float32_sigmoid_backward_is_float64_formula_within_derived_rounding(exponent, block, monkeypatch):
    """The float32 backward (blocks, `exp(n log x)`, `1 - a - b` at n = 20) against Eq. 10 in float64.

    Both at the same float32 probabilities, so only the weight's arithmetic differs. Bound derived in
    docs/surgery.md#numerics (u = 2**-24): `|F32 - F| <= 0.25 (n + 8) u` for the decline factor
    `F = 0.25 (1 - a)(1 - b)`, and 4 u relative for `e` and the products; 10 instead of 8 covers the
    second-order terms.
    """
    monkeypatch.setattr(blocked_module, "SIGMOID_BLOCK", block)
    z = _logits(3, 2, (7, 5), seed=90, scale=4.0, dtype=torch.float32)
    target = torch.rand(z.shape, generator=_gen(91)) < 0.4
    g = torch.randn(z.shape, generator=_gen(92))
    grad = _vjp(lambda x: surgical_sigmoid(x, target, exponent), z, g)
    assert grad.dtype == torch.float32
    e = (target.to(torch.float64) - torch.sigmoid(z).to(torch.float64)).abs()
    expected = g.to(torch.float64) * _paper_weight(e, exponent)
    u = 2.0**-24
    bound = 0.25 * e * g.abs().to(torch.float64) * ((exponent or 0) + 10) * u + 4 * u * expected.abs()
    assert ((grad.to(torch.float64) - expected).abs() <= bound).all()


@pytest.mark.parametrize("exponent", [1, 2.5, 5, 16, 17, 20, 30, 31, 40])
def test_decline_sum_is_exact_only_where_the_dropped_product_is_below_eps_over_128(exponent):
    """`(1 - a)(1 - b) - (1 - a - b) = ab`, relative to the product at most 4**(1-n) / (1 - 2**-n): checked
    against the product on a fine grid of e (float64 math; the bound is a supremum over [0, 1])."""
    e = torch.linspace(0, 1, 200_001, dtype=torch.float64)[1:-1]
    a, b = e**exponent, (1 - e) ** exponent
    ratio = (a * b / ((1 - a) * (1 - b))).max().item()
    bound = 4.0 ** (1 - exponent) / (1 - 2.0**-exponent)
    assert ratio <= bound * (1 + 1e-12)
    for dtype in (torch.float32, torch.float64):
        assert decline_sum_is_exact(exponent, dtype) == (bound <= torch.finfo(dtype).eps / 128)
        if decline_sum_is_exact(exponent, dtype):
            assert ratio <= torch.finfo(dtype).eps / 128
    assert decline_sum_is_exact(20, torch.float32) and not decline_sum_is_exact(20, torch.float64)
    assert not decline_sum_is_exact(None, torch.float32) and not decline_sum_is_exact(0.5, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("target_dtype", [torch.bool, torch.float32, torch.float64])
@pytest.mark.parametrize("block", [5, 64, 1 << 17], ids=["rows-split", "rows-joined", "default"])
@pytest.mark.parametrize("exponent", [None, 20])
def test_surgical_sigmoid_sums_equal_unfused_sums_and_gradient_bitwise(
    dtype, target_dtype, block, exponent, monkeypatch
):
    monkeypatch.setattr(blocked_module, "SIGMOID_BLOCK", block)
    z = _logits(2, 3, (6, 5, 4), seed=95, scale=4.0, dtype=dtype)
    target = (torch.rand(z.shape, generator=_gen(96)) < 0.4).to(target_dtype)
    coefficients = torch.randn(3, 2, 3, generator=_gen(97), dtype=torch.float64)
    axes = (2, 3, 4)

    def loss(sums):
        return sum((c.to(s.dtype) * s).sum() for c, s in zip(coefficients, sums))

    fused_leaf = z.clone().requires_grad_()
    fused = surgical_sigmoid_sums(fused_leaf, target, exponent)
    loss(fused[:2]).backward()

    leaf = z.clone().requires_grad_()
    p = surgical_sigmoid(leaf, target, exponent)
    y = target.to(p.dtype)
    unfused = ((p * y).sum(axes, dtype=p.dtype), p.sum(axes, dtype=p.dtype), y.sum(axes, dtype=p.dtype))
    loss(unfused[:2]).backward()

    for got, expected in zip(fused, unfused):
        assert got.dtype == expected.dtype and torch.equal(got, expected)
    assert not fused[2].requires_grad
    assert fused_leaf.grad.dtype == dtype and torch.equal(fused_leaf.grad, leaf.grad)


def test_surgical_sigmoid_sums_backward_runs_once():
    z = _logits(1, 2, (4, 4), seed=98).requires_grad_()
    target = torch.rand(z.shape, generator=_gen(99)) < 0.5
    intersect, sum_pred, _ = surgical_sigmoid_sums(z, target, 20)
    loss = (intersect - sum_pred).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "target_shape", [(2, 1, 4, 5), (2, 2, 4, 4), (3, 1, 4, 4), (2, 1, 4, 4, 1), (2, 4)], ids=str
)
def test_surgical_softmax_rejects_target_of_wrong_shape(target_shape):
    z = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="target"):
        surgical_softmax(z, torch.zeros(target_shape, dtype=torch.long), 20)


def test_surgical_sigmoid_rejects_label_map_for_several_channels():
    with pytest.raises(ValueError, match="target"):
        surgical_sigmoid(torch.zeros(2, 3, 4), torch.zeros(2, 1, 4), 20)


@pytest.mark.parametrize("exponent", [0, 0.0, -1, -20.5, True, False, float("nan"), "20"], ids=repr)
@pytest.mark.parametrize("activation", [surgical_softmax, surgical_sigmoid])
def test_surgical_activation_rejects_invalid_exponent(exponent, activation):
    z = torch.zeros(1, 2, 3)
    with pytest.raises(ValueError, match="exponent"):
        activation(z, torch.zeros(1, 2, 3), exponent)


@pytest.mark.parametrize("activation", [surgical_softmax, surgical_sigmoid])
def test_infinite_exponent_is_rejected_or_gives_finite_gradient(activation):
    z = torch.tensor([-1e4, 1e4]).view(1, 2, 1)
    target = torch.tensor([0.0, 1.0]).view(1, 2, 1)  # p equals the target exactly
    try:
        p = activation(z.clone().requires_grad_(), target, math.inf)
    except ValueError as err:
        assert "exponent" in str(err)
        return
    leaf = z.clone().requires_grad_()
    (grad,) = torch.autograd.grad((activation(leaf, target, math.inf) * torch.ones_like(p)).sum(), leaf)
    assert torch.isfinite(grad).all()
