"""The ``default`` predictor: accuracy on MLPF, robustness at n = 15, a meaningful spread."""

import numpy as np
import pytest
from sklearn.metrics import r2_score

from hpoq.curves.shared import load_shared
from hpoq.errors import ConfigError
from hpoq.predict import make_predictor
from hpoq.predict.default import curve_summary, wide_features
from hpoq.predict.evaluate import grouped_split


@pytest.fixture(scope="module")
def mlpf(shared_data):
    return load_shared("mlpf")


def _split(table, seed, known=25):
    train, test = grouped_split(table.configs, seed)
    V = table.minimized()

    def pick(rows):
        return ([table.configs[i] for i in rows], V[rows, :known], V[rows, -1])

    return pick(train), pick(test)


def test_beats_paper_svr_on_mlpf_split(mlpf):
    (ctr, ptr, ytr), (cte, pte, yte) = _split(mlpf, seed=1)
    default = make_predictor("default", seed=0).fit(ctr, ptr, ytr).predict(cte, pte)
    svr = make_predictor("svr").fit(ctr, ptr, ytr).predict(cte, pte)
    r2_default, r2_svr = r2_score(yte, default.mean), r2_score(yte, svr.mean)
    assert r2_default > 0.85 and r2_default > r2_svr
    # the spread has the scale of the held-out error (schedulers use it as a pruning margin)
    rmse = float(np.sqrt(np.mean((yte - default.mean) ** 2)))
    assert default.spread.shape == yte.shape and (default.spread > 0).all()
    assert 0.33 * rmse < float(np.mean(default.spread)) < 3.0 * rmse


def test_small_training_set_and_no_configs(mlpf):
    (ctr, ptr, ytr), (cte, pte, yte) = _split(mlpf, seed=0, known=12)
    rows = np.random.default_rng(0).choice(len(ytr), 15, replace=False)
    p = make_predictor("default", seed=3).fit([ctr[i] for i in rows], ptr[rows], ytr[rows])
    pred = p.predict(cte, pte)
    assert np.isfinite(pred.mean).all() and np.isfinite(pred.spread).all()
    assert r2_score(yte, pred.mean) > 0.3  # 15 curves, 12 of 100 epochs known
    q = make_predictor("default", seed=3).fit(None, ptr[rows], ytr[rows])
    assert np.isfinite(q.predict(None, pte).mean).all()
    with pytest.raises(ValueError):
        q.predict(None, pte[:, :5])


def test_deterministic_per_seed(mlpf):
    (ctr, ptr, ytr), (cte, pte, _) = _split(mlpf, seed=2)
    a = (
        make_predictor("default", seed=5, n_trees=20, gbr_trees=20)
        .fit(ctr[:60], ptr[:60], ytr[:60])
        .predict(cte, pte)
        .mean
    )
    b = (
        make_predictor("default", seed=5, n_trees=20, gbr_trees=20)
        .fit(ctr[:60], ptr[:60], ytr[:60])
        .predict(cte, pte)
        .mean
    )
    np.testing.assert_array_equal(a, b)


def test_wide_features_keep_the_raw_prefix_and_its_steps():
    P = np.array([[5.0, 4.0, 9.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    W = wide_features(P, n_points=4)
    k = curve_summary(P, 4).shape[1]
    assert W.shape == (2, k + 4 + 3)
    np.testing.assert_array_equal(W[:, k : k + 4], P)
    np.testing.assert_array_equal(W[:, k + 4 :], [[-1.0, 5.0, -6.0], [0.0, 0.0, 0.0]])  # the spike survives


def test_wide_member_is_stacked_and_usable_alone(mlpf):
    (ctr, ptr, ytr), (cte, pte, yte) = _split(mlpf, seed=0)
    p = make_predictor("default", seed=0)
    pred = p.fit(ctr, ptr, ytr).predict(cte, pte)
    assert set(pred.info["weights"]) == {"et", "etw", "gbr", "bsvr"}
    assert abs(sum(pred.info["weights"].values()) - 1.0) < 1e-2 and pred.info["weights"]["etw"] > 0
    alone = make_predictor("default", seed=0, members="etw", cv_folds=0).fit(ctr, ptr, ytr).predict(cte, pte)
    assert r2_score(yte, alone.mean) > 0.85
    # a 5-epoch prefix is held whole by the summary: etw is left out, the others are stacked
    short = make_predictor("default", seed=0).fit(ctr, ptr[:, :5], ytr).predict(cte, pte[:, :5])
    assert set(short.info["weights"]) == {"et", "gbr", "bsvr"} and np.isfinite(short.mean).all()
    with pytest.raises(ConfigError, match="wide_trees"):
        make_predictor("default", wide_trees=0)


def test_bad_parameters():
    with pytest.raises(ConfigError, match="member"):
        make_predictor("default", members="et,knn")
    with pytest.raises(ConfigError, match="nu"):
        make_predictor("default", nu=0.0)
    with pytest.raises(ConfigError, match=">= 3 prefixes"):
        make_predictor("default").fit(None, np.ones((2, 3)), np.ones(2))


def _smooth_table(n=120, epochs=20, known=5):
    """Curves level + exp(-rate x epoch): the final value is a smooth function of the prefix, which the
    paper's RBF NuSVR interpolates better than trees do."""
    rng = np.random.default_rng(0)
    level, rate = rng.uniform(0.2, 1.0, n), rng.uniform(0.1, 0.6, n)
    curves = level[:, None] + np.exp(-rate[:, None] * np.arange(1, epochs + 1))
    configs = [{"lr": float(10**v)} for v in rng.uniform(-4, -1, n)]
    return configs, curves[:, :known], curves[:, -1]


def test_svr_guard_weights_the_paper_svr_by_grouped_out_of_fold_error(mlpf):
    configs, P, y = _smooth_table()
    tr, te = slice(0, 90), slice(90, 120)
    blend = make_predictor("default", seed=0).fit(configs[tr], P[tr], y[tr])
    off = make_predictor("default", seed=0, svr_guard="off").fit(configs[tr], P[tr], y[tr])
    svr = make_predictor("svr").fit(configs[tr], P[tr], y[tr])
    a = blend.svr_weight
    assert off.svr_weight == 0.0 and 0.0 < a <= 1.0  # the out-of-fold error favours svr here
    # the prediction is exactly (1 - a) x the stacked ensemble + a x the paper's svr
    mix = (1 - a) * off.predict(configs[te], P[te]).mean + a * svr.predict(configs[te], P[te]).mean
    np.testing.assert_allclose(blend.predict(configs[te], P[te]).mean, mix)
    assert blend.describe()["svr_weight"] == a and blend.predict(configs[te], P[te]).info["svr_weight"] == a
    # on MLPF the stacked trees are better out of fold: svr gets the smaller weight
    (ctr, ptr, ytr), _ = _split(mlpf, seed=1)
    assert make_predictor("default", seed=0).fit(ctr, ptr, ytr).svr_weight < 0.5
    with pytest.raises(ConfigError, match="svr_guard"):
        make_predictor("default", svr_guard="sometimes")
