"""Feature sets and hyperparameter encoding (method.md 4.2, 4.4)."""

import numpy as np
import pytest

from hpoq.errors import ConfigError
from hpoq.predict.features import HPEncoder, XYScaler, build_features, n_features

CONFIGS = [
    {"lr": 1e-4, "bs": 32, "act": "relu", "_row": 0},
    {"lr": 1e-2, "bs": 64, "act": "tanh", "_row": 1},
    {"lr": 1e-3, "bs": 128, "act": "relu", "_row": 2},
]


def test_encoder_log_numeric_onehot_and_ignores_underscore_keys():
    enc = HPEncoder().fit(CONFIGS)
    assert enc.feature_names == ["log10(lr)", "bs", "act=relu", "act=tanh"]
    X = enc.transform(CONFIGS)
    np.testing.assert_allclose(X[:, 0], [-4, -2, -3])
    np.testing.assert_allclose(X[:, 1], [32, 64, 128])  # ratio 4 < 100: stays linear
    np.testing.assert_allclose(X[:, 2:], [[1, 0], [0, 1], [1, 0]])


def test_encoder_unseen_category_missing_key_and_none_configs():
    enc = HPEncoder().fit(CONFIGS)
    X = enc.transform([{"lr": 1e-3, "act": "gelu"}])
    assert X[0, 1] == pytest.approx(np.mean([32, 64, 128]))  # missing -> training mean
    assert X[0, 2:].tolist() == [0.0, 0.0]  # unseen category -> all zeros
    assert HPEncoder().fit(None).transform(None, 4).shape == (4, 0)


def test_encoder_raw_when_log_off():
    X = HPEncoder(log_scale=False).fit_transform(CONFIGS)
    np.testing.assert_allclose(X[:, 0], [1e-4, 1e-2, 1e-3])


def test_baker_count_is_79_on_mlpf_shape():
    configs = [{f"h{i}": float(i + r) for i in range(7)} for r in range(5)]
    prefixes = np.cumsum(np.random.default_rng(0).random((5, 25)), axis=1)
    enc = HPEncoder().fit(configs)
    X = build_features("baker", configs, prefixes, enc)
    assert X.shape == (5, 79) == (5, n_features("baker", 25, enc))
    np.testing.assert_allclose(X[:, 7:32], prefixes)
    np.testing.assert_allclose(X[:, 32:56], np.diff(prefixes, axis=1))
    np.testing.assert_allclose(X[:, 56], prefixes[:, 2] - 2 * prefixes[:, 1] + prefixes[:, 0])


def test_stride2_and_curve():
    p = np.arange(25, dtype=float)[None, :]
    assert build_features("stride2", None, p, None).tolist() == [list(range(0, 25, 2))]
    assert build_features("stride2", None, p, None).shape[1] == 13 == n_features("stride2", 25)
    assert build_features("curve", None, p, None).shape == (1, 25)
    with pytest.raises(ConfigError, match="unknown feature set"):
        build_features("nope", None, p, None)


def test_scalers_round_trip():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(60, 3)), rng.normal(size=60) * 10 + 400
    for method in ("minmax", "quantile", "none"):
        s = XYScaler(method).fit(X, y)
        ys = s.transform_y(y)
        if method != "none":
            assert ys.min() >= -1e-9 and ys.max() <= 1 + 1e-9
        np.testing.assert_allclose(s.inverse_y(ys), y, rtol=1e-6)
    with pytest.raises(ConfigError):
        XYScaler("robust")


def test_encoder_nan_and_bool():
    enc = HPEncoder().fit([{"a": 1.0, "b": True}, {"a": float("nan"), "b": False}, {"a": 3.0, "b": True}])
    assert enc.feature_names == ["a", "b=False", "b=True"]  # NaN keeps 'a' numeric; bools are categories
    np.testing.assert_allclose(enc.transform([{"a": float("nan"), "b": True}]), [[2.0, 0.0, 1.0]])
