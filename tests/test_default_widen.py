"""``default``'s rung width: where the forecast ranked its training set's best rows low (out of fold), a
rung is widened within a pool of epochs (``widen``); a complete rung sends at least ``finalists`` on
(hpoq.schedulers.default, hpoq.schedulers.final_predictor.top_reach)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hpoq.curves.shared import load_shared
from hpoq.curves.table import CurveTable
from hpoq.schedulers import make_scheduler, with_worker_defaults
from hpoq.schedulers.brackets import hyperband_budget
from hpoq.schedulers.final_predictor import top_reach
from hpoq.schedulers.sampling import table_sampler_for
from hpoq.simulate import simulate_run
from hpoq.simulate.replay import ReplayBackend
from tests.drivers import Driver, drive
from tests.test_default_scheduler import synthetic


def crossing(R=16, seed=3, n=400):
    """Final values ``q`` hidden behind a large, independent early term ``a / epoch`` and configurations
    that do not reveal ``q``: forecasts from a short prefix rank the best rows far down."""
    rng = np.random.default_rng(seed)
    q, a = rng.uniform(0, 1, n), rng.uniform(0, 6, n)
    epochs = np.arange(1, R + 1)
    curves = q[:, None] + a[:, None] / epochs[None, :] ** 1.5
    configs = [{"x": float(v)} for v in rng.uniform(0, 1, n)]
    return CurveTable(hp_names=["x"], configs=configs, curves=curves, metric="loss")


def run(table, R, widen, predictor=None, warm=0.5, seed=2, workers=1, **params):
    sampler, store = table_sampler_for(table, seed, warm)
    sched = make_scheduler(
        "default", R=R, eta=2, sampler=sampler, seed=seed, warm_curves=store, widen=widen, predictor=predictor, **params
    )
    result = ReplayBackend(table, sched, R=R, workers=workers).run()
    return sched, result


def test_uncertain_forecasts_widen_a_rung_within_the_pool():
    table = crossing()
    sched, result = run(table, 16, widen=1.0)
    uncertain = [d for d in result.decisions if d.reason == "uncertain"]
    assert uncertain, "no rung was widened"
    for d in uncertain:  # beyond the quota, within the width the forecast's out-of-fold ranking needed, or
        # well inside the quota by observed value
        assert d.info["pred_rank"] >= d.info["quota"]
        assert d.info["pred_rank"] < d.info["width"] or d.info["rank"] < d.info["quota"] / 2
        assert d.info["width"] == max(d.info["quota"], int(np.ceil(d.info["reach"] * d.info["rung_size"])))
    assert any(d.info["pred_rank"] < d.info["width"] for d in uncertain)
    assert 0 < sched.extra_spent <= sched.extra_pool == sched.cap - sched.plan
    assert result.epochs <= hyperband_budget(16, 2)[1]
    narrow, narrow_result = run(table, 16, widen=0.0)
    assert narrow.extra_pool == 0 and not [d for d in narrow_result.decisions if d.reason == "uncertain"]
    assert result.epochs > narrow_result.epochs
    # a smaller pool buys fewer extra promotions
    half, half_result = run(table, 16, widen=0.3)
    assert 0 < half.extra_spent <= half.extra_pool < sched.extra_pool
    assert narrow_result.epochs <= half_result.epochs <= result.epochs


def test_top_reach_is_the_share_that_keeps_the_best_rows():
    y = np.arange(100.0)
    assert top_reach(y, y) == pytest.approx(0.05)  # a perfect forecast: the best 5 are the first 5
    assert top_reach(-y, y) == 1.0  # reversed: the best row is forecast last
    shuffled = y.copy()
    shuffled[[1, 60]] = shuffled[[60, 1]]  # the second best is forecast 61st
    assert top_reach(shuffled, y) == pytest.approx(0.61)
    assert top_reach(np.array([np.nan, 1.0, 2.0]), np.array([0.0, 1.0, 2.0])) == 1.0  # both finite rows needed


def test_without_a_forecast_nothing_widens():
    sched, result = run(crossing(), 16, widen=1.0, predictor="none")
    assert sched.extra_spent == 0 and not [d for d in result.decisions if d.reason == "uncertain"]


def test_a_widened_study_resumes_identically():
    table = crossing(seed=5)
    curves = table.minimized()

    def fresh():
        sampler, store = table_sampler_for(table, 4, 0.5)
        return make_scheduler("default", R=16, eta=2, sampler=sampler, seed=4, warm_curves=store, widen=1.0)

    reference = fresh()
    full = drive(reference, curves, 16)
    widened = [i for i, (_, _, ds) in enumerate(full) if any(d["reason"] == "uncertain" for d in ds)]
    assert widened, "the reference run never widened a rung"
    cut = (widened[0] + len(full)) // 2  # after some extra promotions, before the end
    driver = Driver(fresh(), curves, 16)
    driver.run(n_units=cut)
    assert driver.sched.extra_spent > 0
    driver.fill()
    driver.restore(fresh())
    driver.run()
    assert json.dumps(driver.log) == json.dumps(full)
    assert driver.sched.extra_spent == reference.extra_spent


@pytest.mark.parametrize("finalists", [2, 3, 4])
def test_finalists_climb_beside_the_others_with_many_workers(finalists):
    """A complete rung sends at least ``finalists`` on at once: with more workers than configurations the
    study ends when one trial could have trained R epochs, as Hyperband's side-by-side brackets do."""
    table = synthetic(n=200, R=12, seed=7, late=1.0)
    for seed in range(3):
        sched, result = run(table, 12, widen=0.0, warm=0.0, seed=seed, workers=50, grace=1, finalists=finalists)
        hb = simulate_run(table, "hyperband", seed, 12, 2, workers=50)
        assert len(sched.ladder.results[-1]) >= finalists
        assert result.makespan <= hb["makespan"] == 12.0


def test_cifar10_cold_widening_recovers_the_late_bloomers():
    """On recorded CIFAR-10 curves, which cross late, a narrow rung loses the best configurations that
    Hyperband's long brackets find; the widened rung keeps them (10 seeds, paired)."""
    table = load_shared("cifar10")
    R = table.n_epochs

    def answers(**params):
        return np.array(
            [simulate_run(table, "default", s, R, 2, params=params)["best_final"] for s in range(10)], dtype=float
        )

    narrow, wide = answers(widen=0.0), answers(widen=0.3)
    assert wide.mean() > narrow.mean()


def test_fit_lag_and_late_widening_follow_the_number_of_workers_unless_given():
    assert with_worker_defaults("default", {}, 1) == {"fit_lag": 4}
    assert with_worker_defaults("default", {}, 16) == {"fit_lag": 16, "late_widening": False}
    assert with_worker_defaults("default", {}, 2) == {"fit_lag": 4, "late_widening": False}
    given = {"fit_lag": 1, "late_widening": True}
    assert with_worker_defaults("default", given, 16) == given
    assert with_worker_defaults("hyperband", {}, 16) == {}


def taskset_cold_at_50_workers(table, seed: int, params: dict | None = None):
    """(scheduler, event log) of ``default`` with the 50-worker defaults (``params`` on top) on cold TaskSet."""
    sampler, _ = table_sampler_for(table, seed, 0.0)
    R = table.n_epochs
    sched = make_scheduler(
        "default", R=R, eta=2, sampler=sampler, seed=seed, **with_worker_defaults("default", params, 50)
    )
    return sched, drive(sched, table.minimized(), R, workers=50)


def test_widening_stops_once_the_finalists_reached_R():
    """TaskSet cold, 50 workers, seed 14: a model refitted on the first trials at R re-ranked rung 0 and widened
    it, and the chain it started ended at twice Hyperband's makespan. No rung widens once ``finalists`` trials
    climbed to R (decisions are in the log entry of the result that follows them)."""
    table = load_shared("taskset")
    R = table.n_epochs
    params = {"late_widening": True}  # widened late: this rule alone
    sched, log = taskset_cold_at_50_workers(table, 14, params)
    at_R, widened_late = 0, []
    for unit, kind, decisions in log:
        if at_R >= sched.finalists:
            widened_late += [d for d in decisions if d["reason"] == "uncertain"]
        at_R += kind == "result" and unit["end_epoch"] == R
    assert sched.extra_spent > 0, "no rung was widened at all"
    assert not widened_late
    assert simulate_run(table, "default", 14, R, 2, workers=50, params=params)["makespan"] <= 1.2 * R


def test_with_several_workers_a_rung_is_not_widened_once_trials_two_rungs_above_reported():
    """TaskSet cold, 50 workers, seed 5: a model that arrived after trials had reached epoch 8 re-ranked rung 0
    (epoch 2) and widened it; the chains it started raised the quotas above them and ended at 67 epochs,
    against Hyperband's 54. With several workers (``late_widening`` off) no rung widens after the rung two
    above it has a result, and the makespan is Hyperband's or less."""
    table = load_shared("taskset")
    R = table.n_epochs
    hyperband = simulate_run(table, "hyperband", 5, R, 2, workers=50)["makespan"]
    late = simulate_run(table, "default", 5, R, 2, workers=50, params={"late_widening": True})
    assert late["makespan"] > hyperband
    sched, log = taskset_cold_at_50_workers(table, 5)
    reported = [0] * len(sched.rungs)  # results per rung, before each entry's decisions
    for unit, kind, decisions in log:
        for d in decisions:
            if d["reason"] == "uncertain":
                k = d["info"]["rung"]
                assert k + 2 >= len(sched.rungs) or reported[k + 2] == 0, d
        if kind == "result":
            reported[sched.rungs.index(unit["end_epoch"])] += 1
    assert simulate_run(table, "default", 5, R, 2, workers=50)["makespan"] <= hyperband
