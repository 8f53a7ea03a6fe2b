"""Tiny nnU-Net datasets in a temporary nnU-Net root, planned and preprocessed by nnU-Net's own command.

The session fixtures `label_dataset` and `region_dataset` (tests/conftest.py) build them once per session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from nnunet_surgery.commands.trainers_dir import trainers_dir
from nnunet_surgery.synthetic import generate_dataset

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class NnUNetDataset:
    """A raw + preprocessed nnU-Net dataset in a temporary nnU-Net root."""

    dataset_id: int
    raw: Path
    root: Path

    def env(self, ext_dirs: tuple[Path, ...] = ()) -> dict[str, str]:
        """Environment for nnU-Net's commands: paths, our trainers (plus `ext_dirs`), CPU-friendly pools."""
        env = dict(os.environ)
        env.update(
            nnUNet_raw=str(self.root / "raw"),
            nnUNet_preprocessed=str(self.root / "preprocessed"),
            nnUNet_results=str(self.root / "results"),
            nnUNet_extTrainer=os.pathsep.join(str(p) for p in (*ext_dirs, trainers_dir())),
            nnUNet_def_n_proc="2",
            nnUNet_compile="false",
            OMP_NUM_THREADS="2",
        )
        return env

    @property
    def preprocessed(self) -> Path:
        return self.root / "preprocessed" / self.raw.name

    def plans(self) -> dict:
        plans = json.loads((self.preprocessed / "nnUNetPlans.json").read_text())
        plans["continue_training"] = False  # nnU-Net's get_trainer_from_args adds this key
        return plans

    def dataset_json(self) -> dict:
        return json.loads((self.preprocessed / "dataset.json").read_text())


def run_nnunet(command: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run one of nnU-Net's console scripts from this venv; fail the test with its output if it fails."""
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def prepared_dataset(root: Path, dataset_id: int, regions: bool) -> NnUNetDataset:
    """A 2D 64x64 synthetic dataset (6 training, 2 test cases), planned and preprocessed for `2d`."""
    raw = generate_dataset(
        root / "raw",
        dataset_id=dataset_id,
        num_train=6,
        num_test=2,
        shape=(64, 64),
        seed=dataset_id,
        regions=regions,
        num_classes=2 if regions else 1,
    )
    dataset = NnUNetDataset(dataset_id, raw, root)
    run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "2d", "-np", "2"], dataset.env())
    return dataset
