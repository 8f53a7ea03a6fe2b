"""Conformal risk control for segmentation masks (numpy only, no nnU-Net imports; docs/conformal.md).

For one label or region, the mask {p >= t} with the threshold t_hat of conformal risk control (Angelopoulos
et al., ICLR 2024) misses, on average over patients exchangeable with the calibration cases, at most a
fraction alpha of the reference. Stages, as `calibration`: validate (`keys.as_probabilities`) -> update
(per chunk and case: `case_counts` / `case_bin_counts`, merged into `FnrStats` / `BinFnrStats`) -> compute
(`locate_crossing`, `conformal_threshold`), exact over all float32 thresholds in two passes over the cases;
then apply (`threshold_mask`) and score on test cases (`case_mask_sums`, `MaskSums`, `mask_metrics`).
"""

from __future__ import annotations

from nnunet_surgery.conformal.fit import fit_fnr_threshold
from nnunet_surgery.conformal.keys import (
    COARSE_SHIFT,
    N_COARSE,
    ONE_KEY,
    as_probabilities,
    float32_at_least,
    key_value,
    order_keys,
)
from nnunet_surgery.conformal.masks import (
    MASK_FIELDS,
    CaseMaskCounts,
    MaskChunk,
    MaskSums,
    case_mask_counts,
    case_mask_sums,
    check_threshold,
    mask_metrics,
    threshold_mask,
)
from nnunet_surgery.conformal.stats import (
    GRID_KEYS,
    RISK_GRID,
    BinFnrStats,
    CaseBinCounts,
    CaseCounts,
    FnrStats,
)
from nnunet_surgery.conformal.threshold import (
    FNR_BOUND,
    METHOD,
    RISK_SLACK,
    ConformalThreshold,
    Crossing,
    EmptyReferences,
    admissible_sum,
    check_alpha,
    check_empty_references,
    conformal_threshold,
    locate_crossing,
)
from nnunet_surgery.conformal.update import (
    Chunk,
    case_bin_counts,
    case_bin_stats,
    case_counts,
    case_fnr_stats,
    reference_keys,
)

__all__ = [
    "COARSE_SHIFT",
    "FNR_BOUND",
    "GRID_KEYS",
    "MASK_FIELDS",
    "METHOD",
    "N_COARSE",
    "ONE_KEY",
    "RISK_GRID",
    "RISK_SLACK",
    "BinFnrStats",
    "CaseBinCounts",
    "CaseCounts",
    "CaseMaskCounts",
    "Chunk",
    "ConformalThreshold",
    "Crossing",
    "EmptyReferences",
    "FnrStats",
    "MaskChunk",
    "MaskSums",
    "admissible_sum",
    "as_probabilities",
    "case_bin_counts",
    "case_bin_stats",
    "case_counts",
    "case_fnr_stats",
    "case_mask_counts",
    "case_mask_sums",
    "check_alpha",
    "check_empty_references",
    "check_threshold",
    "conformal_threshold",
    "fit_fnr_threshold",
    "float32_at_least",
    "key_value",
    "locate_crossing",
    "mask_metrics",
    "order_keys",
    "reference_keys",
    "threshold_mask",
]
