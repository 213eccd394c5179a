"""The ``default`` algorithm: successive halving by forecast final values within Hyperband's budget
(hpoq.schedulers.default)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hpoq.curves.table import CurveTable
from hpoq.errors import ConfigError
from hpoq.runtime.resume import InlineExecutor
from hpoq.schedulers import make_scheduler
from hpoq.schedulers.base import DONE, STOP
from hpoq.schedulers.brackets import hyperband_budget
from hpoq.schedulers.default import DefaultScheduler, hyperband_cap, plan_cost
from hpoq.schedulers.sampling import TableRowSampler, table_sampler_for
from hpoq.schedulers.store_replay import choose_policy, sh_replay
from hpoq.seeding import derive_rng
from hpoq.simulate import simulate_run
from hpoq.simulate.replay import ReplayBackend
from tests.drivers import Driver, decisions_of, drive, span, spans_of


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


def test_same_seed_same_json_and_seed_matters():
    table = synthetic()
    a = simulate_run(table, "default", 3, 16, 2, warm_fraction=0.5, keep_events=True)
    b = simulate_run(table, "default", 3, 16, 2, warm_fraction=0.5, keep_events=True)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    c = simulate_run(table, "default", 4, 16, 2, warm_fraction=0.5, keep_events=True)
    assert c["events"] != a["events"]


def test_one_worker_schedule_equals_its_closed_form():
    table = synthetic(n=120, R=16, seed=2, late=1.0)
    for grace, finalists in [(1, 2), (2, 3), (2, 1), (1, 5)]:
        sched = DefaultScheduler(
            R=16,
            eta=2,
            sampler=TableRowSampler(table, 7),
            seed=7,
            grace=grace,
            finalists=finalists,
            n=70,
            predictor="none",
        )
        units = spans_of(drive(sched, table.minimized(), 16))
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
    drive(sched, table.minimized(), 16)
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
        return make_scheduler(
            "default", R=16, eta=2, sampler=sampler, seed=11, warm_curves=warm, finalists=4, confidence=0.5
        )

    curves = table.minimized()
    reference = fresh()
    full = drive(reference, curves, 16)
    driver = Driver(fresh(), curves, 16)
    driver.run(n_units=len(full) - 6)
    driver.fill()  # one unit in flight at the snapshot: suggested again after the restore
    (lost,) = driver.inflight
    assert driver.restore(fresh()) == [lost]
    driver.run()
    assert spans_of(driver.log)[len(full) - 6] == span(lost)
    assert spans_of(driver.log) == spans_of(full)
    assert json.dumps(driver.log) == json.dumps(full)  # the same units and decisions, with the same inputs
    assert driver.sched.best() == reference.best()


def test_warm_store_chooses_the_grace_and_is_recorded():
    early = synthetic(n=400, R=16, seed=8, early=0.01, late=0.02)  # ranked by the first epoch
    late = synthetic(n=400, R=16, seed=8, early=0.01, late=0.02, cross=3.0)  # curves cross late
    picks = {}
    for label, table in (("early", early), ("late", late)):
        sampler, warm = table_sampler_for(table, 1, 0.5)
        sched = make_scheduler(
            "default", R=16, eta=2, sampler=sampler, seed=1, warm_curves=warm, predictor="none", share=1.0
        )
        state = sched.state_dict()
        report = state["policy_report"]
        assert report["store_rows"] == warm.n_rows and report["candidates"] and report["ranked_by"] == "observed"
        if any(c["ok"] for c in report["candidates"]):  # the cheapest candidate that matches Hyperband on the store
            assert state["settings"]["policy_source"] == "store"
            chosen = [c for c in report["candidates"] if (c["grace"], c["finalists"]) == (sched.grace, sched.finalists)]
            assert chosen and chosen[0]["ok"]
            assert chosen[0]["epochs"] == min(c["epochs"] for c in report["candidates"] if c["ok"])
        else:  # none within the share of Hyperband's budget matches it: the cold rule
            assert state["settings"]["policy_source"] == "cold rule (no store candidate matched)"
        picks[label] = sched.grace
        # with a forecaster the store replay ranks by out-of-fold forecasts: here they see through the crossing
        forecast = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=1, warm_curves=warm, share=1.0)
        assert forecast.policy_report["ranked_by"] == "forecast" and forecast.grace <= sched.grace
        assert forecast.state_dict()["settings"]["predictor"]["store_curves"] == min(warm.n_rows, 200)
    assert picks["early"] == 1
    assert picks["late"] > picks["early"]
    cold = make_scheduler("default", R=16, eta=2, sampler=TableRowSampler(early, 1), seed=1)
    settings = cold.state_dict()["settings"]
    assert settings["policy_source"] == "cold rule" and cold.finalists == 2
    # cold: the largest grace whose plan costs at most share (0.6) of Hyperband's epochs
    cap = settings["cap"]
    assert plan_cost(cold.n, 16, 2, cold.grace, 2) <= 0.6 * cap < plan_cost(cold.n, 16, 2, 2 * cold.grace, 2)


def test_choose_policy_prefers_the_cheapest_candidate_that_matches_hyperband():
    table = synthetic(n=300, R=16, seed=9, early=0.01, late=0.02)
    (grace, finalists), report = choose_policy(table.minimized(), 84, 16, 2, derive_rng(0, "t"), samples=30)
    ok = [c for c in report["candidates"] if c["ok"]]
    assert min(ok, key=lambda c: c["epochs"])["epochs"] == next(
        c["epochs"] for c in report["candidates"] if (c["grace"], c["finalists"]) == (grace, finalists)
    )


def test_rungs_rank_by_the_forecast_final_value_with_inputs_logged():
    # the first epochs rank the configurations backwards (cross): successive halving on observed values
    # keeps the wrong half, while a forecaster trained on the store ranks by the predicted final value
    table = synthetic(n=400, R=16, seed=3, early=0.0, late=0.0, cross=3.0)
    picks = {}
    for predictor in ("svr", "none"):
        sampler, warm = table_sampler_for(table, 2, 0.5)
        sched = make_scheduler(
            "default", R=16, eta=2, sampler=sampler, seed=2, warm_curves=warm, grace=1, finalists=2, predictor=predictor
        )
        decisions = decisions_of(drive(sched, table.minimized(), 16))
        picks[predictor] = sched.best()["value"]
        forecast = [d for d in decisions if "predicted" in d.info]
        if predictor == "none":
            assert not forecast
            continue
        assert forecast and any(d.reason == "predicted" for d in forecast), "the forecast never changed a decision"
        for d in forecast:
            assert d.info["target_epoch"] == 16 and d.info["n_train"] >= 12 and d.info["model"].startswith("svr:")
            if d.action == STOP:  # pruned: even its optimistic forecast cannot reach the k-th best
                assert d.info["predicted"] - d.info["confidence"] * d.info["sigma"] > d.info["threshold"]
    assert picks["svr"] < picks["none"]


def test_a_cold_study_learns_from_its_own_promoted_trials():
    table = synthetic(n=300, R=32, seed=8, late=2.0, cross=1.0)
    sampler, _ = table_sampler_for(table, 1, 0.0)
    sched = make_scheduler("default", R=32, eta=2, sampler=sampler, seed=1, probes=2, min_train=8)
    assert sched.policy_source == "cold rule"
    result = ReplayBackend(table, sched, R=32, workers=8).run()
    forecast = [d for d in result.decisions if "predicted" in d.info]
    assert forecast, "no decision used a forecast"
    assert all(d.info["n_train"] >= 8 for d in forecast)
    assert any(d.info["target_epoch"] < 32 for d in forecast), "no forecast of a later rung from the study's own curves"
    first = [u for u in range(2)]
    assert all(len(sched.curves[t]) == 32 for t in first), "the probes reach R"


@pytest.mark.parametrize("R,eta", [(16, 2), (27, 3), (12, 2), (50, 2)])
def test_never_plans_more_epochs_than_hyperband(R, eta):
    """The hard budget guarantee: for the same n and R, cold or warm, any predictor, any workers."""
    table = synthetic(n=220, R=R, seed=R, late=2.0, cross=2.0)
    hb_n, hb_epochs = hyperband_budget(R, eta)
    for seed, warm_fraction, predictor, workers, params in [
        (0, 0.0, "svr", 1, {}),
        (1, 0.5, "svr", 1, {}),
        (2, 0.5, "none", 9, {}),
        (3, 0.0, "none", 1, {"finalists": 6}),
        (4, 0.5, "svr", 40, {"probes": 3}),
        (5, 0.0, "svr", 3, {"grace": 1, "finalists": 8}),
    ]:
        run = simulate_run(
            table,
            "default",
            seed,
            R,
            eta,
            workers=workers,
            warm_fraction=warm_fraction,
            predictor=predictor,
            params=params,
        )
        hb = simulate_run(table, "hyperband", seed, R, eta, warm_fraction=warm_fraction)
        assert run["configs"] == hb["configs"] == hb_n
        assert run["epochs"] <= hb["epochs"] == hb_epochs, (seed, params)
    # another n: Hyperband's budget scaled to it; a plan that cannot fit is refused up front
    assert hyperband_cap(hb_n, R, eta) == hb_epochs and hyperband_cap(2 * hb_n, R, eta) == 2 * hb_epochs
    with pytest.raises(ConfigError, match="more than Hyperband"):
        DefaultScheduler(R=R, eta=eta, sampler=TableRowSampler(table, 0), grace=R, finalists=2)


def test_store_tuned_policies_are_only_those_cheaper_than_hyperband():
    table = synthetic(n=300, R=16, seed=9, early=0.01, late=0.02, cross=3.0)
    sampler, warm = table_sampler_for(table, 6, 0.5)
    sched = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=6, warm_curves=warm)
    assert sched.policy_source == "store"
    cap = hyperband_budget(16, 2)[1]
    for c in sched.policy_report["candidates"]:
        assert plan_cost(sched.n, 16, 2, c["grace"], c["finalists"]) <= cap
    assert max(c["grace"] for c in sched.policy_report["candidates"]) < 8  # grace 8 would cost more


def test_repeated_draws_are_trained_like_any_draw():
    # skipping repeats is a shared simulator option now, not something ``default`` does on its own
    table = synthetic(n=40, R=8, seed=5)
    sched = DefaultScheduler(R=8, eta=2, sampler=TableRowSampler(table, 0), seed=0, n=100, predictor="none")
    units = spans_of(drive(sched, table.minimized(), 8))
    assert len(sched.configs) == 100
    assert sum(1 for _, a, _ in units if a == 0) == 100


def test_bad_parameters_are_clear_errors():
    table = synthetic(n=20, R=8)
    sampler = TableRowSampler(table, 0)
    with pytest.raises(ConfigError, match="grace"):
        DefaultScheduler(R=8, eta=2, sampler=sampler, grace=9)
    with pytest.raises(ConfigError, match="finalists"):
        DefaultScheduler(R=8, eta=2, sampler=sampler, finalists=0)
    with pytest.raises(ConfigError, match="unknown predictor"):
        DefaultScheduler(R=8, eta=2, sampler=sampler, predictor="nope")
    with pytest.raises(ConfigError, match="fewer than R"):
        DefaultScheduler(R=8, eta=2, sampler=sampler, warm_curves=synthetic(n=20, R=4))
    with pytest.raises(ConfigError, match="no parameter 'speed'"):
        make_scheduler("default", R=8, eta=2, sampler=sampler, seed=0, speed=2)


def test_store_curves_that_stop_before_R_are_left_out():
    table = synthetic(n=200, R=16, seed=12, early=0.01, late=0.02)
    sampler, warm = table_sampler_for(table, 3, 0.5)
    warm.curves[::2, 10:] = np.nan  # half the store is from trials stopped at epoch 10 (NaN-padded)
    sched = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=3, warm_curves=warm)
    assert sched.policy_report["store_rows"] == warm.n_rows - len(range(0, warm.n_rows, 2))
    only_short = warm.subset(list(range(0, warm.n_rows, 2)))
    sched = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=3, warm_curves=only_short)
    assert sched.state_dict()["settings"]["policy_source"] == "cold rule"


@pytest.mark.parametrize("algorithm", ["asha", "default"])
def test_failed_trials_are_never_resumed_and_the_search_still_ends(algorithm):
    table = synthetic(n=120, R=16, seed=13)
    sampler, warm = table_sampler_for(table, 4, 0.3)
    sched = make_scheduler(
        algorithm, R=16, eta=2, sampler=sampler, seed=4, **({"warm_curves": warm} if algorithm == "default" else {})
    )
    # four workers; trials 3, 10, 17, ... fail in their first unit (the driver checks that none is resumed)
    log = drive(sched, table.minimized(), 16, workers=4, fail=lambda n, unit: unit.trial_id % 7 == 3)
    failed = {unit["trial_id"] for unit, kind, _ in log if kind == "failure"}
    decisions = decisions_of(log)
    assert failed and sched.best()["trial_id"] not in failed and sched.best()["epoch"] == 16
    assert {d.trial_id for d in decisions if d.action == "failed"} == failed


def test_a_given_grace_restricts_the_store_search_to_it():
    table = synthetic(n=200, R=16, seed=14, early=0.01, late=0.02, cross=3.0)
    sampler, warm = table_sampler_for(table, 2, 0.5)
    sched = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=2, warm_curves=warm, grace=2)
    assert sched.grace == 2 and sched.rungs[0] == 2
    assert {c["grace"] for c in sched.policy_report["candidates"]} == {2}
    assert sched.finalists in {c["finalists"] for c in sched.policy_report["candidates"]}


def test_background_fits_change_no_decision():
    """The MPI master fits forecast models on a thread (attach_fit_executor); a model is used only
    ``fit_lag`` results after its data is complete, in the simulator too, so decisions are identical."""
    from concurrent.futures import ThreadPoolExecutor

    table = synthetic(n=200, R=16, seed=15, late=2.0, cross=2.0)
    runs = []
    for background in (False, True):
        sampler, warm = table_sampler_for(table, 3, 0.5)
        sched = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=3, warm_curves=warm, fit_lag=3)
        pool = ThreadPoolExecutor(max_workers=1) if background else None
        if pool:
            sched.attach_fit_executor(pool)
        result = ReplayBackend(table, sched, R=16, workers=5, keep_events=True).run()
        if pool:
            pool.shutdown()
        runs.append((result.events, sched))
    assert runs[0][0] == runs[1][0]
    assert runs[1][1].forecaster.fits == runs[0][1].forecaster.fits > 0
    assert runs[1][1].forecaster.background_fits > 0 == runs[0][1].forecaster.background_fits
    assert json.dumps(runs[0][1].state_dict(), sort_keys=True) == json.dumps(runs[1][1].state_dict(), sort_keys=True)
    assert not runs[1][1].forecaster.futures or all(f.done() for f in runs[1][1].forecaster.futures.values())


def test_when_fitted_uses_a_model_only_once_reported_and_a_snapshot_continues_identically():
    """``models: when_fitted`` (the runtime's): a rung ranks by a model only after ``on_model_ready``
    reported it; the models reported travel in the state, so a scheduler restored mid-study makes the same
    decisions as the one that ran on; ``after_lag`` schedulers have no models to report."""
    table = synthetic(n=200, R=16, seed=15, late=2.0, cross=2.0)
    curves = table.minimized()

    def fresh(attach=True):
        sampler, _ = table_sampler_for(table, 3)  # cold: the targets and training sets grow as trials climb
        sched = make_scheduler("default", R=16, eta=2, sampler=sampler, seed=3, min_train=4, models="when_fitted")
        if attach:
            sched.attach_fit_executor(InlineExecutor())
        return sched

    def report(sched, inflight, starved):
        for key in sched.fitted_models():
            assert key not in sched.ready
            assert sched.on_model_ready(key) == []
            reported.append(key)

    reported: list = []
    first = fresh()
    reference = drive(first, curves, 16, workers=3, watch=report)
    used = [d["info"]["model"] for _, _, ds in reference for d in ds if "model" in d["info"]]
    assert reported and used
    names = {f"svr:{e}->{T}@{N}" for e, T, N in reported}
    assert set(used) <= names
    reported.clear()
    driver = Driver(fresh(), curves, 16, workers=3, watch=report)
    driver.run(until=lambda d: len(d.sched.ready) >= 2)  # some models in use, more to come
    driver.run(n_units=3)
    assert 2 <= len(driver.sched.ready) < len(first.ready)
    driver.restore(fresh(attach=False))
    driver.sched.attach_fit_executor(InlineExecutor())  # as the runtime does after a resume: fits start at once
    driver.run()
    assert json.dumps(driver.log) == json.dumps(reference)
    assert driver.sched.state_dict()["ready"] == first.state_dict()["ready"]
    after_lag = make_scheduler("default", R=16, eta=2, sampler=table_sampler_for(table, 3, 0.5)[0], seed=3)
    assert after_lag.models == "after_lag" and after_lag.fitted_models() == []
    with pytest.raises(ConfigError, match="when_fitted"):
        simulate_run(table, "default", 0, 16, 2, params={"models": "when_fitted"})


@pytest.mark.parametrize("algorithm", ["default", "asha"])
def test_the_shared_dedupe_option_skips_the_same_draws_as_hyperband(algorithm):
    table = synthetic(n=15, R=8, seed=16)  # Hyperband draws 22 configurations at R = 8: some repeat
    hb = simulate_run(table, "hyperband", 4, 8, 2, dedupe=True)
    run = simulate_run(table, algorithm, 4, 8, 2, dedupe=True, keep_events=True, predictor="none")
    assert run["configs"] == hb["configs"] == hyperband_budget(8, 2)[0]
    assert run["duplicates"] == hb["duplicates"] > 0
    assert len({e[1] for e in run["events"] if e[0] == "unit" and e[2] == 0}) == run["configs"] - run["duplicates"]
