"""What scheduler and predictor tests share: an in-process backend that drives a scheduler from a
curve table (checking the scheduler contract on every event) and MLPF prefix/target sets.

The backend is the replay simulator's logic without its clock: ``workers`` units in flight at
most, results delivered in dispatch order, so every run is reproducible from its seed.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from hpoq.schedulers.base import ACTIONS, DONE, FAILED, STOP, Scheduler

TERMINAL = (DONE, STOP, FAILED)


def drive(
    sched: Scheduler,
    curves: np.ndarray,
    R: int,
    *,
    workers: int = 1,
    n_units: int | None = None,
    fail: Callable[[int, object], bool] = lambda n, unit: False,
    max_units: int = 20_000,
    history: list = (),
) -> list:
    """Run ``sched`` on the minimised ``curves`` (rows indexed by ``config["_row"]``) until it is finished
    (or ``n_units`` units were answered); return the event log ``[(unit dict, "result" | "failure",
    [decision dicts])]``. ``fail(n, unit)``: answer the n-th unit (0-based) with a failure instead.
    ``history``: the log of the run this one continues (a scheduler restored from a snapshot).

    Contract checks on every event: a unit is for a trial not in flight and not finished, starts where
    that trial's last result ended, ends within R; every answer returns a decision for the answered
    trial (at the unit's end epoch after a result, ``failed`` after a failure) with a known action;
    while nothing is in flight and the scheduler is not finished, it suggests a unit (no deadlock).
    """
    log, inflight, reached, terminal = [], [], {}, set()
    for unit, kind, decisions in history:
        if kind == "result":
            reached[unit["trial_id"]] = unit["end_epoch"]
        terminal |= {d["trial_id"] for d in decisions if d["action"] in TERMINAL}
    answered = 0
    while not sched.finished and (n_units is None or answered < n_units):
        while len(inflight) < workers:
            unit = sched.suggest()
            if unit is None:
                break
            tid = unit.trial_id
            assert tid not in {u.trial_id for u in inflight}, f"{sched.name}: trial {tid} suggested while in flight"
            assert tid not in terminal, f"{sched.name}: trial {tid} suggested after a terminal decision"
            assert unit.start_epoch == reached.get(tid, 0), f"{sched.name}: {unit} does not resume trial {tid}"
            assert 0 <= unit.start_epoch < unit.end_epoch <= R, f"{sched.name}: {unit} outside 0..R={R}"
            inflight.append(unit)
        assert inflight, f"{sched.name}: deadlock: not finished, nothing in flight, suggest() gave nothing"
        assert answered < max_units, f"{sched.name}: more than {max_units} units"
        unit = inflight.pop(0)
        failed = fail(answered, unit)
        if failed:
            decisions = sched.on_failure(unit.trial_id, "injected failure")
        else:
            values = curves[unit.config["_row"], unit.start_epoch : unit.end_epoch]
            decisions = sched.on_result(unit.trial_id, values.tolist())
            reached[unit.trial_id] = unit.end_epoch
        answered += 1
        _check_decisions(sched, unit, failed, decisions)
        terminal |= {d.trial_id for d in decisions if d.action in TERMINAL}
        log.append((unit.to_dict(), "failure" if failed else "result", [d.to_dict() for d in decisions]))
    return log


def _check_decisions(sched, unit, failed: bool, decisions) -> None:
    assert all(d.action in ACTIONS for d in decisions), f"{sched.name}: unknown action in {decisions}"
    own = [d for d in decisions if d.trial_id == unit.trial_id]
    if failed:
        assert any(d.action == FAILED for d in own), f"{sched.name}: no 'failed' decision for {unit}"
    else:
        assert any(d.epoch == unit.end_epoch for d in own), (
            f"{sched.name}: no decision at epoch {unit.end_epoch} for {unit}: {own}"
        )


def mlpf_prefixes(table, known: float = 0.25, seed: int = 0):
    """(configs, prefixes [n, e], final values [n]) of the MLPF table without its outlier row (final > 590),
    rows in a seeded random order; e = ceil(known x epochs)."""
    curves = table.minimized()
    keep = np.flatnonzero(curves[:, -1] < 590)
    perm = keep[np.random.default_rng(seed).permutation(keep.size)]
    e = math.ceil(known * table.n_epochs)
    return [dict(table.configs[i]) for i in perm], curves[perm, :e], curves[perm, -1]
