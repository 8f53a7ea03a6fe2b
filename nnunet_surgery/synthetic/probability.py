"""Closed-form true probability maps p*(x) of the synthetic lesion cases.

A case is a set of soft ellipsoids (ellipses in 2D). Each ellipsoid E has a centre, semi-axes r_i, a
rotation, a border width w (voxels) and an amplitude a in (0, 1]:

    rho(x) = || diag(1/r) R^T (x - c) ||          (1 on the ellipsoid's surface)
    E(x)   = a * sigmoid((1 - rho(x)) * r_g / w)  (r_g the geometric mean of the r_i)

so E rises from about 0 to a over a few voxels around the surface; a < 1 makes a faint lesion whose
interior label is itself uncertain. Coordinates are physical (voxel index times spacing), so lesions keep
their shape in anisotropic volumes; with unit spacing they are voxel indices. The foreground labels are nested: label k lies inside label k - 1
(lesion, core, ...). Lesion i carries one ellipsoid per level; level 1 gives P(lesion i covers x), a
deeper level the conditional probability of the next level given the previous one, so

    q_{k,i}(x) = prod_{j <= k} E_{j,i}(x)            (P(level >= k from lesion i))
    q_k(x)     = 1 - prod_i (1 - q_{k,i}(x))         (P(label >= k), lesions independent)

With a labelled organ (`CaseParameters.labelled_organ`, the `organs` datasets) the organ O(x) (amplitude
1, a soft border of 1-2.5 voxels) is label 1 and every lesion level moves one up, inside it:

    q_1(x) = O(x),   q_{k+1}(x) = O(x) * (lesion q_k above)   (lesions lie only inside the organ)

`q` (the "cumulative" maps, shape (K, *shape)) is nested, q_1 >= q_2 >= ... >= q_K, exactly also in
floating point (every operation above is monotone under correct rounding). Per-class probabilities
are P(label = k) = q_k - q_{k+1} (background 1 - q_1); the region k = {label >= k} has probability q_k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial.transform import Rotation
from scipy.special import expit

__all__ = [
    "AMBIGUOUS_AMPLITUDE",
    "AMBIGUOUS_PROBABILITY",
    "LESION_VOLUME_FRACTION",
    "ORGAN_BORDER",
    "CaseParameters",
    "Lesion",
    "SoftEllipsoid",
    "class_probabilities",
    "cumulative_probabilities",
    "sample_case_parameters",
    "voxel_coordinates",
]

# Chance that a lesion (or a nested core given its parent) is faint, and its interior probability range.
AMBIGUOUS_PROBABILITY = 0.3
AMBIGUOUS_AMPLITUDE = (0.3, 0.7)
# Range (log-uniform) of one lesion's volume as a fraction of the image's.
LESION_VOLUME_FRACTION = (0.003, 0.03)
# Number of lesions per case: 1 + Poisson(mean), capped.
EXTRA_LESIONS_MEAN = 1.5
MAX_LESIONS = 6
# Border widths w (voxels, uniform) of lesions and of nested cores.
LESION_BORDER = (0.4, 1.0)
CORE_BORDER = (0.4, 0.8)
# Semi-axes of a core as a fraction of its parent's (uniform).
CORE_SCALE = (0.35, 0.6)
# Lesion centres lie inside this fraction of the organ's normalised radius.
LESION_SITE_RADIUS = 0.65
# Border width w (in-plane voxels, uniform) of a labelled organ: softer than the image-only organ's 1.5.
ORGAN_BORDER = (1.0, 2.5)


@dataclass(frozen=True)
class SoftEllipsoid:
    """An ellipsoid with a logistic border; `evaluate` gives a * sigmoid((1 - rho) * r_g / w).

    Attributes:
        center: centre in voxel coordinates, in array axis order.
        radii: semi-axes in voxels, along the columns of `rotation`.
        rotation: (d, d) rotation matrix as nested tuples; column i is the direction of semi-axis i.
        border: width w of the logistic border in voxels.
        amplitude: interior probability a in (0, 1].
    """

    center: tuple[float, ...]
    radii: tuple[float, ...]
    rotation: tuple[tuple[float, ...], ...]
    border: float
    amplitude: float

    def normalised_radius(self, coords: tuple[np.ndarray, ...]) -> np.ndarray:
        """rho(x) on the grid `coords` (`voxel_coordinates(shape)`); 1 on the surface."""
        rotation = np.asarray(self.rotation, dtype=np.float64)
        # rho^2 = (x - c)^T M (x - c) with M = R diag(1 / r^2) R^T, summed term by term.
        metric = rotation @ np.diag(1.0 / np.asarray(self.radii, dtype=np.float64) ** 2) @ rotation.T
        offsets = [coords[i] - self.center[i] for i in range(len(self.center))]
        squared = np.zeros(np.broadcast_shapes(*(c.shape for c in coords)), dtype=np.float64)
        for i, offset_i in enumerate(offsets):
            squared += metric[i, i] * offset_i**2
            for j in range(i + 1, len(offsets)):
                squared += (2.0 * metric[i, j]) * (offset_i * offsets[j])
        return np.sqrt(np.maximum(squared, 0.0))

    def evaluate(self, coords: tuple[np.ndarray, ...]) -> np.ndarray:
        """The soft indicator a * sigmoid((1 - rho) * r_g / w) on the grid `coords`, float64."""
        geometric_radius = math.exp(float(np.mean(np.log(self.radii))))
        rho = self.normalised_radius(coords)
        return self.amplitude * expit((1.0 - rho) * (geometric_radius / self.border))


@dataclass(frozen=True)
class Lesion:
    """One lesion: `levels[0]` its extent, `levels[k]` the core of level k + 1 given level k."""

    levels: tuple[SoftEllipsoid, ...]


@dataclass(frozen=True)
class CaseParameters:
    """Everything that defines a case's p* and its image (the sampling noise aside).

    Attributes:
        shape: spatial shape in array axis order (2 or 3 axes).
        organ: the organ the lesions sit in.
        lesions: the lesions, each with the same number of levels.
        spacing: voxel spacing in array axis order; centres, radii and borders are in its units.
        labelled_organ: the organ is label 1 and the lesion levels are labels 2, 3, ...; otherwise the
            organ shows in the image only and the lesion levels are labels 1, 2, ...
    """

    shape: tuple[int, ...]
    organ: SoftEllipsoid
    lesions: tuple[Lesion, ...]
    spacing: tuple[float, ...] | None = None
    labelled_organ: bool = False

    @property
    def num_classes(self) -> int:
        """Number of foreground labels K."""
        return len(self.lesions[0].levels) + int(self.labelled_organ)


def voxel_coordinates(
    shape: tuple[int, ...], spacing: tuple[float, ...] | None = None
) -> tuple[np.ndarray, ...]:
    """Voxel-centre coordinates as an open grid: axis i's float64 coordinates index * spacing[i]
    (spacing 1 when None), broadcastable to `shape`."""
    spacing = (1.0,) * len(shape) if spacing is None else spacing
    axes = [np.arange(n, dtype=np.float64) * float(s) for n, s in zip(shape, spacing, strict=True)]
    return tuple(np.meshgrid(*axes, indexing="ij", sparse=True))


def _random_rotation(rng: np.random.Generator, d: int) -> tuple[tuple[float, ...], ...]:
    if d == 2:
        angle = rng.uniform(0.0, math.pi)
        c, s = math.cos(angle), math.sin(angle)
        matrix = np.array([[c, -s], [s, c]])
    else:
        matrix = Rotation.from_quat(rng.standard_normal(4)).as_matrix()
    return tuple(tuple(float(v) for v in row) for row in matrix)


def _point_in_unit_ball(rng: np.random.Generator, d: int) -> np.ndarray:
    direction = rng.standard_normal(d)
    direction /= np.linalg.norm(direction)
    return direction * rng.uniform() ** (1.0 / d)


def _amplitude(rng: np.random.Generator) -> float:
    if rng.uniform() < AMBIGUOUS_PROBABILITY:
        return float(rng.uniform(*AMBIGUOUS_AMPLITUDE))
    return 1.0


def _sample_lesion(
    rng: np.random.Generator, extent: np.ndarray, organ: SoftEllipsoid, num_levels: int
) -> Lesion:
    d = len(extent)
    unit_ball_volume = math.pi ** (d / 2) / math.gamma(d / 2 + 1)
    low, high = LESION_VOLUME_FRACTION
    volume = math.exp(rng.uniform(math.log(low), math.log(high))) * float(np.prod(extent))
    equivalent_radius = (volume / unit_ball_volume) ** (1.0 / d)
    log_aspect = rng.normal(0.0, 0.25, size=d)
    radii = equivalent_radius * np.exp(log_aspect - log_aspect.mean())
    site = np.asarray(organ.rotation) @ (
        _point_in_unit_ball(rng, d) * LESION_SITE_RADIUS * np.asarray(organ.radii)
    )
    center = np.asarray(organ.center) + site
    rotation = _random_rotation(rng, d)
    levels = [
        SoftEllipsoid(
            center=tuple(float(v) for v in center),
            radii=tuple(float(v) for v in radii),
            rotation=rotation,
            border=float(rng.uniform(*LESION_BORDER)),
            amplitude=_amplitude(rng),
        )
    ]
    for _ in range(1, num_levels):
        parent = levels[-1]
        scale = rng.uniform(*CORE_SCALE)
        parent_radii = np.asarray(parent.radii)
        shift = np.asarray(rotation) @ (_point_in_unit_ball(rng, d) * 0.5 * (1.0 - scale) * parent_radii)
        levels.append(
            SoftEllipsoid(
                center=tuple(float(v) for v in np.asarray(parent.center) + shift),
                radii=tuple(float(v) for v in parent_radii * scale),
                rotation=rotation,
                border=float(rng.uniform(*CORE_BORDER)),
                amplitude=_amplitude(rng),
            )
        )
    return Lesion(levels=tuple(levels))


def sample_case_parameters(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    num_classes: int,
    *,
    spacing: tuple[float, ...] | None = None,
    labelled_organ: bool = False,
) -> CaseParameters:
    """Draw one case: an organ filling most of the image and 1 + Poisson(1.5) (at most 6) lesions in it.

    Each lesion's volume is log-uniform in 0.3-3 % of the image, its semi-axes vary by a log-normal
    aspect (sd 0.25) around that volume's ball radius, its centre lies within 0.65 of the organ's
    semi-axes, its orientation is uniform, its border width w is uniform in 0.4-1 voxel, and with
    probability 0.3 it is faint (amplitude 0.3-0.7). Each deeper level is an ellipsoid 0.35-0.6 times
    its parent's size, inside it, with a border width of 0.4-0.8 voxel, likewise faint with
    probability 0.3. Sizes are physical (`spacing` units): volume fractions are of the image's
    physical volume. A labelled organ gets a border width uniform in 1-2.5 (in-plane) voxels, drawn
    last, so the other parameters are those of the same case without one.

    Args:
        rng: the case's random generator (consumed).
        shape: spatial shape, 2 or 3 axes.
        num_classes: number K of nested foreground labels, the organ included if labelled (then >= 2).
        spacing: voxel spacing in array axis order (None: 1 along every axis).
        labelled_organ: make the organ label 1 and the lesions labels 2..K.

    Returns:
        The case's parameters.
    """
    d = len(shape)
    step = np.ones(d) if spacing is None else np.asarray(spacing, dtype=np.float64)
    extent = np.asarray(shape, dtype=np.float64) * step
    half = extent / 2.0
    organ = SoftEllipsoid(
        center=tuple(float(v) for v in half - 0.5 * step + rng.uniform(-0.04, 0.04, size=d) * extent),
        radii=tuple(float(v) for v in half * rng.uniform(0.78, 0.92, size=d)),
        rotation=tuple(tuple(float(v) for v in row) for row in np.eye(d)),
        border=1.5,
        amplitude=1.0,
    )
    num_levels = num_classes - int(labelled_organ)
    if num_levels < 1:
        raise ValueError(f"num_classes must be >= {1 + int(labelled_organ)}, but got {num_classes}")
    num_lesions = min(1 + int(rng.poisson(EXTRA_LESIONS_MEAN)), MAX_LESIONS)
    lesions = tuple(_sample_lesion(rng, extent, organ, num_levels) for _ in range(num_lesions))
    if labelled_organ:
        organ = replace(organ, border=float(rng.uniform(*ORGAN_BORDER) * float(np.min(step))))
    return CaseParameters(
        shape=tuple(int(n) for n in shape),
        organ=organ,
        lesions=lesions,
        spacing=None if spacing is None else tuple(float(v) for v in spacing),
        labelled_organ=labelled_organ,
    )


def cumulative_probabilities(
    params: CaseParameters, coords: tuple[np.ndarray, ...] | None = None
) -> np.ndarray:
    """q_k(x) = P(label >= k) for k = 1..K, float64 of shape (K, *shape), nested (q_1 >= ... >= q_K).

    Args:
        params: the case.
        coords: `voxel_coordinates(params.shape, params.spacing)`, if already at hand.

    Returns:
        The cumulative maps.
    """
    if coords is None:
        coords = voxel_coordinates(params.shape, params.spacing)
    num_levels = len(params.lesions[0].levels)
    complement = np.ones((num_levels, *params.shape), dtype=np.float64)
    for lesion in params.lesions:
        level_probability = np.ones(params.shape, dtype=np.float64)
        for k, ellipsoid in enumerate(lesion.levels):
            level_probability = level_probability * ellipsoid.evaluate(coords)
            complement[k] *= 1.0 - level_probability
    lesions = 1.0 - complement
    if not params.labelled_organ:
        return lesions
    organ = params.organ.evaluate(coords)
    return np.concatenate([organ[None], organ * lesions])


def class_probabilities(cumulative: np.ndarray) -> np.ndarray:
    """P(label = k) for k = 0..K from the cumulative maps: (K + 1, *shape), channels sum to 1.

    Args:
        cumulative: q of shape (K, *shape), nested.

    Returns:
        [1 - q_1, q_1 - q_2, ..., q_{K-1} - q_K, q_K], in the dtype of `cumulative`.
    """
    one = np.ones_like(cumulative[:1])
    zero = np.zeros_like(cumulative[:1])
    upper = np.concatenate([one, cumulative])
    lower = np.concatenate([cumulative, zero])
    return np.maximum(upper - lower, 0)
