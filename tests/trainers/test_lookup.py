"""The trainers are found by nnU-Net's own lookup through `nnUNet_extTrainer`, at train and predict time."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

import nnunet_surgery
import nnunet_surgery.trainers
from nnunet_surgery.commands.trainers_dir import trainers_dir
from nnunet_surgery.trainers import TRAINERS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("trainer", TRAINERS, ids=lambda t: t.__name__)
def test_every_trainer_resolves_through_nnunet_lookup(trainer: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("nnUNet_extTrainer", str(trainers_dir()))
    found = recursive_find_trainer_class_by_name(trainer.__name__)
    assert found is trainer
    assert issubclass(found, nnUNetTrainer)


def test_shim_module_exposes_exactly_the_registered_trainers() -> None:
    shim = importlib.import_module("nnunet_surgery._ext_trainers.nnunet_surgery_trainers")
    public = {name: value for name, value in vars(shim).items() if not name.startswith("_")}
    assert public == {cls.__name__: cls for cls in TRAINERS}
    assert shim.__all__ == [cls.__name__ for cls in TRAINERS]


def test_nnunet_lookup_over_the_trainers_dir_finds_each_registered_trainer_and_nothing_else() -> None:
    """nnU-Net's own search of one ext folder, as `recursive_find_trainer_class_by_name` runs it."""
    folder = str(trainers_dir())

    def lookup(name: str):
        return recursive_find_python_class(
            folder, name, None, base_folder=folder, cleanup_imports_from_base_folder=True
        )

    for trainer in TRAINERS:
        assert lookup(trainer.__name__) is trainer
    # the package's other public names (abstract base, mixin, registry) are not trainers nnU-Net may pick
    others = set(nnunet_surgery.trainers.__all__) - {cls.__name__ for cls in TRAINERS}
    assert others >= {"LossRecipeTrainer", "ScheduleMixin", "TRAINERS"}
    for name in sorted(others):
        assert lookup(name) is None, name


def test_trainer_names_do_not_clash_with_nnunet_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    for trainer in TRAINERS:
        with pytest.raises(RuntimeError, match="Could not find requested nnunet trainer"):
            recursive_find_trainer_class_by_name(trainer.__name__)


def test_trainers_dir_command_prints_the_ext_folder() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nnunet_surgery.cli", "trainers-dir"],
        capture_output=True,
        text=True,
        check=True,
    )
    folder = Path(result.stdout.strip())
    assert folder.is_absolute() and folder == trainers_dir()
    modules = [p.stem for p in folder.glob("*.py") if p.stem != "__init__"]
    assert modules and "nnunet_surgery" not in modules  # nnU-Net imports these as top-level names


def test_pyproject_lists_every_package() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    root = Path(nnunet_surgery.__file__).parent
    on_disk = {
        ".".join(("nnunet_surgery", *p.parent.relative_to(root).parts)) for p in root.rglob("__init__.py")
    }
    assert on_disk | {"nnunet_surgery._ext_trainers"} == listed
