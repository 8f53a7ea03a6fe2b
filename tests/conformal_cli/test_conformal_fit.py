"""`nnunet-surgery conformal fit`: the threshold in CONFORMAL.json is the serial reference's
(`conformal.fit_fnr_threshold`) and the brute-force search's over every candidate, for labels and regions,
whatever `-np`; the document reads back through `risk_control.read_conformal`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conformal_folders import LABELS, run_conformal
from conformal_reference import brute_force_threshold

from nnunet_surgery.cases import load_dataset_json
from nnunet_surgery.conformal import fit_fnr_threshold
from nnunet_surgery.risk_control import read_conformal


def _label_cases(dataset, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(probability (N,), reference (N,) bool) of label `name` in every calibration case."""
    layout = load_dataset_json(dataset.dataset_json).layout
    index = layout.names.index(name)
    return [
        (
            dataset.probabilities[case][layout.channels[index]].ravel(),
            np.isin(dataset.references[case], layout.members[index]).ravel(),
        )
        for case in dataset.calibration_cases
    ]


def _fit(dataset, output, *extra: str) -> dict:
    assert (
        run_conformal(
            "fit",
            str(dataset.gt),
            *map(str, dataset.folds),
            "-djfile",
            str(dataset.dataset_json),
            "-o",
            str(output),
            *extra,
        )
        == 0
    )
    return json.loads(output.read_text())


@pytest.mark.parametrize("kind", ["labels", "regions"])
@pytest.mark.parametrize("alpha", [0.1, 0.25])
def test_cli_threshold_equals_the_serial_reference_and_brute_force(conformal_dataset, tmp_path, kind, alpha):
    dataset = conformal_dataset(kind)
    content = _fit(dataset, tmp_path / "conformal.json", "--alpha", str(alpha), "-np", "1")
    names = [name for name, value in LABELS[kind].items() if value != 0]
    assert sorted(content["labels"]) == sorted(names)
    for name in names:
        cases = _label_cases(dataset, name)
        serial = fit_fnr_threshold(lambda cases=cases: [[case] for case in cases], alpha)
        brute, feasible = brute_force_threshold(cases, alpha)
        fitted = content["labels"][name]
        assert fitted["threshold"] == serial.threshold == brute
        assert fitted["feasible"] is feasible is True
        assert fitted["n"] == fitted["n_cases"] == len(dataset.calibration_cases)
        assert fitted["risk_curve"]["mean_fnr"] == serial.to_dict()["risk_curve"]["mean_fnr"]
        assert 0 < fitted["threshold"] < 1  # the synthetic cases put t_hat inside, where pass 2 decides


def test_the_result_does_not_depend_on_the_number_of_processes(conformal_dataset, tmp_path):
    dataset = conformal_dataset("labels", n_calibration=10)
    one = _fit(dataset, tmp_path / "one.json", "--alpha", "0.2", "-np", "1")
    two = _fit(dataset, tmp_path / "two.json", "--alpha", "0.2", "-np", "2")
    assert one == two


def test_exclude_leaves_empty_references_out_of_n(conformal_dataset, tmp_path):
    dataset = conformal_dataset("labels", empty=3)
    content = _fit(
        dataset, tmp_path / "c.json", "--alpha", "0.2", "--empty-references", "exclude", "-np", "1"
    )
    for name, fitted in content["labels"].items():
        cases = _label_cases(dataset, name)
        n_empty = sum(not reference.any() for _, reference in cases)
        assert n_empty >= 3
        assert fitted["n"] == len(cases) - n_empty and fitted["n_empty_reference"] == n_empty
        assert fitted["threshold"] == brute_force_threshold(cases, 0.2, "exclude")[0]


def test_labels_selects_and_the_document_reads_back(conformal_dataset, tmp_path):
    dataset = conformal_dataset("labels")
    output = tmp_path / "lesion.json"
    content = _fit(dataset, output, "--alpha", "0.1", "--labels", "lesion", "-np", "1")
    assert list(content["labels"]) == ["lesion"] and content["labels"]["lesion"]["channel"] == 2
    document = read_conformal(output)
    assert [(label.name, label.channel, label.members) for label in document.labels] == [("lesion", 2, (2,))]
    assert document.labels[0].threshold == content["labels"]["lesion"]["threshold"]
    assert document.dataset["labels"] == LABELS["labels"] and document.file_ending == ".nii.gz"
    assert document.calibration["n_cases"] == len(dataset.calibration_cases)


def test_too_few_cases_for_alpha_is_infeasible_and_says_so(conformal_dataset, tmp_path, capsys):
    dataset = conformal_dataset("labels", n_calibration=6, empty=0)  # 1/(n+1) = 1/7 > 0.1
    content = _fit(dataset, tmp_path / "c.json", "--alpha", "0.1", "-np", "1")
    assert all(not fitted["feasible"] and fitted["threshold"] == 0.0 for fitted in content["labels"].values())
    assert "infeasible" in capsys.readouterr().out


def test_voxels_of_the_ignore_label_are_left_out(conformal_dataset, tmp_path):
    from conformal_folders import write_image

    dataset = conformal_dataset("labels")
    content = json.loads(dataset.dataset_json.read_text())
    content["labels"]["ignore"] = 3
    dataset.dataset_json.write_text(json.dumps(content))
    rng = np.random.default_rng(5)
    kept = {}
    for case in dataset.calibration_cases:  # a quarter of each reference becomes "ignore"
        ignored = rng.random(dataset.references[case].shape) < 0.25
        write_image(dataset.gt / f"{case}.nii.gz", np.where(ignored, 3, dataset.references[case]))
        kept[case] = ~ignored.ravel()
    fitted = _fit(dataset, tmp_path / "c.json", "--alpha", "0.2", "-np", "1")["labels"]
    assert sorted(fitted) == ["lesion", "organ"]
    for name in ("organ", "lesion"):
        cases = [
            (probability[kept[case]], reference[kept[case]])
            for case, (probability, reference) in zip(dataset.calibration_cases, _label_cases(dataset, name))
        ]
        assert fitted[name]["threshold"] == brute_force_threshold(cases, 0.2)[0]
        assert fitted[name]["threshold"] != brute_force_threshold(_label_cases(dataset, name), 0.2)[0]
