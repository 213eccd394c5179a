"""The per-bracket table: configurations, epochs, fates and best value of each Hyperband bracket.

Hyperband-family decisions carry ``bracket`` (s) in their info (:mod:`hpoq.schedulers.hyperband`);
schedulers without brackets (asha, default, random, topk) give one row, bracket ``-``.
"""

from __future__ import annotations

import math

from hpoq.report.fates import COMPLETED, FAILED, PRUNED_PREDICTION, PRUNED_RUNG, UNFINISHED
from hpoq.report.study import StudyOutput


def _row(label, trials, study: StudyOutput) -> dict:
    fates = [t.fate for t in trials]
    finals = [t.value_at(study.R) for t in trials] if study.R else []
    finals = [v for v in finals if math.isfinite(v)]
    best = (min(finals) if study.mode == "min" else max(finals)) if finals else math.nan
    return {
        "bracket": label,
        "configs": len(trials),
        "epochs": sum(t.epochs_trained for t in trials),
        "completed": fates.count(COMPLETED),
        "pruned_rung": fates.count(PRUNED_RUNG),
        "pruned_prediction": fates.count(PRUNED_PREDICTION),
        "failed": fates.count(FAILED),
        "unfinished": fates.count(UNFINISHED),
        "best": best,
    }


def hyperband_epochs(study: StudyOutput) -> dict:
    """Bracket s -> epochs plain Hyperband spends on it at the study's R and eta ({} if unknown)."""
    if not study.R or not study.eta:
        return {}
    from hpoq.errors import ConfigError
    from hpoq.schedulers.brackets import hyperband_schedule

    try:
        return {b.s: b.epochs() for b in hyperband_schedule(study.R, study.eta)}
    except ConfigError:
        return {}


def bracket_rows(study: StudyOutput) -> list[dict]:
    """One row per bracket (highest s first, i.e. in the order Hyperband runs them), then ``all``.

    ``hyperband_epochs``: what plain Hyperband spends on the bracket (NaN for rows without one).
    """
    groups: dict = {}
    for t in study.trials.values():
        groups.setdefault(t.bracket, []).append(t)
    keyed = sorted((k for k in groups if k is not None), key=lambda s: -s if isinstance(s, (int, float)) else 0)
    reference = hyperband_epochs(study) if keyed else {}
    rows = [dict(_row(str(k), groups[k], study), hyperband_epochs=reference.get(k, math.nan)) for k in keyed]
    if None in groups:  # no bracket in any decision, or trials with no decision yet
        rows.append(_row("-" if not keyed else "no decision yet", groups[None], study))
    rows.append(_row("all", list(study.trials.values()), study))
    rows[-1]["hyperband_epochs"] = float(study.budget) if study.budget else math.nan
    for row in rows:
        row.setdefault("hyperband_epochs", math.nan)
    return rows
