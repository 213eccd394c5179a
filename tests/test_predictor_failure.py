"""A predictor that fails never stops a study: Swift falls back to plain Hyperband for that round,
``default`` does not prune; both log it (issue: failure handling)."""

from __future__ import annotations

import logging

import pytest

from hpoq.curves.shared import load_shared
from hpoq.predict import PREDICTORS
from hpoq.simulate import simulate_run


@pytest.fixture
def failing_predictor(monkeypatch):
    monkeypatch.setitem(PREDICTORS, "failing", "tests.plugins.failing_predictor:FailingPredictor")
    return "failing"


@pytest.fixture(scope="module")
def mlpf():
    return load_shared("mlpf")


def test_swift_falls_back_to_hyperband_rounds(mlpf, failing_predictor, caplog):
    hb = simulate_run(mlpf, "hyperband", seed=3, R=27, eta=3)
    with caplog.at_level(logging.WARNING, logger="hpoq.schedulers.swift"):
        sw = simulate_run(
            mlpf, "swift", seed=3, R=27, eta=3, predictor=failing_predictor, params={"d": 2}, keep_events=True
        )
    reasons = {d["reason"] for d in sw["decisions"]}
    assert "predictor-failed" in reasons and "predicted" not in reasons
    assert all("licence" in d["info"]["error"] for d in sw["decisions"] if d["reason"] == "predictor-failed")
    # every parked configuration went on to r_i: Hyperband's epochs and Hyperband's answer
    assert sw["epochs"] == hb["epochs"] and sw["best_row"] == hb["best_row"]
    assert any("plain Hyperband promotion" in r.getMessage() for r in caplog.records)


def test_default_does_not_prune_when_its_predictor_fails(mlpf, failing_predictor, caplog):
    plain = simulate_run(mlpf, "default", seed=5, R=27, eta=3, predictor="none", warm_fraction=0.5)
    with caplog.at_level(logging.WARNING, logger="hpoq.schedulers.default"):
        failing = simulate_run(
            mlpf, "default", seed=5, R=27, eta=3, predictor=failing_predictor, warm_fraction=0.5, keep_events=True
        )
    assert not any(d["reason"] == "predicted" for d in failing["decisions"])
    assert failing["epochs"] == plain["epochs"] and failing["best_row"] == plain["best_row"]
    assert any("trial not pruned" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("algorithm,params", [("swift", {"params": {"d": 2}}), ("default", {"warm_fraction": 0.5})])
def test_a_predictor_bug_is_not_a_numerical_failure(mlpf, monkeypatch, algorithm, params):
    """An InternalError (a broken contract) ends the run with its traceback, where a numerical failure of
    the same predictor (the tests above) only disables prediction; a ConfigError does the same."""
    from hpoq.errors import ConfigError, InternalError

    monkeypatch.setitem(PREDICTORS, "buggy", "tests.plugins.failing_predictor:BuggyPredictor")
    with pytest.raises(InternalError, match="prefixes and targets disagree"):
        simulate_run(mlpf, algorithm, seed=3, R=27, eta=3, predictor="buggy", **params)
    with pytest.raises(InternalError):
        try:
            raise InternalError("x")
        except ConfigError:  # the two kinds never catch each other
            pytest.fail("an InternalError was caught as a ConfigError")
