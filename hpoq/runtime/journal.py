"""The study journal: an append-only JSON-lines file written by MPI rank 0 only.

``OUTDIR/journal.jsonl`` is the single source of truth of a study: ``run --resume`` rebuilds
the scheduler by replaying it (:mod:`hpoq.runtime.resume`), and the report reads it, also while
the study runs or after it was killed. Records are appended with ``flush`` + ``os.fsync``; the
master syncs every batch of records before it acts on them (before it sends work to a trial
group), so a record of work the study depends on is on disk before that work starts. A torn last
line (the master killed while writing) is ignored by :func:`read_journal` and cut off by
:meth:`Journal.open_append` before new records are added. A batch that cannot be written (a full
disk) is cut back to the last whole record; a 1 MiB reserve file (``.hpoq.reserve``) set aside at
start gives room for the records of a clean stop.

Every record is one JSON object with ``"type"`` and ``"t"`` (Unix time, seconds); the types and their
fields are the dataclasses of :mod:`hpoq.journal.records` (format version
:data:`~hpoq.journal.records.FORMAT_VERSION`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import time

from hpoq.errors import ConfigError
from hpoq.journal.records import FORMAT_VERSION, Record, from_record
from hpoq.jsonable import numpy_default

JOURNAL_FILE = "journal.jsonl"


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
    """One JSON line; NaN/inf as strings (:func:`_encode`). The walk over every value that encodes them runs
    only when the plain encoding fails on one (or on a key JSON has no form for): most records have none."""
    try:
        return json.dumps(record, default=_default, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):
        return json.dumps(_encode(record), default=_default, allow_nan=False, separators=(",", ":"))


# records whose text fields (reason, error, abort) are masked like every line hpoq writes
_MASKED_TYPES = frozenset({"failure", "scheduler_error", "stop", "end"})
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
RESERVE_FILE = ".hpoq.reserve"
RESERVE_BYTES = 1 << 20  # set aside at start, freed when the disk fills: room for the stop, snapshot and end records


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


class JournalWriteError(OSError):
    """A batch of records could not be written; the file was cut back to the last complete batch."""


class Journal:
    """Append-only writer (rank 0 only). :meth:`write` buffers, :meth:`sync` appends the batch + fsyncs.

    A batch that cannot be written (full disk, quota, I/O error) is cut off again with
    ``ftruncate`` (which needs no space), so the file always ends with a complete record;
    :class:`JournalWriteError` then tells the master, which may free the space reserve
    (:meth:`release_reserve`) and try once more.
    """

    def __init__(self, path: str, fd: int, size: int):
        self.path = path
        self._fd = fd
        self._size = size  # bytes of complete, synced records
        self._pending: list[bytes] = []
        self.records = 0
        self.reserve_path = os.path.join(os.path.dirname(os.path.abspath(path)), RESERVE_FILE)

    @classmethod
    def create(cls, path: str) -> "Journal":
        if os.path.exists(path):
            raise ConfigError(f"journal {path!r} already exists")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        return cls(path, fd, 0)

    @classmethod
    def open_append(cls, path: str, valid_bytes: int) -> "Journal":
        """Open for appending after cutting a torn tail (everything past ``valid_bytes``)."""
        fd = os.open(path, os.O_WRONLY)
        os.ftruncate(fd, valid_bytes)
        return cls(path, fd, valid_bytes)

    def make_reserve(self, nbytes: int = RESERVE_BYTES) -> None:
        """Allocate the space reserve next to the journal (raises OSError when even that does not fit)."""
        fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, nbytes)
        finally:
            os.close(fd)

    def release_reserve(self) -> bool:
        """Delete the space reserve; True if there was one."""
        try:
            os.unlink(self.reserve_path)
            return True
        except FileNotFoundError:
            return False

    def append(self, record: Record) -> dict:
        """Buffer ``record`` (:meth:`sync` writes it), stamped with the time; the JSON object written."""
        line = self.write(record.type, **record.fields())
        record.t = line["t"]
        return line

    def write(self, rtype: str, **fields) -> dict:
        """Buffer the record ``{"type": rtype, "t": now, **fields}``; see :meth:`append` for typed records."""
        if rtype in _MASKED_TYPES:  # their error texts may echo a secret; the header keeps the study as given
            from hpoq.logsetup import redact

            fields = {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        record = {"type": rtype, "t": round(time.time(), 6), **fields}
        self._pending.append((dumps(record) + "\n").encode("utf-8"))
        self.records += 1
        return record

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    def sync(self) -> None:
        """Append the pending records and fsync; on failure cut the file back and raise JournalWriteError."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        try:
            os.lseek(self._fd, self._size, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise JournalWriteError(exc.errno, f"cannot append to the journal {self.path!r}: {exc.strerror}") from exc
        self._size += len(data)
        self._pending.clear()

    def drop_pending(self) -> int:
        """Forget records that could not be written (the journal stays as it was); how many."""
        n = len(self._pending)
        self._pending.clear()
        return n

    def abandon(self) -> None:
        """Close and delete a journal whose header never became durable (a failed start)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def close(self) -> None:
        """Sync the last records (the end record: into the space reserve when the disk is full) and close."""
        if self._fd is not None:
            try:
                try:
                    self.sync()
                except JournalWriteError:
                    if not self.release_reserve():
                        raise
                    self.sync()
            finally:
                os.close(self._fd)
                self._fd = None
                self.release_reserve()


def _is_metric(value) -> bool:
    """A number as the journal writes one: a JSON number, or "nan" / "inf" / "-inf" (see :func:`_encode`)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or value in ("nan", "inf", "-inf")


def record_problem(rec: dict, first: bool = False) -> str | None:
    """Why a parsed line cannot be used (None if it can): what every reader of it would trip over.

    The header must carry this format's ``version``; every record must be a valid typed record
    (:func:`hpoq.journal.records.from_record`: its fields there, of their types), a ``result``'s
    ``metrics`` numbers. ``status`` and ``report`` refuse what ``run --resume`` would.
    """
    if first and rec.get("type") == "header" and rec.get("version") != FORMAT_VERSION:
        return (
            f"the header has journal format version {rec.get('version')!r}; this hpoq reads version "
            f"{FORMAT_VERSION} (written by another hpoq version, or a damaged file)"
        )
    try:
        from_record(rec)
    except ConfigError as exc:
        return f"{exc} (damaged file)"
    if rec["type"] == "result" and not all(_is_metric(v) for v in rec["metrics"]):
        return f"the result record's metrics {str(rec['metrics'])[:60]} are not all numbers (damaged file)"
    return None


def unstarted(path: str) -> bool:
    """Is ``path`` a journal whose start never became durable: empty, or a torn header and nothing else?

    A master killed (or out of space) between creating the journal and syncing its header leaves
    one; nothing depends on it, so a plain rerun may replace it.
    """
    try:
        if os.path.getsize(path) > RESERVE_BYTES:  # no header is that long
            return False
        with open(path, "rb") as fh:
            head = fh.read()
    except OSError:
        return False
    opening = b'{"type":"header"'
    return b"\n" not in head and (head.startswith(opening) or opening.startswith(head))


def read_journal(path: str) -> tuple[list[dict], int]:
    """(records, bytes of complete lines) of a journal; a torn last line is ignored.

    A malformed line that is *not* the last one raises ConfigError (the file was damaged).
    """
    if not os.path.isfile(path):
        raise ConfigError(f"journal {path!r} does not exist")
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
            raise ConfigError(f"journal {path!r}: line {i + 1} is not a JSON record (damaged file)") from None
        problem = record_problem(rec, first=not records)
        if problem:
            raise ConfigError(f"journal {path!r}: line {i + 1}: {problem}")
        records.append(rec)
        offset = end
    if not records or records[0].get("type") != "header":
        raise ConfigError(f"journal {path!r} has no header record")
    return records, offset


def read_records(path: str) -> tuple[list[Record], int]:
    """The journal's records, typed (:mod:`hpoq.journal.records`), and the bytes of its complete lines: the
    one reader of a journal for the resume, ``status`` and ``report`` (:func:`read_journal` gives the raw
    lines). A damaged record is a ConfigError naming its line."""
    lines, valid = read_journal(path)
    out = []
    for number, line in enumerate(lines, 1):
        try:
            out.append(from_record(line))
        except ConfigError as exc:
            raise ConfigError(f"journal {path!r}: line {number}: {exc}") from None
    return out, valid
