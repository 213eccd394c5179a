"""Predicted versus actual values at the decision points of a study.

A decision carries the forecast it used as a typed ``forecast`` (:class:`hpoq.schedulers.base.Forecast`:
value, from and target epoch, error, threshold; values *minimised*, docs/algorithms.md#conventions), the
same shape for every algorithm (swift's and default's decisions write it). Decisions without one, in journals
written before the field, are read from their ``info`` (:func:`_from_info`): ``prediction`` with
``key = [r_i, e_d]`` and ``tau`` (swift), ``predicted`` from ``rung_epoch`` to ``target_epoch`` (default),
or an earlier ``predicted_final`` / ``prefix_epochs`` / ``error``.

The actual value is the trial's observed value at the target epoch when it was trained that far
(pruned trials usually were not: those points are counted as omitted, never guessed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hpoq.report.study import StudyOutput, as_float


@dataclass(frozen=True)
class PredictionPoint:
    """One prediction, values in the metric's own direction."""

    trial_id: int
    action: str  # what the scheduler did with it (continue / stop / ...)
    from_epoch: int  # epochs observed when predicting
    target_epoch: int  # epoch whose value was predicted
    predicted: float
    actual: float  # NaN: not trained to target_epoch
    error: float  # predictor's own error estimate, NaN if none
    threshold: float  # value it had to beat, NaN if none

    @property
    def point(self) -> str:
        return f"{self.from_epoch} -> {self.target_epoch}"


def _forecast(decision, R) -> tuple[float, int | None, int | None, float, float] | None:
    """(predicted minimised, from epoch, target epoch, error, threshold) of one decision, or None."""
    f = decision.forecast
    if f is not None:
        return as_float(f.value), f.from_epoch, f.target_epoch, as_float(f.error), as_float(f.threshold)
    return _from_info(decision.info, R)


def _from_info(info: dict, R) -> tuple[float, int | None, int | None, float, float] | None:
    """:func:`_forecast` of a decision without a typed forecast, from the inputs in its info."""
    if "prediction" in info:
        key = info.get("key")
        target = info.get("target_epoch", key[0] if isinstance(key, list) and len(key) == 2 else info.get("r_i"))
        start = key[1] if isinstance(key, list) and len(key) == 2 else info.get("e_d")
        return as_float(info["prediction"]), start, target, as_float(info.get("error")), as_float(info.get("tau"))
    if "predicted" in info and "target_epoch" in info:  # default: a forecast at a rung (hpoq.schedulers.default)
        return (
            as_float(info["predicted"]),
            info.get("rung_epoch"),
            info["target_epoch"],
            as_float(info.get("sigma")),
            as_float(info.get("threshold")),
        )
    if "predicted_final" in info:
        return (
            as_float(info["predicted_final"]),
            info.get("prefix_epochs"),
            info.get("target_epoch", R),
            as_float(info.get("error")),
            as_float(info.get("threshold")),
        )
    return None


def extract_predictions(study: StudyOutput) -> tuple[list[PredictionPoint], dict]:
    """All prediction points of the study, and counts of those omitted (``no_actual``, ``no_target``)."""
    points, omitted = [], {"no_actual": 0, "no_target": 0}
    for t in study.trials.values():
        for d in t.decisions:
            found = _forecast(d, study.R)
            if found is None:
                continue
            pred, start, target, error, threshold = found
            try:
                target = int(target)
                start = int(start) if start is not None else int(d.epoch)
            except (TypeError, ValueError):
                omitted["no_target"] += 1
                continue
            if not math.isfinite(pred):
                omitted["no_target"] += 1
                continue
            actual = t.value_at(target)
            if not math.isfinite(actual):
                omitted["no_actual"] += 1
            points.append(
                PredictionPoint(
                    t.trial_id,
                    str(d.action),
                    start,
                    target,
                    study.sign * pred,
                    actual,
                    error,
                    study.sign * threshold if math.isfinite(threshold) else math.nan,
                )
            )
    return points, omitted


def summarize_points(points: list[PredictionPoint]) -> list[dict]:
    """Per decision point (from -> target epoch): predictions, with actual, MAE, Pearson r."""
    rows = []
    for key in sorted({(p.from_epoch, p.target_epoch) for p in points}):
        group = [p for p in points if (p.from_epoch, p.target_epoch) == key]
        paired = [(p.predicted, p.actual) for p in group if math.isfinite(p.actual)]
        pred = np.asarray([a for a, _ in paired], dtype=float)
        act = np.asarray([b for _, b in paired], dtype=float)
        mae = float(np.mean(np.abs(pred - act))) if paired else math.nan
        r = math.nan
        if len(paired) >= 3 and np.std(pred) > 0 and np.std(act) > 0:
            r = float(np.corrcoef(pred, act)[0, 1])
        rows.append(
            {
                "from_epoch": key[0],
                "target_epoch": key[1],
                "predictions": len(group),
                "with_actual": len(paired),
                "stopped": sum(1 for p in group if p.action == "stop"),
                "mae": mae,
                "pearson_r": r,
            }
        )
    return rows
