"""bench/report_stages.py runs every stage on both datasets and reports each against bare loading."""

from __future__ import annotations

import re

import pytest


def test_every_stage_is_timed_on_both_datasets(report_stages, tmp_path, capsys):
    assert (
        report_stages.main(["--cases", "2", "--size", "16", "--rounds", "1", "--workdir", str(tmp_path)]) == 0
    )
    rows = [
        line.split() for line in capsys.readouterr().out.splitlines() if re.match(r"(lesion|spread) ", line)
    ]
    assert [(row[0], row[1]) for row in rows] == [
        (data, stage) for data in ("lesion", "spread") for stage in report_stages.STAGES
    ]
    for row in rows:
        assert float(row[3]) >= 0 and (row[1] != "bare" or float(row[3]) == 1.0), row
    # the read-ahead row alone carries the target's verdict
    assert [row[1] for row in rows if len(row) == 5] == ["read-ahead", "read-ahead"]


def test_bad_counts_are_refused_in_one_line(report_stages, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report_stages.main(["--cases", "0"])
    assert exit_info.value.code == 2 and "--cases must be at least 1, but got 0" in capsys.readouterr().err
