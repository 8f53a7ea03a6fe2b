"""Peak memory of one `nnunet-surgery` run, measured in a subprocess: a wrapper process runs the command as
its only child and reads `resource.getrusage(RUSAGE_CHILDREN).ru_maxrss` (the largest resident set of a
waited-for child), so nothing the test process or earlier runs allocated is counted."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

_WRAPPER = """
import json, resource, subprocess, sys
result = subprocess.run([sys.executable, "-m", "nnunet_surgery.cli", *sys.argv[1:]], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": result.returncode, "stderr": result.stderr, "peak_kib": peak}))
"""


@dataclass(frozen=True)
class Run:
    """Exit code, stderr and peak resident memory (MiB) of one command run."""

    rc: int
    stderr: str
    peak_mib: float


def measured_run(*argv: str) -> Run:
    """`nnunet-surgery *argv` (with `--no-progress` added) in a fresh process, and its peak memory."""
    out = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *argv, "--no-progress"], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    return Run(result["rc"], result["stderr"], result["peak_kib"] / 1024)  # Linux: ru_maxrss in KiB
