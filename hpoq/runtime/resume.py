"""``run --resume``: rebuild the exact scheduler state from the journal and continue.

The journal holds every call the master made on its scheduler, in order: ``unit`` records with
``source: suggest`` (``suggest()`` returned that unit), ``idle`` (``suggest()`` returned None),
``result`` (``on_result``), final ``failure`` (``on_failure``). Replaying them on a scheduler
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
their retry.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from hpoq.errors import HpoqError
from hpoq.runtime.book import TrialBook
from hpoq.runtime.journal import dumps


@dataclass
class Replayed:
    book: TrialBook
    queue: list = field(default_factory=list)     # units to run before asking the scheduler (lost, then retries)
    lost_units: list = field(default_factory=list)
    from_snapshot: int | None = None               # line number (1-based) of the snapshot used
    replayed: int = 0                               # scheduler calls replayed
    finished: bool = False                          # the journal ends with a "finished" end record


def minimized(metrics, mode: str) -> list[float]:
    """Metrics as the scheduler sees them: lower is better (method.md 1)."""
    values = [float(v) for v in metrics]
    return [-v for v in values] if mode == "max" else values


def queue_entry(unit: dict, source: str, attempt: int | None = None) -> dict:
    return {"trial_id": int(unit["trial_id"]), "config": unit.get("config"), "start_epoch": int(unit["start_epoch"]),
            "end_epoch": int(unit["end_epoch"]), "attempt": int(unit.get("attempt", 0) if attempt is None else attempt),
            "source": source}


def _diverged(line: int, what: str) -> HpoqError:
    return HpoqError(f"cannot resume: replaying the journal diverged at line {line} ({what}); the scheduler did not "
                     "repeat its earlier decisions (is its predictor deterministic for this seed?)")


def _same_actions(decisions, recorded: list) -> bool:
    got = [(int(d.trial_id), d.action) for d in decisions or []]
    want = [(int(d["trial_id"]), d["action"]) for d in recorded]
    return got == want


def replay(records: list[dict], scheduler, mode: str) -> Replayed:
    """Fold ``records`` into ``scheduler`` (built fresh from the study) and a :class:`TrialBook`."""
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
            raise HpoqError(f"cannot resume: the scheduler snapshot at line {snap + 1} does not load ({exc})") from None
        waiting.extend(records[snap].get("queue", []))
        start = snap + 1
        out.from_snapshot = snap + 1
    pending: dict[int, dict] = {}
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
                match = next((w for w in waiting if (w["trial_id"], w["start_epoch"], w["end_epoch"]) == key), None)
                if match is None:
                    raise _diverged(line, f"re-dispatched unit {key} was not waiting")
                waiting.remove(match)
            pending[int(rec["unit_id"])] = rec
        elif kind == "idle":
            unit = scheduler.suggest()
            out.replayed += 1
            if unit is not None:
                raise _diverged(line, f"suggest() gave trial {unit.trial_id}, the journal has none")
        elif kind == "result":
            pending.pop(int(rec["unit_id"]), None)
            out.replayed += 1
            try:
                last_decisions = scheduler.on_result(int(rec["trial_id"]), minimized(rec["metrics"], rec.get("mode", mode)))
            except Exception:  # noqa: BLE001 -- the live run failed the unit; the failure record follows
                last_decisions = None
        elif kind == "failure":
            unit = pending.pop(int(rec["unit_id"]), None)
            if rec.get("final"):
                out.replayed += 1
                last_decisions = scheduler.on_failure(int(rec["trial_id"]), str(rec.get("reason", "")))
            elif unit is not None:
                entry = queue_entry(unit, "retry", int(unit.get("attempt", 0)) + 1)
                entry["config"] = configs.get(entry["trial_id"])
                waiting.append(entry)
        elif kind == "decision":
            if not _same_actions(last_decisions, rec.get("decisions", [])):
                raise _diverged(line, "different decisions")
            last_decisions = None
        elif kind == "resume":
            lost = [queue_entry(u, "resume") for u in pending.values()]
            for entry in lost:
                entry["config"] = configs.get(entry["trial_id"])
            waiting = deque(lost + list(waiting))
            pending.clear()
    lost = [queue_entry(u, "resume") for u in pending.values()]
    for entry in lost:
        entry["config"] = configs.get(entry["trial_id"])
    out.lost_units = sorted(pending)
    out.queue = lost + list(waiting)
    out.finished = records[-1]["type"] == "end" and records[-1].get("status") == "finished"
    return out
