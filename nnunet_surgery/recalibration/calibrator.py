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
from nnunet_surgery.cases.dataset import check_file_ending
from nnunet_surgery.cases.staging import write_text_atomic
from nnunet_surgery.recalibration.logits import logits_from_probabilities, probabilities_from_logits
from nnunet_surgery.recalibration.objective import METHODS, SCALE_MIN, Method, Parameters

__all__ = [
    "BIAS_LIMIT",
    "FORMAT",
    "TEMPERATURE_RANGE",
    "VERSION",
    "Calibrator",
    "FitSummary",
    "read_calibrator",
]

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

    def transform(self, probabilities: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Recalibrated probabilities of one map.

        Args:
            probabilities: `(C, *spatial)` probabilities of this calibrator's layout, checked.
            out: a C-contiguous array of the same shape and dtype written into (`probabilities` itself to
                transform in place: each chunk of voxels is read before it is overwritten); default: a new one.

        Returns:
            `(C, *spatial)` probabilities in the input's dtype: `softmax(z / T + b)` or `sigmoid(z / T + b)`
            per channel, `z` the recovered logits (`logits_from_probabilities`).
        """
        softmax = not self.region_based
        flat = probabilities.reshape(probabilities.shape[0], -1)
        out = np.empty(flat.shape, dtype=probabilities.dtype) if out is None else out.reshape(flat.shape)
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


#: Temperatures a calibrator may hold: at most the fit's limit 1 / SCALE_MIN = 1000; at least 1e-6, where the
#: scaled logits (at most ~750 in magnitude, float64) stay finite.
TEMPERATURE_RANGE = (1e-6, 1.0 / SCALE_MIN)
#: Largest bias magnitude (a fit's biases are a few units; larger ones only overflow the logits).
BIAS_LIMIT = 1e6
#: Most channels a layout may declare (nnU-Net's label values are stored as uint8 by most of its writers).
MAX_CHANNELS = 1 << 12
_TOP_KEYS = {
    "temperature": {"format", "version", "method", "temperature", "layout", "fit"},
    "vector": {"format", "version", "method", "temperatures", "biases", "layout", "fit"},
}
_LAYOUT_KEYS = ("n_channels", "region_based", "names", "file_ending")
#: FitSummary's fields and the JSON types each may hold (checked, never used by `apply`)
_FIT_TYPES: dict[str, tuple[type, ...]] = {
    "cases": (int,),
    "voxels": (int,),
    "nll_before": (int, float),
    "nll_after": (int, float),
    "passes": (int,),
    "newton_decrement": (int, float),
    "saturated_fraction": (int, float),
    "roi": (str,),
    "folders": (list,),
    "at_bound": (bool,),
}


def _number(path: Path, key: str, value: object, low: float, high: float) -> float:
    """`value` as a float, if it is a JSON number (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{path}: {key!r} must be a number, but is {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not low <= number <= high:
        raise InputError(
            f"{path}: {key!r} must be a finite number in [{low:g}, {high:g}], but is {_shown(value)}"
        )
    return number


def _numbers(path: Path, key: str, value: object, length: int, low: float, high: float) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != length:
        raise InputError(
            f"{path}: {key!r} must be a list of {length} numbers (one per channel), but is {_shown(value)}"
        )
    return tuple(_number(path, f"{key}[{i}]", v, low, high) for i, v in enumerate(value))


def _shown(value: object) -> str:
    """A value from the file, shortened for a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _check_keys(path: Path, where: str, content: dict, allowed: set[str] | tuple[str, ...]) -> None:
    unknown = sorted(set(content) - set(allowed))
    if unknown:
        raise InputError(
            f"{path}: unknown key {_shown(unknown[0])} in {where} (expected {', '.join(sorted(allowed))})"
        )


def _check_fit(path: Path, fit: object) -> None:
    """The informative `fit` object: known keys, each of its type, numbers finite."""
    if not isinstance(fit, dict):
        raise InputError(
            f"{path}: 'fit' must be an object (how the calibrator was fitted), but is {_shown(fit)}"
        )
    _check_keys(path, "'fit'", fit, tuple(_FIT_TYPES))
    for key, value in fit.items():
        types = _FIT_TYPES[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise InputError(f"{path}: fit {key!r} has the wrong type ({_shown(value)})")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{path}: fit {key!r} must be finite, but is {value!r}")
        if isinstance(value, list) and not all(isinstance(folder, str) for folder in value):
            raise InputError(f"{path}: fit {key!r} must be a list of folder names")


def _layout(path: Path, layout: object) -> tuple[int, bool, tuple[str, ...], str]:
    """`(n_channels, region_based, names, file_ending)` of the `layout` object, each checked."""
    if not isinstance(layout, dict):
        raise InputError(f"{path}: missing 'layout' (n_channels, region_based, names, file_ending)")
    _check_keys(path, "'layout'", layout, _LAYOUT_KEYS)
    n_channels, region_based, names, file_ending = (layout.get(key) for key in _LAYOUT_KEYS)
    if isinstance(n_channels, bool) or not isinstance(n_channels, int) or not 1 <= n_channels <= MAX_CHANNELS:
        raise InputError(
            f"{path}: layout 'n_channels' must be an integer in [1, {MAX_CHANNELS}], but is {_shown(n_channels)}"
        )
    if not isinstance(region_based, bool):
        raise InputError(
            f"{path}: layout 'region_based' must be true or false, but is {_shown(region_based)}"
        )
    if not region_based and n_channels < 2:
        raise InputError(f"{path}: a softmax layout needs at least 2 channels, but has {n_channels}")
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InputError(f"{path}: layout 'names' must be a list of label names, but is {_shown(names)}")
    foreground = n_channels if region_based else n_channels - 1
    if len(names) != foreground:
        kind = "one per region" if region_based else "one per foreground label"
        raise InputError(
            f"{path}: layout 'names' must hold {foreground} names ({kind} of {n_channels} channels), but holds {len(names)}"
        )
    ending = check_file_ending(file_ending, f"{path}: layout 'file_ending'")
    return n_channels, region_based, tuple(names), ending


def read_calibrator(path: str | Path) -> Calibrator:
    """Read and check a CALIBRATOR.json written by `nnunet-surgery recalibrate fit`, whole: a calibrator is
    a file people share, so nothing in it is trusted (docs/recalibration.md#calibrator-json).

    Checked: the format and version; only known keys, at every level; the method; temperatures finite in
    TEMPERATURE_RANGE and biases within BIAS_LIMIT, one per channel; the layout (a channel count, softmax or
    regions, one name per foreground channel, and a file ending nnU-Net writes images with: never a path,
    never ".npz", so that the segmentations `apply` copies cannot overwrite what it writes); and the fit
    summary's types.

    Raises:
        InputError: the first thing wrong, in one line naming the file and the key.
    """
    path = Path(path)
    content = read_json(path, "the calibrator")
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise InputError(
            f'{path}: not a calibrator of nnunet-surgery recalibrate fit (no "format": {FORMAT!r})'
        )
    version = content.get("version")
    if isinstance(version, bool) or version != VERSION:
        raise InputError(
            f"{path}: calibrator version {_shown(version)} is not supported (this nnunet-surgery reads "
            f"version {VERSION})"
        )
    method = content.get("method")
    if not isinstance(method, str) or method not in METHODS:
        raise InputError(f"{path}: 'method' must be one of {', '.join(METHODS)}, but is {_shown(method)}")
    _check_keys(path, "the calibrator", content, _TOP_KEYS[method])
    n_channels, region_based, names, file_ending = _layout(path, content.get("layout"))
    if "fit" in content:
        _check_fit(path, content["fit"])
    if method == "temperature":
        temperature = _number(path, "temperature", content.get("temperature"), *TEMPERATURE_RANGE)
        temperatures, biases = (temperature,) * n_channels, (0.0,) * n_channels
    else:
        temperatures = _numbers(
            path, "temperatures", content.get("temperatures"), n_channels, *TEMPERATURE_RANGE
        )
        biases = _numbers(path, "biases", content.get("biases"), n_channels, -BIAS_LIMIT, BIAS_LIMIT)
    return Calibrator(
        method=method,
        temperatures=temperatures,
        biases=biases,
        n_channels=n_channels,
        region_based=region_based,
        names=names,
        file_ending=file_ending,
        fit=None,
    )
