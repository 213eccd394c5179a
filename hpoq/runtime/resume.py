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
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from hpoq.errors import ConfigError
from hpoq.runtime.book import TrialBook
from hpoq.runtime.journal import dumps
from hpoq.runtime.protocol import Dispatch

LOST_REASON = (
    "lost: the job ended while this unit ran (a rank died: crash, OOM kill, os._exit; or the master was killed)"
)


@dataclass
class Replayed:
    book: TrialBook
    queue: list[Dispatch] = field(default_factory=list)  # to run before asking the scheduler (lost, then retries)
    lost_units: list = field(default_factory=list)
    lost_counted: list[Dispatch] = field(default_factory=list)  # lost in a crash: to journal as failed attempts
    from_snapshot: int | None = None  # line number (1-based) of the snapshot used
    replayed: int = 0  # scheduler calls replayed
    finished: bool = False  # the journal ends with a "finished" end record


def minimized(metrics, mode: str) -> list[float]:
    """Metrics as the scheduler sees them: lower is better (docs/algorithms.md#conventions)."""
    values = [float(v) for v in metrics]
    return [-v for v in values] if mode == "max" else values


def _diverged(line: int, what: str) -> ConfigError:
    return ConfigError(
        f"cannot resume: replaying the journal diverged at line {line} ({what}); the scheduler did not "
        "repeat its earlier decisions (is its predictor deterministic for this seed?)"
    )


def _same_actions(decisions, recorded: list) -> bool:
    got = [(int(d.trial_id), d.action) for d in decisions or []]
    want = [(int(d["trial_id"]), d["action"]) for d in recorded]
    return got == want


def _requeue(pending: dict[int, Dispatch], keep: set) -> list[Dispatch]:
    """The units in ``pending`` not in ``keep``, queued again (source ``resume``); they leave ``pending``."""
    return [pending.pop(uid).again("resume") for uid in [u for u in pending if u not in keep]]


def _last_master_ended(records: list[dict]) -> bool:
    """Did the last master (after the last header/resume record) end knowingly?

    True with its ``end`` record, or with a ``stop`` record of a signal: a job stopped from outside
    (Slurm's SIGTERM, then SIGKILL after its grace time) loses its running units through no fault
    of theirs, and must not turn preemptions into failed trials.
    """
    for rec in reversed(records):
        if rec["type"] == "end" or (rec["type"] == "stop" and rec.get("signal")):
            return True
        if rec["type"] in ("header", "resume"):
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


def replay(records: list[dict], scheduler, mode: str) -> Replayed:
    """Fold ``records`` into ``scheduler`` (built fresh from the study) and a :class:`TrialBook`."""
    if hasattr(scheduler, "attach_fit_executor"):
        scheduler.attach_fit_executor(InlineExecutor())  # the master attaches its fit thread after the replay
    book = TrialBook(mode)
    configs: dict[int, dict] = {}
    for rec in records:
        book.apply(rec)
        if rec["type"] == "config":
            configs[int(rec["trial_id"])] = rec["config"]
    snap = max((i for i, r in enumerate(records) if r["type"] == "snapshot"), default=None)
    waiting: deque = deque()
    start = 0
    out = Replayed(book=book)
    if snap is not None:
        try:
            scheduler.load_state_dict(records[snap]["state"])
        except Exception as exc:  # noqa: BLE001 -- any failure to restore is a resume error
            raise ConfigError(
                f"cannot resume: the scheduler snapshot at line {snap + 1} does not load ({exc})"
            ) from None
        waiting.extend(Dispatch.from_entry(e) for e in records[snap].get("queue", []))
        start = snap + 1
        out.from_snapshot = snap + 1
    pending: dict[int, Dispatch] = {}
    last_decisions = None
    for i in range(start, len(records)):
        rec, line = records[i], i + 1
        kind = rec["type"]
        if kind == "unit":
            key = (int(rec["trial_id"]), int(rec["start_epoch"]), int(rec["end_epoch"]))
            if rec.get("source", "suggest") == "suggest":
                unit = scheduler.suggest()
                out.replayed += 1
                if unit is None or (unit.trial_id, unit.start_epoch, unit.end_epoch) != key:
                    got = None if unit is None else (unit.trial_id, unit.start_epoch, unit.end_epoch)
                    raise _diverged(line, f"suggest() gave {got}, the journal has {key}")
                recorded = configs.get(unit.trial_id)
                if recorded is not None and json.loads(dumps(unit.config)) != recorded:
                    raise _diverged(line, f"trial {unit.trial_id} got another configuration")
            else:
                match = next((w for w in waiting if w.key == key), None)
                if match is None:
                    raise _diverged(line, f"re-dispatched unit {key} was not waiting")
                waiting.remove(match)
            pending[int(rec["unit_id"])] = Dispatch.from_record(rec, configs.get(int(rec["trial_id"])))
        elif kind == "idle":
            unit = scheduler.suggest()
            out.replayed += 1
            if unit is not None:
                raise _diverged(line, f"suggest() gave trial {unit.trial_id}, the journal has none")
        elif kind == "result":
            pending.pop(int(rec["unit_id"]), None)
            out.replayed += 1
            try:
                last_decisions = scheduler.on_result(
                    int(rec["trial_id"]), minimized(rec["metrics"], rec.get("mode", mode))
                )
            except Exception:  # noqa: BLE001 -- the live run failed the unit; the failure record follows
                last_decisions = None
        elif kind == "failure":
            unit = pending.pop(int(rec["unit_id"]), None)
            if rec.get("final"):
                out.replayed += 1
                last_decisions = scheduler.on_failure(int(rec["trial_id"]), str(rec.get("reason", "")))
            elif unit is not None:  # queued as the live master queued it (Master._fail)
                retry = unit.again("retry", unit.attempt + 1, isolate=rec.get("kind") == "lost")
                if rec.get("kind") in ("lost", "disk-full"):
                    waiting.appendleft(retry)
                else:
                    waiting.append(retry)
        elif kind == "model":  # a background fit the live master reported done: usable from here on
            out.replayed += 1
            last_decisions = scheduler.on_model_ready(rec["key"])
        elif kind == "decision":
            if not _same_actions(last_decisions, rec.get("decisions", [])):
                raise _diverged(line, "different decisions")
            last_decisions = None
        elif kind == "resume":  # units it counted as failed stay pending: their failure records follow
            waiting = deque(_requeue(pending, set(rec.get("counted_lost") or ())) + list(waiting))
    out.lost_units = sorted(pending)
    if _last_master_ended(records):
        lost = _requeue(pending, set())
    else:
        out.lost_counted = [pending[uid] for uid in sorted(pending)]
        lost = []
    out.queue = lost + list(waiting)
    out.finished = records[-1]["type"] == "end" and records[-1].get("status") == "finished"
    return out
