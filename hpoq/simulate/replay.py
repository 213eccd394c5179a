"""The replay backend: a simulated clock, W workers (trial groups), epochs served from a curve table.

It drives any :class:`~hpoq.schedulers.base.Scheduler` exactly as the MPI runtime does, through the
same :class:`~hpoq.dispatch.Dispatcher`: whenever a worker is free it asks :meth:`suggest`; a unit
``(trial, a, b)`` of table row ``config["_row"]`` takes ``b - a`` time units (or ``(b - a) * time[row]``
with a per-row time column) and then reports the row's minimised values for epochs a+1..b. Events
finishing at the same time are delivered in dispatch order, so a run is exactly reproducible (cf. Syne
Tune's simulator backend).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from hpoq.curves.table import CurveTable
from hpoq.dispatch import Dispatcher
from hpoq.errors import ConfigError, DeadlockError
from hpoq.journal import records
from hpoq.schedulers.base import DONE, STOP, Decision, Scheduler


@dataclass
class ReplayResult:
    epochs: int = 0  # epochs requested over all dispatched units (docs/algorithms.md#conventions)
    units: int = 0
    makespan: float = 0.0  # simulated time when the last unit finished
    busy: float = 0.0  # sum over units of their duration
    workers: int = 1
    trace: list = field(default_factory=list)  # [epochs used, best final so far (table direction)]
    decisions: list = field(default_factory=list)
    events: list = field(default_factory=list)  # ("unit", trial, a, b, start, end) and decisions, if kept

    @property
    def utilization(self) -> float:
        return self.busy / (self.workers * self.makespan) if self.makespan > 0 else 0.0


class ReplayBackend:
    """Serve work units of ``scheduler`` from ``table`` on ``workers`` simulated workers.

    ``R`` is the target epoch (the trace records values at R). ``keep_events`` stores every unit
    and decision in :attr:`ReplayResult.events` (for tests and plots).
    """

    def __init__(self, table: CurveTable, scheduler: Scheduler, *, R: int, workers: int = 1, keep_events: bool = False):
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        if table.n_epochs < R:
            raise ConfigError(f"curve table has {table.n_epochs} epochs, fewer than R = {R}")
        self.table = table
        self.curves = table.minimized()
        self.scheduler = scheduler
        self.R = int(R)
        self.workers = int(workers)
        self.keep_events = keep_events

    def _cost(self, row: int, epochs: int) -> float:
        per_epoch = 1.0 if self.table.time is None else float(self.table.time[row])
        return epochs * per_epoch

    def run(self) -> ReplayResult:
        """Run the scheduler to its end through a :class:`~hpoq.dispatch.Dispatcher` on ``workers`` workers."""
        sched = self.scheduler
        dispatcher = Dispatcher(sched, self.workers, tolerate_errors=False)
        res = ReplayResult(workers=self.workers)
        heap: list = []  # (finish time, unit id = dispatch order, start time)
        now = 0.0
        best_final = math.inf  # minimised value at R
        while True:
            while (unit := dispatcher.next_unit()) is not None:
                dispatcher.start(unit)
                if unit.end_epoch > self.R or unit.start_epoch < 0 or unit.end_epoch <= unit.start_epoch:
                    raise DeadlockError(f"{sched.name}: invalid unit {unit}")
                duration = self._cost(int(unit.config["_row"]), unit.end_epoch - unit.start_epoch)
                heapq.heappush(heap, (now + duration, unit.unit_id, now))
                res.epochs += unit.end_epoch - unit.start_epoch
                res.units += 1
                res.busy += duration
            if not heap:
                if sched.finished:
                    break
                raise DeadlockError(
                    f"scheduler {sched.name!r} deadlocked: no unit in flight, none suggested, not finished"
                )
            now, uid, started = heapq.heappop(heap)
            unit = dispatcher.release(uid)
            row = int(unit.config["_row"])
            metrics = self.curves[row, unit.start_epoch : unit.end_epoch]
            record = records.Result(uid, unit.trial_id, unit.start_epoch, unit.end_epoch, metrics.tolist())
            decisions: list[Decision] = dispatcher.result(unit, record)
            dispatcher.drain()
            if self.keep_events:
                res.events.append(("unit", unit.trial_id, unit.start_epoch, unit.end_epoch, started, now))
                res.events.extend(("decision", d.trial_id, d.action, d.epoch, d.reason) for d in decisions)
            res.decisions.extend(decisions)
            if unit.end_epoch == self.R and self.curves[row, self.R - 1] < best_final:
                best_final = float(self.curves[row, self.R - 1])
                own = -best_final if self.table.mode == "max" else best_final
                res.trace.append([res.epochs, own])
        res.makespan = now
        return res


def pruned_count(decisions: list[Decision]) -> int:
    """Trials whose last decision is STOP (stopped before reaching R)."""
    last: dict[int, str] = {}
    for d in decisions:
        last[d.trial_id] = d.action
    return sum(1 for a in last.values() if a == STOP)


def completed_count(decisions: list[Decision]) -> int:
    return sum(1 for d in decisions if d.action == DONE)


def own_direction(table: CurveTable, value: float) -> float:
    return -value if table.mode == "max" else value


__all__ = ["ReplayBackend", "ReplayResult", "pruned_count", "completed_count", "own_direction"]
