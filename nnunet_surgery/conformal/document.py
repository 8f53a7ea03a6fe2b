"""CONFORMAL.json, the document of a fitted conformal predictor: built, written as text, parsed and checked.

Pure (json and numpy; no file is opened here): `conformal fit` builds a `ConformalDocument` and writes
`document_text`; `conformal apply` and `report --conformal` read the file with the case layer's bounded
JSON reader and hand the content to `parse_document`, which refuses anything `fit` would not have written
(a one-line ValueError naming the file and the field). Layout (docs/conformal.md#conformaljson):

    {"format", "version", "method", "risk", "alpha", "empty_references",
     "dataset": {"labels", "regions_class_order", "file_ending", "n_channels", "region_based",
                 "overwrite_image_reader_writer"},
     "calibration": {"gt_folder", "prediction_folders", "n_cases"},
     "labels": {NAME: {"channel", "members", **ConformalThreshold.to_dict()}}}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from nnunet_surgery.conformal.masks import check_threshold
from nnunet_surgery.conformal.stats import RISK_GRID
from nnunet_surgery.conformal.threshold import (
    FNR_BOUND,
    METHOD,
    ConformalThreshold,
    admissible_sum,
    check_alpha,
    check_empty_references,
)

__all__ = [
    "FORMAT",
    "VERSION",
    "ConformalDocument",
    "LabelPredictor",
    "conformal_document",
    "document_text",
    "parse_document",
]

FORMAT = "nnunet-surgery conformal predictor"
VERSION = 1
#: Tolerance of the consistency checks between a label's numbers (they come from float64 sums).
_TOLERANCE = 1e-7


@dataclass(frozen=True)
class LabelPredictor:
    """The fitted mask of one label or region: {p[channel] >= threshold}.

    Attributes:
        name: the dataset.json name of the label or region.
        channel: its probability channel.
        members: its label values (one for a label, several for a region).
        threshold: t_hat (a float32 value).
        feasible: False when alpha < 1 / (n + 1) (threshold 0: every voxel).
        n: calibration cases in the average.
        record: the json form of the fit (`ConformalThreshold.to_dict()`), risk curve included.
    """

    name: str
    channel: int
    members: tuple[int, ...]
    threshold: float
    feasible: bool
    n: int
    record: dict = field(repr=False)


@dataclass(frozen=True)
class ConformalDocument:
    """A conformal predictor: one threshold per label or region, and what it was fitted on.

    Attributes:
        alpha: the target risk (mean FNR over patients).
        empty_references: "count" or "exclude" (`threshold.EmptyReferences`).
        dataset: dataset.json's `labels`, `regions_class_order`, `file_ending`, `n_channels`,
            `region_based` and `overwrite_image_reader_writer` (None when absent).
        calibration: `gt_folder`, `prediction_folders`, `n_cases`.
        labels: the fitted labels or regions, in channel order.
    """

    alpha: float
    empty_references: str
    dataset: dict
    calibration: dict
    labels: tuple[LabelPredictor, ...]

    @property
    def file_ending(self) -> str:
        return self.dataset["file_ending"]

    def check_layout(self, layout: object, source: str, against: str) -> None:
        """Refuse a predictor whose labels are not those of `layout` (the case layer's `LabelLayout`, or
        anything with its `names`, `channels`, `members`, `n_channels` and `region_based`).

        Args:
            source: the CONFORMAL.json file; against: what `layout` comes from (both named in the error).

        Raises:
            ValueError: another channel count or kind (labels / regions), or a fitted label `layout` lacks
                (same name, channel and label values).
        """
        fitted = (self.dataset["n_channels"], self.dataset["region_based"])
        if fitted != (layout.n_channels, layout.region_based):
            raise ValueError(
                f"{source}: fitted on {fitted[0]} channels (region_based {fitted[1]}), but {against} has "
                f"{layout.n_channels} (region_based {layout.region_based})"
            )
        known = dict(zip(layout.names, zip(layout.channels, layout.members, strict=True), strict=True))
        for label in self.labels:
            if known.get(label.name) != (label.channel, label.members):
                raise ValueError(
                    f"{source}: label {label.name!r} (channel {label.channel}, values {list(label.members)}) is "
                    f"not a label of {against} (labels: {', '.join(layout.names)})"
                )

    def to_dict(self) -> dict:
        """The json form (CONFORMAL.json)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "method": METHOD,
            "risk": "fnr",
            "alpha": self.alpha,
            "empty_references": self.empty_references,
            # labels as [name, value] pairs: their order is nnU-Net's channel order, which sort_keys would lose
            "dataset": {
                **self.dataset,
                "labels": [[name, value] for name, value in self.dataset["labels"].items()],
            },
            "calibration": dict(self.calibration),
            "labels": {
                label.name: {"channel": label.channel, "members": list(label.members), **label.record}
                for label in self.labels
            },
        }


def conformal_document(
    fits: list[tuple[str, int, tuple[int, ...], ConformalThreshold]],
    *,
    dataset: dict,
    calibration: dict,
) -> ConformalDocument:
    """The document of fitted thresholds `(name, channel, members, fit)`, all at one alpha and one rule."""
    if not fits:
        raise ValueError("a conformal predictor needs at least one fitted label")
    first = fits[0][3]
    for name, _, _, fit in fits:
        if (fit.alpha, fit.empty_references) != (first.alpha, first.empty_references):
            raise ValueError(f"label {name!r} was fitted at another alpha or empty-reference rule")
    labels = tuple(
        LabelPredictor(name, int(channel), tuple(members), fit.threshold, fit.feasible, fit.n, fit.to_dict())
        for name, channel, members, fit in fits
    )
    return ConformalDocument(first.alpha, first.empty_references, dict(dataset), dict(calibration), labels)


def document_text(document: ConformalDocument) -> str:
    """CONFORMAL.json's text: keys sorted (as nnU-Net's summary.json), NaN refused."""
    return json.dumps(document.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"


class _Fields:
    """Typed access to one json object, every refusal a ValueError naming the file and the field."""

    def __init__(self, content: object, source: str, where: str) -> None:
        if not isinstance(content, dict):
            raise ValueError(f"{source}: {where or 'the document'} must be a JSON object")
        self.content, self.source, self.where = content, source, where

    def fail(self, key: str, expected: str) -> ValueError:
        path = f"{self.where}.{key}" if self.where else key
        return ValueError(
            f"{self.source}: field {path!r} must be {expected}, but got {self.content.get(key)!r}"
        )

    def get(self, key: str, check, expected: str):
        if key not in self.content:
            path = f"{self.where}.{key}" if self.where else key
            raise ValueError(
                f"{self.source}: missing field {path!r} (not a CONFORMAL.json of conformal fit?)"
            )
        value = self.content[key]
        try:
            ok = check(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise self.fail(key, expected)
        return value

    def number(self, key: str, low: float, high: float) -> float:
        return float(
            self.get(key, lambda v: _is_number(v) and low <= v <= high, f"a number in [{low}, {high}]")
        )

    def integer(self, key: str, low: int) -> int:
        return int(self.get(key, lambda v: _is_int(v) and v >= low, f"an integer >= {low}"))

    def sub(self, key: str) -> _Fields:
        path = f"{self.where}.{key}" if self.where else key
        return _Fields(self.get(key, lambda v: isinstance(v, dict), "a JSON object"), self.source, path)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _curve(label: _Fields, n: int) -> dict:
    curve = label.sub("risk_curve")
    grid = [float(t) for t in RISK_GRID]
    curve.get("threshold", lambda v: v == grid, f"the grid 0, 0.01, ..., 1 ({len(grid)} values)")
    values = {}
    for key in ("mean_fnr", "adjusted"):
        values[key] = np.array(
            curve.get(
                key,
                lambda v: isinstance(v, list) and len(v) == len(grid) and all(_is_number(x) for x in v),
                f"a list of {len(grid)} numbers",
            ),
            dtype=np.float64,
        )
    mean, adjusted = values["mean_fnr"], values["adjusted"]
    if mean.min() < 0 or mean.max() > FNR_BOUND or np.any(np.diff(mean) < -_TOLERANCE):
        raise curve.fail("mean_fnr", "non-decreasing numbers in [0, 1]")
    if np.max(np.abs(adjusted - (n * mean + FNR_BOUND) / (n + 1))) > _TOLERANCE:
        raise curve.fail("adjusted", "n/(n+1) * mean_fnr + 1/(n+1)")
    return values


def _label(name: str, content: object, source: str, alpha: float, rule: str) -> LabelPredictor:
    label = _Fields(content, source, f"labels.{name}")
    channel = label.integer("channel", 0)
    members = label.get(
        "members",
        lambda v: isinstance(v, list) and v and all(_is_int(x) and x > 0 for x in v),
        "positive integers",
    )
    label.get("method", lambda v: v == METHOD, repr(METHOD))
    label.get("risk", lambda v: v == "fnr", "'fnr'")
    label.get("mask", lambda v: v == "p >= threshold", "'p >= threshold'")
    label.get("alpha", lambda v: v == alpha, f"the document's alpha {alpha}")
    label.get("empty_references", lambda v: v == rule, f"the document's rule {rule!r}")
    label.get("loss_bound", lambda v: v == FNR_BOUND, f"{FNR_BOUND}")
    threshold = label.get(
        "threshold", lambda v: check_threshold(v) == float(np.float32(v)), "a float32 value in [0, 1]"
    )
    feasible = label.get("feasible", lambda v: isinstance(v, bool), "true or false")
    n_cases = label.integer("n_cases", 1)
    n_empty = label.integer("n_empty_reference", 0)
    if n_empty > n_cases:
        raise label.fail("n_empty_reference", f"at most n_cases = {n_cases}")
    expected_n = n_cases - (n_empty if rule == "exclude" else 0)
    n = label.get(
        "n", lambda v: v == expected_n, f"{expected_n} (n_cases, less the empty ones under 'exclude')"
    )
    if feasible != (admissible_sum(n, alpha) >= 0.0) or (not feasible and threshold != 0.0):
        raise label.fail("feasible", f"whether alpha >= 1/(n+1) for n = {n} (threshold 0 when false)")
    risk = label.sub("calibration_risk")
    mean = risk.number("mean_fnr", 0.0, FNR_BOUND)
    risk.get(
        "adjusted",
        lambda v: (
            _is_number(v)
            and abs(v - (n * mean + FNR_BOUND) / (n + 1)) <= _TOLERANCE
            and (v <= alpha + _TOLERANCE or not feasible)
        ),
        "n/(n+1) * mean_fnr + 1/(n+1), at most alpha when feasible",
    )
    curve = _curve(label, n)["adjusted"]
    # the condition holds at every grid t <= threshold and fails above it (adjusted risk is non-decreasing)
    inside = RISK_GRID <= threshold
    if feasible and (
        np.any(curve[inside] > alpha + _TOLERANCE) or np.any(curve[~inside] < alpha - _TOLERANCE)
    ):
        raise label.fail("threshold", "where the risk curve's adjusted risk crosses alpha")
    return LabelPredictor(
        name, channel, tuple(int(m) for m in members), float(threshold), feasible, n, dict(content)
    )


def parse_document(
    content: object, source: str, layout: object | None = None, against: str = "dataset.json"
) -> ConformalDocument:
    """Check the parsed content of a CONFORMAL.json and return its document.

    Args:
        content: what `json.loads` gave.
        source: the file, named in every error.
        layout, against: when given, the labels must be those of `layout` (`ConformalDocument.check_layout`).

    Raises:
        ValueError: one line naming `source` and the first field that is missing, of the wrong type, out of
            range, or inconsistent with the others (a hand-edited threshold, curve, alpha or n); or labels
            that are not `layout`'s.
    """
    top = _Fields(content, source, "")
    top.get("format", lambda v: v == FORMAT, repr(FORMAT))
    top.get("version", lambda v: v == VERSION, str(VERSION))
    top.get("method", lambda v: v == METHOD, repr(METHOD))
    top.get("risk", lambda v: v == "fnr", "'fnr'")
    alpha = top.get("alpha", lambda v: _is_number(v) and check_alpha(v) == v, "a number in (0, 1)")
    rule = top.get("empty_references", lambda v: check_empty_references(v) == v, "'count' or 'exclude'")
    dataset = top.sub("dataset")
    pairs = dataset.get(
        "labels",
        lambda v: (
            isinstance(v, list)
            and v
            and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in v)
        ),
        "dataset.json's labels as [name, value] pairs in its order",
    )
    dataset.get("file_ending", lambda v: isinstance(v, str) and v, "a file ending such as '.nii.gz'")
    n_channels = dataset.integer("n_channels", 1)
    dataset.get("region_based", lambda v: isinstance(v, bool), "true or false")
    calibration = top.sub("calibration")
    calibration.integer("n_cases", 1)
    labels = top.sub("labels")
    if not labels.content:
        raise ValueError(f"{source}: field 'labels' holds no fitted label")
    parsed = tuple(_label(name, value, source, float(alpha), rule) for name, value in labels.content.items())
    for label in parsed:
        if label.channel >= n_channels:
            raise ValueError(
                f"{source}: labels.{label.name}.channel {label.channel} is not below n_channels {n_channels}"
            )
    document = ConformalDocument(
        float(alpha),
        rule,
        {**dataset.content, "labels": dict(pairs)},
        dict(calibration.content),
        tuple(sorted(parsed, key=lambda label: label.channel)),
    )
    if layout is not None:
        document.check_layout(layout, source, against)
    return document
