"""bench/dice_pull.py's pulls, against the soft Dice gradient written out by hand and the softmax's
vector-Jacobian product (docs/surgery.md, "Multi-class rescale"). No training."""

from __future__ import annotations

import numpy as np
import pytest

SMOOTH = 1e-5
EXPONENT = 20


def _case(seed: int, shape=(2, 3, 4, 5, 6)) -> tuple[np.ndarray, np.ndarray]:
    """Dirichlet probabilities `(b, 3, ...)` and labels drawn from them."""
    rng = np.random.default_rng(seed)
    b, c, *spatial = shape
    p = rng.dirichlet(np.full(c, 0.7), size=(b, *spatial))  # (b, *spatial, c)
    labels = (rng.random((b, *spatial, 1)) > p.cumsum(-1)).sum(-1)
    return np.moveaxis(p, -1, 1), labels


def _surgical_scale(p_true: np.ndarray | float) -> np.ndarray | float:
    """s(p_t) = 0.25 (1 - (1 - p_t)^n)(1 - p_t^n) / p_t, written out with plain powers."""
    return 0.25 * (1 - (1 - p_true) ** EXPONENT) * (1 - p_true**EXPONENT) / p_true


def _reference_logit_gradients(
    p: np.ndarray, labels: np.ndarray, background: bool
) -> tuple[np.ndarray, np.ndarray]:
    """dL/dz, plain and surgical, of L = -mean_c (2 I_c + smooth) / (S_c + smooth) over the M scored channels
    c = 1..C-1 (M = C - 1), or c = 0..C-1 with `background` (M = C).

    dL/dp_c = -(2 y_c (S_c + smooth) - (2 I_c + smooth)) / M / (S_c + smooth)^2, zero for an unscored
    channel 0; the plain softmax VJP p (g - <p, g>); the surgery's s(p_t) (`_surgical_scale`) times it.
    """
    c = p.shape[1]
    scored = c if background else c - 1
    y = np.stack([labels == k for k in range(c)], 1).astype(float)
    axes = (0, *range(2, p.ndim))
    intersection = (p * y).sum(axes, keepdims=True)
    total = p.sum(axes, keepdims=True) + y.sum(axes, keepdims=True)
    grad_p = -(2 * y * (total + SMOOTH) - (2 * intersection + SMOOTH)) / scored / (total + SMOOTH) ** 2
    if not background:
        grad_p[:, 0] = 0
    plain = p * (grad_p - (p * grad_p).sum(1, keepdims=True))
    return plain, _surgical_scale(np.take_along_axis(p, labels[:, None], 1)) * plain


@pytest.mark.parametrize("background", [False, True])
def test_groups_match_the_written_out_gradient(dice_pull, background):
    p, labels = _case(0)
    names = ("background", "organ", "lesion")
    soft_dice, groups = dice_pull.group_pulls(p, labels, names, background)

    plain, surgical = _reference_logit_gradients(p, labels, background)
    order = np.argsort(-p, axis=1)
    competitor = np.where(order[:, 0] == labels, order[:, 1], order[:, 0])[:, None]
    true = labels[:, None]
    assert sum(g.voxels for g in groups) == labels.size
    for g in groups:
        t, k = names.index(g.true), names.index(g.predicted)
        where = (labels == t) & (p.argmax(1) == k)
        assert g.voxels == where.sum() > 0
        assert g.mean_p_true == pytest.approx(p[:, t][where].mean(), rel=1e-12)
        for reference, value in ((plain, g.pull_plain), (surgical, g.pull_surgical)):
            pull = (np.take_along_axis(reference, competitor, 1) - np.take_along_axis(reference, true, 1))[
                :, 0
            ]
            assert value == pytest.approx(pull[where].mean(), rel=1e-9, abs=1e-15)
    for k, name in enumerate(names[1:], start=1):
        expected = 2 * (p[:, k] * (labels == k)).sum() / (p[:, k].sum() + (labels == k).sum())
        assert soft_dice[name] == pytest.approx(expected, rel=1e-12)


def _set(p: np.ndarray, where: np.ndarray, values: tuple[float, float, float]) -> np.ndarray:
    out = p.copy()
    for channel, value in enumerate(values):
        out[:, channel][where] = value
    return out


def test_a_background_labelled_as_a_small_class_is_hardly_pulled_back(dice_pull):
    """The trap of docs/fidelity.md. A background voxel with p = (p0, p1, p2) labelled lesion (p2 > p0) gets,
    from dL/dp_c = g_c = (2 I_c + smooth) / (2 (S_c + smooth)^2) and the softmax VJP, the pull

        p2 g2 (1 - p2 + p0) - p1 g1 (p2 - p0)        (times s(p0) with surgery)

    The lesion's own term shrinks as the lesion covers more background (S_2 grows, I_2 does not), while
    the organ's false positives, pushed down, hand their mass mostly to the leading class: the lesion."""
    p, labels = _case(1, shape=(1, 3, 8, 16, 16))
    names = ("background", "organ", "lesion")
    labels[labels == 2] = 0
    labels[0, 2:4, 4:8, 4:8] = 2  # a small lesion
    background = labels == 0
    few = background & (np.arange(labels.size).reshape(labels.shape) % 97 == 0)
    voxel = (0.04, 0.06, 0.9)
    trapped = _set(p, background, voxel)
    healthy = _set(_set(p, background, (0.9, 0.06, 0.04)), few, voxel)
    p0, p1, p2 = voxel
    scale = _surgical_scale(p0)

    pulls = []
    for probabilities in (trapped, healthy):
        _, groups = dice_pull.group_pulls(probabilities, labels, names)
        group = next(g for g in groups if (g.true, g.predicted) == ("background", "lesion"))
        g1, g2 = (
            (2 * (probabilities[:, c] * (labels == c)).sum() + SMOOTH)
            / (2 * (probabilities[:, c].sum() + (labels == c).sum() + SMOOTH) ** 2)
            for c in (1, 2)
        )
        expected = p2 * g2 * (1 - p2 + p0) - p1 * g1 * (p2 - p0)
        assert group.pull_plain == pytest.approx(expected, rel=1e-9)
        assert group.pull_surgical == pytest.approx(scale * expected, rel=1e-9)
        pulls.append(group.pull_plain)
    stuck, rare = pulls
    assert stuck < 0 < rare  # covering the background, the lesion is pushed further in, not back


def test_a_folder_that_is_not_a_run_is_refused(dice_pull, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        dice_pull.parse_args([str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"{tmp_path}: not a demo run folder (no demo.json)" in capsys.readouterr().err
