"""Classical SVR predictor: reproduces the paper's MLPF number (method.md 8.2)."""

import numpy as np
import pytest
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import NuSVR

from hpoq.curves.table import load_table
from hpoq.errors import ConfigError
from hpoq.predict import make_predictor
from hpoq.predict.features import HPEncoder, build_features


@pytest.fixture(scope="module")
def mlpf(mlpf_table):
    t = load_table(str(mlpf_table), "loss")
    return t.subset(np.flatnonzero(t.curves[:, -1] <= 590))  # drop the 597.3 outlier (method.md 6)


def test_paper_reference_r2_0871(mlpf):
    """79 baker features, raw HPs, MinMax on all 295 rows, target loss_98, 80/20 random_state=0."""
    assert mlpf.n_rows == 295
    prefixes, y = mlpf.curves[:, :25], mlpf.curves[:, 98]
    X = build_features("baker", mlpf.configs, prefixes, HPEncoder(log_scale=False).fit(mlpf.configs))
    assert X.shape == (295, 79)
    Xs = MinMaxScaler().fit_transform(X)
    ys = MinMaxScaler().fit_transform(y[:, None]).ravel()
    Xtr, Xte, ytr, yte = train_test_split(Xs, ys, test_size=0.2, random_state=0)
    r2 = r2_score(yte, NuSVR().fit(Xtr, ytr).predict(Xte))
    assert r2 == pytest.approx(0.871, abs=0.01)


def test_svr_predictor_leak_free_matches_reference(mlpf):
    """The predictor fits its scalers on the training rows only: 0.874 (method.md 4.4)."""
    prefixes, y = mlpf.curves[:, :25], mlpf.curves[:, 98]
    tr, te = train_test_split(np.arange(mlpf.n_rows), test_size=0.2, random_state=0)
    p = make_predictor("svr").fit([mlpf.configs[i] for i in tr], prefixes[tr], y[tr])
    pred = p.predict([mlpf.configs[i] for i in te], prefixes[te])
    assert pred.mean.shape == (len(te),) and pred.spread is None
    assert r2_score(y[te], pred.mean) == pytest.approx(0.874, abs=0.01)


def test_svr_without_configs_and_bad_params(mlpf):
    p = make_predictor("svr", features="curve").fit(None, mlpf.curves[:40, :10], mlpf.curves[:40, -1])
    assert p.predict(None, mlpf.curves[40:45, :10]).mean.shape == (5,)
    with pytest.raises(ValueError):
        p.predict(None, mlpf.curves[40:45, :11])
    with pytest.raises(ConfigError, match="no parameter 'colour'"):
        make_predictor("svr", colour=1)
    with pytest.raises(ConfigError, match="nu"):
        make_predictor("svr", nu=2.0)
    with pytest.raises(ConfigError, match="unknown predictor"):
        make_predictor("nosuch")


def test_paper_known_fraction_sweep(mlpf):
    """method.md 8.2/8.6: 5-fold unshuffled KFold over all 295 rows, baker features, raw HPs,
    MinMax on all rows, target loss_98: 0.870 / 0.918 / 0.941 / 0.960 / 0.989 within 0.01."""
    from sklearn.model_selection import KFold, cross_val_score

    y = mlpf.curves[:, 98]
    ys = MinMaxScaler().fit_transform(y[:, None]).ravel()
    encoder = HPEncoder(log_scale=False).fit(mlpf.configs)
    for known, ref in [(10, 0.870), (25, 0.918), (50, 0.941), (75, 0.960), (100, 0.989)]:
        X = MinMaxScaler().fit_transform(build_features("baker", mlpf.configs, mlpf.curves[:, :known], encoder))
        r2 = cross_val_score(NuSVR(), X, ys, cv=KFold(5), scoring="r2").mean()
        assert r2 == pytest.approx(ref, abs=0.01), known
