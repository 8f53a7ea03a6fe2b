"""`cases.read_json`: every JSON file the package reads, parsed within bounds, refused in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nnunet_surgery.cases import InputError, read_json
from nnunet_surgery.cases.dataset import MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_JSON_NUMBER, load_dataset_json


def _refused(path: Path, *expected: str, **options) -> str:
    with pytest.raises(InputError) as caught:
        read_json(path, "the file", **options)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message
    for text in expected:
        assert text in message, (text, message)
    return message


def test_valid_json_parses_as_the_standard_library(tmp_path):
    content = {"labels": {"background": 0, "a": [1, 2]}, "x": 1.5e-3, "s": '[{"]', "big": 10**60}
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(content))
    assert read_json(path, "the file") == content


def test_nesting_at_the_limit_parses_and_one_deeper_is_refused(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert read_json(path, "the file") is not None
    path.write_text("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    _refused(path, f"nests {MAX_JSON_DEPTH + 1} levels")


def test_nesting_deep_enough_for_recursion_error_is_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    _refused(path, "nests 100000 levels")


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path):
    path = tmp_path / "strings.json"
    text = "[" * (MAX_JSON_DEPTH * 3) + '\\"'
    path.write_text(json.dumps({"name": text}))
    assert read_json(path, "the file") == {"name": text}


@pytest.mark.parametrize("literal", ["1" * 5000, "1" * 400, "-" + "9" * 100, "1." + "0" * 100])
def test_long_number_literals_are_refused(tmp_path, literal):
    path = tmp_path / "number.json"
    path.write_text(f'{{"temperature": {literal}}}')
    _refused(path, f"number literal of {len(literal)} characters", f"at most {MAX_JSON_NUMBER}")


def test_overflowing_float_is_refused(tmp_path):
    path = tmp_path / "overflow.json"
    path.write_text('{"temperature": 1e999}')
    _refused(path, "1e999", "too large")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_constants_only_when_allowed(tmp_path, constant):
    path = tmp_path / "nan.json"
    path.write_text(f'{{"x": {constant}}}')
    _refused(path, "non-finite", constant)
    value = read_json(path, "the file", allow_nan=True)["x"]
    assert value != value if constant == "NaN" else value == float(constant.replace("inity", ""))


def test_oversized_file_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(MAX_JSON_BYTES + 1)  # sparse: no disk used
    _refused(path, "larger than")


@pytest.mark.parametrize("kind", ["folder", "fifo", "missing", "binary"])
def test_unreadable_files_are_one_line(tmp_path, kind):
    path = tmp_path / "x.json"
    if kind == "folder":
        path.mkdir()
        _refused(path, "not a regular file")
    elif kind == "fifo":
        os.mkfifo(path)  # opening it would block forever
        _refused(path, "not a regular file")
    elif kind == "missing":
        _refused(path, "cannot read the file")
    else:
        path.write_bytes(b"\xff\xfe\x00\xd8garbage")
        _refused(path, "not valid JSON")


def test_dataset_json_goes_through_the_bounds(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text('{"file_ending": ".nii.gz", "labels": {"background": 0, "a": ' + "1" * 4301 + "}}")
    with pytest.raises(InputError, match="number literal of 4301 characters"):
        load_dataset_json(path)
