"""Applying a threshold: the mask {p >= t}, and per-case sums of what it achieves on test cases.

Per case, `CaseMaskCounts` (exact voxel counts, merged over chunks) becomes one `MaskSums` term (its FNR
added as a number); `MaskSums` merge over cases, and `mask_metrics` turns sums into the reported numbers.
Every metric is a ratio of sums, so a case bootstrap is `W @ stack([s.vector() for s in cases])` for case
multiplicities W (R, n) (`calibration.bootstrap.case_weights`), then `mask_metrics` on the (R, F) result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np

from nnunet_surgery.conformal._merge import sum_fields
from nnunet_surgery.conformal.keys import as_probabilities, float32_at_least
from nnunet_surgery.conformal.threshold import EmptyReferences, check_empty_references

__all__ = [
    "MASK_FIELDS",
    "CaseMaskCounts",
    "MaskChunk",
    "MaskSums",
    "case_mask_counts",
    "case_mask_sums",
    "check_threshold",
    "mask_metrics",
    "threshold_mask",
]

#: (probability (N,), reference (N,) bool, segmentation (N,) bool) of one label or region over N voxels;
#: segmentation is the hard mask nnU-Net exports (argmax for labels, p >= 0.5 by region order for regions).
MaskChunk = tuple[np.ndarray, np.ndarray, np.ndarray]


def check_threshold(threshold: float) -> float:
    """`threshold` as a float if it is a number in [0, 1], else ValueError."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise ValueError(f"threshold must be a number in [0, 1], but got {threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], but got {threshold!r}")
    return float(threshold)


def threshold_mask(probability: np.ndarray, threshold: float) -> np.ndarray:
    """The boolean mask {p >= threshold}, same shape as `probability`.

    Compared in float32 (`as_probabilities`) against the smallest float32 >= threshold, which is the
    real-number comparison p >= threshold for float32 p: a fitted threshold (a float32 value) is used as
    is, a decimal one (0.3) keeps its meaning.

    Raises:
        ValueError: threshold outside [0, 1], probabilities not floating, NaN or outside [0, 1].
    """
    cut = float32_at_least(check_threshold(threshold))
    return as_probabilities("probability", probability) >= cut


@dataclass(frozen=True)
class CaseMaskCounts:
    """Voxel counts of one case (or part of one) for one label under one threshold.

    Attributes:
        mask: voxels in {p >= t}.
        segmentation: voxels in the hard segmentation.
        reference: reference voxels.
        missed: reference voxels outside the mask.
    """

    mask: int = 0
    segmentation: int = 0
    reference: int = 0
    missed: int = 0

    def merge(self, other: CaseMaskCounts) -> CaseMaskCounts:
        """Counts of both voxel sets (chunks of one case)."""
        return sum_fields(self, other)


def case_mask_counts(
    probability: np.ndarray, reference: np.ndarray, segmentation: np.ndarray, threshold: float
) -> CaseMaskCounts:
    """Counts of one chunk (see `MaskChunk`) under the mask {p >= threshold}.

    Raises:
        ValueError: shapes differ, non-boolean masks, or as `threshold_mask`.
    """
    probability, reference, segmentation = map(np.asarray, (probability, reference, segmentation))
    if probability.ndim != 1 or not probability.shape == reference.shape == segmentation.shape:
        raise ValueError(
            "probability, reference and segmentation must be 1-D of one shape, but got "
            f"{probability.shape}, {reference.shape} and {segmentation.shape}"
        )
    for name, values in (("reference", reference), ("segmentation", segmentation)):
        if values.dtype != bool:
            raise ValueError(f"{name} must be a boolean mask, but got dtype {values.dtype}")
    mask = threshold_mask(probability, threshold)
    n_reference = int(np.count_nonzero(reference))
    return CaseMaskCounts(
        int(np.count_nonzero(mask)),
        int(np.count_nonzero(segmentation)),
        n_reference,
        n_reference - int(np.count_nonzero(mask & reference)),
    )


@dataclass(frozen=True)
class MaskSums:
    """Sums over test cases of what a threshold achieves (each field a sum over cases).

    Attributes:
        n_cases: cases.
        n_empty: cases with an empty reference (their FNR is 0).
        fnr_sum: sum_i FNR_i, FNR_i = missed_i / reference_i (0 for an empty reference).
        mask_voxels: sum_i |{p >= t}|.
        segmentation_voxels: sum_i |hard segmentation|.
        reference_voxels: sum_i |reference|.
        missed_voxels: sum_i |reference outside the mask|.
    """

    n_cases: float = 0.0
    n_empty: float = 0.0
    fnr_sum: float = 0.0
    mask_voxels: float = 0.0
    segmentation_voxels: float = 0.0
    reference_voxels: float = 0.0
    missed_voxels: float = 0.0

    @classmethod
    def of_case(cls, counts: CaseMaskCounts) -> MaskSums:
        """One whole case."""
        fnr = counts.missed / counts.reference if counts.reference else 0.0
        return cls(
            1.0,
            float(counts.reference == 0),
            fnr,
            float(counts.mask),
            float(counts.segmentation),
            float(counts.reference),
            float(counts.missed),
        )

    def merge(self, other: MaskSums) -> MaskSums:
        """Sums over both case sets."""
        return sum_fields(self, other)

    def vector(self) -> np.ndarray:
        """(F,) float64, the fields in MASK_FIELDS order (rows of a bootstrap's case matrix)."""
        return np.array([getattr(self, name) for name in MASK_FIELDS], dtype=np.float64)

    def metrics(self, empty_references: EmptyReferences = "count") -> dict[str, float]:
        """`mask_metrics` of these sums, as floats."""
        return {name: float(value) for name, value in mask_metrics(self.vector(), empty_references).items()}


#: Field order of `MaskSums.vector`.
MASK_FIELDS = tuple(f.name for f in fields(MaskSums))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def mask_metrics(sums: np.ndarray, empty_references: EmptyReferences = "count") -> dict[str, np.ndarray]:
    """The reported numbers from summed `MaskSums.vector()`s, over any leading axes (e.g. resamples).

    Args:
        sums: (..., F) sums in MASK_FIELDS order.
        empty_references: "count" averages FNR over all cases (the guarantee of that fit), "exclude" over
            the cases with a non-empty reference.

    Returns:
        name -> (...) float64 (NaN where a denominator is 0):
        mean_fnr: the achieved risk, mean_i FNR_i (what conformal risk control bounds by alpha);
        pooled_fnr: missed / reference voxels over all cases (large cases weigh more; not the bounded risk);
        size_to_segmentation: mask voxels / hard segmentation voxels;
        size_to_reference: mask voxels / reference voxels.
    """
    sums = np.asarray(sums, dtype=np.float64)
    if sums.shape[-1:] != (len(MASK_FIELDS),):
        raise ValueError(f"sums must be (..., {len(MASK_FIELDS)}) in MASK_FIELDS order, but got {sums.shape}")
    column = dict(zip(MASK_FIELDS, np.moveaxis(sums, -1, 0), strict=True))
    n = column["n_cases"] - (
        column["n_empty"] if check_empty_references(empty_references) == "exclude" else 0
    )
    return {
        "mean_fnr": _ratio(column["fnr_sum"], n),
        "pooled_fnr": _ratio(column["missed_voxels"], column["reference_voxels"]),
        "size_to_segmentation": _ratio(column["mask_voxels"], column["segmentation_voxels"]),
        "size_to_reference": _ratio(column["mask_voxels"], column["reference_voxels"]),
    }


def case_mask_sums(chunks: Iterable[MaskChunk], threshold: float) -> MaskSums:
    """`MaskSums` of one whole case, from its chunks (`case_mask_counts`, merged)."""
    total = CaseMaskCounts()
    for probability, reference, segmentation in chunks:
        total = total.merge(case_mask_counts(probability, reference, segmentation, threshold))
    return MaskSums.of_case(total)
