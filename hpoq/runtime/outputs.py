"""Output files of a study directory, besides the journal (all written by rank 0, atomically).

* ``trials.csv`` -- one row per trial: ``trial_id, status, epochs, last, best, units, failures,
  seconds, reason`` and one column per hyperparameter (union over trials; keys starting with
  ``_`` such as the table trainer's ``_row`` included). Values in the metric's own direction.
* ``best.yaml`` -- the scheduler's answer: ``study``, ``trial_id``, ``metric``, ``mode``,
  ``value`` (own direction), ``epoch``, ``config``; ``trial_id: null`` if no trial reached R.
* ``curves.h5`` -- every collected curve in the HDF5 curve-store format of
  :mod:`hpoq.curves.store` (trial id, configuration, per-epoch values), so that finished studies
  grow a predictor's training data (``warm_curves``).
"""

from __future__ import annotations

import csv
import math
import os

from hpoq.atomic import atomic_path, write_atomic
from hpoq.journal.state import StudyState

TRIALS_FILE = "trials.csv"
BEST_FILE = "best.yaml"
CURVES_FILE = "curves.h5"


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return "" if value is None else str(value)


def write_trials_csv(state: StudyState, path: str) -> None:
    hp_names: list[str] = []
    for t in state.trials.values():
        for k in t.config:
            if k not in hp_names:
                hp_names.append(k)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["trial_id", "status", "epochs", "last", "best", "units", "failures", "seconds", "reason"] + hp_names
        )
        for tid in sorted(state.trials):
            t = state.trials[tid]
            last = t.curve[-1] if t.curve else math.nan
            w.writerow(
                [
                    tid,
                    t.status,
                    t.epochs,
                    _fmt(last),
                    _fmt(t.best_value(state.mode)),
                    t.units_sent,
                    t.failures,
                    f"{t.seconds:.3f}",
                    t.reason,
                ]
                + [_fmt(t.config.get(k)) for k in hp_names]
            )


def best_record(best: dict | None, mode: str) -> dict | None:
    """The scheduler's best (minimised value) with the value in the metric's own direction."""
    if not best:
        return None
    value = float(best["value"])
    return {
        "trial_id": int(best["trial_id"]),
        "value": -value if mode == "max" else value,
        "epoch": int(best.get("epoch", 0)),
        "config": dict(best["config"]),
    }


def write_best_yaml(best: dict | None, study: str, metric: str, mode: str, path: str) -> None:
    import yaml

    rec = best_record(best, mode)
    doc = {"study": study, "metric": metric, "mode": mode}
    if rec is None:
        doc.update(trial_id=None, value=None, epoch=None, config=None)
    else:
        doc.update(rec)
    write_atomic(path, yaml.safe_dump(_plain(doc), sort_keys=False))


def _plain(obj):
    """numpy scalars -> Python numbers for YAML."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return obj.item()
    return obj


def write_curves_store(state: StudyState, path: str, metric: str, mode: str, provenance: dict | None = None) -> None:
    """Every trial with a curve, in trial order, as one curve store written at once (:func:`write_store`)."""
    import numpy as np

    from hpoq.curves.store import write_store
    from hpoq.curves.table import CurveTable

    hp_names: list[str] = []
    for t in state.trials.values():
        for k in t.config:
            if k not in hp_names and not k.startswith("_"):
                hp_names.append(k)
    trials = [state.trials[tid] for tid in sorted(state.trials) if state.trials[tid].curve]
    lengths = np.array([t.epochs for t in trials], dtype=np.int64)
    curves = np.full((len(trials), int(lengths.max(initial=0))), np.nan)
    for row, t in enumerate(trials):
        curves[row, : t.epochs] = t.curve
    table = CurveTable(
        hp_names=hp_names,
        configs=[t.config for t in trials],
        curves=curves,
        metric=metric,
        mode=mode,
        time=np.array([t.seconds / t.epochs for t in trials], dtype=np.float64),
        lengths=lengths,
    )
    write_store(path, table, provenance, trial_ids=[t.trial_id for t in trials], with_time=True)


def write_outputs(
    out_dir: str,
    state: StudyState,
    best: dict | None,
    study: str,
    metric: str,
    mode: str,
    provenance: dict | None = None,
) -> None:
    write_trials_csv(state, os.path.join(out_dir, TRIALS_FILE))
    write_best_yaml(best, study, metric, mode, os.path.join(out_dir, BEST_FILE))
    write_curves_store(state, os.path.join(out_dir, CURVES_FILE), metric, mode, provenance)
