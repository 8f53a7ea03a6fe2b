"""The one input error type: every earlier name and module path is that very class, and its message is
one line."""

from __future__ import annotations

import pytest

from nnunet_surgery.cases import InputError


def test_earlier_names_and_module_paths_are_the_one_error_type():
    import nnunet_surgery.errors
    import nnunet_surgery.report
    import nnunet_surgery.report.errors
    from nnunet_surgery.demo import DemoError

    for alias in (
        nnunet_surgery.errors.ReportError,
        nnunet_surgery.report.errors.ReportError,
        nnunet_surgery.report.ReportError,
        DemoError,
    ):
        assert alias is InputError


def test_the_message_is_one_line_whatever_it_was_given():
    error = InputError("case_001.npz:\n  corrupt   npz\tarchive ")
    assert str(error) == "case_001.npz: corrupt npz archive"
    with pytest.raises(InputError, match=r"^x: y$"):
        raise InputError("x:\ny")
