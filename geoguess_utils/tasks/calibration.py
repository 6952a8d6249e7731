"""Honest confidence: temperature scaling, calibration error and split-conformal search regions.

The maths only, on arrays (NumPy; torch for the temperature fit). Everything is fitted on
the validation split of a run (:mod:`geoguess_utils.inference.calibrate` runs it) and kept
in the checkpoint's record as plain types (:meth:`Calibration.to_dict`).

* **Temperature** (classifiers): one number ``T > 0``; the reported probabilities are
  ``softmax(log p / T)`` of the trained ones ``p``. ``T`` minimises the negative
  log-likelihood of the true cells over ``log T``. It changes neither the ranking of the
  cells nor the decoded point: the point stays the one the model was trained and selected
  to give (:meth:`~geoguess_utils.tasks.classification.ClassificationTask.decode`); the
  reported probabilities, top cells and search regions use the calibrated ones.
* **Expected calibration error** (ECE): the top cell's probability against how often it
  is right, over 15 equal-width confidence bins.
* **Search regions** (split conformal): a non-conformity score per validation location,
  kept sorted; for nominal coverage ``c`` the threshold is the ``ceil((n + 1) c)``-th
  smallest of the ``n`` scores (infinite when that exceeds ``n``). Classifiers: the score
  is the total probability of the cells ranked at or above the true cell, and a region is
  the smallest set of most probable cells whose mass reaches the threshold. Regressors
  (and every task without cell probabilities): the score is the great-circle error in km
  and a region is the disc of the threshold radius around the predicted point. On fresh
  locations from the same distribution a region holds the truth with probability at least
  ``c``: a fresh score falls at or below the threshold with probability from ``c`` to
  ``c + 1 / (n + 1)`` (scores without ties), and a disc covers exactly then. A set of cells
  also keeps the cell whose probability carries its mass across the threshold, so it covers
  somewhat more than that (a few points when the probabilities are coarse; see
  ``benchmarks/coverage.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from geoguess_utils.checkpoints.record import CALIBRATION_FORMAT, calibration_problem
from geoguess_utils.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    import torch

RegionKind = Literal["cells", "disc"]

ECE_BINS = 15
"""Equal-width confidence bins of the expected calibration error and the reliability table."""

DEFAULT_COVERAGE = 0.9
"""Nominal coverage of a search region when none is given."""

REPORTED_COVERAGES = (0.8, 0.9, 0.95)
"""Coverages the commands report thresholds and region sizes for."""

_TINY = 1e-300  # log of a zero probability stays finite
_QUANTILE_SLACK = 1e-9  # (n + 1) * c computed in floating point: 10 * 0.9 is 9.000000000000002


# ----------------------------------------------------------------------------- temperature


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _TINY, None))


def apply_temperature(probabilities: ArrayLike, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities ``softmax(log p / T)``, row by row.

    Args:
        probabilities: Class probabilities, shape (N, K) (rows sum to 1).
        temperature: ``T > 0``; 1 returns the probabilities unchanged, above 1 flattens them.

    Returns:
        Scaled probabilities, shape (N, K) float64; each row sums to 1 and keeps its ranking.
    """
    scaled = _log_probabilities(np.asarray(probabilities)) / float(temperature)
    scaled -= scaled.max(axis=-1, keepdims=True)
    out = np.exp(scaled)
    return out / out.sum(axis=-1, keepdims=True)


def apply_temperature_torch(probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """:func:`apply_temperature` on a tensor (B, K), keeping its dtype and device."""
    import torch

    tiny = torch.finfo(probabilities.dtype).tiny
    return torch.softmax(torch.log(probabilities.clamp_min(tiny)) / float(temperature), dim=-1)


def fit_temperature(log_probabilities: ArrayLike, labels: ArrayLike, max_iter: int = 100) -> float:
    """The temperature that minimises the negative log-likelihood of the true classes.

    Optimises ``log T`` with L-BFGS (float64): the loss is convex in ``1 / T``, so the
    minimum is unique. Log-probabilities are valid logits (softmax ignores the constant).

    Args:
        log_probabilities: Logits or log-probabilities, shape (N, K); non-finite values
            are treated as very unlikely classes.
        labels: True class per row, shape (N,) int in ``[0, K)``.
        max_iter: L-BFGS iterations.

    Returns:
        ``T``, a float in ``[1e-2, 1e2]``.

    Raises:
        ConfigError: No rows, or labels outside the classes.
    """
    import torch
    from torch.nn import functional

    logits = torch.as_tensor(np.asarray(log_probabilities, dtype=np.float64))
    target = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if logits.ndim != 2 or len(logits) == 0 or len(target) != len(logits):
        raise ConfigError(f"fitting a temperature needs logits (N, K) and N labels, got {tuple(logits.shape)}")
    if int(target.min()) < 0 or int(target.max()) >= logits.shape[1]:
        raise ConfigError(f"labels must lie in [0, {logits.shape[1]}), got {int(target.min())}..{int(target.max())}")
    logits = torch.nan_to_num(logits, nan=math.log(_TINY), neginf=math.log(_TINY), posinf=0.0)
    logits = logits - logits.max(dim=1, keepdim=True).values
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = functional.cross_entropy(logits / log_t.exp(), target)
        loss.backward()
        return loss

    optimiser.step(closure)
    value = float(log_t.detach().clamp(math.log(1e-2), math.log(1e2)).exp())
    return value if math.isfinite(value) else 1.0


def negative_log_likelihood(probabilities: ArrayLike, labels: ArrayLike) -> float:
    """Mean ``-log p(true class)`` (nats) of probabilities (N, K) and labels (N,)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    return float(-_log_probabilities(p[np.arange(len(y)), y]).mean())


# ----------------------------------------------------------------------------- calibration error


def reliability_table(probabilities: ArrayLike, labels: ArrayLike, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Confidence against accuracy in equal-width bins of the top class's probability.

    Args:
        probabilities: Class probabilities, shape (N, K).
        labels: True class per row, shape (N,).
        bins: Number of bins over ``[0, 1]``; bin ``b`` holds confidences in
            ``(b / bins, (b + 1) / bins]`` (the first also holds 0).

    Returns:
        ``{"lower", "upper", "count", "confidence", "accuracy"}``, each shape (bins,):
        bin edges, rows per bin (int64), mean top probability and share of rows whose
        top class is the true one (NaN in empty bins).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    confidence = p.max(axis=1) if len(p) else np.empty(0)
    correct = (p.argmax(axis=1) == y).astype(np.float64) if len(p) else np.empty(0)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {
        "lower": edges[:-1],
        "upper": edges[1:],
        "count": count.astype(np.int64),
        "confidence": mean_confidence,
        "accuracy": accuracy,
    }


def expected_calibration_error(probabilities: ArrayLike, labels: ArrayLike, bins: int = ECE_BINS) -> float:
    """ECE: the row-weighted mean ``|accuracy - confidence|`` over the bins of :func:`reliability_table`.

    Returns:
        A share in ``[0, 1]`` (0 for no rows).
    """
    table = reliability_table(probabilities, labels, bins)
    count = table["count"]
    if count.sum() == 0:
        return 0.0
    full = count > 0
    gap = np.abs(table["accuracy"][full] - table["confidence"][full])
    return float((count[full] * gap).sum() / count.sum())


# ----------------------------------------------------------------------------- conformal regions


def check_coverage(coverage: float) -> float:
    """``coverage`` as a float strictly between 0 and 1.

    Raises:
        ConfigError: Outside ``(0, 1)`` or not a number.
    """
    value = float(coverage)
    if not 0.0 < value < 1.0:
        raise ConfigError(f"a region's coverage must lie strictly between 0 and 1 (e.g. 0.9), got {coverage}")
    return value


def conformal_rank(n: int, coverage: float) -> int:
    """The 1-based rank ``ceil((n + 1) c)`` of the threshold among ``n`` sorted scores (may exceed ``n``)."""
    return max(1, math.ceil((n + 1) * check_coverage(coverage) - _QUANTILE_SLACK))


def conformal_threshold(sorted_scores: ArrayLike, coverage: float) -> float:
    """Split-conformal threshold: the ``ceil((n + 1) c)``-th smallest of ``n`` validation scores.

    Args:
        sorted_scores: Validation non-conformity scores, ascending, shape (n,).
        coverage: Nominal coverage ``c`` in ``(0, 1)``.

    Returns:
        The threshold (the scores' unit), or ``inf`` when ``n`` is too small for ``c``
        (``ceil((n + 1) c) > n``): the region is then everything.
    """
    scores = np.asarray(sorted_scores, dtype=np.float64)
    rank = conformal_rank(len(scores), coverage)
    return float(scores[rank - 1]) if rank <= len(scores) else math.inf


def cell_set_scores(probabilities: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Score of each location: the total probability of the cells ranked at or above its true cell.

    Args:
        probabilities: Class probabilities, shape (N, K).
        labels: True cell per row, shape (N,).

    Returns:
        Scores in ``(0, 1]``, shape (N,) float64 (cells tied with the true cell count).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    true_p = p[np.arange(len(y)), y][:, None]
    return np.minimum(np.where(p >= true_p, p, 0.0).sum(axis=1), 1.0)  # a sum of all K may round above 1


def cell_set_order(probabilities: ArrayLike, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The cells of each location's region: the fewest most probable cells whose mass reaches ``threshold``.

    Args:
        probabilities: Class probabilities, shape (N, K).
        threshold: From :func:`conformal_threshold` (``inf`` or above 1: every cell).

    Returns:
        ``(order, size)``: the cells of each row by falling probability, (N, K) int64,
        and how many of them form the region, (N,) int64 in ``[1, K]``.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-p, axis=1, kind="stable")
    mass = np.cumsum(np.take_along_axis(p, order, axis=1), axis=1)
    size = np.minimum((mass < threshold).sum(axis=1) + 1, p.shape[1])
    return order, size.astype(np.int64)


def cell_set_mask(probabilities: ArrayLike, threshold: float) -> np.ndarray:
    """Membership of each cell in each location's region (:func:`cell_set_order`), (N, K) bool."""
    order, size = cell_set_order(probabilities, threshold)
    mask = np.zeros(order.shape, dtype=bool)
    ranks = np.arange(order.shape[1])[None, :] < size[:, None]
    np.put_along_axis(mask, order, ranks, axis=1)
    return mask


# ----------------------------------------------------------------------------- the stored calibration


@dataclass(frozen=True)
class Calibration:
    """A checkpoint's calibration, fitted on its run's validation split.

    Attributes:
        kind: ``"cells"`` (sets of cells; classifiers) or ``"disc"`` (a radius around the point).
        scores: Validation non-conformity scores, ascending, shape (n,): cell mass in
            ``(0, 1]`` (``"cells"``, after the temperature) or great-circle error in km (``"disc"``).
        temperature: ``T`` of the reported probabilities (``"cells"``), ``None`` for ``"disc"``.
        stats: Plain numbers measured on the validation split: ``ece_before``,
            ``ece_after``, ``nll_before``, ``nll_after`` (classifiers) and the reliability
            tables ``reliability_before`` / ``reliability_after`` (lists per column).
    """

    kind: RegionKind
    scores: np.ndarray
    temperature: float | None = None
    stats: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Validation locations the calibration was fitted on."""
        return len(self.scores)

    def threshold(self, coverage: float = DEFAULT_COVERAGE) -> float:
        """The conformal threshold for ``coverage``: cell mass, or radius in km (``inf`` when ``n`` is too small)."""
        return conformal_threshold(self.scores, coverage)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of str, float, int, lists and None: safe in a ``weights_only`` checkpoint."""
        return {
            "format": CALIBRATION_FORMAT,
            "kind": self.kind,
            "split": "val",
            "temperature": None if self.temperature is None else float(self.temperature),
            "scores": [float(s) for s in self.scores],
            "stats": _plain(dict(self.stats)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "the checkpoint") -> Calibration:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            CheckpointError: The dict is malformed (named).
        """
        problem = calibration_problem(data)
        if problem is not None:
            raise CheckpointError(f"{source}: record field 'calibration' {problem}")
        temperature = data.get("temperature")
        return cls(
            kind=data["kind"],
            scores=np.asarray(data["scores"], dtype=np.float64),
            temperature=None if temperature is None else float(temperature),
            stats=dict(data.get("stats") or {}),
        )


def _plain(value: Any) -> Any:
    """NumPy arrays and scalars as lists, floats and ints, recursively (NaN stays a float)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


def fit_cells_calibration(probabilities: ArrayLike, labels: ArrayLike) -> Calibration:
    """Temperature and conformal scores of a classifier from its validation predictions.

    Args:
        probabilities: The trained (uncalibrated) class probabilities, shape (n, K).
        labels: True cell per row, shape (n,).

    Returns:
        A ``"cells"`` calibration whose scores use the temperature-scaled probabilities.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    temperature = fit_temperature(_log_probabilities(p), y)
    calibrated = apply_temperature(p, temperature)
    stats = {
        "ece_before": expected_calibration_error(p, y),
        "ece_after": expected_calibration_error(calibrated, y),
        "nll_before": negative_log_likelihood(p, y),
        "nll_after": negative_log_likelihood(calibrated, y),
        "reliability_before": reliability_table(p, y),
        "reliability_after": reliability_table(calibrated, y),
    }
    return Calibration("cells", np.sort(cell_set_scores(calibrated, y)), temperature, stats)


def fit_disc_calibration(errors_km: ArrayLike) -> Calibration:
    """Conformal scores of a point predictor: its validation great-circle errors (km), shape (n,).

    Raises:
        ConfigError: No errors, or errors that are negative or not finite.
    """
    errors = np.asarray(errors_km, dtype=np.float64)
    if errors.size == 0 or not np.isfinite(errors).all() or (errors < 0).any():
        raise ConfigError("disc calibration needs finite non-negative validation errors (km)")
    return Calibration("disc", np.sort(errors), None, {})
