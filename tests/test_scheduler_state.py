"""Scheduler state round trip: snapshot mid-run through JSON, restore into a fresh object, continue.

The MPI runtime resumes a study from this state, so the continuation must be identical to an
uninterrupted run (same units, same decisions with the same inputs).
"""

from __future__ import annotations

import json

import pytest

from hpoq.curves.shared import load_shared
from hpoq.schedulers import make_scheduler
from hpoq.schedulers.sampling import table_sampler_for


@pytest.fixture(scope="module")
def mlpf():
    return load_shared("mlpf")


CASES = [
    ("hyperband", {}, 0.0),
    ("swift", {}, 0.0),
    ("swift", {"refit": "on_growth", "add_phase2": True}, 0.0),
    ("swift", {}, 0.5),
    ("random", {"n": 30}, 0.0),
    ("topk-1epoch", {}, 0.0),
]


def build(table, algo, params, warm_fraction, seed):
    sampler, warm = table_sampler_for(table, seed, warm_fraction)
    return make_scheduler(algo, R=100, eta=2, sampler=sampler, seed=seed, warm_curves=warm, **params)


def step(sched, table, log):
    """One unit on one worker: suggest, serve it from the table, record unit and decisions."""
    unit = sched.suggest()
    assert unit is not None, "scheduler returned no unit with nothing in flight"
    metrics = table.minimized()[unit.config["_row"], unit.start_epoch : unit.end_epoch].tolist()
    decisions = sched.on_result(unit.trial_id, metrics)
    log.append((unit.to_dict(), [d.to_dict() for d in decisions]))


@pytest.mark.parametrize("algo,params,warm_fraction", CASES)
def test_round_trip_identical_continuation(mlpf, algo, params, warm_fraction):
    seed = 5
    full_log = []
    ref = build(mlpf, algo, params, warm_fraction, seed)
    while not ref.finished:
        step(ref, mlpf, full_log)
    for cut in (len(full_log) // 3, len(full_log) // 2 + 1):
        log = []
        first = build(mlpf, algo, params, warm_fraction, seed)
        for _ in range(cut):
            step(first, mlpf, log)
        state = json.loads(json.dumps(first.state_dict()))
        resumed = build(mlpf, algo, params, warm_fraction, seed)
        resumed.load_state_dict(state)
        while not resumed.finished:
            step(resumed, mlpf, log)
        assert json.dumps(log) == json.dumps(full_log), f"{algo}: continuation after unit {cut} differs"
        assert resumed.best() == ref.best()


@pytest.mark.parametrize("algo", ["hyperband", "swift", "random", "topk-1epoch"])
def test_units_in_flight_at_snapshot_are_resuggested(mlpf, algo):
    """Units in flight when the state was taken are lost work: the restored scheduler offers them again."""
    sched = build(mlpf, algo, {}, 0.0, 1)
    inflight = [sched.suggest() for _ in range(5)]
    state = json.loads(json.dumps(sched.state_dict()))
    resumed = build(mlpf, algo, {}, 0.0, 1)
    resumed.load_state_dict(state)
    again = [resumed.suggest() for _ in range(5)]
    assert {(u.trial_id, u.start_epoch, u.end_epoch) for u in again} == {
        (u.trial_id, u.start_epoch, u.end_epoch) for u in inflight
    }
    # and the restored run finishes
    pending = list(again)
    while pending or not resumed.finished:
        if not pending:
            u = resumed.suggest()
            assert u is not None
            pending.append(u)
        u = pending.pop(0)
        resumed.on_result(u.trial_id, mlpf.minimized()[u.config["_row"], u.start_epoch : u.end_epoch].tolist())
    assert resumed.best() is not None


def test_state_of_another_algorithm_is_refused(mlpf):
    from hpoq.errors import ConfigError

    state = build(mlpf, "hyperband", {}, 0.0, 0).state_dict()
    with pytest.raises(ConfigError):
        build(mlpf, "random", {}, 0.0, 0).load_state_dict(state)
