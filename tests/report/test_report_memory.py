"""Streaming: peak traced memory of a report does not grow with the number of cases."""

from __future__ import annotations

import tracemalloc

import pytest

from nnunet_surgery.report import generate_report


@pytest.mark.usefixtures("no_plots")
def test_peak_memory_does_not_grow_with_the_number_of_cases(build, tmp_path):
    peaks = {}
    for n_cases in (2, 8):
        folders = build("multiclass", ((16, 48, 48),) * n_cases, n_models=2, seed=n_cases)
        generate_report(folders.gt, folders.preds[:1], folders.dataset_json, tmp_path / f"warm{n_cases}")
        tracemalloc.start()
        generate_report(folders.gt, folders.preds, folders.dataset_json, tmp_path / f"out{n_cases}")
        peaks[n_cases] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    one_case = 3 * 16 * 48 * 48 * 4  # bytes of one probability map
    assert peaks[2] > one_case  # the map itself is traced
    assert peaks[8] < 1.15 * peaks[2], peaks
