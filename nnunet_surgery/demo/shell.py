"""Running one console script of this environment for a demo step: nnU-Net's environment variables pointing
into the run's folder, the full output to `logs/STEP.log`, nnU-Net's progress lines to the user."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from nnunet_surgery.cases import InputError
from nnunet_surgery.demo.folders import RunFolders

__all__ = ["environment", "run_console_script"]

# nnU-Net's per-epoch lines, after its timestamp ("2026-01-01 12:00:00.000000: Epoch 3")
_PROGRESS = re.compile(r"^(\d{4}-\d\d-\d\d [\d:.]+: )?(Epoch \d+|train_loss|val_loss|Pseudo dice|Epoch time)")


def environment(folders: RunFolders) -> dict[str, str]:
    """This process's environment with nnU-Net's folders in the run, and the run's trainers (then ours) on
    `nnUNet_extTrainer`; process counts sized for a small machine unless already set."""
    from nnunet_surgery.trainer_folder import trainers_dir

    env = dict(os.environ)
    env.update(
        nnUNet_raw=str(folders.raw),
        nnUNet_preprocessed=str(folders.preprocessed),
        nnUNet_results=str(folders.results),
        nnUNet_extTrainer=os.pathsep.join((str(folders.trainers), str(trainers_dir()))),
        nnUNet_def_n_proc=env.get("nnUNet_def_n_proc", str(min(os.cpu_count() or 1, 4))),
        # nnU-Net's default of 12 augmentation workers swamps a small machine; 0 (in-process) is slower still
        nnUNet_n_proc_DA=env.get("nnUNet_n_proc_DA", str(min(os.cpu_count() or 1, 12))),
        PYTHONUNBUFFERED="1",
    )
    return env


def run_console_script(
    name: str, args: Sequence[str], *, env: dict[str, str], logs: Path, log: Callable[[str], None]
) -> None:
    """Run the console script `args[0]` of this environment with `args[1:]`: its output to `logs/NAME.log`,
    nnU-Net's progress lines to `log`.

    Raises:
        InputError: the command failed, naming it, its exit code, its log and the log's last line.
    """
    executable = Path(sys.executable).parent / args[0]
    log_path = logs / f"{name}.log"
    log_path.parent.mkdir(exist_ok=True)
    started = time.monotonic()
    with open(log_path, "w") as log_file:
        log_file.write(f"$ {' '.join(args)}\n")
        process = subprocess.Popen(
            [str(executable), *args[1:]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log_file.write(line)
            if _PROGRESS.match(line.strip()):
                log(f"    {line.strip()}")
        code = process.wait()
    if code != 0:
        tail = log_path.read_text().strip().splitlines()[-1:] or [""]
        raise InputError(f"{args[0]} failed (exit {code}, see {log_path}): {tail[0][:300]}")
    log(f"    done in {time.monotonic() - started:.0f} s (log: {log_path.relative_to(logs.parent)})")
