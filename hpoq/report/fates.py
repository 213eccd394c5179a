"""A trial's fate, read from its scheduler decisions (the journal's ``decision`` records).

Decision vocabulary (:mod:`hpoq.schedulers.base`): actions continue / pause / stop / done /
failed; the reason names the rule and differs per scheduler:

* ``hyperband``: pause ``rung`` (reached r_i), continue ``promoted``, stop ``rung`` (ranked out at
  the round end), done ``completed`` (reached R), failed ``failed``.
* ``swift``: as Hyperband, plus continue ``quota`` / ``data`` (rule 2), pause ``parked``, continue
  or stop ``predicted`` (info ``prediction``, ``tau``), pause ``full`` / ``selected``.
* ``asha``: pause ``rung``, continue ``rung`` / ``finish`` (promotion), stop ``rung`` (never
  promoted when the search ended), done ``completed``.
* ``default``: Hyperband's vocabulary, plus continue ``checkpoint`` (passed a stop test between two
  round ends), pause ``evidence`` (the test stopped it: info ``rule``, ``p``, ``bar`` and, with a
  forecaster, ``predicted``; confirmed by a stop ``evidence`` when the study ends), continue ``audit``
  (a stop drawn for the audit, trained to R anyway), done ``audit`` and done ``rescue``. Studies of
  earlier versions also hold continue ``rung`` / ``predicted`` /
  ``uncertain`` / ``finalist`` and stop ``predicted``.
* ``random``: done ``completed``; ``topk-1epoch``: pause ``screened``, continue / stop ``top-k``.

The fate is decided by the *last* decision about the trial: a stop is "pruned by prediction"
when its reason comes from a predictor or its info holds a prediction, "pruned by rung" when it
was ranked out (``rung``, ``top-k``), and "stopped (other)" for any reason not known here.
"""

from __future__ import annotations

COMPLETED = "completed"
PRUNED_RUNG = "pruned-rung"
PRUNED_PREDICTION = "pruned-prediction"
FAILED = "failed"
UNFINISHED = "unfinished"
STOPPED_OTHER = "stopped-other"

#: every fate, in the order reports list them
FATES = (COMPLETED, PRUNED_RUNG, PRUNED_PREDICTION, FAILED, UNFINISHED, STOPPED_OTHER)

#: human-readable names (tables and plot legends)
FATE_LABELS = {
    COMPLETED: "promoted to R (completed)",
    PRUNED_RUNG: "pruned by rung",
    PRUNED_PREDICTION: "pruned by prediction",
    FAILED: "failed",
    UNFINISHED: "running / paused",
    STOPPED_OTHER: "stopped (other)",
}

#: stop reasons that mean "ranked out by observed values"
RUNG_REASONS = frozenset({"rung", "top-k"})
#: stop reasons that mean "a predictor said it cannot win"
PREDICTION_REASONS = frozenset({"predicted", "prediction", "evidence"})
#: decision-info keys that hold a predicted value (see :mod:`hpoq.report.predictions`)
PREDICTION_KEYS = ("prediction", "predicted_final", "predicted")


def holds_prediction(info) -> bool:
    return isinstance(info, dict) and any(k in info for k in PREDICTION_KEYS)


def classify_stop(reason: str, info) -> str:
    """Fate of a trial stopped with ``reason`` and decision ``info``."""
    if reason in PREDICTION_REASONS or holds_prediction(info):
        return PRUNED_PREDICTION
    if reason in RUNG_REASONS:
        return PRUNED_RUNG
    return STOPPED_OTHER


def classify_fate(decisions) -> str:
    """Fate of one trial from its decisions in journal order (:class:`~hpoq.schedulers.base.Decision`).

    No decision yet, or a last decision continue / pause: :data:`UNFINISHED` (running or paused).
    Unknown actions count as :data:`STOPPED_OTHER` rather than failing the report.
    """
    if not decisions:
        return UNFINISHED
    last = decisions[-1]
    action = last.action
    if action == "done":
        return COMPLETED
    if action == "failed":
        return FAILED
    if action == "stop":
        return classify_stop(str(last.reason), last.info)
    if action in ("continue", "pause"):
        return UNFINISHED
    return STOPPED_OTHER
