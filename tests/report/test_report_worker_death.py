"""A worker process killed mid-run (as by the out-of-memory killer) stops the report within seconds:
one-line error naming the case it held, exit 2, nothing written, no worker left running."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

PREFIX = "nnunet-surgery report: error: "


def test_a_killed_worker_stops_the_report_with_a_one_line_error(build, tmp_path):
    folders = build("binary", ((24, 64, 64),) * 24, n_models=2)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-c",
        "import sys; from nnunet_surgery.cli import main; sys.exit(main(sys.argv[1:]))",
    ]
    arguments = ["report", str(folders.gt), *map(str, folders.preds), "-djfile", str(folders.dataset_json)]
    report = subprocess.Popen(
        [*command, *arguments, "-o", str(out), "-np", "2", "--no-progress", "--bootstrap", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    parent = psutil.Process(report.pid)
    deadline = time.monotonic() + 60
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and report.poll() is None:
        # the spawned workers import numpy and score; wait until both are busy
        workers = [child for child in parent.children(recursive=True) if child.cpu_times().user > 0.5]
        if len(workers) >= 2:
            break
        time.sleep(0.1)
    assert len(workers) >= 2, "the report finished before both workers were busy: make the cases larger"
    all_children = parent.children(recursive=True)
    workers[0].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    _, error = report.communicate(timeout=60)
    assert time.monotonic() - killed_at < 20
    assert report.returncode == 2, error
    assert error.count("\n") == 1 and error.startswith(PREFIX), error
    case = error[len(PREFIX) :].split(":")[0]
    assert case in folders.references and "the worker process handling this case died (exit code -9" in error
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "temporary output left behind"
    time.sleep(1)
    assert not [
        child for child in all_children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    ]
