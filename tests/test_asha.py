"""ASHA (asynchronous successive halving, Li et al. 2020): rungs, promotions, resume, state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hpoq.curves.table import CurveTable
from hpoq.errors import ConfigError
from hpoq.schedulers import make_scheduler
from hpoq.schedulers.asha import ASHA
from hpoq.schedulers.base import CONTINUE, DONE, STOP
from hpoq.schedulers.rungs import rung_epochs
from hpoq.schedulers.sampling import TableRowSampler
from hpoq.simulate import simulate_run
from hpoq.simulate.replay import ReplayBackend
from tests.drivers import CountingSampler, Driver, decisions_of, drive, span, spans_of


def flat_table(values, epochs=4) -> CurveTable:
    """Row i has the constant curve values[i] (lower is better): its rank never changes."""
    curves = np.repeat(np.asarray(values, dtype=float)[:, None], epochs, axis=1)
    return CurveTable(hp_names=["x"], configs=[{"x": i} for i in range(len(values))], curves=curves, metric="loss")


def test_rungs_are_powers_of_eta_then_R():
    assert rung_epochs(100, 2) == [1, 2, 4, 8, 16, 32, 64, 100]
    assert rung_epochs(12, 2) == [1, 2, 4, 8, 12]
    assert rung_epochs(50, 3) == [1, 3, 9, 27, 50]
    assert rung_epochs(8, 2, grace=2) == [2, 4, 8]
    assert rung_epochs(1, 2) == [1]


def test_promotion_schedule_by_hand():
    table = flat_table([3.0, 1.0, 2.0, 0.0])
    sched = ASHA(R=4, eta=2, sampler=CountingSampler(), seed=0, n=4)
    log = drive(sched, table.minimized(), 4)
    units, decisions = spans_of(log), decisions_of(log)
    # t1 is promoted as soon as it tops a rung of 2; t3 climbs to R once rung 0 has 4 results
    assert units == [(0, 0, 1), (1, 0, 1), (1, 1, 2), (2, 0, 1), (3, 0, 1), (3, 1, 2), (3, 2, 4)]
    assert sum(b - a for _, a, b in units) == 8
    assert sched.best()["trial_id"] == 3 and sched.best()["epoch"] == 4
    final = {d.trial_id: d.action for d in decisions}
    assert final == {0: STOP, 1: STOP, 2: STOP, 3: DONE}
    promotions = [d for d in decisions if d.action == CONTINUE]
    assert [(d.trial_id, d.epoch) for d in promotions] == [(1, 1), (3, 1), (3, 2)]
    assert promotions[0].info["rank"] == 0 and promotions[0].info["quota"] == 1
    assert all(d.info for d in decisions)  # every decision carries its inputs


def test_tiny_n_still_trains_one_configuration_to_R():
    table = flat_table([3.0, 1.0])
    sched = ASHA(R=4, eta=2, sampler=CountingSampler(), seed=0, n=2)
    log = drive(sched, table.minimized(), 4)
    units, decisions = spans_of(log), decisions_of(log)
    assert units == [(0, 0, 1), (1, 0, 1), (1, 1, 2), (1, 2, 4)]
    assert [d.reason for d in decisions if d.action == CONTINUE] == ["rung", "finish"]
    assert sched.best()["trial_id"] == 1


def test_default_n_is_hyperbands_and_promotions_resume(mlpf_table):
    from hpoq.curves.table import load_table

    table = load_table(str(mlpf_table), "loss")
    sched = make_scheduler("asha", R=100, eta=2, sampler=TableRowSampler(table, 3), seed=3)
    assert sched.n == 163
    units = spans_of(drive(sched, table.minimized(), 100))
    starts = {}
    for tid, a, b in units:
        assert a == starts.get(tid, 0), "a promotion must resume where the trial stopped"
        starts[tid] = b
    assert len(starts) == 163
    assert max(starts.values()) == 100
    assert sum(b - a for _, a, b in units) < 3213  # far fewer epochs than Hyperband's


@pytest.mark.parametrize("workers", [1, 7, 200])
def test_never_deadlocks_and_every_trial_ends(workers):
    rng = np.random.default_rng(0)
    curves = np.cumsum(rng.uniform(-1, 0.2, size=(40, 27)), axis=1) + 30
    table = CurveTable(hp_names=["x"], configs=[{"x": i} for i in range(40)], curves=curves, metric="loss")
    sched = ASHA(R=27, eta=3, sampler=TableRowSampler(table, 1), seed=1, n=40)
    result = ReplayBackend(table, sched, R=27, workers=workers).run()
    last = {}
    for d in result.decisions:
        last[d.trial_id] = d.action
    assert len(last) == 40 and set(last.values()) <= {STOP, DONE}
    assert sched.finished and sched.best()["epoch"] == 27


def test_state_round_trip_continues_identically():
    rng = np.random.default_rng(5)
    curves = np.cumsum(rng.uniform(-1, 0.3, size=(60, 16)), axis=1)
    table = CurveTable(hp_names=["x"], configs=[{"x": i} for i in range(60)], curves=curves, metric="loss")

    def fresh():
        return ASHA(R=16, eta=2, sampler=TableRowSampler(table, 9), seed=9, n=50)

    full = drive(fresh(), table.minimized(), 16)
    driver = Driver(fresh(), table.minimized(), 16)
    driver.run(n_units=40)
    driver.fill()  # one unit in flight, lost at the snapshot: it must be suggested again after the restore
    (in_flight,) = driver.inflight
    assert driver.restore(fresh()) == [in_flight]
    driver.run()
    assert spans_of(driver.log)[40] == span(in_flight)
    assert spans_of(driver.log) == spans_of(full)
    assert json.dumps(driver.log) == json.dumps(full)  # the same units and decisions, with the same inputs


def test_same_seed_same_json(mlpf_table):
    from hpoq.curves.table import load_table

    table = load_table(str(mlpf_table), "loss")
    a = simulate_run(table, "asha", 4, 100, 2, workers=3)
    b = simulate_run(table, "asha", 4, 100, 2, workers=3)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_bad_parameters_are_clear_errors():
    with pytest.raises(ConfigError, match="grace"):
        ASHA(R=4, eta=2, sampler=CountingSampler(), grace=5)
    with pytest.raises(ConfigError, match="n "):
        ASHA(R=4, eta=2, sampler=CountingSampler(), n=0)
    with pytest.raises(ConfigError, match="eta"):
        ASHA(R=4, eta=1, sampler=CountingSampler())
    with pytest.raises(ConfigError, match="no parameter 'bogus'"):
        make_scheduler("asha", R=4, eta=2, sampler=CountingSampler(), seed=0, bogus=1)
