"""What scheduler and predictor tests share: an in-process backend that drives a scheduler from a
curve table (checking the scheduler contract on every event; :func:`drive`, or :class:`Driver` to
snapshot and restore the scheduler mid-run), a sampler handing out configurations in order, and
MLPF prefix/target sets.

The backend is the replay simulator's logic without its clock: ``workers`` units in flight at
most, results delivered in dispatch order, so every run is reproducible from its seed.
"""

from __future__ import annotations

import json
import math
from typing import Callable, Sequence

import numpy as np

from hpoq.schedulers.base import ACTIONS, DONE, FAILED, STOP, Decision, Scheduler, WorkUnit

TERMINAL = (DONE, STOP, FAILED)


class CountingSampler:
    """Configurations ``{"x": i, "_row": i}`` for i = 0, 1, 2, ... in order (schedules written by hand; ``_row``
    indexes a curve table). ``period``: i % period instead, so every period-th draw repeats an earlier one."""

    def __init__(self, period: int | None = None):
        self.period, self.drawn = period, 0

    def sample(self) -> dict:
        x = self.drawn if self.period is None else self.drawn % self.period
        self.drawn += 1
        return {"x": x, "_row": x}

    def state_dict(self) -> dict:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = state["drawn"]


Curves = np.ndarray | Callable[[dict], Sequence[float]]


class Driver:
    """:func:`drive` in steps, on one event log: run part of a study, snapshot the scheduler's state through
    JSON into a fresh one (:meth:`restore`) and go on with it, as the MPI runtime resumes a study.

    ``curves``: the minimised curves, rows indexed by ``config["_row"]``, or a function config -> curve.
    ``fail(n, unit)``: answer the n-th unit (0-based, counted over this driver's log) with a failure instead.
    ``watch(sched, inflight, starved)``: called after every refill of the free workers (``starved``: the
    scheduler gave a free worker nothing), for checks of a scheduler's own invariants.
    ``history``: the log of the run a restored scheduler continues (when that run had another driver).
    """

    def __init__(
        self,
        sched: Scheduler,
        curves: Curves,
        R: int,
        *,
        workers: int = 1,
        fail: Callable[[int, object], bool] = lambda n, unit: False,
        max_units: int = 20_000,
        watch: Callable[[Scheduler, list, bool], None] | None = None,
        history: list = (),
    ):
        self.sched, self.curves, self.R, self.workers = sched, curves, R, workers
        self.fail, self.max_units, self.watch = fail, max_units, watch
        self.log: list = []  # [(unit dict, "result" | "failure", [decision dicts])]
        self.inflight: list[WorkUnit] = []
        self.reached: dict[int, int] = {}  # trial id -> epoch its last result ended at
        self.terminal: set[int] = set()  # trials with a done / stop / failed decision
        for unit, kind, decisions in history:
            self._record(unit, kind, decisions)

    def _record(self, unit: dict, kind: str, decisions: list[dict]) -> None:
        if kind == "result":
            self.reached[unit["trial_id"]] = unit["end_epoch"]
        self.terminal |= {d["trial_id"] for d in decisions if d["action"] in TERMINAL}

    def fill(self) -> None:
        """Ask for units while a worker is free; each must be for a trial not in flight and not finished,
        start where that trial's last result ended and end within R."""
        sched = self.sched
        while len(self.inflight) < self.workers:
            unit = sched.suggest()
            if unit is None:
                break
            tid = unit.trial_id
            running = {u.trial_id for u in self.inflight}
            assert tid not in running, f"{sched.name}: trial {tid} suggested while in flight"
            assert tid not in self.terminal, f"{sched.name}: trial {tid} suggested after a terminal decision"
            assert unit.start_epoch == self.reached.get(tid, 0), f"{sched.name}: {unit} does not resume trial {tid}"
            assert 0 <= unit.start_epoch < unit.end_epoch <= self.R, f"{sched.name}: {unit} outside 0..R={self.R}"
            self.inflight.append(unit)
        if self.watch is not None:
            self.watch(sched, self.inflight, len(self.inflight) < self.workers)

    def step(self) -> None:
        """Refill the free workers, then answer the oldest unit in flight (results in dispatch order)."""
        sched = self.sched
        self.fill()
        assert self.inflight, f"{sched.name}: deadlock: not finished, nothing in flight, suggest() gave nothing"
        assert len(self.log) < self.max_units, f"{sched.name}: more than {self.max_units} units"
        unit = self.inflight.pop(0)
        failed = self.fail(len(self.log), unit)
        if failed:
            decisions = sched.on_failure(unit.trial_id, "injected failure")
        else:
            row = self.curves(unit.config) if callable(self.curves) else self.curves[unit.config["_row"]]
            decisions = sched.on_result(unit.trial_id, np.asarray(row)[unit.start_epoch : unit.end_epoch].tolist())
        _check_decisions(sched, unit, failed, decisions)
        entry = (unit.to_dict(), "failure" if failed else "result", [d.to_dict() for d in decisions])
        self._record(*entry)
        self.log.append(entry)

    def run(self, n_units: int | None = None, until: Callable[["Driver"], bool] | None = None) -> list:
        """Step until the scheduler is finished, ``n_units`` more units were answered or ``until(self)``
        holds (checked before each step); returns the part of the log this call added. While nothing is
        in flight and the scheduler is not finished, it must suggest a unit (no deadlock)."""
        start = len(self.log)
        while not self.sched.finished and (n_units is None or len(self.log) - start < n_units):
            if until is not None and until(self):
                break
            self.step()
        return self.log[start:]

    def restore(self, fresh: Scheduler) -> list[WorkUnit]:
        """Load the scheduler's state, through JSON, into ``fresh`` and drive that one from now on; returns
        the units that were in flight: lost work, which ``fresh`` must suggest again."""
        fresh.load_state_dict(json.loads(json.dumps(self.sched.state_dict())))
        lost, self.inflight, self.sched = self.inflight, [], fresh
        return lost


def drive(
    sched: Scheduler,
    curves: Curves,
    R: int,
    *,
    workers: int = 1,
    n_units: int | None = None,
    fail: Callable[[int, object], bool] = lambda n, unit: False,
    max_units: int = 20_000,
    history: list = (),
    watch: Callable[[Scheduler, list, bool], None] | None = None,
) -> list:
    """Run ``sched`` on ``curves`` (see :class:`Driver`) until it is finished (or ``n_units`` units were
    answered); return the event log ``[(unit dict, "result" | "failure", [decision dicts])]``.
    ``fail(n, unit)``: answer the n-th unit (0-based) with a failure instead. ``history``: the log of the
    run this one continues (a scheduler restored from a snapshot).

    Contract checks on every event: a unit is for a trial not in flight and not finished, starts where
    that trial's last result ended, ends within R; every answer returns a decision for the answered
    trial (at the unit's end epoch after a result, ``failed`` after a failure) with a known action;
    while nothing is in flight and the scheduler is not finished, it suggests a unit (no deadlock).
    """
    driver = Driver(sched, curves, R, workers=workers, fail=fail, max_units=max_units, watch=watch, history=history)
    return driver.run(n_units)


def _check_decisions(sched, unit, failed: bool, decisions) -> None:
    assert all(d.action in ACTIONS for d in decisions), f"{sched.name}: unknown action in {decisions}"
    own = [d for d in decisions if d.trial_id == unit.trial_id]
    if failed:
        assert any(d.action == FAILED for d in own), f"{sched.name}: no 'failed' decision for {unit}"
    else:
        assert any(d.epoch == unit.end_epoch for d in own), (
            f"{sched.name}: no decision at epoch {unit.end_epoch} for {unit}: {own}"
        )


def units_of(log: list) -> list[WorkUnit]:
    """The units of an event log, in the order they were answered."""
    return [WorkUnit(**unit) for unit, _, _ in log]


def span(unit: WorkUnit | dict) -> tuple[int, int, int]:
    """``(trial id, start epoch, end epoch)`` of a unit (or of a unit dict of an event log)."""
    unit = unit.to_dict() if isinstance(unit, WorkUnit) else unit
    return unit["trial_id"], unit["start_epoch"], unit["end_epoch"]


def spans_of(log: list) -> list[tuple[int, int, int]]:
    """The :func:`span` of every unit of an event log, in the order they were answered."""
    return [span(unit) for unit, _, _ in log]


def decisions_of(log: list) -> list[Decision]:
    """Every decision of an event log, in the order the scheduler returned them."""
    return [Decision.from_dict(d) for _, _, decisions in log for d in decisions]


def mlpf_prefixes(table, known: float = 0.25, seed: int = 0):
    """(configs, prefixes [n, e], final values [n]) of the MLPF table without its outlier row (final > 590),
    rows in a seeded random order; e = ceil(known x epochs)."""
    curves = table.minimized()
    keep = np.flatnonzero(curves[:, -1] < 590)
    perm = keep[np.random.default_rng(seed).permutation(keep.size)]
    e = math.ceil(known * table.n_epochs)
    return [dict(table.configs[i]) for i in perm], curves[perm, :e], curves[perm, -1]
