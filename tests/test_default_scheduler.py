"""The ``default`` algorithm: store-tuned asynchronous successive halving (hpoq.schedulers.default)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hpoq.curves.table import CurveTable
from hpoq.errors import HpoqError
from hpoq.schedulers import make_scheduler
from hpoq.schedulers.base import DONE, STOP
from hpoq.schedulers.default import COLD_POLICY, DefaultScheduler
from hpoq.schedulers.sampling import TableRowSampler, table_sampler_for
from hpoq.schedulers.store_replay import choose_policy, sh_replay
from hpoq.seeding import derive_rng
from hpoq.simulate import simulate_run
from hpoq.simulate.replay import ReplayBackend


def synthetic(n=300, R=16, seed=0, early=0.05, late=4.0, cross=0.0):
    """Curves ``q + a/epoch`` (lower is better): the final ranking follows q; with a large ``late``
    spread of a the early epochs rank by a instead. ``cross`` > 0 adds
    ``cross * (0.5 - q) * exp(-(epoch - 1) / 2)``: the first epochs rank the configurations backwards."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(0, 1, n)
    a = rng.uniform(0, late, n) + early * rng.standard_normal(n)
    epochs = np.arange(1, R + 1)
    curves = q[:, None] + a[:, None] / epochs[None, :]
    curves += cross * (0.5 - q)[:, None] * np.exp(-(epochs[None, :] - 1) / 2)
    configs = [{"x": float(q[i]), "y": float(a[i])} for i in range(n)]
    return CurveTable(hp_names=["x", "y"], configs=configs, curves=curves, metric="loss")


def drive(sched, table, n_units=None):
    units, decisions = [], []
    curves = table.minimized()
    while not sched.finished and (n_units is None or len(units) < n_units):
        unit = sched.suggest()
        assert unit is not None, "no work suggested with nothing in flight"
        units.append((unit.trial_id, unit.start_epoch, unit.end_epoch))
        decisions += sched.on_result(unit.trial_id, curves[unit.config["_row"], unit.start_epoch:unit.end_epoch].tolist())
    return units, decisions


def test_same_seed_same_json_and_seed_matters():
    table = synthetic()
    a = simulate_run(table, "default", 3, 16, 2, warm_fraction=0.5, keep_events=True)
    b = simulate_run(table, "default", 3, 16, 2, warm_fraction=0.5, keep_events=True)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    c = simulate_run(table, "default", 4, 16, 2, warm_fraction=0.5, keep_events=True)
    assert c["events"] != a["events"]


def test_one_worker_schedule_equals_its_closed_form():
    table = synthetic(n=120, R=16, seed=2, late=1.0)
    for grace, finalists in [(1, 2), (2, 3), (4, 1), (1, 5)]:
        sched = DefaultScheduler(R=16, eta=2, sampler=TableRowSampler(table, 7), seed=7, grace=grace,
                                 finalists=finalists, n=70, predictor="none")
        units, _ = drive(sched, table)
        rows = [c["_row"] for c in sched.configs]
        epochs, best = sh_replay(table.minimized()[rows], 16, 2, grace, finalists)
        assert sum(b - a for _, a, b in units) == epochs
        assert sched.best()["trial_id"] == best
        reached = {t for t, _, b in units if b == 16}
        assert len(reached) >= min(finalists, 2)


def test_obvious_best_configuration_is_returned():
    table = synthetic(n=200, R=16, seed=1, late=0.5)
    best_row = int(np.argmin(table.curves[:, -1]))
    table.curves[best_row] -= 1.0  # clearly the best at every epoch
    sampler = TableRowSampler(table, 0)
    sched = DefaultScheduler(R=16, eta=2, sampler=sampler, seed=0, n=200)
    drive(sched, table)
    assert sched.best()["config"]["_row"] == best_row
    assert sched.best()["epoch"] == 16


@pytest.mark.parametrize("workers", [1, 6, 500])
def test_never_deadlocks_and_every_trial_gets_a_final_decision(workers):
    table = synthetic(n=90, R=27, seed=4)
    sampler, warm = table_sampler_for(table, 5, 0.4)
    sched = make_scheduler("default", R=27, eta=3, sampler=sampler, seed=5, warm_curves=warm)
    result = ReplayBackend(table, sched, R=27, workers=workers).run()
    last = {}
    for d in result.decisions:
        last[d.trial_id] = d.action
    assert sched.finished
    assert len(last) == len(sched.configs) and set(last.values()) <= {STOP, DONE}
    assert sum(a == DONE for a in last.values()) >= 1
    assert all(d.info for d in result.decisions), "every decision carries the inputs it used"


def test_state_round_trip_mid_run_continues_identically():
    table = synthetic(n=150, R=16, seed=6)

    def fresh():
        sampler, warm = table_sampler_for(table, 11, 0.3)
        return make_scheduler("default", R=16, eta=2, sampler=sampler, seed=11, warm_curves=warm,
                              finalists=4, margin=0.5)

    full_units, full_decisions = drive(fresh(), table)
    sched = fresh()
    units, decisions = drive(sched, table, n_units=len(full_units) - 6)
    lost = sched.suggest()  # in flight at the snapshot: suggested again after the restore
    state = json.loads(json.dumps(sched.state_dict()))
    restored = fresh()
    restored.load_state_dict(state)
    rest_units, rest_decisions = drive(restored, table)
    assert rest_units[0] == (lost.trial_id, lost.start_epoch, lost.end_epoch)
    assert units + rest_units == full_units
    assert [d.to_dict() for d in decisions + rest_decisions] == [d.to_dict() for d in full_decisions]
    assert restored.best() == fresh_best(full_units, table)


def fresh_best(units, table):
    sampler, warm = table_sampler_for(table, 11, 0.3)
    sched = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=11, warm_curves=warm, finalists=4, margin=0.5)
    drive(sched, table)
    return sched.best()


def test_warm_store_chooses_the_grace_and_is_recorded():
    early = synthetic(n=400, R=16, seed=8, early=0.01, late=0.02)   # ranked by the first epoch
    late = synthetic(n=400, R=16, seed=8, early=0.01, late=0.02, cross=3.0)  # curves cross late
    picks = {}
    for label, table in (("early", early), ("late", late)):
        sampler, warm = table_sampler_for(table, 1, 0.5)
        sched = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=1, warm_curves=warm)
        state = sched.state_dict()
        assert state["settings"]["policy_source"] == "store"
        report = state["policy_report"]
        assert report["store_rows"] == warm.n_rows and report["candidates"]
        chosen = [c for c in report["candidates"] if (c["grace"], c["finalists"]) == (sched.grace, sched.finalists)]
        assert chosen and chosen[0]["ok"]
        picks[label] = sched.grace
        assert state["settings"]["predictor"]["store_curves"] == warm.n_rows
    assert picks["early"] == 1
    assert picks["late"] > picks["early"]
    cold = make_scheduler("default", R=16, eta=2, sampler=TableRowSampler(early, 1), seed=1)
    assert (cold.grace, cold.finalists) == COLD_POLICY and cold.state_dict()["settings"]["policy_source"] == "cold default"


def test_choose_policy_prefers_the_cheapest_candidate_that_matches_hyperband():
    table = synthetic(n=300, R=16, seed=9, early=0.01, late=0.02)
    (grace, finalists), report = choose_policy(table.minimized(), 84, 16, 2, derive_rng(0, "t"), samples=30)
    ok = [c for c in report["candidates"] if c["ok"]]
    assert min(ok, key=lambda c: c["epochs"])["epochs"] == next(
        c["epochs"] for c in report["candidates"] if (c["grace"], c["finalists"]) == (grace, finalists))


def test_finalists_are_pruned_by_the_predicted_final_with_inputs_logged():
    # finals follow q exactly and early values are q + 1/epoch: the store-trained predictor is accurate,
    # so finalists that are clearly worse than the best final found are not trained to R
    table = synthetic(n=240, R=8, seed=3, early=0.0, late=0.0)
    table.curves += 1.0 / np.arange(1, 9)[None, :]
    sampler, warm = table_sampler_for(table, 2, 0.5)
    sched = make_scheduler("default", R=8, eta=2, sampler=sampler, seed=2, warm_curves=warm, grace=1,
                           finalists=4, n=12, margin=1.0)
    _, decisions = drive(sched, table)
    pruned = [d for d in decisions if d.reason == "predicted"]
    assert pruned, "no finalist was pruned"
    for d in pruned:
        assert d.action == STOP
        assert d.info["predicted_final"] - d.info["margin"] * d.info["error"] > d.info["threshold"]
        assert d.info["n_train"] >= warm.n_rows and d.info["predictor"] == "svr"
    assert sched.best()["value"] == min(sched.curves[t][-1] for t in range(len(sched.configs)) if len(sched.curves[t]) == 8)


def test_duplicate_configurations_are_trained_once():
    table = synthetic(n=40, R=8, seed=5)
    sched = DefaultScheduler(R=8, eta=2, sampler=TableRowSampler(table, 0), seed=0, n=100, predictor="none")
    units, _ = drive(sched, table)
    assert len(sched.configs) == 40 and sched.duplicates == 60
    assert sum(1 for _, a, _ in units if a == 0) == 40


def test_bad_parameters_are_clear_errors():
    table = synthetic(n=20, R=8)
    sampler = TableRowSampler(table, 0)
    with pytest.raises(HpoqError, match="grace"):
        DefaultScheduler(R=8, eta=2, sampler=sampler, grace=9)
    with pytest.raises(HpoqError, match="finalists"):
        DefaultScheduler(R=8, eta=2, sampler=sampler, finalists=0)
    with pytest.raises(HpoqError, match="unknown predictor"):
        DefaultScheduler(R=8, eta=2, sampler=sampler, predictor="nope")
    with pytest.raises(HpoqError, match="fewer than R"):
        DefaultScheduler(R=8, eta=2, sampler=sampler, warm_curves=synthetic(n=20, R=4))
    with pytest.raises(HpoqError, match="no parameter 'speed'"):
        make_scheduler("default", R=8, eta=2, sampler=sampler, seed=0, speed=2)


def test_store_curves_that_stop_before_R_are_left_out():
    table = synthetic(n=200, R=16, seed=12, early=0.01, late=0.02)
    sampler, warm = table_sampler_for(table, 3, 0.5)
    warm.curves[::2, 10:] = np.nan  # half the store is from trials stopped at epoch 10 (NaN-padded)
    sched = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=3, warm_curves=warm)
    assert sched.policy_report["store_rows"] == warm.n_rows - len(range(0, warm.n_rows, 2))
    only_short = warm.subset(list(range(0, warm.n_rows, 2)))
    sched = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=3, warm_curves=only_short)
    assert sched.state_dict()["settings"]["policy_source"].startswith("cold default (store has")


@pytest.mark.parametrize("algorithm", ["asha", "default"])
def test_failed_trials_are_never_resumed_and_the_search_still_ends(algorithm):
    table = synthetic(n=120, R=16, seed=13)
    sampler, warm = table_sampler_for(table, 4, 0.3)
    sched = make_scheduler(algorithm, R=16, eta=2, sampler=sampler, seed=4,
                           **({"warm_curves": warm} if algorithm == "default" else {}))
    curves = table.minimized()
    in_flight, failed, decisions = [], set(), []
    while not sched.finished:
        while len(in_flight) < 4:  # four workers; trials 3, 10, 17, ... fail in their first unit
            unit = sched.suggest()
            if unit is None:
                break
            assert unit.trial_id not in failed, "a failed trial was resumed"
            in_flight.append(unit)
        assert in_flight, "deadlock"
        unit = in_flight.pop(0)
        if unit.trial_id % 7 == 3:
            failed.add(unit.trial_id)
            decisions += sched.on_failure(unit.trial_id, "CUDA out of memory")
        else:
            decisions += sched.on_result(unit.trial_id, curves[unit.config["_row"], unit.start_epoch:unit.end_epoch].tolist())
    assert failed and sched.best()["trial_id"] not in failed and sched.best()["epoch"] == 16
    assert {d.trial_id for d in decisions if d.action == "failed"} == failed


def test_a_given_grace_restricts_the_store_search_to_it():
    table = synthetic(n=200, R=16, seed=14, early=0.01, late=0.02, cross=3.0)
    sampler, warm = table_sampler_for(table, 2, 0.5)
    sched = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=2, warm_curves=warm, grace=2)
    assert sched.grace == 2 and sched.rungs[0] == 2
    assert {c["grace"] for c in sched.policy_report["candidates"]} == {2}
    assert sched.finalists in {c["finalists"] for c in sched.policy_report["candidates"]}
