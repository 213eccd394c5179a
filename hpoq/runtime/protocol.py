"""The runtime's unit of work, in one shape each way: :class:`Dispatch` out, :class:`Outcome` back.

A :class:`Dispatch` is a unit of a trial (epochs ``start_epoch + 1 .. end_epoch``): queued for a
retry or re-run (``unit_id`` None), sent to a group leader (:meth:`Dispatch.to_message`), journaled
as a ``unit`` record (:meth:`Dispatch.to_record`) and rebuilt from one on resume
(:meth:`Dispatch.from_record`). An :class:`Outcome` is what a leader reports -- the metrics or the
failure -- and becomes the ``result`` or ``failure`` record (:meth:`Outcome.to_record`). The
scheduler's own :class:`~hpoq.schedulers.base.WorkUnit` becomes a Dispatch with
:meth:`Dispatch.from_work_unit`. Messages between ranks stay plain dicts (pickled by MPI), so a
worker never depends on a master's class layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

SOURCES = ("suggest", "retry", "resume")  # why a unit was sent: the scheduler, a failed attempt, a restart


@dataclass
class Dispatch:
    """One work unit of a trial, from the queue to a group leader and into the journal."""

    trial_id: int
    config: dict | None
    start_epoch: int
    end_epoch: int
    attempt: int = 0  # 0 = first try
    source: str = "suggest"
    isolate: bool = False  # run alone, nothing else in flight (a unit lost when its job died)
    unit_id: int | None = None  # given when it is sent
    checkpoint_dir: str = ""

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
        )

    # -- to a group leader ----------------------------------------------------------------------
    def to_message(self) -> dict:
        return {
            "unit_id": self.unit_id,
            "trial_id": self.trial_id,
            "config": self.config,
            "start_epoch": self.start_epoch,
            "end_epoch": self.end_epoch,
            "attempt": self.attempt,
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
            isolate=bool(msg.get("isolate")),
            unit_id=msg.get("unit_id"),
            checkpoint_dir=str(msg.get("checkpoint_dir", "")),
        )

    # -- the journal's ``unit`` record ------------------------------------------------------------
    def to_record(self, group: int, ranks: list[int]) -> dict:
        return {
            "unit_id": self.unit_id,
            "trial_id": self.trial_id,
            "start_epoch": self.start_epoch,
            "end_epoch": self.end_epoch,
            "group": group,
            "ranks": ranks,
            "attempt": self.attempt,
            "source": self.source,
            "checkpoint_dir": self.checkpoint_dir,
            **({"isolated": True} if self.isolate else {}),
        }

    @classmethod
    def from_record(cls, rec: dict, config: dict | None = None) -> "Dispatch":
        return cls(
            int(rec["trial_id"]),
            config,
            int(rec["start_epoch"]),
            int(rec["end_epoch"]),
            attempt=int(rec.get("attempt", 0)),
            source=str(rec.get("source", "suggest")),
            isolate=bool(rec.get("isolated")),
            unit_id=int(rec["unit_id"]),
            checkpoint_dir=str(rec.get("checkpoint_dir", "")),
        )

    # -- a queued entry (a snapshot's ``queue``) ---------------------------------------------------
    def to_entry(self) -> dict:
        return {
            "trial_id": self.trial_id,
            "config": self.config,
            "start_epoch": self.start_epoch,
            "end_epoch": self.end_epoch,
            "attempt": self.attempt,
            "source": self.source,
            **({"isolate": True} if self.isolate else {}),
        }

    @classmethod
    def from_entry(cls, entry: dict) -> "Dispatch":
        return cls(
            int(entry["trial_id"]),
            entry.get("config"),
            int(entry["start_epoch"]),
            int(entry["end_epoch"]),
            attempt=int(entry.get("attempt", 0)),
            source=str(entry.get("source", "retry")),
            isolate=bool(entry.get("isolate")),
        )


@dataclass
class Outcome:
    """What became of a dispatched unit: its metrics (``ok``) or why it failed (``kind``, ``reason``).

    ``kind``: ``trainer`` (raised, or returned a wrong number of values), ``non-finite``, ``oom``,
    ``disk-full`` (not counted against the trial), and, decided on the master, ``scheduler``,
    ``timeout`` and ``lost``. ``seconds``: training time on the leader; ``metric``/``mode``: the
    trainer's, metrics in its own direction.
    """

    unit_id: int
    ok: bool = False
    metrics: list[float] | None = None
    reason: str = ""
    kind: str = "trainer"
    seconds: float = 0.0
    metric: str = "metric"
    mode: str = "min"
    extra: dict = field(default_factory=dict)

    def to_message(self) -> dict:
        return {
            "unit_id": self.unit_id,
            "ok": self.ok,
            "metrics": self.metrics,
            "reason": self.reason,
            "kind": self.kind,
            "seconds": self.seconds,
            "metric": self.metric,
            "mode": self.mode,
        }

    @classmethod
    def from_message(cls, msg: dict, mode: str = "min") -> "Outcome":
        return cls(
            int(msg["unit_id"]),
            bool(msg.get("ok")),
            msg.get("metrics"),
            str(msg.get("reason", "")),
            str(msg.get("kind", "trainer")),
            float(msg.get("seconds") or 0.0),
            str(msg.get("metric") or "metric"),
            str(msg.get("mode") or mode),
        )

    def to_record(
        self, unit: Dispatch, group: int | None = None, *, final: bool = False, counted: bool = True
    ) -> tuple[str, dict]:
        """(record type, fields) of the journal record: ``result`` when ok, else ``failure``."""
        if self.ok:
            return "result", {
                "unit_id": unit.unit_id,
                "trial_id": unit.trial_id,
                "start_epoch": unit.start_epoch,
                "end_epoch": unit.end_epoch,
                "metrics": self.metrics,
                "mode": self.mode,
                "seconds": round(float(self.seconds), 6),
                "group": group,
            }
        return "failure", {
            "unit_id": unit.unit_id,
            "trial_id": unit.trial_id,
            "reason": self.reason,
            "attempt": unit.attempt,
            "final": final,
            "kind": self.kind,
            **({} if counted else {"counted": False}),
        }

    @classmethod
    def from_record(cls, rec: dict) -> "Outcome":
        """An outcome from a ``result`` or ``failure`` record."""
        if rec["type"] == "result":
            return cls(
                int(rec["unit_id"]),
                True,
                [float(v) for v in rec["metrics"]],
                mode=str(rec.get("mode", "min")),
                seconds=float(rec.get("seconds") or 0.0),
            )
        return cls(
            int(rec["unit_id"]),
            False,
            reason=str(rec.get("reason", "")),
            kind=str(rec.get("kind", "trainer")),
            extra={"final": bool(rec.get("final")), "counted": rec.get("counted", True)},
        )
