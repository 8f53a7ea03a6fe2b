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
    """Control characters (a file name may hold a newline) are shown escaped as repr shows them, runs of
    spaces collapsed: one line that names the file exactly."""
    error = InputError("case\n001.npz:  corrupt   npz\tarchive\r\x1b[31m\u2028 ")
    assert str(error) == "case\\n001.npz: corrupt npz\\tarchive\\r\\x1b[31m\\u2028"
    assert str(error) == repr("case\n001.npz: corrupt npz\tarchive\r\x1b[31m\u2028")[1:-1]
    with pytest.raises(InputError, match=r"^x: y$"):
        raise InputError("x:   y ")


def test_printable_escapes_only_control_characters():
    from nnunet_surgery.cases.errors import printable

    assert printable("Ünïcode name ✓.npz") == "Ünïcode name ✓.npz"
    assert printable("a\nb") == "a\\nb" and "\n" not in printable("a\u0085b\u2029c")


def test_the_error_and_the_staging_helpers_import_without_numpy():
    """The package face imports a module on the first use of one of its names: the demo command's --help,
    which needs the error type and the staging helpers, loads neither numpy nor nnU-Net."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from nnunet_surgery.cases import InputError, NPZ_ENDING\n"
        "from nnunet_surgery.cases.staging import staged_folder\n"
        "print(sorted(m for m in ('numpy', 'nnunetv2', 'torch') if m in sys.modules))\n"
        "from nnunet_surgery.cases import CaseTask\n"
        "print('numpy' in sys.modules, CaseTask.__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["[]", "True nnunet_surgery.cases.reading"]
