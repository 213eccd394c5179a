"""What a group leader reports back: :class:`Outcome`, the metrics of a unit or why it failed.

The unit itself travels as :meth:`hpoq.dispatch.Dispatch.to_message`; messages between ranks stay plain
dicts (pickled by MPI), so a worker never depends on a master's class layout. A successful outcome
becomes the journal's ``result`` record (:meth:`Outcome.result_record`); a failure is handed to the
dispatcher, which writes the ``failure`` record and decides on the retry.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpoq.dispatch import Dispatch
from hpoq.journal import records


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

    def result_record(self, unit: Dispatch) -> records.Result:
        """The journal's ``result`` record of a successful outcome of ``unit``."""
        return records.Result(
            unit.unit_id,
            unit.trial_id,
            unit.start_epoch,
            unit.end_epoch,
            self.metrics,
            mode=self.mode,
            seconds=round(float(self.seconds), 6),
            group=unit.group,
        )
