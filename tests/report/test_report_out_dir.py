"""An OUT_DIR that cannot be created or written gets the one-line error before any case is scored, and a
write that fails at the end (a full disk) leaves nothing behind."""

from __future__ import annotations

import errno
import tempfile

from report_cli import run_report_command

PREFIX = "nnunet-surgery report: error: "


def _fails(capsys, folders, out, needle: str) -> str:
    assert run_report_command(folders, out, "-np", "1") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(PREFIX + str(out)) and needle in error, error
    return error


def test_out_dir_under_a_file_is_refused_before_scoring(build, tmp_path, capsys):
    folders = build()
    (folders.preds[0] / "case_001.npz").write_bytes(b"corrupt: scoring would fail on this case instead")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    _fails(capsys, folders, blocker / "sub" / "report", "is a file, not a folder")
    assert blocker.read_text() == "a file"


def test_out_dir_that_cannot_be_written_is_refused_before_scoring(build, tmp_path, capsys, monkeypatch):
    folders = build()
    (folders.preds[0] / "case_001.npz").write_bytes(b"corrupt: scoring would fail on this case instead")

    def read_only(*args, **kwargs):  # what mkdtemp raises in a read-only folder (root ignores chmod)
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    _fails(capsys, folders, tmp_path / "report", "cannot be written (Permission denied")


def test_a_full_disk_at_the_end_leaves_no_output(build, tmp_path, capsys, monkeypatch, no_plots):
    folders = build()

    def full_disk(folder, report, gallery=()):
        (folder / "calibration.json").write_text("{")  # half-written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("nnunet_surgery.report.outputs.writer.write_report_files", full_disk)
    out = tmp_path / "report"
    _fails(capsys, folders, out, "cannot write the report (No space left on device)")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]
