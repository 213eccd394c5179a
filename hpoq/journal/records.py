"""The journal's records, one dataclass per type (format :data:`FORMAT_VERSION`), each with
:meth:`Record.to_record` (the JSON object written as one line) and :func:`from_record` (back).

Every line of ``OUTDIR/journal.jsonl`` is ``{"type": ..., "t": ..., <fields>}`` (``t``: Unix time in
seconds, set when the record is written). The fields of each type are the dataclass fields below, in
that order; a field listed in a class's ``omitted_when_default`` is left out while it has its default
(``isolated`` of a unit, ``counted`` of a failure, ...). A journal written before a field existed reads
with the field's default. Records the dispatcher (:mod:`hpoq.dispatch`) produces -- ``config``, ``unit``,
``idle``, ``result``, ``failure``, ``decision``, ``model``, ``scheduler_error`` -- are the calls a backend
made on its scheduler, in order: the resume replays them (:mod:`hpoq.runtime.resume`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from hpoq.errors import ConfigError
from hpoq.schedulers.base import Decision

FORMAT_VERSION = 1


@dataclass
class Record:
    """One journal record; subclasses name their ``type`` and declare their fields."""

    type: ClassVar[str] = ""
    #: fields left out of the written record while they equal their default
    omitted_when_default: ClassVar[tuple[str, ...]] = ()
    t: float | None = field(default=None, kw_only=True, compare=False)

    def fields(self) -> dict:
        """The record's fields (without ``type`` and ``t``), in declaration order, as JSON values."""
        out = {}
        for name, default in _field_defaults(type(self)):
            value = getattr(self, name)
            if name in self.omitted_when_default and value == default:
                continue
            out[name] = _to_json(value)
        return out

    def to_record(self) -> dict:
        return {"type": self.type, "t": self.t, **self.fields()}


_FIELD_DEFAULTS: dict[type, tuple] = {}


def _field_defaults(cls) -> tuple:
    """(name, default) of a record class's fields but ``t``, in declaration order (looked up once per class)."""
    fields = _FIELD_DEFAULTS.get(cls)
    if fields is None:
        fields = _FIELD_DEFAULTS[cls] = tuple((f.name, f.default) for f in dataclasses.fields(cls) if f.name != "t")
    return fields


def _to_json(value):
    if isinstance(value, Decision):  # Decision.to_dict's fields, without its deep copy: the line is written at once
        out = {
            "trial_id": value.trial_id,
            "action": value.action,
            "epoch": value.epoch,
            "reason": value.reason,
            "info": value.info,
        }
        if value.forecast is not None:
            out["forecast"] = dataclasses.asdict(value.forecast)
        return out
    if isinstance(value, list) and value and isinstance(value[0], (Decision, list)):
        return [_to_json(v) for v in value]  # a record's lists are of one kind: numbers need no walk
    return value


@dataclass
class Header(Record):
    """First line: the validated study, seeds, versions, the trainer's metric and mode, the epochs plain
    Hyperband uses (``budget``), the input fingerprints (:mod:`hpoq.runtime.inputs`) and the launch."""

    type: ClassVar[str] = "header"
    version: int = FORMAT_VERSION
    study: dict = field(default_factory=dict)
    seeds: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    metric: str = "metric"
    mode: str = "min"
    budget: int | None = None
    inputs: dict = field(default_factory=dict)
    pid: int | None = None
    host: str | None = None
    world_size: int | None = None
    groups: list = field(default_factory=list)


@dataclass
class Resume(Record):
    """A resumed master starts: what the replay found (``lost_units`` were in flight; ``counted_lost`` of
    them count as failed attempts, their ``failure`` records follow) and the launch."""

    type: ClassVar[str] = "resume"
    omitted_when_default: ClassVar[tuple[str, ...]] = ("changed_inputs",)
    replayed: int = 0
    from_snapshot: int | None = None
    lost_units: list = field(default_factory=list)
    counted_lost: list = field(default_factory=list)
    queue: int = 0
    changed_inputs: list | None = None
    pid: int | None = None
    host: str | None = None
    world_size: int | None = None
    groups: list = field(default_factory=list)


@dataclass
class Config(Record):
    """A trial's configuration, the first time one of its units is dispatched."""

    type: ClassVar[str] = "config"
    trial_id: int
    config: dict


@dataclass
class Unit(Record):
    """A work unit sent to a trial group. ``source``: ``suggest`` (the scheduler), ``retry`` (a failed
    attempt again) or ``resume`` (re-run after a restart); ``isolated``: run alone."""

    type: ClassVar[str] = "unit"
    omitted_when_default: ClassVar[tuple[str, ...]] = ("isolated",)
    unit_id: int
    trial_id: int
    start_epoch: int
    end_epoch: int
    group: int | None = None
    ranks: list = field(default_factory=list)
    attempt: int = 0
    source: str = "suggest"
    checkpoint_dir: str = ""
    isolated: bool = False

    @property
    def key(self) -> tuple[int, int, int]:
        return self.trial_id, self.start_epoch, self.end_epoch


@dataclass
class Idle(Record):
    """The scheduler's ``suggest()`` returned None while a worker was free."""

    type: ClassVar[str] = "idle"


@dataclass
class Result(Record):
    """A unit finished: per-epoch ``metrics`` in the trainer's own direction (``mode``), training seconds."""

    type: ClassVar[str] = "result"
    unit_id: int
    trial_id: int
    start_epoch: int
    end_epoch: int
    metrics: list
    mode: str = "min"
    seconds: float = 0.0
    group: int | None = None


@dataclass
class Failure(Record):
    """A unit failed. ``final``: reported to the scheduler (the trial is FAILED), else retried; ``kind``:
    trainer, non-finite, oom, scheduler, timeout, lost or disk-full; ``counted``: False when the failure is
    not counted against ``max_retries`` (a full disk is not the trial's fault)."""

    type: ClassVar[str] = "failure"
    omitted_when_default: ClassVar[tuple[str, ...]] = ("counted",)
    unit_id: int | None
    trial_id: int
    reason: str = ""
    attempt: int = 0
    final: bool = False
    kind: str = "trainer"
    counted: bool = True


@dataclass
class Decisions(Record):
    """The scheduler's decisions after an event: ``unit_id`` of the result or failure that caused them
    (None after a model)."""

    type: ClassVar[str] = "decision"
    unit_id: int | None
    decisions: list


@dataclass
class Model(Record):
    """A forecast model's background fit is done: ``key`` (rung epoch, target epoch, training size)."""

    type: ClassVar[str] = "model"
    key: list


@dataclass
class SchedulerError(Record):
    """A scheduler call raised: ``call`` (suggest, on_result, ...) and the error."""

    type: ClassVar[str] = "scheduler_error"
    call: str
    error: str


@dataclass
class CheckpointDeleted(Record):
    type: ClassVar[str] = "checkpoint_deleted"
    trial_id: int
    path: str


@dataclass
class Stop(Record):
    """The master stops handing out work: a ``signal`` (SIGTERM, SIGUSR1) or a ``reason`` without one."""

    type: ClassVar[str] = "stop"
    omitted_when_default: ClassVar[tuple[str, ...]] = ("reason",)
    signal: str | None = None
    reason: str | None = None


@dataclass
class Snapshot(Record):
    """The scheduler's ``state_dict()`` and the runtime's queue, written at a clean stop."""

    type: ClassVar[str] = "snapshot"
    state: dict
    queue: list = field(default_factory=list)


@dataclass
class End(Record):
    """Last line of a master run: ``status`` (finished, interrupted, error), the answer and what it cost."""

    type: ClassVar[str] = "end"
    omitted_when_default: ClassVar[tuple[str, ...]] = ("error", "reason", "abort", "predictor_fits")
    status: str
    best: dict | None = None
    epochs: int = 0
    units: int = 0
    master_cpu_s: float = 0.0
    fit_cpu_s: float = 0.0
    fit_jobs: int = 0
    fit_wait_s: float = 0.0
    fit_waits: int = 0
    predictor_fits: int | None = None  # the scheduler's own count (swift's inline fits included), if it keeps one
    max_dispatch_gap_s: float = 0.0
    error: str | None = None
    reason: str | None = None
    abort: str | None = None


RECORD_CLASSES: dict[str, type[Record]] = {
    cls.type: cls
    for cls in (
        Header,
        Resume,
        Config,
        Unit,
        Idle,
        Result,
        Failure,
        Decisions,
        Model,
        SchedulerError,
        CheckpointDeleted,
        Stop,
        Snapshot,
        End,
    )
}
RECORD_TYPES = tuple(RECORD_CLASSES)


def _number(kind):
    def convert(value):
        if value is None or isinstance(value, bool):
            raise ValueError(f"not a number: {value!r}")
        return kind(value)

    return convert


def _optional(convert):
    return lambda value: None if value is None else convert(value)


#: annotation -> how a JSON value becomes the field's value (ValueError/TypeError if it cannot)
_CONVERT = {
    "int": _number(int),
    "float": _number(float),
    "str": str,
    "bool": bool,
    "dict": dict,
    "list": list,
    "int | None": _optional(_number(int)),
    "float | None": _optional(_number(float)),
    "str | None": _optional(str),
    "dict | None": _optional(dict),
    "list | None": _optional(list),
}


def from_record(rec: dict) -> Record:
    """The typed record of a journal line's JSON object; ConfigError naming the type and field otherwise."""
    kind = rec.get("type")
    cls = RECORD_CLASSES.get(kind)
    if cls is None:
        raise ConfigError(f"unknown record type {kind!r}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name == "t":
            continue
        if f.name not in rec:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{kind} record without its {f.name!r} field")
            continue
        try:
            values[f.name] = _CONVERT[f.type](rec[f.name])
        except (TypeError, ValueError):
            raise ConfigError(f"{kind} record: field {f.name!r} is not valid ({rec[f.name]!r})") from None
    if cls is Decisions:
        try:
            values["decisions"] = [Decision.from_dict(d) for d in values["decisions"]]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError("decision record: field 'decisions' is not valid") from None
    t = rec.get("t")
    return cls(**values, t=t if isinstance(t, (int, float)) and not isinstance(t, bool) else None)
