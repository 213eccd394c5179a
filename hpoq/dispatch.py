"""The one dispatcher: how every backend drives a scheduler (cf. Syne Tune's tuner loop over its backends).

A :class:`Dispatcher` owns what a backend must track around a scheduler: the free workers (trial
groups), the queue of units that run before the scheduler is asked again (retries and re-runs), the
units in flight, isolation and the retry rule. It calls the scheduler and turns every call into journal
records (:mod:`hpoq.journal.records`), appended to its :attr:`~Dispatcher.events`, which the backend
drains: the MPI master (:mod:`hpoq.runtime.master`) journals them and adds messages, checkpoints and a
clock; the replay backend (:mod:`hpoq.simulate.replay`) adds a simulated clock; the resume
(:mod:`hpoq.runtime.resume`) feeds it the journal's events and compares what it says with what the
journal recorded. It does no I/O and reads no clock, so the three drive a scheduler the same way.

The rules (docs/runtime.md#the-master-loop):

* A free worker takes the first waiting unit of the queue, else the scheduler's ``suggest()`` (not once
  the scheduler is finished); ``suggest()`` returning None is an ``idle`` record.
* An isolated unit runs alone: at the head of the queue it waits until nothing is in flight, and nothing
  else starts while it runs.
* A failed unit is retried from the same checkpoint while its trial's counted failures (over all its
  units) are at most ``max_retries``; the next failure is final and goes to ``on_failure``. A retry of a
  unit lost when its job died runs first and isolated, one after a full disk (never counted) first, one
  after a timeout waits for the next job (the hung rank may still write the trial's checkpoint: it is
  *held*), any other last.
* An exception from ``on_result`` (other than :class:`ConfigError` and :class:`InternalError`) is a
  ``scheduler_error`` record and fails the unit for good (``kind: scheduler``); from ``suggest``,
  ``on_failure`` or ``on_model_ready`` the scheduler cannot go on: :class:`InternalError`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Callable

from hpoq.errors import ConfigError, InternalError
from hpoq.journal import records
from hpoq.schedulers.base import Decision, Scheduler

#: why a unit was sent: the scheduler, a failed attempt, a restart
SOURCES = ("suggest", "retry", "resume")


def minimized(metrics, mode: str) -> list[float]:
    """Metrics as the scheduler sees them: lower is better (docs/algorithms.md#conventions)."""
    values = [float(v) for v in metrics]
    return [-v for v in values] if mode == "max" else values


@dataclass
class Dispatch:
    """One work unit of a trial (epochs ``start_epoch + 1 .. end_epoch``), from the queue to a worker.

    ``unit_id`` and ``group`` are given when it starts; ``held``: a retry waiting for the next job.
    A group leader gets it as a plain dict (:meth:`to_message`, also the form of a snapshot's queue);
    the journal as a ``unit`` record (:meth:`to_record`).
    """

    trial_id: int
    config: dict | None
    start_epoch: int
    end_epoch: int
    attempt: int = 0  # 0 = first try
    source: str = "suggest"
    isolate: bool = False  # run alone, nothing else in flight (a unit lost when its job died)
    unit_id: int | None = None
    checkpoint_dir: str = ""
    group: int | None = None
    held: bool = False

    @property
    def key(self) -> tuple[int, int, int]:
        return self.trial_id, self.start_epoch, self.end_epoch

    @classmethod
    def from_work_unit(cls, unit) -> "Dispatch":
        return cls(int(unit.trial_id), unit.config, int(unit.start_epoch), int(unit.end_epoch))

    def again(self, source: str, attempt: int | None = None, isolate: bool = False) -> "Dispatch":
        """The same epochs queued to run once more (a retry, or a re-run after a restart)."""
        return replace(
            self,
            source=source,
            attempt=self.attempt if attempt is None else int(attempt),
            isolate=isolate,
            unit_id=None,
            checkpoint_dir="",
            group=None,
            held=False,
        )

    def to_message(self) -> dict:
        """The unit as a plain dict (a group leader never depends on the master's class layout)."""
        return {
            "unit_id": self.unit_id,
            "trial_id": self.trial_id,
            "config": self.config,
            "start_epoch": self.start_epoch,
            "end_epoch": self.end_epoch,
            "attempt": self.attempt,
            "source": self.source,
            "checkpoint_dir": self.checkpoint_dir,
            "isolate": self.isolate,
        }

    @classmethod
    def from_message(cls, msg: dict) -> "Dispatch":
        return cls(
            int(msg["trial_id"]),
            msg.get("config"),
            int(msg["start_epoch"]),
            int(msg["end_epoch"]),
            attempt=int(msg.get("attempt", 0)),
            source=str(msg.get("source", "suggest")),
            isolate=bool(msg.get("isolate")),
            unit_id=msg.get("unit_id"),
            checkpoint_dir=str(msg.get("checkpoint_dir", "")),
        )

    def to_record(self, ranks: list[int]) -> records.Unit:
        return records.Unit(
            self.unit_id,
            self.trial_id,
            self.start_epoch,
            self.end_epoch,
            group=self.group,
            ranks=list(ranks),
            attempt=self.attempt,
            source=self.source,
            checkpoint_dir=self.checkpoint_dir,
            isolated=self.isolate,
        )

    @classmethod
    def from_record(cls, rec: records.Unit, config: dict | None = None) -> "Dispatch":
        return cls(
            rec.trial_id,
            config,
            rec.start_epoch,
            rec.end_epoch,
            attempt=rec.attempt,
            source=rec.source,
            isolate=rec.isolated,
            unit_id=rec.unit_id,
            checkpoint_dir=rec.checkpoint_dir,
            group=rec.group,
        )


class Dispatcher:
    """Drive ``scheduler`` on ``workers`` workers (None: as the journal says, for a resume).

    ``max_retries``: failed attempts a trial may retry (see the module docstring); ``queue``: units to run
    before the scheduler is asked (a resumed study's); ``failures``: counted failures per trial so far;
    ``next_unit_id``, ``known_trials``: the ids given and the trials whose configuration was recorded;
    ``ranks(group)``: the world ranks of a worker, for the ``unit`` records. ``tolerate_errors`` False:
    any exception of a scheduler call goes up as it is (the replay simulator, where it is a bug to see).
    """

    def __init__(
        self,
        scheduler: Scheduler,
        workers: int | None = None,
        *,
        max_retries: int = 0,
        queue=(),
        failures: dict | None = None,
        next_unit_id: int = 0,
        known_trials=(),
        ranks: Callable[[int], list[int]] | None = None,
        tolerate_errors: bool = True,
    ):
        self.scheduler = scheduler
        self.free: deque | None = None if workers is None else deque(range(int(workers)))
        self.max_retries = int(max_retries)
        self.queue: deque[Dispatch] = deque(queue)  # retries and re-runs, before suggest(); held ones wait
        self.inflight: dict[int, Dispatch] = {}  # unit_id -> the unit
        self.isolated_running = 0
        self.failures: dict[int, int] = dict(failures or {})  # trial -> counted failures
        self.next_unit_id = int(next_unit_id)
        self.known_trials = set(known_trials)
        self.ranks = ranks or (lambda group: [] if group is None else [group])
        self.tolerate_errors = bool(tolerate_errors)
        self.events: list[records.Record] = []  # what happened, in order: the backend drains them

    # -- what the backend reads -----------------------------------------------------------------
    def drain(self) -> list[records.Record]:
        """The events since the last drain, oldest first."""
        out, self.events = self.events, []
        return out

    def busy_trials(self) -> set[int]:
        """Trials with a unit in flight or waiting in the queue."""
        return {u.trial_id for u in self.inflight.values()} | {u.trial_id for u in self.queue}

    def held(self) -> list[Dispatch]:
        """Retries waiting for the next job (of units that timed out)."""
        return [u for u in self.queue if u.held]

    def _first_runnable(self) -> int | None:
        return next((i for i, u in enumerate(self.queue) if not u.held), None)

    def isolating(self) -> bool:
        """An isolated unit runs, or waits at the head of the queue for the running ones to end."""
        if self.isolated_running:
            return True
        i = self._first_runnable()
        return i is not None and self.queue[i].isolate and bool(self.inflight)

    # -- dispatch -------------------------------------------------------------------------------
    def next_unit(self) -> Dispatch | None:
        """The unit a free worker runs next (:meth:`start` it), or None: no free worker, an isolated unit
        runs or waits, the scheduler is finished, or ``suggest()`` had nothing now (an ``idle`` event)."""
        if self.free is not None and not self.free:
            return None
        if self.isolating():
            return None
        i = self._first_runnable()
        if i is not None:
            unit = self.queue[i]
            del self.queue[i]
            return unit
        if self.scheduler.finished:
            return None
        work = self._call_or_stop("suggest")
        if work is None:
            self.events.append(records.Idle())
            return None
        return Dispatch.from_work_unit(work)

    def start(self, unit: Dispatch, *, checkpoint_dir: str = "", group: int | None = None, unit_id=None) -> Dispatch:
        """``unit`` starts on a free worker (``group``: the one the journal names), with the next unit id
        (or ``unit_id``): a ``config`` event the first time its trial runs, then a ``unit`` event."""
        if group is None and self.free is not None:
            group = self.free.popleft()
        if unit.trial_id not in self.known_trials:
            self.known_trials.add(unit.trial_id)
            self.events.append(records.Config(unit.trial_id, unit.config))
        unit.unit_id = self.next_unit_id if unit_id is None else int(unit_id)
        self.next_unit_id = max(self.next_unit_id, unit.unit_id + 1)
        unit.group, unit.checkpoint_dir = group, checkpoint_dir
        self.events.append(unit.to_record(self.ranks(group)))
        self.inflight[unit.unit_id] = unit
        self.isolated_running += unit.isolate
        return unit

    def put_back(self, unit: Dispatch) -> None:
        """``unit`` did not reach its worker -- from :meth:`next_unit`, its checkpoint could not be prepared;
        started, its message could not follow its record -- and runs first when work is handed out again:
        a re-run if the scheduler suggested it or its ``unit`` record was written. A started unit's worker is
        the first free one again."""
        source = "resume" if unit.source == "suggest" else unit.source
        if unit.unit_id in self.inflight:
            self.release(unit.unit_id, free=False)
            self.free_worker(unit.group, first=True)
            source = "resume"
        self.queue.appendleft(unit.again(source, isolate=unit.isolate))

    def release(self, unit_id: int, free: bool = True) -> Dispatch:
        """Unit ``unit_id`` is no longer in flight (answered, timed out or not sent); ``free``: its worker
        takes work again (else it stays retired until :meth:`free_worker`)."""
        unit = self.inflight.pop(unit_id)
        self.isolated_running -= unit.isolate
        if free:
            self.free_worker(unit.group)
        return unit

    def free_worker(self, group: int | None, first: bool = False) -> None:
        if self.free is not None and group is not None:
            (self.free.appendleft if first else self.free.append)(group)

    def restart(self, keep=()) -> list[Dispatch]:
        """A new job starts: the units in flight (but those in ``keep``, whose failures follow) run again,
        first, as re-runs; held retries may run now. Returns the re-queued units."""
        again = [self.release(uid, free=False).again("resume") for uid in list(self.inflight) if uid not in keep]
        for unit in self.queue:
            unit.held = False
        self.queue.extendleft(reversed(again))
        return again

    # -- answers --------------------------------------------------------------------------------
    def result(self, unit: Dispatch, record: records.Result) -> list[Decision]:
        """``unit`` (released) finished with ``record``'s metrics: ``on_result``; its decisions."""
        self.events.append(record)
        try:
            decisions = self._call("on_result", unit.trial_id, minimized(record.metrics, record.mode))
        except _SchedulerFailed as err:
            return self.fail(unit, "scheduler", f"scheduler error in on_result: {err}", final=True)
        return self._decided(unit.unit_id, decisions)

    def fail(
        self, unit: Dispatch, kind: str, reason: str, *, counted: bool | None = None, final: bool | None = None
    ) -> list[Decision]:
        """``unit`` (released) failed: retried (queued by ``kind``) or, past ``max_retries``, reported with
        ``on_failure``; a ``failure`` event, and its decisions. A full disk is not counted against the trial;
        a resume passes ``counted`` and ``final`` as its journal says."""
        tid = unit.trial_id
        if counted is None:
            counted = kind != "disk-full"
        if final is None:
            final = counted and self.failures.get(tid, 0) >= self.max_retries
        if counted:
            self.failures[tid] = self.failures.get(tid, 0) + 1
        self.events.append(records.Failure(unit.unit_id, tid, reason, unit.attempt, final, kind, counted))
        if not final:
            self._queue_retry(unit, kind)
            return []
        return self._decided(unit.unit_id, self._call_or_stop("on_failure", tid, reason))

    def _queue_retry(self, unit: Dispatch, kind: str) -> None:
        retry = unit.again("retry", unit.attempt + 1, isolate=kind == "lost")
        if kind == "timeout":  # the hung rank may still write this trial's checkpoint: the next job runs it
            retry.held = True
            self.queue.append(retry)
        elif kind in ("lost", "disk-full"):  # a lost unit first and alone; after a full disk, first
            self.queue.appendleft(retry)
        else:
            self.queue.append(retry)

    def poll_models(self) -> list[Decision]:
        """Report the background fits the scheduler finished (``model`` events); their decisions."""
        decisions: list[Decision] = []
        for key in self.scheduler.fitted_models() if self.scheduler.background_fits else ():
            decisions += self.model_ready(key)
        return decisions

    def model_ready(self, key) -> list[Decision]:
        """Model ``key`` is fitted: a ``model`` event and ``on_model_ready``; its decisions."""
        self.events.append(records.Model(list(key)))
        return self._decided(None, self._call_or_stop("on_model_ready", key))

    def _decided(self, unit_id: int | None, decisions) -> list[Decision]:
        decisions = list(decisions or [])
        if decisions:
            self.events.append(records.Decisions(unit_id, decisions))
        return decisions

    # -- scheduler calls ------------------------------------------------------------------------
    def _call(self, name: str, *args):
        """Call the scheduler's ``name``: a ConfigError goes up as it is; any other exception is a
        ``scheduler_error`` event, then re-raised (an InternalError) or raised as :class:`_SchedulerFailed`."""
        try:
            return getattr(self.scheduler, name)(*args)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 -- journaled; fatal only when the scheduler cannot go on
            self.events.append(records.SchedulerError(name, f"{type(exc).__name__}: {exc}"))
            if isinstance(exc, InternalError) or not self.tolerate_errors:
                raise
            raise _SchedulerFailed(name, exc) from exc

    def _call_or_stop(self, name: str, *args):
        try:
            return self._call(name, *args)
        except _SchedulerFailed as err:
            raise InternalError(f"the scheduler cannot continue: {err}") from err.exc


class _SchedulerFailed(Exception):
    def __init__(self, call: str, exc: BaseException):
        super().__init__(f"{call}: {type(exc).__name__}: {exc}")
        self.call, self.exc = call, exc
