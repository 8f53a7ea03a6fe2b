"""A fitted calibrator: what it does to a probability map, and its JSON file (CALIBRATOR.json).

The file states its format and version, the method and its parameters (`"temperature": T`, or per channel
`"temperatures"` and `"biases"`), the channel layout it was fitted for (softmax labels or sigmoid regions,
their names, the dataset's file ending) and how the fit went. `apply` refuses probability maps of another
layout; `read_calibrator` refuses any other file with a one-line error (docs/recalibration.md#calibrator-json).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nnunet_surgery.cases import InputError, read_json, voxel_chunks
from nnunet_surgery.cases.staging import write_text_atomic
from nnunet_surgery.recalibration.logits import logits_from_probabilities, probabilities_from_logits
from nnunet_surgery.recalibration.objective import METHODS, Method, Parameters

__all__ = ["FORMAT", "VERSION", "Calibrator", "FitSummary", "read_calibrator"]

#: values (channels x voxels) transformed at once: float64 logits of a few tens of MB per chunk
TRANSFORM_CHUNK_ELEMENTS = 1 << 22

FORMAT = "nnunet-surgery calibrator"
VERSION = 1


@dataclass(frozen=True)
class FitSummary:
    """How a calibrator was fitted (informative; `apply` does not use it).

    Attributes:
        cases: cases fitted on.
        voxels: ROI voxels fitted on.
        nll_before: mean NLL per voxel (nats; summed over regions) before recalibration.
        nll_after: the same after.
        passes: passes over the data.
        newton_decrement: predicted NLL still to gain, nats per voxel, where the fit stopped.
        saturated_fraction: fraction of probability values clamped (docs/recalibration.md#saturated-probabilities).
        roi: the `--roi` used.
        folders: the prediction folders fitted on.
        at_bound: a temperature stopped at its limit of 1000 (`objective.SCALE_MIN`): the probabilities carry
            (almost) no information on the labels, or rank voxels against them.
    """

    cases: int
    voxels: int
    nll_before: float
    nll_after: float
    passes: int
    newton_decrement: float
    saturated_fraction: float
    roi: str
    folders: tuple[str, ...]
    at_bound: bool = False


@dataclass(frozen=True)
class Calibrator:
    """Temperature or vector scaling of the logits recovered from probability maps.

    Attributes:
        method: "temperature" (one `T` for every channel) or "vector" (a temperature and a bias per channel).
        temperatures: `T_k` per channel (all equal for "temperature").
        biases: `b_k` per channel (all 0 for "temperature"; `b_0 = 0` for softmax).
        n_channels: channels of the probability maps it applies to.
        region_based: sigmoid regions (else softmax labels).
        names: label or region name of each foreground entry (dataset.json).
        file_ending: the dataset's segmentation file ending (the segmentations `apply` copies).
        fit: how it was fitted, or None.
    """

    method: Method
    temperatures: tuple[float, ...]
    biases: tuple[float, ...]
    n_channels: int
    region_based: bool
    names: tuple[str, ...]
    file_ending: str
    fit: FitSummary | None = None

    @property
    def parameters(self) -> Parameters:
        return Parameters(self.method, self.n_channels, not self.region_based)

    def transform(self, probabilities: np.ndarray) -> np.ndarray:
        """Recalibrated probabilities of one map.

        Args:
            probabilities: `(C, *spatial)` probabilities of this calibrator's layout, checked.

        Returns:
            `(C, *spatial)` probabilities in the input's dtype: `softmax(z / T + b)` or `sigmoid(z / T + b)`
            per channel, `z` the recovered logits (`logits_from_probabilities`).
        """
        softmax = not self.region_based
        flat = probabilities.reshape(probabilities.shape[0], -1)
        out = np.empty(flat.shape, dtype=probabilities.dtype)
        scale = 1.0 / np.asarray(self.temperatures)[:, None]
        bias = np.asarray(self.biases)[:, None]
        for chunk in voxel_chunks(flat.shape[1], flat.shape[0], TRANSFORM_CHUNK_ELEMENTS):
            logits = logits_from_probabilities(flat[:, chunk], softmax=softmax) * scale + bias
            out[:, chunk] = probabilities_from_logits(logits, softmax=softmax)
        return out.reshape(probabilities.shape)

    def as_json(self) -> dict:
        """The CALIBRATOR.json object."""
        content: dict = {"format": FORMAT, "version": VERSION, "method": self.method}
        if self.method == "temperature":
            content["temperature"] = self.temperatures[0]
        else:
            content["temperatures"] = list(self.temperatures)
            content["biases"] = list(self.biases)
        content["layout"] = {
            "n_channels": self.n_channels,
            "region_based": self.region_based,
            "names": list(self.names),
            "file_ending": self.file_ending,
        }
        if self.fit is not None:
            content["fit"] = {**asdict(self.fit), "folders": list(self.fit.folders)}
        return content

    def write(self, path: str | Path) -> None:
        """Write CALIBRATOR.json atomically (a temporary file beside it, then renamed)."""
        write_text_atomic(path, json.dumps(self.as_json(), indent=2) + "\n", "the calibrator")


def _number(path: Path, key: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{path}: {key!r} must be a finite number, but is {value!r}")
    if positive and not value > 0:
        raise InputError(f"{path}: {key!r} must be positive, but is {value!r}")
    return float(value)


def _numbers(
    path: Path, key: str, value: object, length: int, *, positive: bool = False
) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != length:
        raise InputError(
            f"{path}: {key!r} must be a list of {length} numbers (one per channel), but is {value!r}"
        )
    return tuple(_number(path, f"{key}[{i}]", v, positive=positive) for i, v in enumerate(value))


def read_calibrator(path: str | Path) -> Calibrator:
    """Read and check a CALIBRATOR.json written by `nnunet-surgery recalibrate fit`.

    Raises:
        InputError: unreadable, not JSON, another format or version, an unknown method, or parameters that
            are missing, non-finite, non-positive temperatures or of the wrong length.
    """
    path = Path(path)
    content = read_json(path, "the calibrator")
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise InputError(
            f'{path}: not a calibrator of nnunet-surgery recalibrate fit (no "format": {FORMAT!r})'
        )
    if content.get("version") != VERSION:
        raise InputError(
            f"{path}: calibrator version {content.get('version')!r} is not supported (this nnunet-surgery reads "
            f"version {VERSION})"
        )
    method = content.get("method")
    if method not in METHODS:
        raise InputError(f"{path}: 'method' must be one of {', '.join(METHODS)}, but is {method!r}")
    layout = content.get("layout")
    if not isinstance(layout, dict):
        raise InputError(f"{path}: missing 'layout' (n_channels, region_based, names, file_ending)")
    n_channels = layout.get("n_channels")
    region_based = layout.get("region_based")
    names = layout.get("names")
    file_ending = layout.get("file_ending")
    if isinstance(n_channels, bool) or not isinstance(n_channels, int) or n_channels < 1:
        raise InputError(f"{path}: layout 'n_channels' must be a positive integer, but is {n_channels!r}")
    if not isinstance(region_based, bool):
        raise InputError(f"{path}: layout 'region_based' must be true or false, but is {region_based!r}")
    if not region_based and n_channels < 2:
        raise InputError(f"{path}: a softmax layout needs at least 2 channels, but has {n_channels}")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError(f"{path}: layout 'names' must be a list of label names, but is {names!r}")
    if not isinstance(file_ending, str) or not file_ending:
        raise InputError(f"{path}: layout 'file_ending' must be a file ending such as \".nii.gz\"")
    if method == "temperature":
        temperature = _number(path, "temperature", content.get("temperature"), positive=True)
        temperatures, biases = (temperature,) * n_channels, (0.0,) * n_channels
    else:
        temperatures = _numbers(path, "temperatures", content.get("temperatures"), n_channels, positive=True)
        biases = _numbers(path, "biases", content.get("biases"), n_channels)
    return Calibrator(
        method=method,
        temperatures=temperatures,
        biases=biases,
        n_channels=n_channels,
        region_based=region_based,
        names=tuple(names),
        file_ending=file_ending,
        fit=None,
    )
