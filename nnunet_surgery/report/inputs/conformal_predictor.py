"""`report --conformal CONFORMAL.json`: the conformal predictor read and checked against the report's
dataset.json before any case is scored (docs/conformal.md#reading-the-table)."""

from __future__ import annotations

from pathlib import Path

from nnunet_surgery.cases import DatasetInfo, InputError, read_json
from nnunet_surgery.conformal.document import ConformalDocument, parse_document

__all__ = ["read_conformal_predictor", "read_conformal_predictors"]


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


def read_conformal_predictors(
    paths: str | Path | list[str | Path], dataset: DatasetInfo, models: list[str]
) -> tuple[tuple[str, ConformalDocument], ...]:
    """Per model, (file, predictor): one CONFORMAL.json for every model, or one per model in model order
    (each fitted on that model's own validation probabilities).

    Raises:
        InputError: another number of files, or a file `read_conformal_predictor` refuses.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if len(paths) not in (1, len(models)):
        raise InputError(
            f"--conformal: give one CONFORMAL.json, or one per model ({len(models)}: {', '.join(models)}), "
            f"but got {len(paths)}"
        )
    read = {str(path): read_conformal_predictor(path, dataset) for path in dict.fromkeys(map(str, paths))}
    chosen = paths * len(models) if len(paths) == 1 else paths
    return tuple((str(path), read[str(path)]) for path in chosen)
