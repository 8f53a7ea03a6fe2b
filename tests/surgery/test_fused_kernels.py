"""The fused CUDA kernels (`surgery/fused.py`), run on the CPU by Triton's interpreter.

Triton's interpreter (`TRITON_INTERPRET=1`, read when a kernel is defined) executes the same kernel code
with NumPy on CPU tensors, so each kernel is checked here against Eq. 10 written again in float64 with
plain `pow`, and the surgical activations routed through the kernels against their ATen path. The kernels'
compilation for a GPU is checked by the CUDA suite (tests/cuda).
"""

from __future__ import annotations

import importlib.util
import warnings
from fractions import Fraction

import pytest
import torch

import nnunet_surgery.surgery.functions as functions_module
from nnunet_surgery.surgery import P_Y_MIN, surgical_sigmoid, surgical_sigmoid_sums, surgical_softmax

pytest.importorskip("triton")
# the interpreter evaluates both sides of a `tl.where` with NumPy, which warns on the side not taken
pytestmark = pytest.mark.filterwarnings(
    "ignore:divide by zero encountered:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning"
)

U = 2.0**-24  # unit roundoff of float32
EXPONENTS = [None, 1, 5, 20]


@pytest.fixture(scope="module")
def fused():
    """A fresh copy of `nnunet_surgery.surgery.fused` whose kernels were defined under the interpreter."""
    spec = importlib.util.find_spec("nnunet_surgery.surgery.fused")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    assert module.available()
    return module


@pytest.fixture(autouse=True)
def _no_failure_carried_over(fused, monkeypatch: pytest.MonkeyPatch):
    """A kernel failure turns the fused path off for the process: keep each test's failure its own."""
    monkeypatch.setattr(fused, "_failed", [])


@pytest.fixture
def routed(fused, monkeypatch: pytest.MonkeyPatch):
    """The surgical activations with every eager float32 step routed through the interpreted kernels."""
    monkeypatch.setattr(functions_module, "fused", fused)
    monkeypatch.setattr(functions_module, "_fused", lambda t: t.dtype == torch.float32 and t.numel() > 0)
    return fused


def _paper_weight(e: torch.Tensor, n: float | None) -> torch.Tensor:
    """Eq. 10 in float64 with plain pow: 0.25 e (1 - e^n)(1 - (1 - e)^n)."""
    e = e.to(torch.float64)
    return 0.25 * e if n is None else 0.25 * e * (1 - e**n) * (1 - (1 - e) ** n)


def _weight_bound(e: torch.Tensor, w64: torch.Tensor, n: float | None) -> torch.Tensor:
    """The float32 weight's error (docs/surgery.md#numerics): `0.25 e (n + 8) u` for the decline factor's
    exps and logs, 4 u relative for e and the products; 10 for 8 covers second-order terms."""
    return 0.25 * e.to(torch.float64) * ((n or 0) + 10) * U + 4 * U * w64.abs()


def _probs_with_extremes(b: int, c: int, spatial: tuple[int, ...], seed: int) -> torch.Tensor:
    """Softmax probabilities, float32, with some voxels exactly one-hot (p = 0 and 1) and some near-ties."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(b, c, *spatial, generator=gen) * 4
    z[..., 0] = 0.0  # all channels equal
    z[:, 0, ..., 1] = 200.0  # channel 0 certain: the others' probabilities are 0 exactly
    return torch.softmax(z, 1)


def _within(got: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor) -> bool:
    """|got - expected| <= the float32 arithmetic's `bound`, plus one rounding to the dtype of `got` (relative
    eps, and the spacing of its subnormals)."""
    info = torch.finfo(got.dtype)
    rounding = 0.0 if got.dtype == torch.float32 else info.eps * expected.abs() + info.tiny * info.eps
    return bool(((got.double() - expected).abs() <= bound + rounding + 1e-30).all())


def _targets(labels: torch.Tensor, channels: int) -> dict[str, tuple[torch.Tensor, bool]]:
    """The target kinds nnU-Net and users hand over: `{kind: (target, onehot)}`."""
    onehot = torch.nn.functional.one_hot(labels[:, 0], channels).movedim(-1, 1)
    return {
        "label-int16": (labels.to(torch.int16), False),
        "label-float": (labels.float(), False),
        "onehot-bool": (onehot.bool(), True),
        "onehot-float": (onehot.float(), True),
    }


TARGET_KINDS = ["label-int16", "label-float", "onehot-bool", "onehot-float"]


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("target_kind", TARGET_KINDS)
def test_two_channel_backward_is_listing1_in_float64_within_derived_rounding(
    fused, exponent, target_kind, out_dtype
):
    """Listing 1 with `w` from the foreground channel (Eq. 10 in float64, plain pow), at the same float32
    probabilities: the weight's bound (docs/surgery.md#numerics) times |g_fg - g_bg|, then one rounding."""
    probs = _probs_with_extremes(3, 2, (6, 5), seed=1)
    labels = torch.randint(0, 2, (3, 1, 6, 5), generator=torch.Generator().manual_seed(2))
    target, onehot = _targets(labels, 2)[target_kind]
    grad_probs = torch.randn(3, 2, 6, 5, generator=torch.Generator().manual_seed(3))
    got = fused.softmax_backward(grad_probs, probs, target, onehot, exponent, out_dtype)
    assert got.shape == probs.shape and got.dtype == out_dtype
    e = (labels.to(torch.float64) - probs[:, 1:2].to(torch.float64)).abs()
    weight = _paper_weight(e, exponent)
    difference = (grad_probs[:, 1:2] - grad_probs[:, 0:1]).double()
    expected = torch.cat([-weight * difference, weight * difference], 1)
    assert _within(
        got, expected, _weight_bound(e, weight, exponent) * difference.abs() + 2 * U * expected.abs()
    )


def _reference_scale(p_y: torch.Tensor, n: int | None) -> torch.Tensor:
    """docs/surgery.md#multi-class-rescale, exactly in rational arithmetic (the float32 p_y are rationals):
    0.25 (1 - (1 - p_y)^n)(1 - p_y^n) / p_y, i.e. 0.25 (1 - p_y^n) sum_k (1 - p_y)^k over k < n, whose value
    at p_y = 0 is the limit 0.25 n; n = None: 0.25 / max(p_y, P_Y_MIN)."""
    p = p_y.to(torch.float64)
    if n is None:
        return 0.25 / p.clamp_min(P_Y_MIN)
    exact = []
    for value in p.flatten().tolist():
        q = Fraction(value)
        head = sum((1 - q) ** k for k in range(n))  # (1 - (1 - q)^n) / q without the division
        exact.append(float(Fraction(1, 4) * head * (1 - q**n)))
    return torch.tensor(exact, dtype=torch.float64).view(p.shape)


def _rescaled_expected(probs, grad_probs, labels, exponent):
    """`s p (g - <p, g>)` with s exact (`_reference_scale`), and the bound of the float32 kernel: `1 - p_y^n`
    to `(n + 4) u` absolute and `(1 - (1 - p_y)^n) / p_y` to 12 u relative (Goldberg's log1p, Kahan's
    expm1), the vector-Jacobian product to 8 u of its terms' magnitudes."""
    p, g = probs.double(), grad_probs.double()
    p_y = p.gather(1, labels)
    scale = _reference_scale(p_y, exponent)
    n = exponent or 0
    head = scale / (0.25 * (1 - p_y**n)).clamp_min(1e-300) if exponent else scale / 0.25
    plain = p * (g - (p * g).sum(1, keepdim=True))
    terms = p * (g.abs() + (p * g.abs()).sum(1, keepdim=True))
    bound = 0.25 * head * (n + 16) * U * plain.abs() + 8 * U * scale * terms
    return scale * plain, bound


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("channels", [3, 4, 5])
@pytest.mark.parametrize("target_kind", TARGET_KINDS)
def test_k_channel_backward_is_the_rescaled_softmax_gradient_within_derived_rounding(
    fused, exponent, channels, target_kind, out_dtype
):
    """Goldberg's log1p and Kahan's expm1 keep `(1 - (1 - p)^n) / p` to a few roundings down to p = 0 (where
    a plain `1 - exp(n log(1 - p))` cancels); `1 - p^n` carries `n u` absolute from `exp(n log p)`."""
    probs = _probs_with_extremes(2, channels, (7, 3), seed=channels)
    probs[0, :, 2, 2] = torch.tensor([1e-30, 1e-7, 3e-4, 0.5, 0.5 - 3e-4 - 1e-7 - 1e-30][:channels])
    labels = torch.randint(0, channels, (2, 1, 7, 3), generator=torch.Generator().manual_seed(5))
    labels[0, 0, 2, 2] = 0  # p_y = 1e-30
    labels[1, 0, :, 1] = 1  # p_y = 0 exactly (channel 0 is certain there)
    target, onehot = _targets(labels, channels)[target_kind]
    grad_probs = torch.randn(probs.shape, generator=torch.Generator().manual_seed(6))
    got = fused.softmax_backward(grad_probs, probs, target, onehot, exponent, out_dtype)
    assert got.dtype == out_dtype and torch.isfinite(got).all()
    assert _within(got, *_rescaled_expected(probs, grad_probs, labels, exponent))


@pytest.mark.parametrize("exponent", [1, 5, 20])
def test_k_channel_rescale_over_a_fine_grid_of_true_class_probabilities(fused, exponent):
    """Every p_y on a grid of 4001 float32 values over [0, 1], and its densest part near 1, where
    `(1 - p_y)^n` passes through the subnormals (n = 20: p_y in [0.987, 0.994]) and `1 - p_y^n` cancels."""
    p_y = torch.cat([torch.linspace(0, 1, 2001), torch.linspace(0.98, 1, 2000)]).view(1, 1, -1)
    probs = torch.cat([p_y, (1 - p_y) / 2, (1 - p_y) / 2], 1)  # three channels, the true class is channel 0
    labels = torch.zeros(1, 1, p_y.shape[-1], dtype=torch.long)
    grad_probs = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1).expand(probs.shape)  # plain VJP: p_y (1 - p_y)
    got = fused.softmax_backward(grad_probs, probs, labels.float(), False, exponent, torch.float32)
    assert _within(got, *_rescaled_expected(probs, grad_probs, labels, exponent))


@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("pair", [False, True], ids=["grad-tensor", "offset-slope"])
@pytest.mark.parametrize("target_dtype", [torch.bool, torch.float32])
def test_sigmoid_backward_is_grad_times_eq10_within_derived_rounding(fused, exponent, pair, target_dtype):
    gen = torch.Generator().manual_seed(11)
    probs = torch.sigmoid(torch.randn(2, 3, 6, 7, generator=gen) * 5)
    probs[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 0.5])
    target = (torch.rand(2, 3, 6, 7, generator=gen) < 0.4).to(target_dtype)
    if pair:
        offset, slope = torch.randn(6, 1, generator=gen), torch.randn(6, 1, generator=gen)
        grad = (offset, slope)
        g64 = offset.double().view(2, 3, 1, 1) + slope.double().view(2, 3, 1, 1) * target.double()
    else:
        grad = torch.randn(2, 3, 6, 7, generator=gen)
        g64 = grad.double()
    got = fused.sigmoid_backward(probs, target, grad, exponent, torch.float32)
    e = (target.double() - probs.double()).abs()
    expected = g64 * _paper_weight(e, exponent)
    bound = _weight_bound(e, expected, exponent) * g64.abs() + 4 * U * expected.abs()
    assert ((got.double() - expected).abs() <= bound).all()


SHAPES = [(2, 2, 6, 5), (2, 4, 4, 3, 2), (1, 3, 9, 4)]


def _grads(fn, z: torch.Tensor, g: torch.Tensor):
    leaf = z.detach().clone().requires_grad_()
    out = fn(leaf)
    outputs = out if isinstance(out, tuple) else (out,)
    weights = g if isinstance(g, tuple) else (g,)
    sum(((o * w).sum() for o, w in zip(outputs, weights)), torch.zeros(())).backward()
    return leaf.grad


@pytest.mark.parametrize("exponent", [None, 20])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("logits_dtype", [torch.float32, torch.float16])
def test_surgical_activations_through_the_kernels_equal_their_aten_path(
    routed, exponent, shape, logits_dtype
):
    """The whole autograd path (forward weight or scale, backward) through the kernels, against ATen."""
    gen = torch.Generator().manual_seed(sum(shape))
    z = (torch.randn(*shape, generator=gen) * 3).to(logits_dtype)
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=gen)
    regions = torch.rand(shape, generator=gen) < 0.5
    g = torch.randn(shape, generator=gen)
    g_sums = (torch.randn(shape[:2], generator=gen), torch.randn(shape[:2], generator=gen))
    cases = {
        "softmax": (lambda x: surgical_softmax(x, labels, exponent), g),
        "sigmoid": (lambda x: surgical_sigmoid(x, regions, exponent), g),
        "sums": (lambda x: surgical_sigmoid_sums(x, regions, exponent)[:2], g_sums),
    }
    with warnings.catch_warnings():  # a kernel failure would warn and fall back to ATen
        warnings.filterwarnings("error", message="nnunet-surgery: the fused CUDA kernel")
        fused_grads = {name: _grads(fn, z, weight) for name, (fn, weight) in cases.items()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(functions_module, "_fused", lambda t: False)
        aten_grads = {name: _grads(fn, z, weight) for name, (fn, weight) in cases.items()}
    for name in cases:
        got, expected = fused_grads[name], aten_grads[name]
        assert got.dtype == logits_dtype
        scale = expected.abs().max().item()
        tol = 16 * torch.finfo(logits_dtype).eps * scale
        assert (got.float() - expected.float()).abs().max().item() <= tol, name


def test_a_kernel_that_fails_warns_once_and_hands_over_to_aten(fused, monkeypatch: pytest.MonkeyPatch):
    class Broken:
        fn = fused._listing1_backward_kernel.fn

        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                raise RuntimeError("no such instruction on this device")

            return launch

    monkeypatch.setattr(fused, "_listing1_backward_kernel", Broken())
    monkeypatch.setattr(fused, "_failed", [])
    with pytest.warns(RuntimeWarning, match="_listing1_backward_kernel failed .*no such instruction"):
        zeros = torch.zeros(1, 2, 3)
        out = fused.softmax_backward(zeros, zeros, zeros[:, :1], False, 20, torch.float32)
    assert out is None and not fused.available()


def test_environment_switch_turns_the_kernels_off(fused, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(fused.ENV_SWITCH, "0")
    assert not fused.available()
    monkeypatch.setenv(fused.ENV_SWITCH, "1")
    assert fused.available()
