"""`report --conformal CONFORMAL.json`: the conformal predictor read and checked against the report's
dataset.json before any case is scored (docs/conformal.md#the-table)."""

from __future__ import annotations

from pathlib import Path

from nnunet_surgery.cases import DatasetInfo, InputError, read_json
from nnunet_surgery.conformal.document import ConformalDocument, parse_document

__all__ = ["read_conformal_predictor"]


def read_conformal_predictor(path: str | Path, dataset: DatasetInfo) -> ConformalDocument:
    """The predictor of `conformal fit` in `path`, its labels those of `dataset` (names, channels, values).

    Raises:
        InputError: an unreadable file, invalid JSON, a tampered predictor, or another dataset's labels.
    """
    path = Path(path)
    try:
        return parse_document(read_json(path, "--conformal"), str(path), dataset.layout, str(dataset.path))
    except ValueError as error:
        raise InputError(str(error)) from None
