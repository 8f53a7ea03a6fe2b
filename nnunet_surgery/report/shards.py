"""`report --shard I/N` and `report merge`: a large evaluation spread over machines (a job-scheduler array).

A shard scores every N-th case (cases I, I + N, ... of the run's case order, 0 <= I < N) and writes their
statistics for every model, with the run's settings and its whole case list, to one partial file (an npz
archive: a json header and plain arrays, `scoring.partial`; never pickled). `merge_partials` checks that
the N partial files come from one run's settings, models, dataset and cases and that each shard is there
once, puts the cases back in the run's order and pools them with the same code as a single run
(`scoring.aggregate.pool_cases`): the same calibration.json, bit for bit, bootstrap included.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from nnunet_surgery.cases import InputError
from nnunet_surgery.report.inputs import Sources, read_inputs
from nnunet_surgery.report.outputs import check_out_dir, report_json, write_report
from nnunet_surgery.report.scoring.aggregate import (
    PoolingSetting,
    check_pooling_memory,
    pool_cases,
    score_cases,
)
from nnunet_surgery.report.scoring.partial import decode_cases, encode_cases

__all__ = ["FORMAT", "merge_partials", "parse_shard", "write_shard"]

#: The partial file's format tag (header key "format"); a different tag or version is refused.
FORMAT = "nnunet-surgery report partial 1"


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N) with 0 <= I < N.

    Raises:
        ValueError: not two integers I/N with 0 <= I < N.
    """
    parts = text.split("/")
    try:
        index, count = (int(part) for part in parts)
    except ValueError:
        raise ValueError(f"expected I/N (shard I of N, 0 <= I < N), but got {text!r}") from None
    if len(parts) != 2 or not 0 <= index < count:
        raise ValueError(f"expected I/N with 0 <= I < N, but got {text!r}")
    return index, count


def _setting_json(setting: PoolingSetting) -> dict:
    entry = asdict(setting)
    entry["sources"] = {name: None if path is None else str(path) for name, path in entry["sources"].items()}
    entry["models"] = [[name, [str(folder) for folder in folders]] for name, folders in setting.models]
    entry["label_names"] = list(setting.label_names)
    return entry


def _setting_of(entry: dict) -> PoolingSetting:
    sources = {name: None if path is None else Path(path) for name, path in entry["sources"].items()}
    return PoolingSetting(
        **{
            **entry,
            "label_names": tuple(entry["label_names"]),
            "sources": Sources(**sources),
            "models": tuple(
                (name, tuple(Path(folder) for folder in folders)) for name, folders in entry["models"]
            ),
        }
    )


def write_shard(
    gt_folder: str | Path,
    pred_folders: list[str | Path],
    dataset_json: str | Path,
    out_file: str | Path,
    shard: tuple[int, int],
    *,
    overwrite: bool = False,
    progress: bool = False,
    **options,
) -> int:
    """Score shard I of N of the report's cases and write their statistics to `out_file`.

    Args:
        gt_folder, pred_folders, dataset_json, **options: as `generate_report` (no gallery).
        out_file: the partial file to write (an npz archive), written whole or not at all.
        shard: (I, N).
        overwrite: replace an existing `out_file`.
        progress: show a progress bar on a terminal.

    Returns:
        The number of cases scored.

    Raises:
        InputError: any bad input (as `generate_report`), or `out_file` exists without `overwrite`.
    """
    index, count = shard
    out_file = Path(out_file)
    if out_file.is_dir() or (out_file.exists() and not overwrite):
        raise InputError(f"{out_file}: the partial file exists; pass --overwrite to replace it")
    inputs = read_inputs(gt_folder, pred_folders, dataset_json, **options)
    setting = PoolingSetting.of(inputs)
    check_pooling_memory(setting, len(inputs.cases))
    tasks = list(inputs.cases[index::count])
    tree, arrays = encode_cases(list(score_cases(inputs, tasks, progress=progress)))
    header = {
        "format": FORMAT,
        "setting": _setting_json(setting),
        "shard": [index, count],
        "cases": [task.files.case for task in inputs.cases],
        "stats": tree,
    }
    staging = out_file.with_name(f".{out_file.name}.partial")
    try:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        with staging.open("wb") as handle:
            np.savez(handle, header=np.array(json.dumps(header)), **arrays)
        os.replace(staging, out_file)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise InputError(f"{out_file}: cannot write the partial file ({error.strerror or error})") from None
    return len(tasks)


def _read_partial(path: Path) -> tuple[dict, dict]:
    """(header, arrays) of a partial file; InputError naming it when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(str(archive["header"][()]))
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise InputError(f"{path}: not a partial file of this version ({FORMAT!r} expected)")
            shard, cases = header.get("shard"), header.get("cases")
            if not (
                isinstance(shard, list)
                and len(shard) == 2
                and all(type(value) is int for value in shard)
                and 0 <= shard[0] < shard[1]
                and isinstance(cases, list)
                and all(isinstance(case, str) for case in cases)
                and isinstance(header.get("setting"), dict)
                and isinstance(header.get("stats"), list)
            ):
                raise InputError(f"{path}: malformed partial file (shard, cases, setting or stats)")
            arrays = {name: archive[name] for name in archive.files if name != "header"}
    except InputError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable partial file of `report --shard` ({error})") from None
    return header, arrays


def merge_partials(partials: list[str | Path], out_dir: str | Path, *, overwrite: bool = False) -> dict:
    """Pool the shards' partial files into the report one run over all cases would write.

    Args:
        partials: the N partial files of one run (`report --shard I/N`), in any order.
        out_dir: the report's folder (calibration.json, .csv, .md, reliability diagrams).
        overwrite: replace a report already in `out_dir`.

    Returns:
        The calibration.json content.

    Raises:
        InputError: a file that is not a partial file, partial files of different settings, models,
            dataset or cases, a shard missing or given twice, or a bad OUT_DIR; nothing is written.
    """
    if not partials:
        raise InputError("PARTIAL: expected the partial files of `report --shard I/N`, but got none")
    check_out_dir(out_dir, overwrite)
    first_path = Path(partials[0])
    first, _ = _read_partial(first_path)
    count = first["shard"][1]
    by_shard = {}
    for path in map(Path, partials):
        header, arrays = _read_partial(path)
        for key in ("setting", "cases"):
            if header[key] != first[key]:
                raise InputError(
                    f"{path}: its {key} differ from {first_path}'s; partial files must come from one run's "
                    "settings, models, dataset and cases"
                )
        index, its_count = header["shard"]
        if its_count != count:
            raise InputError(f"{path}: shard {index}/{its_count}, but {first_path} is of {count} shards")
        if index in by_shard:
            raise InputError(f"{path}: shard {index}/{count} is given twice")
        by_shard[index] = (path, header, arrays)
    missing = sorted(set(range(count)) - set(by_shard))
    if missing:
        raise InputError(f"PARTIAL: shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing")
    cases = first["cases"]
    stats = {}
    for index, (path, header, arrays) in by_shard.items():
        try:
            decoded = decode_cases(header["stats"], arrays)
        except ValueError as error:
            raise InputError(f"{path}: {error}") from None
        if [case.case for case in decoded] != cases[index::count]:
            raise InputError(f"{path}: its cases are not shard {index}/{count} of the run's cases")
        stats.update((case.case, case) for case in decoded)
    try:
        setting = _setting_of(first["setting"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputError(f"{first_path}: malformed settings in the partial file ({error})") from None
    check_pooling_memory(setting, len(cases))
    try:
        report = pool_cases(setting, (stats[case] for case in cases))
    except (ValueError, TypeError) as error:  # statistics that do not fit the settings (a tampered file)
        raise InputError(
            f"{first_path}: the partial files' statistics do not fit their settings ({error})"
        ) from None
    write_report(out_dir, report, overwrite=overwrite)
    return report_json(report)
