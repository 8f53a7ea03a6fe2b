"""Run `nnunet-surgery report` as the console script does (`cli.main`, which turns the one input error into
exit status 2), in this process or in a fresh interpreter that also reports its peak memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nnunet_surgery.cli import main


def run_report_command(folders, out: Path, *extra: str, preds: list[Path] | None = None) -> int:
    """`nnunet-surgery report GT PRED... -djfile DATASET_JSON -o OUT *extra` on a built `Folders`; the exit code."""
    preds = folders.preds if preds is None else preds
    arguments = [str(folders.gt), *map(str, preds), "-djfile", str(folders.dataset_json), "-o", str(out)]
    return main(["report", *arguments, *extra])


def run_report_process(folders, out: Path, *extra: str) -> tuple[int, str, int]:
    """`nnunet-surgery report GT PRED... -djfile DATASET_JSON -o OUT -np 1 --no-progress *extra` in a fresh
    interpreter: (exit code, stderr, the interpreter's peak RSS in bytes)."""
    script = (
        "import resource, sys\n"
        "from nnunet_surgery.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    arguments = ["report", str(folders.gt), *map(str, folders.preds), "-djfile", str(folders.dataset_json)]
    result = subprocess.run(
        [sys.executable, "-c", script, *arguments, "-o", str(out), "-np", "1", "--no-progress", *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stderr.splitlines()
    peak = int(next(line for line in lines if line.startswith("PEAK")).split()[1])
    return result.returncode, "\n".join(line for line in lines if not line.startswith("PEAK")), peak
