"""What the predictor decided in a ``default`` study: its rung decisions, read from the journal.

``default`` (:mod:`hpoq.schedulers.default`) ranks each rung by forecast final values where a
forecast exists. Each promotion or prune carries the inputs it used; this module counts them:

* *promoted, forecast agrees*: continue ``rung`` with a forecast (successive halving on the
  observed values would have promoted it too);
* *promoted by forecast*: continue ``predicted`` (observed rank outside the rung's quota: the
  forecast promoted it over an observed-better trial);
* *widened by uncertainty*: continue ``uncertain`` (beyond the quota, within the width the forecast's
  out-of-fold ranking needed, or ranked well by the observed value against the forecast);
* *pruned by forecast*: stop ``predicted`` (its optimistic forecast cannot reach the k-th best);
* *ranked by observed value*: continue ``rung`` without a forecast (too few curves yet, or
  ``--predictor none``); *finalists*: continue ``finalist``.

Rows per model (predictor, prefix epochs -> target epoch, training curves) show which forecasts
drove the decisions.
"""

from __future__ import annotations

from collections import Counter

KINDS = (
    "promoted, forecast agrees",
    "promoted by forecast",
    "widened by uncertainty",
    "pruned by forecast",
    "ranked by observed value",
    "finalists",
)


def decision_kind(decision: dict) -> str | None:
    """The kind (one of :data:`KINDS`) of one decision of ``default``, None for others."""
    action, reason, info = decision.get("action"), decision.get("reason"), decision.get("info")
    forecast = isinstance(info, dict) and "predicted" in info and "target_epoch" in info
    if action == "continue" and reason == "predicted":
        return "promoted by forecast"
    if action == "continue" and reason == "uncertain":
        return "widened by uncertainty"
    if action == "stop" and reason == "predicted" and forecast:
        return "pruned by forecast"
    if action == "continue" and reason == "rung":
        return "promoted, forecast agrees" if forecast else "ranked by observed value"
    if action == "continue" and reason == "finalist":
        return "finalists"
    return None


def predictor_decisions(study) -> tuple[list[list], list[list]]:
    """(kind rows [kind, decisions, trials], model rows [model, decisions]) of ``study``'s journal."""
    kinds, trials, models = Counter(), {k: set() for k in KINDS}, Counter()
    for t in study.trials.values():
        for d in t.decisions:
            kind = decision_kind(d)
            if kind is None:
                continue
            kinds[kind] += 1
            trials[kind].add(t.trial_id)
            info = d.get("info") or {}
            if isinstance(info, dict) and "model" in info:
                models[str(info["model"])] += 1
    kind_rows = [[k, kinds[k], len(trials[k])] for k in KINDS]
    model_rows = [[m, c] for m, c in sorted(models.items())]
    return kind_rows, model_rows


def summary_lines(out_dir: str) -> list[str]:
    """Plain-text lines for a terminal: epochs against Hyperband's for the same n and R, and the
    predictor's decisions (``jobs/run_default.sh`` prints them after ``make run``)."""
    from hpoq.report.study import load_study_output

    study = load_study_output(out_dir)
    used = study.epochs_used
    lines = [
        f"epochs: {used}"
        + (
            f" of Hyperband's {study.budget} for the same configurations and R "
            f"({100.0 * (1 - used / study.budget):.1f}% saved)"
            if study.budget
            else ""
        )
    ]
    if study.algorithm == "default":
        kinds, models = predictor_decisions(study)
        lines.append("predictor decisions: " + "; ".join(f"{k}: {n} ({t} trials)" for k, n, t in kinds))
        if models:
            lines.append("forecast models used: " + ", ".join(f"{m} x{c}" for m, c in models))
    return lines
