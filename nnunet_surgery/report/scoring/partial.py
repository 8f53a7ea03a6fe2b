"""A shard's per-case statistics as plain arrays and a json-able tree, and back, exactly
(`report --shard`, `report merge`).

Every leaf of a `CaseStats` (numpy arrays and numpy or Python scalars) becomes one array `a<k>` (a scalar
a 0-d array, so its dtype travels too), and the tree records, per dataclass, its type name and fields,
with {"array": k} at the leaves; nothing is pickled. Decoding rebuilds the same dataclasses from the same
bits, so pooling decoded statistics gives the report of the original ones bit for bit.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass

import numpy as np

from nnunet_surgery.calibration import BinnedStats, LabelStats
from nnunet_surgery.calibration.stats import TruthStats
from nnunet_surgery.report.scoring.case import CaseStats, ModelCaseStats

__all__ = ["decode_cases", "encode_cases"]

_TYPES = {kind.__name__: kind for kind in (BinnedStats, CaseStats, LabelStats, ModelCaseStats, TruthStats)}


def _encode(value: object, arrays: dict[str, np.ndarray]) -> object:
    if value is None or isinstance(value, str):
        return value
    if is_dataclass(value):
        return {
            "type": type(value).__name__,
            "fields": {item.name: _encode(getattr(value, item.name), arrays) for item in fields(value)},
        }
    if isinstance(value, tuple):
        return {"tuple": [_encode(item, arrays) for item in value]}
    key = f"a{len(arrays)}"
    arrays[key] = np.asarray(value)
    return {"array": key, "python": type(value).__name__ if type(value) in (int, float) else None}


def encode_cases(cases: list[CaseStats]) -> tuple[list, dict[str, np.ndarray]]:
    """(tree, arrays) of the cases' statistics, in order."""
    arrays: dict[str, np.ndarray] = {}
    return [_encode(case, arrays) for case in cases], arrays


def _decode(tree: object, arrays) -> object:
    if tree is None or isinstance(tree, str):
        return tree
    if not isinstance(tree, dict):
        raise ValueError(f"unexpected entry {tree!r}")
    if "type" in tree:
        kind = _TYPES.get(tree["type"])
        if kind is None:
            raise ValueError(f"unknown type {tree['type']!r}")
        return kind(**{name: _decode(value, arrays) for name, value in tree["fields"].items()})
    if "tuple" in tree:
        return tuple(_decode(item, arrays) for item in tree["tuple"])
    value = arrays[tree["array"]]
    if tree.get("python") == "int":
        return int(value)
    if tree.get("python") == "float":
        return float(value)
    return value[()] if value.ndim == 0 else value


def decode_cases(tree: list, arrays) -> list[CaseStats]:
    """The cases' statistics of `encode_cases`' (tree, arrays).

    Raises:
        ValueError: a tree that `encode_cases` did not write (unknown type, missing array).
    """
    try:
        return [_decode(case, arrays) for case in tree]
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        raise ValueError(f"malformed statistics ({error})") from None
