"""The one reader of a journal: :class:`StudyState` folds typed records (:mod:`hpoq.journal.records`) into
what the master's outputs, the resume, ``status`` and ``report`` need.

Applying every record of a journal in order gives the state the master had when it wrote them: per trial
its configuration, its curve in the trainer's own direction, its status (the last decision or event),
units, failures and decisions; per study the units in flight, the epochs and units so far, the launches
(header and resume records) and the last ``end`` record. One ``apply`` per record type, as Optuna's
journal storage does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hpoq.journal import records
from hpoq.schedulers.base import ACTION_STATUS, Action, Decision, Status


def as_float(value) -> float:
    """A journal number (JSON number, or "nan"/"inf"/"-inf" string) as float; NaN if unreadable."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class TrialState:
    """One trial as the journal shows it. ``curve``: values after epochs 1..len, own direction (NaN where
    unknown)."""

    trial_id: int
    config: dict = field(default_factory=dict)
    curve: list = field(default_factory=list)
    status: Status = Status.RUNNING
    units_sent: int = 0  # unit records
    units_done: int = 0  # result records
    epochs_trained: int = 0  # epochs of finished units (a re-run unit counts again)
    failures: int = 0  # failures counted against max_retries
    failed_attempts: int = 0  # every failure record (retried or final, counted or not)
    reason: str = ""  # why it failed or stopped
    seconds: float = 0.0  # training seconds of its finished units
    decisions: list = field(default_factory=list)  # Decision, in journal order
    in_flight: bool = False  # a unit of it runs (or ran when the last master died)

    @property
    def epochs(self) -> int:
        return len(self.curve)

    def value_at(self, epoch: int) -> float:
        """Observed value after ``epoch`` epochs (own direction), NaN if not trained that far."""
        if 1 <= epoch <= len(self.curve):
            return self.curve[epoch - 1]
        return math.nan

    def best_value(self, mode: str) -> float:
        finite = [v for v in self.curve if math.isfinite(v)]
        if not finite:
            return math.nan
        return max(finite) if mode == "max" else min(finite)


@dataclass
class Launch:
    """One master run: its ``header`` or ``resume`` record, the time of its last record, its ``end`` record."""

    record: records.Record
    last_t: float | None = None
    end: records.End | None = None


class StudyState:
    """The state of a study after the records applied so far (see the module docstring)."""

    #: the class of :attr:`trials`' values (a reader may extend :class:`TrialState`)
    trial_type = TrialState

    def __init__(self, mode: str = "min"):
        self.mode = mode
        self.header: records.Header | None = None
        self.trials: dict[int, TrialState] = {}
        self.running: dict[int, int] = {}  # unit_id -> trial_id of the units in flight
        self.unit_ranks: dict[int, int] = {}  # unit_id -> ranks of its group
        self.epochs_used = 0  # epochs of finished units
        self.units_done = 0
        self.units_failed = 0
        self.units_dispatched = 0
        self.next_unit_id = 0
        self.results: list[records.Result] = []
        self.failures: list[records.Failure] = []
        self.costs: list[tuple] = []  # per finished unit: (start_epoch, end_epoch, seconds, ranks)
        self.launches: list[Launch] = []
        self.lost_units: set[int] = set()  # units in flight when a master died, re-run after it
        self.records = 0

    def trial(self, trial_id: int) -> TrialState:
        t = self.trials.get(trial_id)
        if t is None:
            t = self.trials[trial_id] = self.trial_type(trial_id)
        return t

    @classmethod
    def of(cls, journal, mode: str | None = None) -> "StudyState":
        """The state after every record of ``journal`` (typed records, the header first)."""
        state = cls(mode or "min")
        for rec in journal:
            state.apply(rec)
        return state

    # -- one apply per record type --------------------------------------------------------------------
    def apply(self, rec: records.Record) -> None:
        self.records += 1
        if self.launches and rec.t is not None:
            self.launches[-1].last_t = rec.t
        handler = getattr(self, f"_apply_{rec.type}", None)
        if handler is not None:
            handler(rec)

    def _apply_header(self, rec: records.Header) -> None:
        self.header = rec
        self.mode = rec.mode if rec.mode in ("min", "max") else self.mode
        self.launches.append(Launch(rec, rec.t))

    def _apply_resume(self, rec: records.Resume) -> None:
        self.launches.append(Launch(rec, rec.t))
        self.lost_units.update(int(u) for u in rec.lost_units)
        for tid in self.running.values():
            self.trials[tid].in_flight = False
        self.running.clear()  # units in flight when the previous master stopped are lost

    def _apply_config(self, rec: records.Config) -> None:
        self.trial(rec.trial_id).config = dict(rec.config or {})

    def _apply_unit(self, rec: records.Unit) -> None:
        t = self.trial(rec.trial_id)
        self.running[rec.unit_id] = rec.trial_id
        self.unit_ranks[rec.unit_id] = len(rec.ranks) or 1
        self.units_dispatched += 1
        self.next_unit_id = max(self.next_unit_id, rec.unit_id + 1)
        t.status, t.units_sent, t.in_flight = Status.RUNNING, t.units_sent + 1, True

    def _apply_result(self, rec: records.Result) -> None:
        self._answered(rec.unit_id)
        t = self.trial(rec.trial_id)
        values = [as_float(v) for v in rec.metrics]
        if len(t.curve) < rec.start_epoch:
            t.curve.extend([math.nan] * (rec.start_epoch - len(t.curve)))
        t.curve[rec.start_epoch :] = values
        t.units_done += 1
        t.epochs_trained += len(values)
        t.reason = ""  # an earlier failure was retried and this unit went through: no longer the story
        seconds = as_float(rec.seconds)
        t.seconds += seconds if math.isfinite(seconds) else 0.0
        self.epochs_used += len(values)
        self.units_done += 1
        self.results.append(rec)
        self.costs.append((rec.start_epoch, rec.end_epoch, as_float(rec.seconds), self.unit_ranks.get(rec.unit_id, 1)))

    def _apply_failure(self, rec: records.Failure) -> None:
        self._answered(rec.unit_id)
        t = self.trial(rec.trial_id)
        self.units_failed += 1
        t.failed_attempts += 1
        t.failures += 1 if rec.counted else 0  # a full disk is not the trial's fault
        t.reason = str(rec.reason)
        if rec.final:
            t.status = Status.FAILED
        self.failures.append(rec)

    def _apply_decision(self, rec: records.Decisions) -> None:
        for d in rec.decisions:
            t = self.trial(d.trial_id)
            t.decisions.append(d)
            if d.action in ACTION_STATUS:
                t.status = ACTION_STATUS[Action(d.action)]
                if d.action in (Action.STOP, Action.DONE) and not t.reason:
                    t.reason = str(d.reason)

    def _apply_end(self, rec: records.End) -> None:
        if self.launches:
            self.launches[-1].end = rec

    def _answered(self, unit_id) -> None:
        tid = self.running.pop(unit_id, None)
        if tid is not None and tid not in self.running.values():
            self.trials[tid].in_flight = False

    # -- summaries ------------------------------------------------------------------------------------
    @property
    def end(self) -> records.End | None:
        """The ``end`` record of the latest master run, None while it runs or after it died."""
        return self.launches[-1].end if self.launches else None

    def count(self, status: str) -> int:
        return sum(1 for t in self.trials.values() if t.status == status)

    def counts(self) -> dict:
        return {
            "running": len(self.running),
            "done": self.count(Status.DONE),
            "pruned": self.count(Status.PRUNED),
            "paused": self.count(Status.PAUSED),
            "failed": self.count(Status.FAILED),
            "trials": len(self.trials),
        }

    def wall_seconds(self) -> float:
        """Summed over master runs: first to last record of each."""
        total = 0.0
        for launch in self.launches:
            if launch.record.t is not None and launch.last_t is not None:
                total += max(launch.last_t - launch.record.t, 0.0)
        return total if math.isfinite(total) else 0.0


__all__ = ["Decision", "Launch", "StudyState", "TrialState", "as_float"]
