"""`read_report_json`, the one reader of a finished report's calibration.json (the demo's resume test and
bench/fidelity.py read reports through it): it gives back what the writer wrote, and refuses any other
file in one line naming it."""

from __future__ import annotations

import json
import math

import pytest

from nnunet_surgery.cases import InputError
from nnunet_surgery.report import generate_report
from nnunet_surgery.report.outputs import read_report_json


def _same(a, b) -> bool:
    """Equality of JSON values, NaN equal to NaN (undefined metrics are written as NaN)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


@pytest.mark.usefixtures("no_plots")
def test_reads_back_what_the_writer_wrote(build, tmp_path):
    folders = build("multiclass", ((2, 8, 8), (2, 6, 6)))
    out = tmp_path / "report"
    written = generate_report(folders.gt, folders.preds, folders.dataset_json, out, bootstrap=0)
    on_disk = json.loads((out / "calibration.json").read_text())
    assert _same(read_report_json(out), on_disk) and _same(
        read_report_json(out / "calibration.json"), on_disk
    )
    assert read_report_json(out)["model_order"] == written["model_order"] == list(written["models"])


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "cannot read the report"),
        ("{", "not valid JSON"),
        ("[1, 2]", "not a calibration.json"),
        ('{"models": {}}', "not a calibration.json"),
    ],
)
def test_refuses_anything_else_in_one_line_naming_the_file(tmp_path, content, needle):
    path = tmp_path / "calibration.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as caught:
        read_report_json(tmp_path)
    message = str(caught.value)
    assert message.startswith(str(path)) and needle in message and "\n" not in message
