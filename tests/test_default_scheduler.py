"""The ``default`` algorithm: Hyperband's brackets with stops tested on the study's evidence, audited
(hpoq.schedulers.default, hpoq.schedulers.evidence, hpoq.schedulers.audit)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy.stats import hypergeom

from hpoq.curves.stress import stress_table
from hpoq.curves.table import CurveTable
from hpoq.errors import ConfigError
from hpoq.runtime.resume import InlineExecutor
from hpoq.schedulers import make_scheduler
from hpoq.schedulers.audit import BUDGET, Audit, clopper_pearson
from hpoq.schedulers.base import PAUSE, STOP
from hpoq.schedulers.brackets import hyperband_budget
from hpoq.schedulers.default import ALPHA, DefaultScheduler
from hpoq.schedulers.evidence import Column, kind_p_value, kind_test
from hpoq.schedulers.sampling import TableRowSampler, table_sampler_for
from hpoq.simulate import simulate_run
from tests.drivers import drive


@pytest.fixture(scope="module")
def reliable():
    """Curves that never cross (the stress family's knob at 0), 400 rows, R = 16."""
    return stress_table(0.0, n_rows=400, R=16, seed=1)


@pytest.fixture(scope="module")
def late():
    """Late bloomers: early ranks inverted (the knob at 1), 400 rows, R = 16."""
    return stress_table(1.0, n_rows=400, R=16, seed=1)


def build(table, seed, warm=0.0, **params):
    sampler, store = table_sampler_for(table, seed, warm)
    params.setdefault("predictor", "none")
    return make_scheduler("default", R=table.n_epochs, eta=2, sampler=sampler, seed=seed, warm_curves=store, **params)


def test_with_nothing_stopped_default_is_hyperband(reliable):
    """protect = 1 stops nothing: the same units' epochs, the same trials and the same answer as Hyperband."""
    for seed in range(3):
        hb = simulate_run(reliable, "hyperband", seed, 16, 2, warm_fraction=0.5)
        d = simulate_run(reliable, "default", seed, 16, 2, warm_fraction=0.5, params={"protect": 1.0})
        assert (d["epochs"], d["best_row"], d["configs"]) == (hb["epochs"], hb["best_row"], hb["configs"])


@pytest.mark.parametrize("workers", [1, 7])
def test_never_more_epochs_than_hyperband_and_stops_where_evidence_holds(reliable, late, workers):
    n, cap = hyperband_budget(16, 2)
    saved = {}
    for name, table in (("reliable", reliable), ("late", late)):
        for seed, warm in itertools.product(range(3), (0.0, 0.5)):
            run = simulate_run(table, "default", seed, 16, 2, workers=workers, warm_fraction=warm, predictor="none")
            assert run["epochs"] <= cap and run["configs"] == n
            saved.setdefault((name, warm), []).append(1 - run["epochs"] / cap)
    assert np.mean(saved["reliable", 0.5]) > 0.1  # curves that never cross, a store: stops pay
    assert np.mean(saved["late", 0.5]) < np.mean(saved["reliable", 0.5])


def test_late_bloomers_are_not_stopped_where_their_kind_ended_well(late):
    """Inverted early ranks: the store's slow starters ended best, so trials like them at an early checkpoint
    are not stopped, and the answer is Hyperband's."""
    for seed in range(3):
        hb = simulate_run(late, "hyperband", seed, 16, 2, warm_fraction=0.5)
        d = simulate_run(late, "default", seed, 16, 2, warm_fraction=0.5, predictor="none")
        assert d["best_final"] <= hb["best_final"] + 1e-12


def test_every_stop_carries_a_significant_test(reliable):
    sched = build(reliable, 4, warm=0.5)
    log = drive(sched, reliable.minimized(), 16)
    stops = [d for _, _, ds in log for d in ds if d["action"] == PAUSE and d["reason"] == "evidence"]
    finals = {d["trial_id"] for _, _, ds in log for d in ds if d["action"] == STOP and d["reason"] == "evidence"}
    kept_on = set(sched.audit.records) | set(sched.rescued)
    assert stops and finals == {d["trial_id"] for d in stops} - kept_on  # confirmed when the study ends
    for d in stops:
        info = d["info"]
        if info["rule"] == "diverged":
            continue
        assert info["p"] <= ALPHA and info["kind_best"] > info["bar"] and info["checkpoint"] < 16
        assert info["evidence"] - info["kind"] >= sched.protect * info["evidence"]  # not in the protected best
        assert info["p"] == pytest.approx(kind_p_value(info["evidence"], info["better"], info["kind"]))


def test_kind_p_value_is_the_hypergeometric_chance_of_missing_every_better_curve():
    for n, better, m in [(10, 3, 4), (50, 10, 20), (7, 0, 3), (30, 29, 2)]:
        assert kind_p_value(n, better, m) == pytest.approx(hypergeom(n, better, m).pmf(0))
    assert kind_p_value(5, 4, 2) == 0.0 and kind_p_value(5, 1, 0) == 1.0


def test_kind_test_stops_only_a_trial_whose_kind_never_reached_the_bar():
    col = Column()
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 200)
    for s in scores:
        col.add(s, s + 0.01 * rng.standard_normal())  # the score ranks the outcome
    assert kind_test(col, 0.9, bar=0.3, alpha=0.01, protect=0.35) is not None
    assert kind_test(col, 0.2, bar=0.3, alpha=0.01, protect=0.35) is None  # its kind reached the bar
    assert kind_test(col, 0.3, bar=0.1, alpha=0.01, protect=0.8) is None  # in the protected best share
    inverted = Column()
    for s in scores:
        inverted.add(s, 1 - s)  # late bloomers: the worst early end best
    assert kind_test(inverted, 0.9, bar=0.3, alpha=0.01, protect=0.35) is None


def test_the_audit_trains_a_random_share_of_the_stops_to_R_within_the_savings(reliable):
    sched = build(reliable, 5, warm=0.5, audit=0.5)
    drive(sched, reliable.minimized(), 16)
    audit = sched.audit
    assert audit.records and audit.spent <= BUDGET * audit.saved
    for tid in audit.started:
        assert sched.ledger.trials[tid].epochs == 16 and tid in sched.stops
    est = sched.audit_estimate()
    finals = [sched.ledger.trials[t].value_at(16) for t in audit.started]
    kept = min(t.value_at(16) for t in sched.ledger.trials.values() if t.epochs >= 16 and t.trial_id not in sched.stops)
    assert est["audited"] == len(finals) and est["false_prunes"] == sum(v < kept for v in finals)
    assert (est["low"], est["high"]) == clopper_pearson(est["false_prunes"], est["audited"])
    # the draw depends on the seed, the trial and the checkpoint only: a second study audits the same stops
    again = build(reliable, 5, warm=0.5, audit=0.5)
    drive(again, reliable.minimized(), 16)
    assert again.audit.records.keys() == audit.records.keys()


def test_clopper_pearson_matches_known_intervals():
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.3085, abs=1e-4)
    lo, hi = clopper_pearson(3, 10)
    assert (lo, hi) == (pytest.approx(0.0667, abs=1e-4), pytest.approx(0.6525, abs=1e-4))


def test_audit_budget_is_first_come_first_served():
    audit = Audit(rate=1.0, seed=0, R=10)
    assert audit.on_stop(1, 2, 4, {}) and audit.on_stop(2, 5, 10, {})
    assert audit.next_affordable() is None  # 8 epochs to R, a quarter of 2 + 5 saved
    audit.saved = 40
    assert audit.next_affordable() == 1 and audit.next_affordable() is None  # 8 + 5 > a quarter of 40


def test_state_round_trip_mid_run_continues_identically(reliable):
    """Snapshots taken every 37 units, each restored through JSON into a fresh scheduler (forecasts, stops,
    audits and all), go on exactly as the uninterrupted study."""
    params = {"predictor": "svr", "audit": 0.5}
    curves = reliable.minimized()
    reference = drive(build(reliable, 6, warm=0.5, **params), curves, 16)
    log, sched = [], build(reliable, 6, warm=0.5, **params)
    while not sched.finished:
        log += drive(sched, curves, 16, n_units=37, history=log)
        fresh = build(reliable, 6, warm=0.5, **params)
        fresh.load_state_dict(json.loads(json.dumps(sched.state_dict())))
        sched = fresh
    assert json.dumps(log) == json.dumps(reference)
    assert any(d["reason"] == "audit" for _, _, ds in log for d in ds)


def test_a_forecast_scores_the_trials_once_a_model_is_fitted(reliable):
    sched = build(reliable, 7, warm=0.5, predictor="svr")
    log = drive(sched, reliable.minimized(), 16)
    scored = [d["info"] for _, _, ds in log for d in ds if d["reason"] in ("checkpoint", "evidence")]
    forecast = [i for i in scored if "predicted" in i]
    assert forecast and all(i["target_epoch"] == 16 and i["predicted"] == i["score"] for i in forecast)
    assert all(i["model"].startswith(f"svr:{i['checkpoint']}->16@") for i in forecast)


def test_fits_reported_by_the_runtime_are_used_only_once_reported(reliable):
    """``fit_lag=None`` (the MPI runtime's): a model scores a checkpoint only after on_model_ready."""
    sched = build(reliable, 8, warm=0.5, predictor="svr", fit_lag=None)
    sched.attach_fit_executor(InlineExecutor())
    assert all(sched.scorer.key(c) is None for c in sched.checkpoints)
    keys = sched.fitted_models()
    assert keys and keys == sched.scorer.forecaster.started[: len(keys)]
    sched.on_model_ready(keys[0])
    assert sched.scorer.key(keys[0][0]) == tuple(keys[0])
    restored = build(reliable, 8, warm=0.5, predictor="svr", fit_lag=None)
    restored.load_state_dict(json.loads(json.dumps(sched.state_dict())))
    assert restored.scorer.key(keys[0][0]) == tuple(keys[0])


def test_bad_parameters_are_clear_errors(reliable):
    with pytest.raises(ConfigError, match="protect"):
        build(reliable, 0, protect=1.5)
    with pytest.raises(ConfigError, match="audit"):
        build(reliable, 0, audit=-0.1)
    sched = build(reliable, 0, protect=0.4)
    with pytest.raises(ConfigError, match="made with protect=0.4"):
        build(reliable, 0, protect=0.5).load_state_dict(json.loads(json.dumps(sched.state_dict())))


def test_a_store_shorter_than_R_is_refused(reliable):
    short = CurveTable(reliable.hp_names, reliable.configs[:10], reliable.curves[:10, :8], "loss")
    with pytest.raises(ConfigError, match="fewer than R"):
        DefaultScheduler(R=16, sampler=TableRowSampler(reliable, 0), warm_curves=short)


@pytest.mark.parametrize("algorithm", ["default", "hyperband"])
def test_the_shared_dedupe_option_skips_the_same_draws_as_hyperband(reliable, algorithm):
    runs = {
        a: simulate_run(reliable, a, 3, 16, 2, dedupe=True, predictor="none" if a == "default" else None)
        for a in ("hyperband", algorithm)
    }
    assert runs[algorithm]["duplicates"] == runs["hyperband"]["duplicates"]
    assert math.isfinite(runs[algorithm]["best_final"])
