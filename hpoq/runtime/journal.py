"""The study journal: an append-only JSON-lines file written by MPI rank 0 only.

``OUTDIR/journal.jsonl`` is the single source of truth of a study: ``run --resume`` rebuilds
the scheduler by replaying it (:mod:`hpoq.runtime.resume`), and the report reads it, also while
the study runs or after it was killed. Records are appended with ``flush`` + ``os.fsync``; the
master syncs every batch of records before it acts on them (before it sends work to a trial
group), so a record of work the study depends on is on disk before that work starts. A torn last
line (the master killed while writing) is ignored by :func:`read_journal` and cut off by
:meth:`Journal.open_append` before new records are added.

Every record is one JSON object with ``"type"`` and ``"t"`` (Unix time, seconds). Types:

``header``   first line: ``version`` (journal format), ``study`` (the validated spec, see
             :class:`hpoq.study.spec.StudySpec`), ``seeds`` (master seed and derived seeds),
             ``versions`` (hpoq, python, numpy, mpi4py, MPI library), ``world_size``,
             ``groups`` (list of rank lists), ``pid``/``host`` of the master, ``metric``/``mode``
             of the trainer, ``budget`` (epochs plain Hyperband uses at the same R, eta).
``resume``   a resumed master starts: ``pid``, ``host``, ``world_size``, ``groups``, ``replayed``
             (records replayed), ``from_snapshot`` (line number of the snapshot used or null),
             ``lost_units`` (unit ids that were in flight when the previous master stopped;
             they are run again).
``config``   a trial's configuration, the first time it is dispatched: ``trial_id``, ``config``.
``unit``     a work unit sent to a trial group: ``unit_id``, ``trial_id``, ``start_epoch``,
             ``end_epoch``, ``group`` (index), ``ranks`` (world ranks), ``attempt`` (0 = first
             try), ``source`` (``suggest``: from the scheduler; ``retry``: a failed unit tried
             again; ``resume``: re-run after a restart), ``checkpoint_dir``.
``idle``     the scheduler's ``suggest()`` returned None while a group was free (replayed too).
``result``   a unit finished: ``unit_id``, ``trial_id``, ``start_epoch``, ``end_epoch``,
             ``metrics`` (per epoch, in the trainer's own direction), ``mode``, ``seconds``
             (training time on the group leader), ``group``.
``failure``  a unit failed: ``unit_id``, ``trial_id``, ``reason``, ``attempt``, ``final`` (True:
             reported to the scheduler as FAILED; False: it is retried), ``kind`` (``trainer``,
             ``non-finite``, ``oom``, ``scheduler``).
``decision`` the scheduler's decisions after a result or final failure: ``unit_id`` (the event
             that caused them) and ``decisions`` (list of ``{trial_id, action, epoch, reason,
             info}``; ``info`` holds the inputs: values, ranks, predictions, thresholds).
``scheduler_error`` a scheduler call raised: ``call``, ``error`` (the unit is then failed).
``checkpoint_deleted`` ``trial_id``, ``path``.
``stop``     SIGTERM/SIGUSR1 received: ``signal``; the master stops handing out work.
``snapshot`` the scheduler's ``state_dict()`` (``state``) and the runtime's pending ``queue``
             (units to run before asking the scheduler again), written at a clean stop when no
             unit is in flight; resume loads it instead of replaying what came before.
``end``      last line of a master run: ``status`` (``finished``, ``interrupted`` or ``error``),
             ``best`` (scheduler's best), ``epochs`` (epochs trained so far), ``units``,
             ``error`` (for ``error``).
"""
from __future__ import annotations

import json
import math
import os
import time

from hpoq.errors import HpoqError
from hpoq.jsonable import numpy_default

JOURNAL_FILE = "journal.jsonl"
FORMAT_VERSION = 1
RECORD_TYPES = ("header", "resume", "config", "unit", "idle", "result", "failure", "decision",
                "scheduler_error", "checkpoint_deleted", "stop", "snapshot", "end")


def _default(obj):
    """numpy values as Python values; anything else a decision's info may hold as its repr."""
    if isinstance(obj, (set, tuple)):
        return list(obj)
    try:
        return numpy_default(obj)
    except TypeError:
        return repr(obj)


def _encode(value):
    """JSON has no NaN/inf: encode them as strings (decisions may carry +inf values)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def dumps(record: dict) -> str:
    return json.dumps(_encode(record), default=_default, allow_nan=False, separators=(",", ":"))


class Journal:
    """Append-only writer (rank 0 only). :meth:`write` buffers, :meth:`sync` flushes + fsyncs."""

    def __init__(self, path: str, fh):
        self.path = path
        self._fh = fh
        self._dirty = False
        self.records = 0

    @classmethod
    def create(cls, path: str) -> "Journal":
        if os.path.exists(path):
            raise HpoqError(f"journal {path!r} already exists")
        fh = open(path, "x", encoding="utf-8")
        return cls(path, fh)

    @classmethod
    def open_append(cls, path: str, valid_bytes: int) -> "Journal":
        """Open for appending after cutting a torn tail (everything past ``valid_bytes``)."""
        fh = open(path, "r+", encoding="utf-8")
        fh.truncate(valid_bytes)
        fh.seek(valid_bytes)
        return cls(path, fh)

    def write(self, rtype: str, **fields) -> dict:
        record = {"type": rtype, "t": round(time.time(), 6), **fields}
        self._fh.write(dumps(record) + "\n")
        self._dirty = True
        self.records += 1
        return record

    def sync(self) -> None:
        if self._dirty:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._dirty = False

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None


def read_journal(path: str) -> tuple[list[dict], int]:
    """(records, bytes of complete lines) of a journal; a torn last line is ignored.

    A malformed line that is *not* the last one raises HpoqError (the file was damaged).
    """
    if not os.path.isfile(path):
        raise HpoqError(f"journal {path!r} does not exist")
    with open(path, "rb") as fh:
        raw = fh.read()
    records, offset = [], 0
    lines = raw.split(b"\n")
    for i, line in enumerate(lines):
        end = offset + len(line) + 1
        last = i == len(lines) - 1 or (i == len(lines) - 2 and lines[-1] == b"")
        if i == len(lines) - 1:  # text after the final newline: a torn record (or nothing)
            break
        try:
            rec = json.loads(line.decode("utf-8"))
            if not isinstance(rec, dict) or "type" not in rec:
                raise ValueError("not a record")
        except (ValueError, UnicodeDecodeError):
            if last:
                break
            raise HpoqError(f"journal {path!r}: line {i + 1} is not a JSON record (damaged file)") from None
        records.append(rec)
        offset = end
    if not records or records[0].get("type") != "header":
        raise HpoqError(f"journal {path!r} has no header record")
    return records, offset

