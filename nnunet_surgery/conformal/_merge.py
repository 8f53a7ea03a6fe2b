"""The merge of statistics that are plain sums: field by field."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

__all__ = ["sum_fields"]

Sums = TypeVar("Sums")


def sum_fields(mine: Sums, theirs: Sums) -> Sums:
    """A dataclass of `mine`'s type whose every field is mine.field + theirs.field (numbers or arrays)."""
    return type(mine)(*(getattr(mine, f.name) + getattr(theirs, f.name) for f in fields(mine)))
