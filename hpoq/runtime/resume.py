"""``run --resume``: rebuild the exact scheduler state from the journal and continue.

The journal holds every call the master made on its scheduler, in order: ``unit`` records with
``source: suggest`` (``suggest()`` returned that unit), ``idle`` (``suggest()`` returned None),
``result`` (``on_result``), final ``failure`` (``on_failure``), ``model`` (``on_model_ready``: a
background fit reported done). Replaying them on a scheduler
freshly built from the study's seed repeats the original computation -- predictor fits on the
same curves with the same derived seeds included -- so the rebuilt scheduler (and its predictor
inputs) is the one the killed master had; each replayed call is checked against the record and
its decisions against the ``decision`` record, and a mismatch stops the resume with a clear
error instead of continuing from a different state (a QPU-trained predictor is not
deterministic, for instance). A ``snapshot`` record (written at a clean SIGTERM/SIGUSR1 stop,
when no unit is in flight) is loaded with ``load_state_dict`` instead of replaying what came
before it.

Work lost is at most the units in flight when the master died: they are dispatched again
(``source: resume``) before the scheduler is asked for new work, as are failed units waiting for
their retry. Whether a lost unit counts against its trial's ``max_retries`` depends on how the
previous master ended:

* with an ``end`` record (a second stop signal, or an abort because of hung ranks): the master
  knew why the units stopped, so they simply run again;
* without one (the job died: a rank's segfault, OOM kill or ``os._exit`` takes the whole MPI job
  down, the master with it): each lost unit is a failed attempt (:attr:`Replayed.lost_counted`;
  the new master journals ``failure`` records of ``kind: lost`` right after its ``resume``
  record, listing them in ``counted_lost``) and is retried isolated, so a unit that kills its
  rank every time ends FAILED after ``max_retries`` + 1 starts instead of looping forever.
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from dataclasses import dataclass, field

from hpoq.dispatch import Dispatch, Dispatcher
from hpoq.errors import ConfigError
from hpoq.journal import records
from hpoq.journal.state import StudyState
from hpoq.runtime.journal import dumps

LOST_REASON = (
    "lost: the job ended while this unit ran (a rank died: crash, OOM kill, os._exit; or the master was killed)"
)


@dataclass
class Replayed:
    state: StudyState  # the study as the journal tells it
    queue: list[Dispatch] = field(default_factory=list)  # to run before asking the scheduler (lost, then retries)
    lost_units: list = field(default_factory=list)
    lost_counted: list[Dispatch] = field(default_factory=list)  # lost in a crash: to journal as failed attempts
    from_snapshot: int | None = None  # line number (1-based) of the snapshot used
    replayed: int = 0  # scheduler calls replayed
    finished: bool = False  # the journal ends with a "finished" end record


def _diverged(line: int, what: str) -> ConfigError:
    return ConfigError(
        f"cannot resume: replaying the journal diverged at line {line} ({what}); the scheduler did not "
        "repeat its earlier decisions (is its predictor deterministic for this seed?)"
    )


def _same_actions(decisions, recorded: list) -> bool:
    got = [(int(d.trial_id), d.action) for d in decisions or []]
    want = [(int(d.trial_id), d.action) for d in recorded]
    return got == want


def _last_master_ended(journal: list[records.Record]) -> bool:
    """Did the last master (after the last header/resume record) end knowingly?

    True with its ``end`` record, or with a ``stop`` record of a signal: a job stopped from outside
    (Slurm's SIGTERM, then SIGKILL after its grace time) loses its running units through no fault
    of theirs, and must not turn preemptions into failed trials.
    """
    for rec in reversed(journal):
        if isinstance(rec, records.End) or (isinstance(rec, records.Stop) and rec.signal):
            return True
        if isinstance(rec, (records.Header, records.Resume)):
            return False
    return False


class InlineExecutor:
    """Runs each submitted job at once and returns its finished future: while a journal is replayed, a
    scheduler's background fits (``attach_fit_executor``) happen where the live master started them, on the
    training sets of that moment, so the replayed models are the live ones."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 -- the live fit failed the same way: raised where it is used
            future.set_exception(exc)
        return future


class _Replay:
    """The journal's scheduler calls fed, in order, to a :class:`Dispatcher` around a fresh scheduler."""

    def __init__(self, journal: list[records.Record], scheduler):
        self.configs = {r.trial_id: r.config for r in journal if isinstance(r, records.Config)}
        self.dispatcher = Dispatcher(scheduler, None, known_trials=self.configs)
        self.replayed = 0
        self.decisions = None  # of the last event, to compare with the decision record that follows
        self.failed_by_dispatcher: set[int] = set()  # units the dispatcher failed (on_result raised)

    def unit(self, rec: records.Unit, line: int) -> None:
        d = self.dispatcher
        if rec.source == "suggest":
            unit = d.next_unit()
            self.replayed += 1
            if unit is None or unit.key != rec.key:
                raise _diverged(line, f"suggest() gave {None if unit is None else unit.key}, the journal has {rec.key}")
            recorded = self.configs.get(unit.trial_id)
            if recorded is not None and json.loads(dumps(unit.config)) != recorded:
                raise _diverged(line, f"trial {unit.trial_id} got another configuration")
        else:
            match = next((w for w in d.queue if w.key == rec.key), None)
            if match is None:
                raise _diverged(line, f"re-dispatched unit {rec.key} was not waiting")
            d.queue.remove(match)
        d.start(Dispatch.from_record(rec, self.configs.get(rec.trial_id)), group=rec.group, unit_id=rec.unit_id)

    def idle(self, line: int) -> None:
        unit = self.dispatcher.next_unit()
        self.replayed += 1
        if unit is not None:
            raise _diverged(line, f"suggest() gave trial {unit.trial_id}, the journal has none")

    def _in_flight(self, unit_id, line: int, what: str) -> Dispatch:
        if unit_id not in self.dispatcher.inflight:
            raise _diverged(line, f"{what} of unit {unit_id}, which was not in flight")
        return self.dispatcher.release(unit_id, free=False)

    def result(self, rec: records.Result, line: int) -> None:
        unit = self._in_flight(rec.unit_id, line, "result")
        self.replayed += 1
        self.decisions = self.dispatcher.result(unit, rec)
        failed = [e for e in self.dispatcher.drain() if isinstance(e, records.Failure)]
        self.failed_by_dispatcher.update(e.unit_id for e in failed)  # their failure records follow

    def failure(self, rec: records.Failure, line: int) -> None:
        if rec.unit_id in self.failed_by_dispatcher:  # on_result raised: replayed with the result
            self.failed_by_dispatcher.discard(rec.unit_id)
            return
        unit = self._in_flight(rec.unit_id, line, "failure")
        decisions = self.dispatcher.fail(unit, rec.kind, rec.reason, counted=rec.counted, final=rec.final)
        if rec.final:
            self.replayed += 1
            self.decisions = decisions

    def model(self, rec: records.Model) -> None:  # a background fit the live master reported done
        self.replayed += 1
        self.decisions = self.dispatcher.model_ready(rec.key)

    def decision(self, rec: records.Decisions, line: int) -> None:
        if not _same_actions(self.decisions, rec.decisions):
            raise _diverged(line, "different decisions")
        self.decisions = None

    def feed(self, rec: records.Record, line: int) -> None:
        if isinstance(rec, records.Unit):
            self.unit(rec, line)
        elif isinstance(rec, records.Idle):
            self.idle(line)
        elif isinstance(rec, records.Result):
            self.result(rec, line)
        elif isinstance(rec, records.Failure):
            self.failure(rec, line)
        elif isinstance(rec, records.Model):
            self.model(rec)
        elif isinstance(rec, records.Decisions):
            self.decision(rec, line)
        elif isinstance(rec, records.Resume):  # units it counted as failed stay in flight: their failures follow
            self.dispatcher.restart(keep=set(rec.counted_lost))
        self.dispatcher.drain()


def replay(journal: list[records.Record], scheduler, mode: str) -> Replayed:
    """Fold ``journal`` (its journal records, in order: :func:`hpoq.runtime.journal.read_records`) into
    ``scheduler`` (built fresh from the study) and a :class:`StudyState`."""
    scheduler.attach_fit_executor(InlineExecutor())  # the master attaches its fit thread after the replay
    snap = max((i for i, r in enumerate(journal) if isinstance(r, records.Snapshot)), default=None)
    run = _Replay(journal, scheduler)
    out = Replayed(state=StudyState.of(journal, mode))
    start = 0
    if snap is not None:
        try:
            scheduler.load_state_dict(journal[snap].state)
        except Exception as exc:  # noqa: BLE001 -- any failure to restore is a resume error
            raise ConfigError(
                f"cannot resume: the scheduler snapshot at line {snap + 1} does not load ({exc})"
            ) from None
        run.dispatcher.queue.extend(Dispatch.from_message(e) for e in journal[snap].queue)
        start = snap + 1
        out.from_snapshot = snap + 1
    for i in range(start, len(journal)):
        run.feed(journal[i], i + 1)
    d = run.dispatcher
    out.replayed = run.replayed
    out.lost_units = sorted(d.inflight)
    if not _last_master_ended(journal):
        out.lost_counted = [d.release(uid, free=False) for uid in sorted(d.inflight)]
    d.restart()  # what was in flight runs again first; retries held for this job may run
    out.queue = list(d.queue)
    out.finished = isinstance(journal[-1], records.End) and journal[-1].status == "finished"
    return out
