"""Bookkeeping of a running study, rebuilt from journal records (live on the master, or on resume).

:class:`TrialBook` folds journal records (:mod:`hpoq.runtime.journal`) into per-trial facts --
configuration, curve in the metric's own direction, status, failures -- and the counters the
progress line and the output files need. Applying every record of a journal in order gives the
same book as the master had when it wrote them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hpoq.schedulers.base import ACTION_STATUS, Status


@dataclass
class TrialInfo:
    trial_id: int
    config: dict
    curve: list = field(default_factory=list)  # metric after epochs 1..len, trainer's own direction
    status: str = Status.RUNNING
    units: int = 0
    failures: int = 0
    reason: str = ""
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.curve)


class TrialBook:
    def __init__(self, mode: str = "min"):
        self.mode = mode
        self.trials: dict[int, TrialInfo] = {}
        self.running: dict[int, int] = {}  # unit_id -> trial_id
        self.epochs_used = 0  # epochs of finished units
        self.units_done = 0
        self.units_failed = 0
        self.units_dispatched = 0
        self.next_unit_id = 0

    def apply(self, rec: dict) -> None:
        kind = rec["type"]
        if kind == "config":
            self.trials.setdefault(int(rec["trial_id"]), TrialInfo(int(rec["trial_id"]), dict(rec["config"])))
        elif kind == "unit":
            uid, tid = int(rec["unit_id"]), int(rec["trial_id"])
            self.running[uid] = tid
            self.units_dispatched += 1
            self.next_unit_id = max(self.next_unit_id, uid + 1)
            t = self.trials.get(tid)
            if t is not None:
                t.status, t.units = Status.RUNNING, t.units + 1
        elif kind == "result":
            self.running.pop(int(rec["unit_id"]), None)
            t = self.trials.get(int(rec["trial_id"]))
            start, metrics = int(rec["start_epoch"]), [float(v) for v in rec["metrics"]]
            self.epochs_used += len(metrics)
            self.units_done += 1
            if t is not None:
                t.curve[start:] = metrics
                t.seconds += float(rec.get("seconds") or 0.0)
                t.reason = ""  # an earlier failure was retried and this unit went through: no longer the story
        elif kind == "failure":
            self.running.pop(int(rec["unit_id"]), None)
            self.units_failed += 1
            t = self.trials.get(int(rec["trial_id"]))
            if t is not None:
                t.failures += 1 if rec.get("counted", True) else 0  # a full disk is not the trial's fault
                t.reason = str(rec.get("reason", ""))
                if rec.get("final"):
                    t.status = Status.FAILED
        elif kind == "decision":
            for d in rec.get("decisions", []):
                t = self.trials.get(int(d["trial_id"]))
                if t is not None and d.get("action") in ACTION_STATUS:
                    t.status = ACTION_STATUS[d["action"]]
                    if d.get("action") in ("stop", "done") and not t.reason:
                        t.reason = str(d.get("reason", ""))
        elif kind == "resume":
            self.running.clear()  # units in flight when the previous master stopped are lost

    # -- summaries ---------------------------------------------------------------------------
    def count(self, status: str) -> int:
        return sum(1 for t in self.trials.values() if t.status == status)

    def best_value(self, t: TrialInfo) -> float:
        finite = [v for v in t.curve if math.isfinite(v)]
        if not finite:
            return math.nan
        return max(finite) if self.mode == "max" else min(finite)

    def counts(self) -> dict:
        return {
            "running": len(self.running),
            "done": self.count(Status.DONE),
            "pruned": self.count(Status.PRUNED),
            "paused": self.count(Status.PAUSED),
            "failed": self.count(Status.FAILED),
            "trials": len(self.trials),
        }
