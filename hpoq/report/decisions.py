"""What ``default`` decided in a study, and what its audit says, read from the journal's decisions.

``default`` (:mod:`hpoq.schedulers.default`) is Hyperband's brackets with stops tested at checkpoints.
Each decision carries the inputs it used; this module counts them by kind (:data:`KINDS`):

* *passed a checkpoint*: continue ``checkpoint`` (the test found no reason to stop it);
* *stopped: cannot beat the study's best*: pause ``evidence`` against the value at R (the trial is out
  of the race; its checkpoint is kept for a rescue until the study ends, when a ``stop`` confirms it);
* *stopped before its round's cut*: pause ``evidence`` against the round's cut at its end;
* *stopped: diverged*: a non-finite value;
* *audited*: a stop drawn for the audit (continue ``audit``), trained to R anyway;
* *rescued*: a stop trained to R anyway when a worker would have idled (done ``rescue``);
* *kept / cut by Hyperband's round*: Hyperband's own promotions and cuts at a round's end.

:func:`audit_summary` turns the audited trials into the false-prune estimate: of the trials stopped, an
estimated x% (exact 95% interval) would have beaten the best of the trials that were kept.

Rows per forecast model (checkpoint -> R @ training curves) show which forecasts scored the trials.
"""

from __future__ import annotations

import math
from collections import Counter

KINDS = (
    "passed a checkpoint",
    "stopped: cannot beat the study's best",
    "stopped before its round's cut",
    "stopped: diverged",
    "audited (trained to R anyway)",
    "rescued (trained to R anyway)",
    "kept by Hyperband's round",
    "cut by Hyperband's round",
)


def decision_kind(decision) -> str | None:
    """The kind (one of :data:`KINDS`) of one decision (:class:`~hpoq.schedulers.base.Decision`) of ``default``,
    None for others."""
    action, reason, info = decision.action, decision.reason, decision.info
    if action == "continue" and reason == "checkpoint":
        return "passed a checkpoint"
    if action == "continue" and reason == "audit":
        return "audited (trained to R anyway)"
    if action == "done" and reason == "rescue":
        return "rescued (trained to R anyway)"
    if action == "pause" and reason == "evidence":
        if info.get("rule") == "diverged":
            return "stopped: diverged"
        return (
            "stopped before its round's cut"
            if info.get("against") == "round"
            else "stopped: cannot beat the study's best"
        )
    if action == "continue" and reason == "promoted":
        return "kept by Hyperband's round"
    if action == "stop" and reason == "rung":
        return "cut by Hyperband's round"
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
            model = d.forecast.model if d.forecast is not None and d.forecast.model else d.info.get("model")
            if model:
                models[str(model)] += 1
    kind_rows = [[k, kinds[k], len(trials[k])] for k in KINDS]
    model_rows = [[m, c] for m, c in sorted(models.items())]
    return kind_rows, model_rows


def audit_summary(study) -> dict | None:
    """The false-prune estimate of a ``default`` study from its decisions (None for other algorithms):
    ``stops`` (trials stopped by evidence), ``audited`` (audited trials that reached R), ``pending``,
    ``false_prunes`` (audited trials whose value at R beats the best of the kept), ``rate``, ``low``,
    ``high`` (exact 95% interval); values compared in the minimised direction."""
    if study.algorithm != "default":
        return None
    from hpoq.schedulers.audit import clopper_pearson

    sign = -1.0 if study.mode == "max" else 1.0
    stopped, audited, finals, kept = set(), set(), {}, []
    for t in study.trials.values():
        for d in t.decisions:
            action, reason, info = d.action, d.reason, d.info
            if reason == "evidence" and info.get("rule") == "evidence" or (action == "continue" and reason == "audit"):
                stopped.add(t.trial_id)
            if action == "continue" and reason == "audit":
                audited.add(t.trial_id)
            if action == "done":
                finals[t.trial_id] = sign * float(info.get("value", math.nan))
    kept = [v for tid, v in finals.items() if tid not in stopped and math.isfinite(v)]
    best = min(kept, default=math.inf)
    done = [finals[tid] for tid in audited if tid in finals]
    x = sum(1 for v in done if v < best)
    lo, hi = clopper_pearson(x, len(done))
    return {
        "stops": len(stopped),
        "audited": len(done),
        "pending": len(audited) - len(done),
        "false_prunes": x,
        "rate": x / len(done) if done else None,
        "low": lo,
        "high": hi,
    }


def audit_line(summary: dict) -> str:
    """One sentence of :func:`audit_summary`'s estimate."""
    if summary["audited"] == 0:
        return f"audit: {summary['stops']} trials stopped, none audited to R yet" + (
            f" ({summary['pending']} pending)" if summary["pending"] else ""
        )
    return (
        f"audit: of the {summary['stops']} trials stopped, an estimated {100 * summary['rate']:.0f}% "
        f"(95% interval {100 * summary['low']:.0f}-{100 * summary['high']:.0f}%) would have beaten the kept ones "
        f"({summary['false_prunes']} of {summary['audited']} audited trials did)"
        + (f"; {summary['pending']} audits pending" if summary["pending"] else "")
    )


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
        lines.append("decisions: " + "; ".join(f"{k}: {n} ({t} trials)" for k, n, t in kinds))
        if models:
            lines.append("forecast models used: " + ", ".join(f"{m} x{c}" for m, c in models))
        lines.append(audit_line(audit_summary(study)))
    return lines
