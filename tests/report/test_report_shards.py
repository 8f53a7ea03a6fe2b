"""`report --shard I/N` and `report merge` (docs/calibration.md#shards): the merged calibration.json is the
one-run calibration.json bit for bit, bootstrap included; partial files of different runs are refused."""

from __future__ import annotations

import json

import pytest
from report_cli import run_report_command

from nnunet_surgery.cli import main

pytestmark = [pytest.mark.usefixtures("no_plots"), pytest.mark.filterwarnings("ignore::FutureWarning")]

SHAPES = ((3, 9, 8), (2, 10, 7), (4, 6, 6), (3, 8, 8), (2, 7, 9))


def _shards(folders, root, count: int, *extra: str) -> list[str]:
    paths = []
    for index in range(count):
        path = root / f"part_{index}.npz"
        assert run_report_command(folders, path, "-np", "1", "--shard", f"{index}/{count}", *extra) == 0
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("kind", ["multiclass", "regions"])
def test_merged_shards_write_the_calibration_json_of_one_run(build, tmp_path, kind):
    folders = build(kind, SHAPES, truth=kind == "regions")
    extra = ("--bootstrap", "50", "--bootstrap-seed", "3")
    if kind == "regions":
        extra += ("--truth", str(folders.truth))
    assert run_report_command(folders, tmp_path / "whole", "-np", "1", *extra) == 0
    partials = _shards(folders, tmp_path, 3, *extra)
    assert main(["report", "merge", *reversed(partials), "-o", str(tmp_path / "merged")]) == 0
    whole = (tmp_path / "whole" / "calibration.json").read_text()
    merged = (tmp_path / "merged" / "calibration.json").read_text()
    assert merged == whole
    assert json.loads(merged)["bootstrap"]["resamples"] == 50
    for name in ("calibration.csv", "calibration.md", "comparison.md"):
        assert (tmp_path / "merged" / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_partials_of_different_runs_or_missing_shards_are_refused(build, tmp_path, capsys):
    folders = build("binary", SHAPES[:4])
    first = _shards(folders, tmp_path / "a", 2, "--bootstrap", "20")
    other_bins = _shards(folders, tmp_path / "b", 2, "--bootstrap", "20", "--bins", "10")
    other_seed = _shards(folders, tmp_path / "c", 2, "--bootstrap", "20", "--bootstrap-seed", "1")
    capsys.readouterr()
    for partials, words in (
        ([first[0], other_bins[1]], "differ"),
        ([first[0], other_seed[1]], "differ"),
        ([first[0]], "missing"),
        ([first[0], first[0]], "twice"),
        ([first[0], str(folders.dataset_json)], "partial file"),
    ):
        out = tmp_path / "out"
        assert main(["report-merge", *partials, "-o", str(out)]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and words in error, error
        assert not out.exists()


def test_a_gt_folder_named_merge_is_still_a_report(build, tmp_path, monkeypatch):
    folders = build("binary", SHAPES[:2])
    monkeypatch.chdir(tmp_path)
    folders.gt.rename(tmp_path / "merge")
    folders.gt = tmp_path / "merge"
    arguments = ["merge", *map(str, folders.preds), "-djfile", str(folders.dataset_json), "-o", "out"]
    assert main(["report", *arguments, "-np", "1", "--bootstrap", "0"]) == 0
    assert json.loads((tmp_path / "out" / "calibration.json").read_text())["sources"]["gt_folder"] == "merge"


def test_a_tampered_partial_file_is_refused_in_one_line(build, tmp_path, capsys):
    import numpy as np

    folders = build("binary", SHAPES[:2])
    (partial,) = _shards(folders, tmp_path, 1, "--bootstrap", "0")
    with np.load(partial, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(str(arrays["header"][()]))
    for broken in (
        {**header, "shard": [0, "x"]},
        {**header, "stats": [{"type": "BinnedStats", "fields": []}]},
        {**header, "setting": {"n_bins": 20}},
    ):
        tampered = tmp_path / "tampered.npz"
        np.savez(tampered, **{**arrays, "header": np.array(json.dumps(broken))})
        capsys.readouterr()
        assert main(["report-merge", str(tampered), "-o", str(tmp_path / "out")]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "tampered.npz" in error, error
        assert not (tmp_path / "out").exists()
