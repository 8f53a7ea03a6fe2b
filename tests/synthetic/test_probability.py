"""Closed-form p*: soft ellipsoids, nesting of the levels, class imbalance and ambiguous lesions."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_surgery.synthetic.cases import generate_case
from nnunet_surgery.synthetic.probability import (
    AMBIGUOUS_AMPLITUDE,
    CaseParameters,
    Lesion,
    SoftEllipsoid,
    class_probabilities,
    cumulative_probabilities,
    sample_case_parameters,
)


def _grid(points: np.ndarray) -> tuple[np.ndarray, ...]:
    """Coordinates of a list of points (n, d) in the open-grid form `evaluate` takes."""
    return tuple(points[:, i] for i in range(points.shape[1]))


@pytest.mark.parametrize("d", [2, 3])
def test_soft_ellipsoid_is_half_amplitude_on_its_surface(d: int) -> None:
    rng = np.random.default_rng(d)
    params = sample_case_parameters(rng, (64,) * d, num_classes=1)
    ellipsoid = params.lesions[0].levels[0]
    rotation = np.asarray(ellipsoid.rotation)
    assert rotation @ rotation.T == pytest.approx(np.eye(d))
    centre = np.asarray(ellipsoid.center)
    # surface points centre + R (r_i e_i) have rho = 1, so p = a * sigmoid(0) = a / 2
    surface = np.stack([centre + rotation[:, i] * ellipsoid.radii[i] for i in range(d)])
    assert ellipsoid.normalised_radius(_grid(surface)) == pytest.approx(np.ones(d))
    assert ellipsoid.evaluate(_grid(surface)) == pytest.approx(np.full(d, ellipsoid.amplitude / 2))
    # the centre: a * sigmoid(r_g / w)
    geometric = float(np.exp(np.mean(np.log(ellipsoid.radii))))
    expected = ellipsoid.amplitude / (1 + np.exp(-geometric / ellipsoid.border))
    assert ellipsoid.evaluate(_grid(centre[None]))[0] == pytest.approx(expected)


def test_union_of_lesions_is_one_minus_product_of_complements() -> None:
    shape = (40, 40)
    grid = tuple(np.meshgrid(np.arange(40.0), np.arange(40.0), indexing="ij", sparse=True))
    eye = ((1.0, 0.0), (0.0, 1.0))
    a = SoftEllipsoid((12.0, 12.0), (6.0, 4.0), eye, 1.0, 1.0)
    b = SoftEllipsoid((20.0, 22.0), (5.0, 5.0), eye, 0.5, 0.6)
    core = SoftEllipsoid((12.0, 12.0), (2.0, 2.0), eye, 0.5, 0.9)
    organ = SoftEllipsoid((20.0, 20.0), (18.0, 18.0), eye, 1.0, 1.0)
    params = CaseParameters(shape, organ, (Lesion((a, core)), Lesion((b, b))))
    q = cumulative_probabilities(params)
    pa, pb = a.evaluate(grid), b.evaluate(grid)
    np.testing.assert_allclose(q[0], 1 - (1 - pa) * (1 - pb), rtol=1e-12)
    np.testing.assert_allclose(q[1], 1 - (1 - pa * core.evaluate(grid)) * (1 - pb * pb), rtol=1e-12)


@pytest.mark.parametrize(("shape", "num_classes"), [((96, 96), 3), ((24, 32, 32), 2)])
def test_levels_are_nested_and_class_probabilities_sum_to_one(
    shape: tuple[int, ...], num_classes: int
) -> None:
    for index in range(5):
        q = generate_case(11, "test", index, shape, num_classes).cumulative
        assert q.shape == (num_classes, *shape)
        assert np.all(q >= 0) and np.all(q <= 1)
        assert np.all(np.diff(q, axis=0) <= 0), "q_1 >= q_2 >= ... must hold exactly"
        probabilities = class_probabilities(q.astype(np.float32))
        assert probabilities.shape == (num_classes + 1, *shape)
        assert np.all(probabilities >= 0)
        np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-6)


def test_foreground_is_a_few_percent_of_voxels_in_2d() -> None:
    fractions = []
    label_fractions = []
    for index in range(100):
        case = generate_case(0, "train", index, (128, 128), num_classes=1)
        fractions.append(case.cumulative[0].mean())
        label_fractions.append(np.mean(case.labels > 0))
    assert 0.01 < np.mean(fractions) < 0.05
    assert np.mean(label_fractions) == pytest.approx(np.mean(fractions), abs=0.003)
    assert 0.0 < min(fractions) and max(fractions) < 0.12
    assert np.median(fractions) < 0.05


def test_foreground_is_a_few_percent_of_voxels_in_3d() -> None:
    fractions = [generate_case(0, "train", i, (48, 64, 64), 1).cumulative[0].mean() for i in range(6)]
    assert 0.01 < np.mean(fractions) < 0.06


def test_some_lesions_are_faint_so_uncertainty_is_not_only_at_borders() -> None:
    rng = np.random.default_rng(5)
    lesions = [lesion for _ in range(300) for lesion in sample_case_parameters(rng, (128, 128), 2).lesions]
    amplitudes = np.array([lesion.levels[0].amplitude for lesion in lesions])
    faint = amplitudes < 1.0
    assert 0.2 < faint.mean() < 0.4
    low, high = AMBIGUOUS_AMPLITUDE
    assert np.all((amplitudes[faint] >= low) & (amplitudes[faint] <= high))
    # a faint lesion's interior (its centre) has p* near its amplitude, far from 0 and 1
    case = generate_case(0, "test", 0, (128, 128), 1)
    interior = []
    for lesion in case.params.lesions:
        ellipsoid = lesion.levels[0]
        if ellipsoid.amplitude < 1.0:
            centre = np.asarray(ellipsoid.center)[None]
            interior.append(ellipsoid.evaluate(_grid(centre))[0])
    assert interior, "test case 0 of seed 0 has a faint lesion"
    assert all(0.25 < p < 0.75 for p in interior)


def test_case_generation_is_deterministic_and_seed_dependent() -> None:
    a = generate_case(3, "test", 2, (64, 64), 2)
    b = generate_case(3, "test", 2, (64, 64), 2)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.labels.tobytes() == b.labels.tobytes()
    assert a.cumulative.tobytes() == b.cumulative.tobytes()
    assert a.params == b.params
    other = generate_case(4, "test", 2, (64, 64), 2)
    assert other.image.tobytes() != a.image.tobytes()
    train = generate_case(3, "train", 2, (64, 64), 2)
    assert train.image.tobytes() != a.image.tobytes()


def test_image_is_brighter_where_p_star_is_high() -> None:
    # the image carries p*: mean intensity rises with p* inside the organ
    case = generate_case(0, "test", 1, (128, 128), 1)
    q, image = case.cumulative[0], case.image
    organ = case.params.organ.evaluate(
        tuple(np.meshgrid(np.arange(128.0), np.arange(128.0), indexing="ij", sparse=True))
    )
    tissue = image[(q < 0.01) & (organ > 0.99)].mean()
    lesion = image[q > 0.95].mean()
    assert lesion - tissue > 60.0  # contrast 1.0 on the scale 100, less bias and noise


def test_generate_case_rejects_unknown_split() -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        generate_case(0, "val", 0, (32, 32))  # type: ignore[arg-type]
