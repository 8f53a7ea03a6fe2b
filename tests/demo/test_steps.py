"""The demo's table of steps and its one loop: a step whose result is there is kept, any other runs and
must leave its result; the table's tests point at the run folder's layout. No nnU-Net command runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunet_surgery.cases import InputError
from nnunet_surgery.demo import DemoRun, DemoSettings, recalibrated_name
from nnunet_surgery.demo.steps import Step, demo_steps, report_holds, run_steps


def _step(name: str, results: set[str], calls: list[str], makes: bool = True) -> Step:
    def command() -> None:
        calls.append(name)
        if makes:
            results.add(name)

    return Step(name, lambda: name in results, command, f"making {name}")


def test_steps_whose_result_is_there_are_kept_and_the_others_run_in_order() -> None:
    results, calls, lines, finished = {"b"}, [], [], []
    steps = [_step(name, results, calls) for name in "abc"]
    run_steps(steps, lines.append, on_finished=lambda step, seconds: finished.append(step.name))
    assert calls == ["a", "c"] and finished == ["a", "c"]
    assert lines == ["[a] making a", "[b] finished before, kept", "[c] making c"]
    calls.clear()
    run_steps(steps, lines.append)  # everything there: a rerun runs nothing
    assert calls == []


def test_a_step_that_leaves_no_result_stops_the_run_naming_it() -> None:
    results, calls = set(), []
    steps = [_step("a", results, calls, makes=False), _step("b", results, calls)]
    with pytest.raises(InputError, match=r"^\[a\] finished without its result"):
        run_steps(steps, lambda line: None)
    assert calls == ["a"]


def test_the_demo_table_and_the_fidelity_bench_table(tmp_path: Path) -> None:
    settings = DemoSettings(trainers=("SurgeryTrainer", "nnUNetTrainer"))
    run = DemoRun(tmp_path, settings, log=lambda line: None)
    names = [step.name for step in demo_steps(run)]
    assert names == [
        "dataset",
        "preprocess",
        "trainers",
        "train 1/2 Demo_SurgeryTrainer",
        "validate Demo_SurgeryTrainer",
        "train 2/2 Demo_nnUNetTrainer",
        "validate Demo_nnUNetTrainer",
        "predict SurgeryTrainer",
        "predict nnUNetTrainer",
        "recalibrate fit SurgeryTrainer",
        "recalibrate apply SurgeryTrainer+temperature",
        "recalibrate fit nnUNetTrainer",
        "recalibrate apply nnUNetTrainer+temperature",
        "recalibrate validation SurgeryTrainer",
        "recalibrate validation nnUNetTrainer",
        "conformal fit SurgeryTrainer",
        "conformal fit nnUNetTrainer",
        "conformal fit SurgeryTrainer+temperature",
        "conformal fit nnUNetTrainer+temperature",
        "maps SurgeryTrainer",
        "maps nnUNetTrainer",
        "report",
    ]
    bench = [step.name for step in demo_steps(run, recalibrate=("nnUNetTrainer",), maps=False, gallery=False)]
    assert [name for name in bench if name.startswith(("recalibrate", "maps", "conformal"))] == [
        "recalibrate fit nnUNetTrainer",
        "recalibrate apply nnUNetTrainer+temperature",
        "recalibrate validation nnUNetTrainer",
        "conformal fit SurgeryTrainer",
        "conformal fit nnUNetTrainer",
        "conformal fit nnUNetTrainer+temperature",
    ]
    plain = [step.name for step in demo_steps(run, conformal=False)]
    assert [name for name in names if name not in plain] == [
        name for name in names if name.startswith(("conformal", "recalibrate validation"))
    ]
    assert not any(step.done() for step in demo_steps(run))  # an empty folder holds no result


def test_the_done_tests_read_the_run_folder(tmp_path: Path) -> None:
    run = DemoRun(tmp_path, DemoSettings(trainers=("SurgeryTrainer",)), log=lambda line: None)
    steps = {step.name: step for step in demo_steps(run)}
    folders = run.folders
    folders.results_folder("SurgeryTrainer").mkdir(parents=True)
    (folders.results_folder("SurgeryTrainer") / "checkpoint_final.pth").write_bytes(b"")
    assert steps["train 1/1 Demo_SurgeryTrainer"].done()
    assert not steps["validate Demo_SurgeryTrainer"].done()  # trained, not yet validated with --npz
    folders.validation("SurgeryTrainer").mkdir()
    (folders.validation("SurgeryTrainer") / "summary.json").write_text("{}")
    (folders.validation("SurgeryTrainer") / "case_000.npz").write_bytes(b"")
    assert steps["validate Demo_SurgeryTrainer"].done()
    folders.predictions("SurgeryTrainer").mkdir(parents=True)
    (folders.predictions("SurgeryTrainer") / "case_000.npz").write_bytes(b"")
    assert steps["predict SurgeryTrainer"].done() and not steps["maps SurgeryTrainer"].done()
    (folders.maps("SurgeryTrainer") / "case_000").mkdir(parents=True)
    assert steps["maps SurgeryTrainer"].done()
    assert not steps["trainers"].done()
    run.write_trainers()
    assert steps["trainers"].done()
    assert not steps["conformal fit SurgeryTrainer"].done()
    folders.conformal("SurgeryTrainer").parent.mkdir()
    folders.conformal("SurgeryTrainer").write_text("{}")
    assert steps["conformal fit SurgeryTrainer"].done()
    assert not steps["recalibrate validation SurgeryTrainer"].done()
    folders.recalibrated_validation("SurgeryTrainer").mkdir(parents=True)
    assert steps["recalibrate validation SurgeryTrainer"].done()


def test_report_holds_exactly_the_models_in_order(tmp_path: Path) -> None:
    models = ["SurgeryTrainer", recalibrated_name("SurgeryTrainer")]
    assert not report_holds(tmp_path, models)  # no calibration.json
    document = {"model_order": models, "label_names": ["lesion"], "models": {}}
    (tmp_path / "calibration.json").write_text(json.dumps(document))
    assert report_holds(tmp_path, models) and report_holds(tmp_path / "calibration.json", models)
    assert not report_holds(tmp_path, models[::-1]) and not report_holds(tmp_path, models[:1])
    assert not report_holds(tmp_path, models, conformal=True)  # a report without the conformal masks
    document["conformal"] = {"models": {model: {} for model in sorted(models, reverse=True)}}  # any order
    (tmp_path / "calibration.json").write_text(json.dumps(document))
    assert report_holds(tmp_path, models, conformal=True) and report_holds(tmp_path, models)
    document["conformal"] = {"models": {models[0]: {}}}
    (tmp_path / "calibration.json").write_text(json.dumps(document))
    assert not report_holds(tmp_path, models, conformal=True)
    (tmp_path / "calibration.json").write_text("{")
    assert not report_holds(tmp_path, models)
