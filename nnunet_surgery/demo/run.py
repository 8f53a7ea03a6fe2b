"""One demo run in its folder: claiming the folder (new, or a run with the same settings to resume), the
commands' environment and logs, and the short-schedule trainer module. What the run does is its table of
steps (`demo.steps`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from nnunet_surgery.cases import InputError
from nnunet_surgery.cases.staging import write_text_atomic
from nnunet_surgery.demo.folders import RunFolders
from nnunet_surgery.demo.settings import DemoSettings, trainer_module
from nnunet_surgery.demo.shell import environment, run_console_script

__all__ = ["DemoRun"]


class DemoRun:
    """One demo run in `out_dir`: its settings, its folders (`folders`), and a log for the user."""

    def __init__(self, out_dir: Path, settings: DemoSettings, log: Callable[[str], None] = print) -> None:
        self.out = Path(out_dir).resolve()
        self.settings = settings
        self.log = log
        self.folders = RunFolders(self.out, settings)

    def claim_output_dir(self) -> bool:
        """Create OUT_DIR, or check that it holds a run with the same settings; True if resuming.

        Raises:
            InputError: OUT_DIR is a file, holds something else or a run with other settings, or cannot be
                written.
        """
        state = self.folders.settings_file
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"-o {self.out}: exists and is not a folder")
        if state.is_file():
            try:
                previous = json.loads(state.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise InputError(
                    f"{state}: cannot read this demo run's settings ({error}); choose a new folder"
                ) from None
            if not isinstance(previous, dict):
                raise InputError(
                    f"{state}: expected the JSON object of a demo run's settings, but got {type(previous).__name__}; "
                    "choose a new folder"
                )
            changed = self.settings.changed_from(previous)
            if changed:
                raise InputError(
                    f"-o {self.out}: holds a demo run with other settings ({', '.join(changed)}); "
                    f"use another output folder or the same settings to resume"
                )
            return True
        if self.out.is_dir() and any(self.out.iterdir()):
            raise InputError(f"-o {self.out}: folder is not empty and holds no demo run; choose a new folder")
        text = json.dumps(self.settings.as_json(), indent=2, sort_keys=True)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(state, text, "the demo's settings")
        except OSError as error:
            raise InputError(
                f"-o {self.out}: cannot create or write the output folder ({error.strerror or error})"
            ) from None
        return False

    def env(self) -> dict[str, str]:
        """The environment of the run's commands (`shell.environment`)."""
        return environment(self.folders)

    def command(self, step: str, args: Sequence[str]) -> None:
        """Run a console script of this environment for `step` (`shell.run_console_script`)."""
        run_console_script(step, args, env=self.env(), logs=self.folders.logs, log=self.log)

    def trainers_written(self) -> bool:
        """Whether the run's trainer module holds these settings' trainers."""
        path = self.folders.trainer_module
        return path.is_file() and path.read_text() == trainer_module(self.settings)

    def write_trainers(self) -> None:
        """Write the short-schedule trainer module (`settings.trainer_module`) into `trainers/`.

        Raises:
            InputError: the folder or the module cannot be written, naming it.
        """
        folder = self.folders.trainers
        try:
            folder.mkdir(exist_ok=True)
        except OSError as error:
            raise InputError(
                f"{folder}: cannot create the demo's trainer folder ({error.strerror or error})"
            ) from None
        write_text_atomic(self.folders.trainer_module, trainer_module(self.settings), "the demo's trainers")
