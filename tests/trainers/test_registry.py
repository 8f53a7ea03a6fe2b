"""One trainer registry: every list of trainer names (package, ext shim, demo) derives from it."""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys

import pytest

import nnunet_surgery.trainers
from nnunet_surgery.demo import STOCK_TRAINER, DemoError, DemoSettings, demo_trainers
from nnunet_surgery.trainers import FAMILIES, REGISTRY, TRAINERS, LossRecipeTrainer, baselines, surgical
from nnunet_surgery.trainers.registry import TrainerRegistry

#: The module that defines each family's trainers.
FAMILY_MODULES = {"surgical": surgical, "baseline": baselines}


def test_trainers_are_the_registered_classes_surgical_first_each_family_in_definition_order() -> None:
    assert set(FAMILY_MODULES) == set(FAMILIES)
    expected = []
    for family in FAMILIES:  # surgical, then baseline
        module = FAMILY_MODULES[family]
        defined = [
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and issubclass(value, LossRecipeTrainer)
            and value.__module__ == module.__name__
        ]
        expected += sorted(defined, key=lambda cls: inspect.getsourcelines(cls)[1])
    # every trainer class defined in surgical.py / baselines.py is registered, in its module's family
    assert TRAINERS == tuple(expected) == REGISTRY.classes()
    assert [REGISTRY.family(cls) for cls in TRAINERS] == [
        family for family in FAMILIES for _ in REGISTRY.classes(family)
    ]
    assert FAMILIES[0] == "surgical" and all(REGISTRY.classes(family) for family in FAMILIES)
    assert all(issubclass(cls, LossRecipeTrainer) for cls in TRAINERS)
    assert len({cls.__name__ for cls in TRAINERS}) == len(TRAINERS)


def test_package_exports_each_registered_trainer_under_its_name() -> None:
    names = [cls.__name__ for cls in TRAINERS]
    assert REGISTRY.names() == tuple(names)
    assert set(nnunet_surgery.trainers.__all__) == {
        "FAMILIES",
        "REGISTRY",
        "TRAINERS",
        "LossRecipeTrainer",
        "ScheduleMixin",
        *names,
    }
    for cls in TRAINERS:
        assert getattr(nnunet_surgery.trainers, cls.__name__) is cls
        assert cls.__name__ in FAMILY_MODULES[REGISTRY.family(cls)].__all__
    for family, module in FAMILY_MODULES.items():
        assert module.__all__ == list(REGISTRY.names(family))


def test_subclasses_of_a_registered_trainer_are_not_registered() -> None:
    user_trainer = type("SurgeryTrainer_250epochs", (TRAINERS[0],), {"num_epochs": 250})
    assert user_trainer not in REGISTRY.classes()
    with pytest.raises(KeyError, match="cls must be a registered trainer class"):
        REGISTRY.family(user_trainer)


def test_registry_orders_by_family_then_registration() -> None:
    registry = TrainerRegistry()
    made = {}
    for name, family in [("B1", "baseline"), ("S1", "surgical"), ("B2", "baseline"), ("S2", "surgical")]:
        made[name] = registry.register(family)(type(name, (), {}))
    assert registry.classes() == (made["S1"], made["S2"], made["B1"], made["B2"])
    assert registry.classes("baseline") == (made["B1"], made["B2"])
    assert registry.names("surgical") == ("S1", "S2")
    assert registry.family(made["B2"]) == "baseline"
    assert registry.register("surgical")(made["S1"]) is made["S1"]  # the same class again: no change
    assert registry.names() == ("S1", "S2", "B1", "B2")


def test_registry_rejects_an_unknown_family_and_a_second_class_of_the_same_name() -> None:
    registry = TrainerRegistry()
    with pytest.raises(ValueError, match="family must be one of surgical, baseline, but got 'other'"):
        registry.register("other")
    with pytest.raises(ValueError, match="family must be None or one of"):
        registry.classes("other")
    registry.register("surgical")(type("Twice", (), {}))
    with pytest.raises(ValueError, match="trainer name 'Twice' is registered already"):
        registry.register("baseline")(type("Twice", (), {}))
    assert registry.family(registry.classes()[0]) == "surgical"


# the demo's choices ---------------------------------------------------------------------------------------
def test_demo_trainers_are_nnunet_stock_trainer_and_every_registered_one() -> None:
    assert demo_trainers() == (STOCK_TRAINER, *(cls.__name__ for cls in TRAINERS))
    assert set(DemoSettings().trainers) <= set(demo_trainers())
    for name in demo_trainers():
        DemoSettings(trainers=(name,)).validate()  # accepted


def test_demo_rejects_an_unregistered_trainer_naming_every_valid_one() -> None:
    with pytest.raises(DemoError) as error:
        DemoSettings(trainers=(STOCK_TRAINER, "SurgeryTrainerTypo")).validate()
    message = str(error.value)
    assert "\n" not in message and message.startswith("--trainers must be distinct names from ")
    assert all(name in message for name in demo_trainers()) and "SurgeryTrainerTypo" in message


def test_demo_command_checks_trainer_names_and_its_help_imports_neither_torch_nor_nnunet(tmp_path) -> None:
    code = (
        "import argparse, sys\n"
        "from nnunet_surgery.commands import demo\n"
        "demo.add_arguments(argparse.ArgumentParser())\n"
        "heavy = sorted(m for m in ('torch', 'nnunetv2', 'numpy') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert light.stdout.strip() == "[]"

    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "nnunet_surgery.cli", "demo", "-o", str(out), "--trainers", "NoSuchTrainer"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    error = result.stderr.strip()
    assert error.count("\n") == 0 and error.startswith("nnunet-surgery demo: error: --trainers")
    assert all(name in error for name in demo_trainers())
    assert not out.exists()


def test_demo_parser_takes_any_trainer_name_and_leaves_the_check_to_validate() -> None:
    from nnunet_surgery.commands import demo

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["-o", "x", "--trainers", *demo_trainers()])
    assert tuple(args.trainers) == demo_trainers()
    assert parser.parse_args(["-o", "x"]).trainers == list(DemoSettings().trainers)
