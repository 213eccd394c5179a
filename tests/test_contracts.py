"""The scheduler and predictor contracts, checked on every registered one (in the style of Syne Tune's
scheduler contract test and scikit-learn's ``parametrize_with_checks``).

Schedulers (:data:`hpoq.schedulers.SCHEDULERS`), driven in-process from the MLPF curve table by
:func:`tests.drivers.drive`, which checks every event (valid units, a decision for every answered unit,
no deadlock): a run finishes with a fully trained answer, with three units in flight and with
failures injected; a state round trip through JSON continues identically; the same seed gives the
same run; a failed trial is never resumed; a run where every unit fails still ends.

Predictors (:data:`hpoq.predict.PREDICTORS`): fit returns the predictor, predict gives finite means
(and spreads) of the right shape, with and without hyperparameters; the same seed gives the same
predictions; predicting before fitting raises the one NotFittedError; the predictions rank held-out
MLPF curves better than chance.

Parameters: every registered scheduler, predictor, sampler and trainer declares a constraint table
matching its constructor, and a bad value is refused with its key path.
"""

from __future__ import annotations

import inspect
import json
import re

import numpy as np
import pytest
import yaml
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from hpoq import registry
from hpoq.curves.shared import load_shared
from hpoq.errors import ConfigError, InternalError
from hpoq.predict import PREDICTORS, make_predictor
from hpoq.predict.base import NotFittedError, Prediction
from hpoq.predict.samplers import make_sampler
from hpoq.schedulers import SCHEDULERS, make_scheduler
from hpoq.schedulers.asha import ASHA
from hpoq.schedulers.hyperband import Hyperband
from hpoq.schedulers.sampling import table_sampler_for
from hpoq.trainers import make_trainer
from hpoq.trainers.table import TableTrainer
from tests.drivers import drive, mlpf_prefixes

R, ETA = 27, 3
#: a share of the table's configurations set aside as warm curves for the predictor-driven schedulers
WARM = {"swift": 0.5, "default": 0.5}


@pytest.fixture(scope="module")
def mlpf():
    return load_shared("mlpf")


def build(table, name: str, seed: int):
    sampler, warm = table_sampler_for(table, seed, WARM.get(name, 0.0))
    return make_scheduler(name, R=R, eta=ETA, sampler=sampler, seed=seed, warm_curves=warm)


def every_seventh(n: int, unit) -> bool:
    return n % 7 == 3


# ------------------------------------------------------------------------------- schedulers


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
@pytest.mark.parametrize("workers", [1, 3])
def test_scheduler_runs_to_a_fully_trained_answer(mlpf, name, workers):
    sched = build(mlpf, name, seed=1)
    log = drive(sched, mlpf.minimized(), R, workers=workers, fail=every_seventh)
    best = sched.best()
    assert sched.finished and best is not None and best["epoch"] == R
    failed = {u["trial_id"] for u, kind, _ in log if kind == "failure"}
    assert failed and best["trial_id"] not in failed
    assert best["value"] == pytest.approx(mlpf.minimized()[best["config"]["_row"], R - 1])


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_state_round_trip_continues_identically(mlpf, name):
    curves = mlpf.minimized()
    reference = drive(build(mlpf, name, seed=5), curves, R, fail=every_seventh)
    for cut in (len(reference) // 3, 2 * len(reference) // 3):
        first = build(mlpf, name, seed=5)
        head = drive(first, curves, R, n_units=cut, fail=every_seventh)
        resumed = build(mlpf, name, seed=5)
        resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
        tail = drive(resumed, curves, R, fail=lambda n, unit, cut=cut: every_seventh(n + cut, unit), history=head)
        assert json.dumps(head + tail) == json.dumps(reference), f"{name}: continuation after unit {cut} differs"


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_is_deterministic_per_seed(mlpf, name):
    curves = mlpf.minimized()
    runs = [drive(build(mlpf, name, seed=seed), curves, R, workers=2) for seed in (7, 7, 8)]
    assert json.dumps(runs[0]) == json.dumps(runs[1])
    assert json.dumps(runs[0]) != json.dumps(runs[2])


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_ends_when_every_unit_fails(mlpf, name):
    sched = build(mlpf, name, seed=2)
    log = drive(sched, mlpf.minimized(), R, workers=2, fail=lambda n, unit: True)
    assert sched.finished and sched.best() is None
    assert len({u["trial_id"] for u, _, _ in log}) == len(log)  # a failed trial is never tried again


# ------------------------------------------------------------------------------- predictors

#: fast settings where the defaults take seconds per fit (the contract is the same)
FAST = {
    "qsvr": {"sampler": {"name": "sa", "params": {"num_reads": 20, "num_sweeps": 200}}},
    "qsvr-paper": {"sampler": {"name": "sa", "params": {"num_reads": 20, "num_sweeps": 200}}},
    "default": {"n_trees": 20},
    "power-law": {"horizon": 100},  # extrapolates to the final epoch of the MLPF curves
}


@pytest.fixture(scope="module")
def split(mlpf):
    configs, P, y = mlpf_prefixes(mlpf, known=0.25, seed=3)
    return (configs[:80], P[:80], y[:80]), (configs[80:120], P[80:120], y[80:120])


def predictor(name: str, seed: int = 0):
    return make_predictor(name, seed=seed, **FAST.get(name, {}))


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_predictor_fit_predict_shapes_and_ranking(split, name):
    (c_train, P_train, y_train), (c_test, P_test, y_test) = split
    for configs_train, configs_test in ((c_train, c_test), (None, None)):
        model = predictor(name)
        assert model.fit(configs_train, P_train, y_train) is model
        pred = model.predict(configs_test, P_test)
        assert isinstance(pred, Prediction) and pred.mean.shape == (len(y_test),)
        assert np.all(np.isfinite(pred.mean))
        if pred.spread is not None:
            assert pred.spread.shape == (len(y_test),) and np.all(pred.spread >= 0)
        one = model.predict(None if configs_test is None else configs_test[:1], P_test[:1])
        assert one.mean.shape == (1,)
        # better than chance: Spearman correlation with the held-out final values
        rank = np.corrcoef(np.argsort(np.argsort(pred.mean)), np.argsort(np.argsort(y_test)))[0, 1]
        assert rank > 0.5, f"{name}: rank correlation {rank:.2f}"
    json.dumps(model.describe())
    assert model.describe()["name"] == model.name


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_predictor_is_deterministic_per_seed(split, name):
    (configs, P, y), (c_test, P_test, _) = split
    a, b = (predictor(name, seed=4).fit(configs, P, y).predict(c_test, P_test) for _ in range(2))
    np.testing.assert_array_equal(a.mean, b.mean)


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_predictor_not_fitted_is_one_error(split, name):
    _, (configs, P, _) = split
    with pytest.raises(NotFittedError, match="before fit") as caught:
        predictor(name).predict(configs, P)
    assert isinstance(caught.value, SklearnNotFittedError) and isinstance(caught.value, InternalError)


# ------------------------------------------------------------------------------- parameters


def _registered(kind: str):
    from hpoq.predict.samplers import SAMPLER_CLASSES
    from hpoq.trainers import TRAINERS

    names = {"scheduler": SCHEDULERS, "predictor": PREDICTORS, "sampler": SAMPLER_CLASSES, "trainer": TRAINERS}[kind]
    return [(kind, name) for name in sorted(names)]


@pytest.mark.parametrize("kind,name", [kn for kind in registry.KINDS for kn in _registered(kind)])
def test_every_registered_class_declares_its_parameters_once(kind, name):
    """The constraint table names exactly the constructor's parameters (and nothing is left unchecked)."""
    cls = registry.resolve(kind, name)
    table = registry.constraints_of(cls)
    assert table is not None, f"{kind} {name!r} declares no parameter_constraints"
    params = inspect.signature(cls.__init__).parameters
    named = sorted(p for p in params if p != "self" and params[p].kind is not inspect.Parameter.VAR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):  # passes the rest to its base
        assert set(named) <= set(table)
    else:
        assert sorted(table) == named


@pytest.mark.parametrize(
    "build,message",
    [
        (
            lambda t: make_scheduler("asha", R=9, eta=3, sampler=None, seed=0, grace=0),
            "algorithm.params.grace must be an integer in [1, inf), got 0",
        ),
        (
            lambda t: make_scheduler("swift", R=9, eta=3, sampler=None, seed=0, refit="sometimes"),
            "algorithm.params.refit must be 'never' or 'on_growth', got 'sometimes'",
        ),
        (
            lambda t: make_scheduler("random", R=9, eta=3, sampler=None, seed=0, n=True),
            "algorithm.params.n must be an integer in [1, inf) or null, got True",
        ),
        (lambda t: make_scheduler("hyperband", R=0, eta=3, sampler=None, seed=0), "algorithm.R must be an integer"),
        (lambda t: make_scheduler("hyperband", R=9, eta=1, sampler=None, seed=0), "algorithm.eta must be an integer"),
        (
            lambda t: make_scheduler("topk-1epoch", R=9, eta=3, sampler=None, seed=0, k=3),
            "algorithm.params.k: no such parameter",
        ),
        (lambda t: make_predictor("svr", C=-1.0), "predictor.params.C must be a number in (0, inf), got -1.0"),
        (
            lambda t: make_predictor("qsvr", sampler={"name": "sa", "params": {"num_reads": 0}}),
            "predictor.params.sampler.params.num_reads must be an integer",
        ),
        (
            lambda t: make_predictor("default", weights="median"),
            "predictor.params.weights must be 'stack' or 'mean', got 'median'",
        ),
        (lambda t: make_trainer("table", {"table": t, "sleep": -1}), "trainer.params.sleep must be a number in"),
        (lambda t: make_sampler("sa", num_sweeps=0), "sampler.num_sweeps must be an integer"),
        (lambda t: make_sampler("dwave", fallback="yes"), "sampler.fallback must be true or false"),
    ],
)
def test_bad_parameters_name_their_key_path(mlpf_table, build, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build(str(mlpf_table))


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda t: Hyperband(R=0, eta=2, sampler=None), "R (epochs per configuration) must be >= 1, got 0"),
        (lambda t: Hyperband(R=9, eta=True, sampler=None), "eta (discard rate) must be an integer >= 2, got True"),
        (lambda t: ASHA(R=4, eta=2, sampler=None, grace=5), "asha: grace (first-rung epochs, R = 4) must be in [1, 4]"),
        (lambda t: ASHA(R=4, eta=2, sampler=None, n=0), "asha: n (configurations to sample) must be >= 1, got 0"),
        (lambda t: TableTrainer(t, sleep=float("nan")), "trainer.params.sleep must be a number in [0, inf), got nan"),
    ],
)
def test_classes_built_directly_check_their_values_too(mlpf_table, build, message):
    """Outside the registry (R and eta, bounds that depend on another argument, a plugin's base class) a value
    is checked by registry.check_int / check_number or the class's own table, with the same messages."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        build(str(mlpf_table))


def test_r_and_eta_given_as_whole_floats_are_integers():
    sched = Hyperband(R=9.0, eta=3.0, sampler=None)
    assert (sched.R, sched.eta) == (9, 3) and all(type(v) is int for v in (sched.R, sched.eta))


def test_a_predictor_section_is_refused_by_every_algorithm_without_a_predictor(tmp_path, mlpf_table):
    """asha and hyperband alike (asha used to accept and ignore it); swift and default take it."""
    from hpoq.study.spec import load_study

    for algorithm, takes_predictor in (
        ("asha", False),
        ("hyperband", False),
        ("random", False),
        ("swift", True),
        ("default", True),
    ):
        doc = {
            "algorithm": {"name": algorithm, "R": 9, "eta": 3},
            "predictor": {"name": "svr"},
            "trainer": {"name": "table", "params": {"table": str(mlpf_table)}},
            "space": "table",
        }
        path = tmp_path / f"{algorithm}.yaml"
        path.write_text(yaml.safe_dump(doc))
        if takes_predictor:
            assert load_study(str(path)).predictor.name == "svr"
        else:
            with pytest.raises(ConfigError, match=f"algorithm '{algorithm}' uses no predictor"):
                load_study(str(path))


def test_mlpf_trainer_tables_list_what_training_accepts():
    """The trainer's table repeats hpoq.mlpf.training's option lists literally (so that naming the trainer
    does not import torch): they must not drift apart."""
    pytest.importorskip("torch", reason="hpoq.mlpf.training needs torch (pip install 'hpoq[mlpf]')")
    from hpoq.mlpf import training
    from hpoq.trainers.mlpf import MLPFTrainer

    table = MLPFTrainer.parameter_constraints
    for key, allowed in (
        ("model", training.MODELS),
        ("val_loss", training.VAL_LOSS_MODES),
        ("objective", tuple(training.OBJECTIVES)),
        ("input_norm", training.INPUT_NORMS),
    ):
        assert set(table[key][0].values) == set(allowed), key
