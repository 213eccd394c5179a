"""Swift-Hyperband (method.md 3): decision points, invariants, paper reproduction on MLPF."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpoq.curves.shared import load_shared
from hpoq.curves.table import CurveTable
from hpoq.errors import ConfigError
from hpoq.schedulers import make_scheduler
from hpoq.schedulers.base import CONTINUE
from hpoq.schedulers.brackets import hyperband_schedule
from hpoq.schedulers.sampling import table_sampler_for
from hpoq.schedulers.swift import decision_epoch
from hpoq.simulate import simulate_run


@pytest.fixture(scope="module")
def mlpf():
    return load_shared("mlpf")


@pytest.fixture(scope="module")
def paper_runs(mlpf):
    """10 seeds of Hyperband and Swift (svr on curve features, paper defaults), R=100, eta=2."""
    return [
        (simulate_run(mlpf, "hyperband", s, 100, 2), simulate_run(mlpf, "swift", s, 100, 2, keep_events=True))
        for s in range(10)
    ]


def test_decision_epoch_edge_cases():
    assert decision_epoch(2, 3, 0.5) == 3  # coincides with the round end (R=100): saves nothing
    assert decision_epoch(0, 1, 0.5) == 1  # R=300 first round
    assert decision_epoch(0, 2, 0.5) == 1
    assert decision_epoch(50, 100, 0.5) == 75
    assert decision_epoch(12, 25, 0.5) == 19  # ceil(6.5)
    assert decision_epoch(0, 30, 0.1) == 3  # exact: no float ceil(3.0000000000000004) = 4


def test_paper_reproduction_mlpf(paper_runs):
    """method.md 8.4/8.6: 7-12% fewer epochs than Hyperband's 3213; same answer in >= 9/10 seeds."""
    epochs = [sw["epochs"] for _, sw in paper_runs]
    saving = 1 - np.mean(epochs) / 3213
    assert 0.07 <= saving <= 0.12, saving
    same = sum(hb["best_row"] == sw["best_row"] for hb, sw in paper_runs)
    assert same >= 9
    assert all(hb["epochs"] == 3213 for hb, _ in paper_runs)


def test_swift_invariants_on_events(paper_runs):
    for _, sw in paper_runs[:3]:
        decisions = sw["decisions"]
        # parked => a predictor existed for that round: every predicted decision names key, tau and |D| >= d
        predicted = [d for d in decisions if d["reason"] == "predicted"]
        assert predicted
        assert all(d["info"]["n_train"] >= 15 and "tau" in d["info"] and "prediction" in d["info"] for d in predicted)
        # stops by prediction happen at the decision epoch, which is strictly inside the round
        for d in predicted:
            r, e = d["info"]["key"]
            assert d["epoch"] == e < r
        # at least n_next configurations of each round reach r_i (fallback, rule 8)
        for d in decisions:
            if d["reason"] == "predicted":
                assert (
                    d["info"]["n_full"]
                    + sum(
                        1
                        for x in predicted
                        if x["action"] == CONTINUE
                        and x["info"]["key"] == d["info"]["key"]
                        and x["info"]["bracket"] == d["info"]["bracket"]
                    )
                    >= d["info"]["n_next"]
                )
        # rule 2 continuations carry their inputs
        rule2 = [d for d in decisions if d["reason"] in ("quota", "data")]
        assert rule2 and all({"sent", "n_next", "D", "d", "e_d"} <= set(d["info"]) for d in rule2)


def test_no_prediction_possible_equals_hyperband(mlpf):
    """d larger than any D[r]: nothing is ever parked, so Swift is Hyperband (epochs and answer)."""
    hb = simulate_run(mlpf, "hyperband", 3, 100, 2)
    sw = simulate_run(mlpf, "swift", 3, 100, 2, params={"d": 10_000})
    assert sw["epochs"] == 3213 and sw["best_row"] == hb["best_row"] and sw["pruned"] == hb["pruned"]
    kc1 = simulate_run(mlpf, "swift", 3, 100, 2, params={"known_curve": 1.0})
    assert kc1["epochs"] == 3213 and kc1["best_row"] == hb["best_row"]


def test_warm_curves_preseed_predictor_data(mlpf):
    cold = [simulate_run(mlpf, "swift", s, 100, 2, warm_fraction=0.5)["epochs"] for s in range(2)]
    sampler, warm = table_sampler_for(mlpf, 0, 0.5)
    sched = make_scheduler("swift", R=100, eta=2, sampler=sampler, seed=0, warm_curves=warm)
    assert sched.d_size(100) == warm.n_rows  # every warm curve reaches R
    res = simulate_run(mlpf, "swift", 0, 100, 2, warm_fraction=0.5, keep_events=True)
    predicted = [d for d in res["decisions"] if d["reason"] == "predicted"]
    assert all(d["info"]["warm"] == warm.n_rows for d in predicted)
    # without the warm store, the same (reduced) configuration pool costs more epochs
    no_store = [simulate_run(mlpf, "swift", s, 100, 2, params={"d": 15}, warm_fraction=0.0)["epochs"] for s in range(2)]
    assert np.mean(cold) < np.mean(no_store) - 100


def test_a_large_warm_store_is_capped_to_a_stratified_subset(mlpf):
    """A store larger than ``max_warm`` gives at most ``max_warm`` warm rows per training set, spread over the
    whole range of their values at r (the best and the worst kept); a store within the cap is used whole."""
    big = mlpf.subset(np.arange(4 * mlpf.n_rows) % mlpf.n_rows)  # 1,180 curves: every row four times
    sampler, _ = table_sampler_for(mlpf, 0)
    sched = make_scheduler("swift", R=100, eta=2, sampler=sampler, seed=0, warm_curves=big, max_warm=50)
    values = big.minimized()[:, 99]
    rows = sched.warm.rows_reaching(100)
    assert len(rows) == 50 == len(set(rows)) and sched.d_size(100) == 50
    assert values[rows].min() == values.min() and values[rows].max() == values.max()
    # evenly spread: each quarter of the values holds about a quarter of the rows
    quartiles = np.quantile(values, [0.25, 0.5, 0.75])
    counts = np.bincount(np.searchsorted(quartiles, values[rows]), minlength=4)
    assert counts.min() >= 10, counts
    configs, X, y = sched._training_set(100, 50)
    assert len(configs) == X.shape[0] == y.size == 50
    whole = make_scheduler("swift", R=100, eta=2, sampler=sampler, seed=0, warm_curves=big, max_warm=None)
    assert whole.d_size(100) == big.n_rows
    within = make_scheduler("swift", R=100, eta=2, sampler=sampler, seed=0, warm_curves=mlpf)
    assert within.warm.rows_reaching(100) == list(range(mlpf.n_rows))
    with pytest.raises(ConfigError, match="max_warm"):
        make_scheduler("swift", R=100, eta=2, sampler=sampler, seed=0, warm_curves=big, max_warm=1)


def test_predictor_is_fitted_once_per_key(mlpf):
    sampler, _ = table_sampler_for(mlpf, 1)
    sched = make_scheduler("swift", R=100, eta=2, sampler=sampler, seed=1)
    while not sched.finished:
        u = sched.suggest()
        sched.on_result(u.trial_id, mlpf.minimized()[u.config["_row"], u.start_epoch : u.end_epoch].tolist())
    keys = {
        (r_i, decision_epoch(r_prev, r_i, 0.5))
        for _, _, rounds in hyperband_schedule(100, 2)
        for (r_prev, r_i) in zip([0] + [r for _, r in rounds[:-1]], [r for _, r in rounds])
    }
    assert sched.fits == len(sched.M) <= 13 and set(sched.M) <= keys


@pytest.mark.parametrize(
    "param", [{"k": 2}, {"d": 1}, {"known_curve": 0}, {"threshold_quantile": 1.5}, {"refit": "always"}]
)
def test_bad_parameters(mlpf, param):
    with pytest.raises(ConfigError):
        make_scheduler("swift", R=100, eta=2, sampler=table_sampler_for(mlpf, 0)[0], seed=0, **param)


def toy_table(n=80, epochs=40):
    rng = np.random.default_rng(3)
    level = rng.uniform(0, 1, n)
    curves = level[:, None] + rng.uniform(0, 2, n)[:, None] * np.exp(
        -np.outer(rng.uniform(0.05, 0.5, n), np.arange(1, epochs + 1))
    )
    return CurveTable(hp_names=["a"], configs=[{"a": float(v)} for v in level], curves=curves, metric="loss")


TOY = toy_table()


@settings(max_examples=25, deadline=None)
@given(
    R=st.integers(2, 40),
    eta=st.integers(2, 4),
    d=st.integers(2, 8),
    k=st.sampled_from([0.0, 0.5, 1.0]),
    kc=st.sampled_from([0.25, 0.5, 0.75]),
    workers=st.integers(1, 4),
)
def test_swift_invariants_property(R, eta, d, k, kc, workers):
    """Same configurations as Hyperband, never more epochs, units resume where the trial stopped,
    and at least n_next configurations reach the end of every round."""
    from hpoq.schedulers.brackets import hyperband_budget

    params = {"d": d, "k": k, "known_curve": kc}
    res = simulate_run(TOY, "swift", 0, R, eta, workers=workers, params=params, keep_events=True)
    configs, epochs = hyperband_budget(R, eta)
    assert res["configs"] == configs and res["epochs"] <= epochs
    reached = {}
    for e in res["events"]:
        if e[0] == "unit":
            assert e[2] == reached.get(e[1], 0) < e[3] <= R
            reached[e[1]] = e[3]
    first = 0
    for s, n, rounds in hyperband_schedule(R, eta):
        ids = range(first, first + n)
        for i, (n_i, r_i) in enumerate(rounds):
            n_next = n_i // eta if i < s else 1
            assert sum(1 for t in ids if reached.get(t, 0) >= r_i) >= max(n_next, 1)
        first += n
    assert res["best_final"] is not None
