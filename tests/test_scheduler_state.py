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
from tests.drivers import Driver, drive, span


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


@pytest.mark.parametrize("algo,params,warm_fraction", CASES)
def test_round_trip_identical_continuation(mlpf, algo, params, warm_fraction):
    seed, curves = 5, mlpf.minimized()
    ref = build(mlpf, algo, params, warm_fraction, seed)
    full_log = drive(ref, curves, 100)
    for cut in (len(full_log) // 3, len(full_log) // 2 + 1):
        driver = Driver(build(mlpf, algo, params, warm_fraction, seed), curves, 100)
        driver.run(n_units=cut)
        driver.restore(build(mlpf, algo, params, warm_fraction, seed))
        driver.run()
        assert json.dumps(driver.log) == json.dumps(full_log), f"{algo}: continuation after unit {cut} differs"
        assert driver.sched.best() == ref.best()


@pytest.mark.parametrize("algo", ["hyperband", "swift", "random", "topk-1epoch"])
def test_units_in_flight_at_snapshot_are_resuggested(mlpf, algo):
    """Units in flight when the state was taken are lost work: the restored scheduler offers them again."""
    driver = Driver(build(mlpf, algo, {}, 0.0, 1), mlpf.minimized(), 100, workers=5)
    driver.fill()
    lost = driver.restore(build(mlpf, algo, {}, 0.0, 1))
    assert len(lost) == 5
    driver.fill()
    assert {span(u) for u in driver.inflight} == {span(u) for u in lost}
    # and the restored run finishes
    driver.run()
    assert driver.sched.finished and driver.sched.best() is not None


def test_state_of_another_algorithm_is_refused(mlpf):
    from hpoq.errors import ConfigError

    state = build(mlpf, "hyperband", {}, 0.0, 0).state_dict()
    with pytest.raises(ConfigError):
        build(mlpf, "random", {}, 0.0, 0).load_state_dict(state)
