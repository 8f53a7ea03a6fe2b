"""Smooth ECE (Blasiok and Nakkiran 2023) from a fine reliability histogram (docs/calibration.md#smooth-ece).

The smooth ECE at bandwidth sigma is the L1 norm of the kernel-smoothed residual f - y, divided by the
smoothed density, with the reflected Gaussian kernel; its bandwidth is the fixed point sigma* = smECE(sigma*).
This module computes it exactly as the reference implementation, `relplot.smECE` (relplot 1.0.3), does
on raw samples, but from mergeable per-bin sums: each fine bin's samples are placed at the bin's mean
confidence. Discretisation of relplot, for a bandwidth sigma:

1. Grid: E = max(2000, round(20 / sigma)) // 2 + 1 nodes g_j = j h, h = 1 / (E - 1). Each sample at f with
   weight r (the residual f - y, or 1 for the density) is split linearly between its two nodes:
   weight r (1 - u) at node j and r u at node j + 1, j = min(floor(f / h), E - 2), u = f / h - j.
2. Smoothing: s_i = sum_{|m| <= M} v[fold(i + m)] kappa_m, M = (E - 1) / 2, kappa_m = phi(m h / sigma) /
   (sqrt(2 pi) sigma) (the Gaussian density, truncated at |m h| <= 1/2), and fold reflects about the end
   nodes without repeating them: fold(x) = -x below 0, 2 (E - 1) - x above E - 1. So node j feeds s_i through
   the images x = j, -j (j >= 1) and 2 (E - 1) - j (j <= E - 2). A sample exactly at 0 or 1 thus gets half
   the smoothed mass of an interior one (its image coincides with itself and is counted once); we keep this.
3. Evaluation: A(t) and D(t), the smoothed residual and density linearly interpolated at T = max(round(10 /
   sigma), 200) points t = linspace(0, 1, T), and

       smECE_sigma = sum_t |A(t)| / (sum_t D(t) + T eps_D),       eps_D = 1e-4 (relplot's density offset)

4. Bandwidth: sigma = 1 if 1 < smECE_1, else 10 bisection steps on [0, 1] of the predicate
   "sigma < 0.001 or sigma < smECE_sigma", returning the upper end of the last bracket (where the predicate
   is false) and smECE at it.

Everything is linear in the per-bin sums up to the absolute value, so a fine bin b contributes its count
n_b and residual sum R_b = sum_i (f_i - y_i) at its mean confidence m_b = sum_i f_i / n_b: the result is
relplot's on the samples moved to m_b, bit for bit up to float64 summation order. The distance to relplot
on the raw samples is bounded by `binning_bound` (the bin width times the Lipschitz constant of the
discretised kernel, derived in docs/calibration.md#smooth-ece); point masses (p = 0, p = 1) are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.signal

__all__ = [
    "BANDWIDTH_FLOOR",
    "BISECTION_STEPS",
    "DENSITY_EPS",
    "SmoothECE",
    "binning_bound",
    "smooth_ece",
    "smooth_ece_at",
]

#: relplot's `eps` of `smECE`: bandwidths below it pass the fixed-point test without evaluation.
BANDWIDTH_FLOOR = 0.001
#: relplot's `refine` of the bandwidth bisection.
BISECTION_STEPS = 10
#: relplot's density offset in `smooth` (added to the smoothed density at each evaluation point).
DENSITY_EPS = 1e-4
# Above this many grid nodes the smoothing runs by FFT per row instead of one matrix of node responses.
_MATRIX_NODES = 2049
_CHUNK_VALUES = 2**22  # float64 values per temporary block (32 MiB)


@dataclass(frozen=True)
class SmoothECE:
    """Smooth ECE of each row, its bandwidth, and how close each bandwidth decision was.

    Attributes:
        value: (...) smooth ECE; NaN for rows without samples.
        sigma: (...) the bandwidth sigma* it was evaluated at.
        margin: (...) min over the evaluated bandwidths s of |smECE_s - s|: another input whose smECE_s
            differs by less than this at every s takes the same bisection path (same sigma*).
    """

    value: np.ndarray
    sigma: np.ndarray
    margin: np.ndarray


@dataclass(frozen=True)
class _Grid:
    """relplot's discretisation at one bandwidth (see the module docstring)."""

    sigma: float
    nodes: int  # E
    points: int  # T
    kernel: np.ndarray  # (E,) kappa at offsets (u - M) h, u = 0 .. E - 1
    left: np.ndarray  # (T,) lower node of each evaluation point
    frac: np.ndarray  # (T,) interpolation weight of the upper node

    @classmethod
    def at(cls, sigma: float) -> _Grid:
        points = max(round(10 / sigma), 200)
        nodes = max(2000, round(20 / sigma)) // 2 + 1
        offsets = np.linspace(0.0, 1.0, nodes) - 0.5
        kernel = np.exp(-offsets * offsets / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)
        t = np.linspace(0.0, 1.0, points)
        step = 1 / (nodes - 1)
        left = np.clip((t * (nodes - 1)).astype(np.intp), 0, nodes - 2)
        return cls(sigma, nodes, points, kernel, left, (t - left * step) / step)

    def deposit(self, location: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower node and upper-node weight of each location (relplot's linear split)."""
        scaled = location * (self.nodes - 1)
        node = np.clip(scaled.astype(np.intp), 0, self.nodes - 2)
        return node, scaled - node

    def responses(self, nodes: np.ndarray) -> np.ndarray:
        """(len(nodes), T): the evaluated smoothing of a unit weight at each node (its three images)."""
        half = self.nodes // 2  # relplot slices the convolution at E // 2 (E odd or even)
        j = nodes[:, None]
        out = np.zeros((nodes.size, self.points))
        for index, weight in ((self.left, 1.0 - self.frac), (self.left + 1, self.frac)):
            i = index[None, :]
            value = np.zeros_like(out)
            for image, valid in (
                (j, True),
                (-j, j >= 1),
                (2 * (self.nodes - 1) - j, j <= self.nodes - 2),
            ):
                position = half + i - image  # kernel index of offset image - i
                inside = valid & (position >= 0) & (position < self.nodes)
                value += np.where(inside, self.kernel[np.clip(position, 0, self.nodes - 1)], 0.0)
            out += value * weight[None, :]
        return out

    def smooth_rows(self, values: np.ndarray) -> np.ndarray:
        """(k, E) node weights -> (k, T) evaluated smoothing, by FFT (relplot's reflect-and-convolve)."""
        extended = np.concatenate([values[:, :0:-1], values, values[:, -2::-1]], axis=1)
        half = self.nodes // 2
        smoothed = scipy.signal.fftconvolve(extended, self.kernel[None, :], mode="valid", axes=1)
        smoothed = smoothed[:, half : half + self.nodes]
        return smoothed[:, self.left] * (1.0 - self.frac) + smoothed[:, self.left + 1] * self.frac


@dataclass(frozen=True)
class _Samples:
    """The occupied fine bins of (k, F) sums, per row: count, residual sum, mean location and the sums'
    first moments about the bin center (what the linear split needs, step 1)."""

    rows: int
    center: np.ndarray  # (B,) bin centers (b + 1/2) / F of the occupied bins
    half_width: float  # 1 / (2 F)
    count: np.ndarray  # (k, B)
    residual: np.ndarray  # (k, B) sum of f - y
    location: np.ndarray  # (k, B) mean confidence (the center where the row has no sample in the bin)
    count_offset: np.ndarray  # (k, B) count * (location - center)
    residual_offset: np.ndarray  # (k, B) residual * (location - center)
    empty: np.ndarray  # (k,) rows without samples

    @classmethod
    def of(cls, count, sum_confidence, sum_target) -> tuple[_Samples, tuple[int, ...]]:
        count = np.asarray(count, dtype=np.float64)
        shape = count.shape
        if count.ndim < 1 or np.shape(sum_confidence) != shape or np.shape(sum_target) != shape:
            raise ValueError(
                f"count, sum_confidence and sum_target must share one shape (..., bins), but got {shape}, "
                f"{np.shape(sum_confidence)} and {np.shape(sum_target)}"
            )
        fine = shape[-1]
        count = count.reshape(-1, fine)
        occupied = np.flatnonzero((count > 0).any(axis=0))
        everything = occupied.size == fine
        n = count if everything else count[:, occupied]
        s_conf = np.asarray(sum_confidence, dtype=np.float64).reshape(-1, fine)
        s_target = np.asarray(sum_target, dtype=np.float64).reshape(-1, fine)
        if not everything:
            s_conf, s_target = s_conf[:, occupied], s_target[:, occupied]
        center = (occupied + 0.5) / fine
        filled = n > 0
        location = np.where(filled, s_conf / np.where(filled, n, 1.0), center)
        residual = s_conf - s_target
        offset = location - center
        samples = cls(
            rows=count.shape[0],
            center=center,
            half_width=0.5 / fine,
            count=n,
            residual=residual,
            location=location,
            count_offset=n * offset,
            residual_offset=residual * offset,
            empty=count.sum(axis=1) <= 0,
        )
        return samples, shape[:-1]

    def take(self, rows: np.ndarray) -> _Samples:
        return _Samples(
            rows.size,
            self.center,
            self.half_width,
            *(
                values[rows]
                for values in (
                    self.count,
                    self.residual,
                    self.location,
                    self.count_offset,
                    self.residual_offset,
                    self.empty,
                )
            ),
        )


def _node_weights(grid: _Grid, samples: _Samples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residual and count weights of the samples split onto the grid nodes (step 1).

    Inside one grid cell the split is linear in the location: weight w at m puts w (1 - u_c) - w (m - c)
    (E - 1) on the lower node and w u_c + w (m - c) (E - 1) on the upper one, c the bin center and u_c its
    upper weight. So every bin that lies inside one cell contributes two fixed sparse maps of w and
    w (m - c). Only the bins that contain a node (at most E of them) are checked row by row, and a
    (row, bin) whose mean lies in another cell than the center is split on its own.

    Returns:
        (nodes, residual, count): the U grid nodes in use, and (k, U) weights on them.
    """
    scale = grid.nodes - 1
    center_node, center_upper = grid.deposit(samples.center)
    straddle = np.floor((samples.center - samples.half_width) * scale - 1e-9) != np.floor(
        (samples.center + samples.half_width) * scale + 1e-9
    )
    checked = np.flatnonzero(straddle)
    node, upper = grid.deposit(samples.location[:, checked])
    moved = (node != center_node[checked][None]) & (samples.count[:, checked] > 0)
    rows_moved, columns_moved = np.nonzero(moved)
    node_moved, upper_moved = node[rows_moved, columns_moved], upper[rows_moved, columns_moved]
    used = np.unique(np.concatenate([center_node, center_node + 1, node_moved, node_moved + 1]))
    low_column = np.searchsorted(used, center_node)
    # bins are in order, so bins sharing a lower node are consecutive: sum each run with one reduceat
    starts = np.flatnonzero(np.r_[True, np.diff(low_column) > 0])
    columns = low_column[starts]
    out = []
    for weight, offset in (
        (samples.residual, samples.residual_offset),
        (samples.count, samples.count_offset),
    ):
        if rows_moved.size:
            weight, offset = weight.copy(), offset.copy()
            moved_weight = weight[rows_moved, checked[columns_moved]]
            weight[rows_moved, checked[columns_moved]] = 0.0
            offset[rows_moved, checked[columns_moved]] = 0.0
        shift = offset * float(scale)
        nodes = np.zeros((samples.rows, used.size))
        nodes[:, columns] += np.add.reduceat(weight * (1.0 - center_upper) - shift, starts, axis=1)
        nodes[:, columns + 1] += np.add.reduceat(weight * center_upper + shift, starts, axis=1)
        if rows_moved.size:
            column = np.searchsorted(used, node_moved)
            np.add.at(nodes, (rows_moved, column), moved_weight * (1.0 - upper_moved))
            np.add.at(nodes, (rows_moved, column + 1), moved_weight * upper_moved)
        out.append(nodes)
    return used, out[0], out[1]


def _parts(grid: _Grid, samples: _Samples) -> tuple[np.ndarray, np.ndarray]:
    """(sum_t |A(t)|, sum_t D(t)) of each row at `grid.sigma`, (k,) each."""
    used, residual, mass = _node_weights(grid, samples)
    rows = samples.rows
    if grid.nodes <= _MATRIX_NODES:
        smoothed, density = np.zeros((rows, grid.points)), np.zeros(rows)
        chunk = max(1, _CHUNK_VALUES // grid.points)
        for start in range(0, used.size, chunk):
            response = grid.responses(used[start : start + chunk])
            smoothed += residual[:, start : start + chunk] @ response
            density += mass[:, start : start + chunk] @ response.sum(axis=1)
        return np.abs(smoothed).sum(axis=1), density
    numerator, density = np.zeros(rows), np.zeros(rows)
    block = max(1, _CHUNK_VALUES // (4 * grid.nodes))
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        for weights, out, reduce in ((residual, numerator, np.abs), (mass, density, np.asarray)):
            full = np.zeros((stop - start, grid.nodes))
            full[:, used] = weights[start:stop]
            out[start:stop] = reduce(grid.smooth_rows(full)).sum(axis=1)
    return numerator, density


def _evaluate(grid: _Grid, samples: _Samples, density_eps: float) -> np.ndarray:
    """smECE at `grid.sigma` of each row, (k,); NaN for rows without samples."""
    numerator, density = _parts(grid, samples)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = numerator / (density + grid.points * density_eps)
    return np.where(samples.empty, np.nan, value)


def smooth_ece_at(
    count: np.ndarray,
    sum_confidence: np.ndarray,
    sum_target: np.ndarray,
    sigma: float,
    *,
    density_eps: float = DENSITY_EPS,
) -> np.ndarray:
    """smECE at a fixed bandwidth (relplot's `smECE_sigma`) from fine-bin sums.

    Args:
        count, sum_confidence, sum_target: (..., F) sums over F fine equal-width bins (any F; the bin
            means are the sample locations), e.g. `LabelStats.fine` merged over cases.
        sigma: bandwidth in (0, 1].
        density_eps: relplot's density offset (0 gives the limit of infinitely many samples).

    Returns:
        (...) values; NaN for rows without samples.
    """
    if not 0 < sigma <= 1:
        raise ValueError(f"sigma must be in (0, 1], but got {sigma!r}")
    samples, lead = _Samples.of(count, sum_confidence, sum_target)
    return _evaluate(_Grid.at(float(sigma)), samples, density_eps).reshape(lead)


def smooth_ece(
    count: np.ndarray,
    sum_confidence: np.ndarray,
    sum_target: np.ndarray,
    *,
    density_eps: float = DENSITY_EPS,
) -> SmoothECE:
    """Smooth ECE with relplot's bandwidth rule (module docstring, step 4), row by row, from fine-bin sums.

    Rows (resamples, cases) take their own bisection paths; rows at the same bandwidth are evaluated
    together.

    Args:
        count, sum_confidence, sum_target: (..., F) fine-bin sums (see `smooth_ece_at`).
        density_eps: relplot's density offset.

    Returns:
        `SmoothECE` with (...) arrays.
    """
    samples, lead = _Samples.of(count, sum_confidence, sum_target)
    rows = samples.rows
    start, end = np.ones(rows), np.zeros(rows)
    value = _evaluate(_Grid.at(1.0), samples, density_eps)
    margin = np.abs(value - 1.0)
    searching = ~(1.0 < value) & ~np.isnan(value)
    for _ in range(BISECTION_STEPS):
        mid = (start + end) / 2
        accept = mid < BANDWIDTH_FLOOR
        for sigma in np.unique(mid[searching & ~accept]):
            rows_at = np.flatnonzero(searching & ~accept & (mid == sigma))
            at = _evaluate(_Grid.at(float(sigma)), samples.take(rows_at), density_eps)
            margin[rows_at] = np.minimum(margin[rows_at], np.abs(at - sigma))
            accept[rows_at] = sigma < at
            value[rows_at] = np.where(accept[rows_at], value[rows_at], at)
        end = np.where(searching & accept, mid, end)
        start = np.where(searching & ~accept, mid, start)
    return SmoothECE(value.reshape(lead), start.reshape(lead), margin.reshape(lead))


def binning_bound(
    count: np.ndarray,
    sum_confidence: np.ndarray,
    sum_target: np.ndarray,
    sigma: float,
) -> np.ndarray:
    """Upper bound on |smECE_sigma(raw samples) - smooth_ece_at(fine-bin sums)| for 0/1 targets.

    Fine bin b = [b / F, (b + 1) / F] holds n_b samples with mean m_b; every sample is within
    d_b = max(m_b - b / F, (b + 1) / F - m_b) of m_b. With C_j the evaluated response of node j (T values)
    and Lambda_j = ||C_{j+1} - C_j||_1 / h the Lipschitz constant, in the sample location, of the
    evaluated smoothing of a unit weight inside grid cell j, moving the samples of bin b to m_b changes
    sum_t |A(t)| by at most Lambda_b d_b sum_{i in b} |f_i - y_i| and sum_t D(t) by at most Lambda_b d_b n_b,
    where Lambda_b is the largest Lambda_j over the cells the bin meets; the density change is 0 for a bin
    inside one cell (the linear split is linear there). With sum_{i in b} |f_i - y_i| <= S_b (1 - 2 b / F)
    + sum_i f_i (S_b the number of positives), and U, V the histogram's numerator and denominator:

        |smECE_raw - smECE_hist| <= (dU + smECE_hist dV) / (V - dV)       (docs/calibration.md#smooth-ece)

    Args:
        count, sum_confidence, sum_target: (..., F) fine-bin sums, targets 0/1.
        sigma: bandwidth in (0, 1].

    Returns:
        (...) bounds (for relplot's density offset, `DENSITY_EPS`); NaN for rows without samples, inf
        when the denominator bound is not positive.
    """
    if not 0 < sigma <= 1:
        raise ValueError(f"sigma must be in (0, 1], but got {sigma!r}")
    samples, lead = _Samples.of(count, sum_confidence, sum_target)
    fine = np.shape(count)[-1]
    count, sum_confidence, sum_target = (
        np.asarray(values, dtype=np.float64).reshape(-1, fine)
        for values in (count, sum_confidence, sum_target)
    )
    grid = _Grid.at(float(sigma))
    step = 1 / (grid.nodes - 1)
    lipschitz = np.empty(grid.nodes - 1)
    chunk = max(2, _CHUNK_VALUES // grid.points)
    for start in range(0, grid.nodes - 1, chunk - 1):
        nodes = np.arange(start, min(grid.nodes, start + chunk))
        response = grid.responses(nodes)
        lipschitz[nodes[:-1]] = np.abs(np.diff(response, axis=0)).sum(axis=1) / step
    lower = np.arange(fine) / fine
    upper = np.arange(1, fine + 1) / fine
    # the cells each fine bin meets, widened by a rounding margin (a wider range only raises the bound)
    first = np.clip(np.floor(lower * (grid.nodes - 1) - 1e-9).astype(np.intp), 0, grid.nodes - 2)
    last = np.clip(np.ceil(upper * (grid.nodes - 1) + 1e-9).astype(np.intp) - 1, 0, grid.nodes - 2)
    span = last - first
    bin_lipschitz = lipschitz[first]
    for extra in range(1, int(span.max()) + 1):
        more = lipschitz[np.minimum(first + extra, grid.nodes - 2)]
        bin_lipschitz = np.where(span >= extra, np.maximum(bin_lipschitz, more), bin_lipschitz)
    straddles = span > 0
    filled = count > 0
    mean = np.where(filled, sum_confidence / np.where(filled, count, 1.0), lower)
    distance = np.maximum(mean - lower, upper - mean)
    abs_residual = np.maximum(sum_target * (1.0 - 2.0 * lower) + sum_confidence, 0.0)
    d_numerator = (bin_lipschitz * distance * abs_residual).sum(axis=1)
    d_density = (np.where(straddles, bin_lipschitz, 0.0) * distance * count).sum(axis=1)
    numerator, density = _parts(grid, samples)
    denominator = density + grid.points * DENSITY_EPS
    value = numerator / np.where(denominator > 0, denominator, 1.0)
    room = denominator - d_density
    bound = np.where(room > 0, (d_numerator + value * d_density) / np.where(room > 0, room, 1.0), np.inf)
    return np.where(samples.empty, np.nan, bound).reshape(lead)
