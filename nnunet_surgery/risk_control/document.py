"""CONFORMAL.json read and checked: the case layer's JSON reader, then `conformal.document.parse_document`."""

from __future__ import annotations

from pathlib import Path

from nnunet_surgery.cases import InputError, LabelLayout, read_json
from nnunet_surgery.conformal.document import ConformalDocument, parse_document

__all__ = ["read_conformal"]


def read_conformal(
    path: str | Path, layout: LabelLayout | None = None, against: str = ""
) -> ConformalDocument:
    """The conformal predictor in `path`, its labels checked against `layout` (from `against`) if given.

    Raises:
        InputError: an unreadable file, invalid JSON, content `conformal fit` would not have written, or
            labels that are not `layout`'s.
    """
    path = Path(path)
    try:
        return parse_document(read_json(path, "the conformal predictor"), str(path), layout, against)
    except ValueError as error:
        raise InputError(str(error)) from None
