"""The main job: synthetic dataset -> plan/preprocess -> train -> predict -> recalibrate -> maps -> report.

Every step is one of nnU-Net's own commands (or ours) run in a subprocess with nnU-Net's environment
variables pointing into the output folder, so the demo shows exactly what a user runs by hand:

    OUT_DIR/
      demo.json                    the settings of this run (a rerun must match them: it resumes)
      nnUNet_raw/Dataset99X_Synthetic.../       imagesTr, labelsTr, imagesTs, labelsTs, truthTs
      nnUNet_preprocessed/, nnUNet_results/      nnU-Net's folders
      trainers/demo_trainers.py    short-schedule subclasses (class attributes), on nnUNet_extTrainer
      predictions/TRAINER/         nnUNetv2_predict --save_probabilities output
      calibrators/TRAINER.json     nnunet-surgery recalibrate fit on the trainer's validation fold
      predictions/TRAINER+temperature/   nnunet-surgery recalibrate apply output
      report/                      nnunet-surgery report output (tables, reliability diagrams, gallery/)
      maps/TRAINER/CASE/           nnunet-surgery maps output: probability and entropy NIfTI files
      logs/                        the full output of every command

    datasets   the built-in synthetic datasets
    settings   what determines a run (DemoSettings: dataset, trainers, schedule)
    folders    where each result lies (RunFolders)
    shell      one console script run with nnU-Net's environment, logged
    run        the run: its folder claimed, its environment, its trainer module (DemoRun)
    steps      the table of steps and the one loop that runs them (run_steps, demo_steps, run_demo)
"""

from __future__ import annotations

from nnunet_surgery.cases import InputError
from nnunet_surgery.demo.datasets import DATASETS, SHAPE_2D, SHAPE_3D, SPACING_3D, DatasetVariant
from nnunet_surgery.demo.folders import RunFolders
from nnunet_surgery.demo.run import DemoRun
from nnunet_surgery.demo.settings import (
    RECALIBRATION,
    STOCK_TRAINER,
    DemoSettings,
    demo_trainers,
    recalibrated_name,
)
from nnunet_surgery.demo.steps import Step, demo_steps, report_holds, run_demo, run_steps

__all__ = [
    "DATASETS",
    "RECALIBRATION",
    "SHAPE_2D",
    "SHAPE_3D",
    "SPACING_3D",
    "STOCK_TRAINER",
    "DatasetVariant",
    "DemoError",
    "DemoRun",
    "DemoSettings",
    "RunFolders",
    "Step",
    "demo_steps",
    "demo_trainers",
    "recalibrated_name",
    "report_holds",
    "run_demo",
    "run_steps",
]

#: The demo's earlier name of `InputError` (a demo run that cannot go on, in one line naming what was wrong).
DemoError = InputError
