"""QSVRPredictor (method.md 5.5-5.8): ensemble chunks, seeding, combination schemes, samplers by name."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpoq.curves.table import load_table
from hpoq.errors import ConfigError, InternalError
from hpoq.predict import make_predictor
from hpoq.predict.qsvr import COMBINE_SCHEMES, QSVRPredictor, log2cosh_sum, r2, scheme_weights
from tests.drivers import mlpf_prefixes

FAST = dict(sampler={"name": "sa", "params": {"num_reads": 20, "num_sweeps": 200}})


@pytest.fixture(scope="module")
def mlpf(mlpf_table):
    _, prefixes, finals = mlpf_prefixes(load_table(str(mlpf_table), "loss", "min"), known=0.25, seed=0)
    return prefixes, finals


def test_ensemble_fit_predict_on_mlpf(mlpf):
    P, y = mlpf
    tr, te = slice(0, 120), slice(200, None)
    q = QSVRPredictor(seed=3, **FAST).fit(None, P[tr], y[tr])
    pred = q.predict(None, P[te])
    assert len(q.members) == 4
    assert pred.mean.shape == (len(y[te]),) and pred.spread.shape == pred.mean.shape
    assert np.all(pred.spread >= 0) and np.any(pred.spread > 0)
    assert r2(y[te], pred.mean) > 0.6
    # chunks are disjoint, 20 points each, drawn from the 120 training rows
    rows = np.concatenate(q.chunk_rows_)
    assert len(rows) == 80 and len(np.unique(rows)) == 80 and rows.max() < 120
    d = q.describe()
    assert d["sampler"] == "sa" and d["requested_sampler"] == "sa" and d["chunks"] == 4
    assert d["fit_seconds"] > 0 and len(d["chunk_info"]) == 4
    assert set(d["schemes"]) <= set(COMBINE_SCHEMES)
    assert pred.info["sampler"] == "sa"
    assert math.isclose(sum(d["member_weights"]), 1.0)


def test_seed_picks_the_chunks(mlpf):
    """Same seed, same predictions: tests/test_contracts.py; here: another seed draws other chunks."""
    P, y = mlpf
    a = QSVRPredictor(seed=5, **FAST).fit(None, P[:50], y[:50])
    c = QSVRPredictor(seed=6, **FAST).fit(None, P[:50], y[:50])
    assert [r.tolist() for r in a.chunk_rows_] != [r.tolist() for r in c.chunk_rows_]
    assert len(a.members) == 2  # 50 points -> two chunks of 20


def test_few_points_single_qsvr(mlpf):
    P, y = mlpf
    q = QSVRPredictor(seed=0, **FAST).fit(None, P[:15], y[:15])
    assert len(q.members) == 1 and len(q.chunk_rows_[0]) == 15
    pred = q.predict(None, P[20:30])
    assert pred.spread is None and np.all(np.isfinite(pred.mean))
    assert q.describe()["schemes"] == ["mean7"]
    # never more than 2*K*N variables per QUBO, whatever n is
    q = QSVRPredictor(seed=0, n_points=5, chunks=2, **FAST).fit(None, P[:200], y[:200])
    assert [len(r) for r in q.chunk_rows_] == [5, 5]


def test_exact_sampler_and_neal_alias(mlpf):
    P, y = mlpf
    q = QSVRPredictor(sampler="exact", n_points=3, chunks=2, seed=1).fit(None, P[:10], y[:10])
    assert q.describe()["sampler"] == "exact" and len(q.members) == 2
    with pytest.raises(ConfigError, match="exact"):
        QSVRPredictor(sampler="exact", n_points=4).fit(None, P[:10], y[:10])  # 24 variables
    n = QSVRPredictor(sampler=dict(FAST["sampler"], name="neal"), seed=2).fit(None, P[:30], y[:30])
    s = QSVRPredictor(seed=2, **FAST).fit(None, P[:30], y[:30])
    assert n.describe()["sampler"] == "sa"
    assert np.array_equal(n.predict(None, P[40:45]).mean, s.predict(None, P[40:45]).mean)


@pytest.mark.parametrize("combine", COMBINE_SCHEMES)
def test_every_combination_scheme_runs(mlpf, combine):
    P, y = mlpf
    sampler = {"name": "sa", "params": {"num_reads": 500, "num_sweeps": 10}}
    q = QSVRPredictor(seed=0, combine=combine, chunks=1, sampler=sampler).fit(None, P[:20], y[:20])
    assert q.k_solutions == 2 and np.all(np.isfinite(q.predict(None, P[100:110]).mean))


def test_scheme_weights_definitions():
    mse = np.array([0.04, 0.01, 0.02])
    lc = np.array([3.0, 1.0, 2.0])
    r2s = np.array([0.5, 0.9, 0.7])
    norm = scheme_weights("norm", mse, lc, r2s)
    assert np.allclose(norm, (1 / mse) / (1 / mse).sum()) and np.argmax(norm) == 1  # lower MSE, more weight
    assert np.allclose(scheme_weights("lc-norm", mse, lc, r2s), (1 / lc) / (1 / lc).sum())
    assert np.array_equal(scheme_weights("best", mse, lc, r2s), [0, 1, 0])
    assert np.allclose(scheme_weights("mean", mse, lc, r2s), 1 / 3)
    sm = scheme_weights("r2-softmax", mse, lc, r2s)
    assert np.allclose(sm, np.exp(r2s) / np.exp(r2s).sum())
    # softmax over 1/MSE is max-subtracted: no overflow at tiny errors
    huge = scheme_weights("softmax", np.array([1e-6, 2e-6]), lc[:2], r2s[:2])
    assert np.all(np.isfinite(huge)) and huge[0] == pytest.approx(1.0)
    # temperature flattens the softmax
    t = scheme_weights("softmax", mse, lc, r2s, temperature=1e6)
    assert np.allclose(t, 1 / 3, atol=1e-3)
    with pytest.raises(ConfigError):
        scheme_weights("nope", mse, lc, r2s)


def test_log2cosh_is_stable():
    r = np.array([0.0, 1.0, -2.0, 1000.0])
    # the original's base-2 log-cosh: log2((2**r + 2**-r) / 2) (method.md 5.7)
    expect = np.log2((2.0 ** r[:3] + 2.0 ** -r[:3]) / 2).sum() + (1000.0 - 1.0)
    assert log2cosh_sum(r) == pytest.approx(expect)


def test_registry_and_bad_parameters(mlpf):
    P, y = mlpf
    q = make_predictor("qsvr", seed=1, sampler={"name": "sa", "params": {"num_reads": 10, "num_sweeps": 50}})
    assert isinstance(q, QSVRPredictor)
    with pytest.raises(ConfigError):
        make_predictor("qsvr", bogus=1)
    for bad in (
        dict(sampler="qpu"),
        dict(combine="median"),
        dict(K=0),
        dict(B=-1.0),
        dict(n_points=0),
        dict(gamma=0.0),
        dict(features="spline"),
        dict(scaler="robust"),
        dict(sampler={"name": "dwave", "params": {"chain_strength": "max"}}),
        dict(temperature=0.0),
        dict(top_k=0),
        dict(sampler={"name": "sa", "params": {"num_reads": 0}}),
        dict(sampler={"name": "sa", "params": {"num_sweeps": "many"}}),
        dict(sampler={"name": "sa", "prams": {}}),
        dict(center="yes"),
        dict(chunk_select="sorted"),
    ):
        with pytest.raises(ConfigError):
            QSVRPredictor(**bad).fit(None, P[:25], y[:25])
    with pytest.raises(ConfigError):
        QSVRPredictor(**FAST).fit(None, P[:25], y[:24])
    with pytest.raises(ConfigError):
        QSVRPredictor(**FAST).fit(None, np.full((25, 5), np.nan), y[:25])
    fitted = QSVRPredictor(**FAST).fit(None, P[:25], y[:25])
    with pytest.raises(InternalError, match="as in fit"):  # the caller's bug, not the user's input
        fitted.predict(None, P[:5, :10])


def test_paper_variant_and_centring(mlpf):
    from hpoq.predict.qsvr import QSVRPaperPredictor

    P, y = mlpf
    d = make_predictor("qsvr-paper", seed=1, **FAST).describe()
    settings = ("name", "scaler", "gamma", "center", "chunk_select")
    assert tuple(d[k] for k in settings) == ("qsvr-paper", "quantile", 0.1, False, "random")
    d = make_predictor("qsvr", seed=1, **FAST).describe()
    assert tuple(d[k] for k in settings) == ("qsvr", "minmax", 4.0, True, "stratified")
    with pytest.raises(ConfigError, match="unknown predictor 'qsvr-tuned'"):  # the old name of qsvr's settings: gone
        make_predictor("qsvr-tuned")
    t = QSVRPredictor(seed=1, **FAST).fit(None, P[:100], y[:100])
    assert r2(y[200:], t.predict(None, P[200:]).mean) > 0.7
    # centring shifts the QUBO targets, not the model's output level: biases absorb the chunk mean
    c = QSVRPredictor(seed=1, center=False, **FAST).fit(None, P[:100], y[:100])
    assert [r.tolist() for r in c.chunk_rows_] == [r.tolist() for r in t.chunk_rows_]
    assert np.mean([m.bias for m in t.members]) > np.mean([m.bias for m in c.members])
    # the paper's random chunks are a seeded permutation, not target strata
    p = QSVRPaperPredictor(seed=1, **FAST).fit(None, P[:100], y[:100])
    assert [r.tolist() for r in p.chunk_rows_] != [r.tolist() for r in t.chunk_rows_]


def test_stratified_chunks_span_the_target_range(mlpf):
    P, y = mlpf
    n = 200
    order = np.argsort(y[:n], kind="stable")
    rank = np.empty(n, int)
    rank[order] = np.arange(n)
    stratum_of_rank = np.concatenate([np.full(len(s), k) for k, s in enumerate(np.array_split(np.arange(n), 80))])
    for seed in range(3):
        q = QSVRPredictor(seed=seed, **FAST).fit(None, P[:n], y[:n])
        rows = np.concatenate(q.chunk_rows_)
        assert len(rows) == 80 and len(np.unique(rows)) == 80
        # one row from each of the 80 equal-count target strata ...
        assert sorted(stratum_of_rank[rank[rows]]) == list(range(80))
        # ... dealt round-robin, so each chunk holds one of the lowest 4 and one of the highest 4 strata
        for chunk in q.chunk_rows_:
            strata = stratum_of_rank[rank[chunk]]
            assert strata.min() < 4 and strata.max() >= 76
    # 50 rows make two stratified chunks of 20; fewer than 20 rows make one chunk of every row
    q = QSVRPredictor(seed=0, **FAST).fit(None, P[:50], y[:50])
    assert [len(r) for r in q.chunk_rows_] == [20, 20]
    q = QSVRPredictor(seed=0, **FAST).fit(None, P[:15], y[:15])
    assert [r.tolist() for r in q.chunk_rows_] == [list(range(15))]
