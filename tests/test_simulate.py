"""The replay simulator and ``hpoq simulate``: accounting, determinism, warm split, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hpoq.curves.table import CurveTable, load_table
from hpoq.errors import ConfigError, DeadlockError
from hpoq.main import main
from hpoq.schedulers.base import Scheduler
from hpoq.schedulers.sampling import TableRowSampler, distinct_config_groups, split_warm_rows, table_sampler_for
from hpoq.seeding import derive_seed
from hpoq.simulate import simulate_run
from hpoq.simulate.replay import ReplayBackend


def toy_table(n=60, epochs=20, time=None, dup=0) -> CurveTable:
    rng = np.random.default_rng(7)
    level = rng.uniform(0, 1, n)
    curves = level[:, None] + np.exp(-np.outer(rng.uniform(0.05, 0.5, n), np.arange(1, epochs + 1)))
    configs = [{"a": float(level[i]), "b": i % 3} for i in range(n)]
    for i in range(dup):  # duplicate hyperparameter rows (repeated trainings of one config)
        configs[n - 1 - i] = dict(configs[i])
    return CurveTable(
        hp_names=["a", "b"],
        configs=configs,
        curves=curves,
        metric="loss",
        mode="min",
        time=None if time is None else np.asarray(time, dtype=float),
        source="toy",
    )


@pytest.fixture(scope="module")
def mlpf(mlpf_table):
    return load_table(str(mlpf_table), "loss")


def test_sampler_without_replacement_then_new_permutation():
    table = toy_table(n=10)
    s = TableRowSampler(table, seed=3)
    first = [s.sample()["_row"] for _ in range(10)]
    second = [s.sample()["_row"] for _ in range(10)]
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert first != second
    s2 = TableRowSampler(table, seed=3)
    s2.load_state_dict({"drawn": 13})
    assert s2.sample()["_row"] == second[3]
    row = s.peek_row()
    config = s.sample()
    assert config == dict(table.configs[row], _row=row)


def test_same_seed_same_configurations_for_every_algorithm(mlpf):
    orders = []
    for algo in ("hyperband", "random", "topk-1epoch", "swift"):
        res = simulate_run(mlpf, algo, 4, 100, 2, keep_events=True)
        first_units = [e for e in res["events"] if e[0] == "unit" and e[2] == 0]
        orders.append([e[1] for e in first_units][:10])
    sampler = TableRowSampler(mlpf, derive_seed(4, "rows"))
    assert table_sampler_for(mlpf, 4)[0].peek_row() == sampler.peek_row()
    # trial ids are assigned in sampling order by all of them: the first 10 trials started are 0..9
    assert all(o == orders[0] for o in orders)


def test_single_worker_accounting(mlpf):
    res = simulate_run(mlpf, "hyperband", 0, 100, 2)
    assert (res["epochs"], res["configs"]) == (3213, 163)
    assert res["makespan"] == 3213 and res["utilization"] == 1.0
    assert res["best_final"] == pytest.approx(float(mlpf.curves[res["best_row"], 99]))
    assert res["trace"][-1][1] == res["best_final"] and res["trace"][-1][0] <= 3213
    assert [t[1] for t in res["trace"]] == sorted((t[1] for t in res["trace"]), reverse=True)


@pytest.mark.parametrize("workers", [2, 7, 50])
def test_multi_worker_accounting(mlpf, workers):
    res = simulate_run(mlpf, "hyperband", 0, 100, 2, workers=workers, keep_events=True)
    units = [e for e in res["events"] if e[0] == "unit"]
    assert res["epochs"] == 3213 == sum(e[3] - e[2] for e in units)
    assert res["makespan"] >= 3213 / workers
    assert res["utilization"] == pytest.approx(3213 / (workers * res["makespan"]))
    # never more than `workers` units at once
    times = sorted({e[4] for e in units})
    for t in times:
        assert sum(1 for e in units if e[4] <= t < e[5]) <= workers
    one = simulate_run(mlpf, "hyperband", 0, 100, 2)
    assert res["best_row"] == one["best_row"]  # synchronous Hyperband: worker count does not change decisions


def test_time_column_sets_unit_cost():
    table = toy_table(n=40, epochs=8, time=np.linspace(0.5, 2.0, 40))
    res = simulate_run(table, "random", 0, 8, 2, params={"n": 10}, keep_events=True)
    units = [e for e in res["events"] if e[0] == "unit"]
    rows = {}
    sampler, _ = table_sampler_for(table, 0)
    for _ in range(10):
        c = sampler.sample()
        rows[len(rows)] = c["_row"]
    assert res["makespan"] == pytest.approx(sum(8 * table.time[rows[e[1]]] for e in units))


class Stuck(Scheduler):
    name = "stuck"

    def suggest(self):
        return None

    def on_result(self, trial_id, metrics):
        return []

    def on_failure(self, trial_id, reason):
        return []

    @property
    def finished(self):
        return False

    def best(self):
        return None

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_deadlock_is_loud():
    with pytest.raises(DeadlockError, match="deadlocked"):
        ReplayBackend(toy_table(), Stuck(), R=10).run()


def test_warm_split_groups_distinct_configs():
    table = toy_table(n=60, dup=10)
    groups = distinct_config_groups(table)
    assert len(groups) == 50
    rest, warm = split_warm_rows(table, 5, 0.5)
    assert set(rest).isdisjoint(warm) and len(rest) + len(warm) == 60

    def key(i):
        return tuple(table.configs[i].values())

    assert {key(i) for i in rest}.isdisjoint({key(i) for i in warm})
    assert len({key(i) for i in warm}) == 25
    sampler, warm_table = table_sampler_for(table, 5, 0.5)
    drawn = {sampler.sample()["_row"] for _ in range(len(rest))}
    assert drawn == set(rest) and warm_table.n_rows == len(warm)
    with pytest.raises(ConfigError):
        split_warm_rows(table, 5, 1.0)
    with pytest.raises(ConfigError):
        split_warm_rows(table, 5, -0.1)


def run_cli(capsys, *argv):
    code = main(["simulate", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_same_seed_same_output(capsys, mlpf_table):
    args = [
        "--table",
        str(mlpf_table),
        "--metric",
        "loss",
        "--algorithm",
        "hyperband",
        "--R",
        "100",
        "--eta",
        "2",
        "--seeds",
        "0-1",
        "--workers",
        "3",
        "--json",
    ]
    code1, out1, _ = run_cli(capsys, *args)
    code2, out2, _ = run_cli(capsys, *args)
    assert code1 == code2 == 0 and out1 == out2
    data = json.loads(out1)
    assert set(data) >= {"runs", "summary", "table_best"}
    run = data["runs"][0]
    assert set(run) >= {"seed", "epochs", "configs", "best_final", "best_row", "makespan", "utilization", "pruned"}
    assert "trace" not in run
    assert data["summary"]["epochs"] == 3213 and data["table_best"] <= run["best_final"]


def test_cli_shared_table_name_and_warm_fraction(capsys):
    code, out, err = run_cli(
        capsys, "--table", "mlpf", "--algorithm", "swift", "--R", "100", "--warm-fraction", "0.5", "--json"
    )
    assert code == 0, err
    run = json.loads(out)["runs"][0]
    assert run["warm_curves"] > 100 and run["epochs"] < 3213


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--algorithm", "nope"], "unknown algorithm"),
        (["--algorithm", "hyperband", "--param", "bogus=1"], "no parameter 'bogus'"),
        (["--algorithm", "swift", "--param", "d=-1"], "d must be"),
        (["--algorithm", "hyperband", "--R", "0"], "R (epochs per configuration) must be >= 1, got 0"),
        (["--algorithm", "hyperband", "--eta", "1"], "eta (discard rate) must be >= 2, got 1"),
        (["--algorithm", "hyperband", "--R", "101"], "fewer than R = 101"),
        (["--algorithm", "hyperband", "--warm-fraction", "1"], "warm-fraction"),
        (["--algorithm", "hyperband", "--warm-fraction", "-0.2"], "warm-fraction"),
        (["--algorithm", "swift", "--predictor", "nope"], "unknown predictor"),
    ],
)
def test_cli_bad_input_exits_2(capsys, mlpf_table, extra, message):
    code, out, err = run_cli(capsys, "--table", str(mlpf_table), "--metric", "loss", "--json", *extra)
    assert code == 2 and out == ""
    assert err.startswith("hpoq: error:") and message in err and "Traceback" not in err


def test_cli_missing_table_exits_2(capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "--table", str(tmp_path / "none.csv"), "--metric", "loss", "--algorithm", "hyperband"
    )
    assert code == 2 and "does not exist" in err


def test_cli_warm_curves_from_hdf5_store(capsys, tmp_path):
    from hpoq.curves.shared import load_shared
    from hpoq.curves.store import write_store

    table = load_shared("mlpf")
    _, warm_rows = split_warm_rows(table, 11, 0.5)
    short = table.subset(warm_rows)
    short.curves = short.curves.copy()
    short.curves[::2, 50:] = np.nan  # half of the earlier study's curves stopped at epoch 50
    short.lengths = np.where(np.arange(short.n_rows) % 2 == 0, 50, 100)
    path = tmp_path / "earlier.h5"
    write_store(str(path), short)
    code, out, err = run_cli(
        capsys,
        "--table",
        "mlpf",
        "--algorithm",
        "swift",
        "--R",
        "100",
        "--seeds",
        "0-1",
        "--warm-curves",
        str(path),
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert all(r["warm_curves"] == short.n_rows for r in data["runs"])
    cold = simulate_run(table, "swift", 0, 100, 2)
    assert data["runs"][0]["epochs"] < cold["epochs"]
    code, out, err = run_cli(
        capsys, "--table", "mlpf", "--algorithm", "swift", "--warm-curves", str(tmp_path / "no.h5")
    )
    assert code == 2 and out == ""


def test_dedupe_same_seed_skips_the_same_draws_for_every_algorithm(mlpf):
    """With --dedupe every algorithm skips the repeated configurations of the same draws: MLPF has 183
    distinct configurations in 295 rows, so 163 draws repeat some; without it they are trained again."""
    plain = simulate_run(mlpf, "hyperband", 3, 100, 2)
    assert (plain["configs"], plain["duplicates"], plain["epochs"]) == (163, 0, 3213)
    first_trained = {}
    for algo in ("hyperband", "random", "topk-1epoch", "swift"):
        res = simulate_run(mlpf, algo, 3, 100, 2, dedupe=True, keep_events=True)
        assert res["configs"] == 163 and res["duplicates"] > 0
        starts = sorted({e[1] for e in res["events"] if e[0] == "unit" and e[2] == 0})
        assert len(starts) == 163 - res["duplicates"]
        first_trained[algo] = res["duplicates"]
    assert len(set(first_trained.values())) == 1
    res = simulate_run(mlpf, "hyperband", 3, 100, 2, dedupe=True)
    assert res["epochs"] < 3213


def test_cli_dedupe_flag_and_json_shape(capsys):
    code, out, err = run_cli(
        capsys, "--table", "mlpf", "--algorithm", "hyperband", "--seeds", "0-1", "--dedupe", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["dedupe"] is True
    for run in data["runs"]:
        assert set(run) >= {"seed", "epochs", "configs", "best_final", "makespan", "duplicates"}
        assert run["configs"] == 163 and 0 < run["duplicates"] < 163 and run["epochs"] < 3213


def test_study_key_dedupe(tmp_path):
    from hpoq.schedulers.sampling import DedupeSampler
    from hpoq.study.build import build_scheduler
    from hpoq.study.spec import parse_study

    study = {
        "name": "d",
        "algorithm": {"name": "hyperband", "R": 100, "eta": 2},
        "trainer": {"name": "table", "params": {"table": "mlpf"}},
        "space": "table",
    }
    spec = parse_study(dict(study, dedupe=True), source=str(tmp_path / "d.yaml"))
    assert spec.dedupe is True
    sched = build_scheduler(spec, table=load_shared_mlpf())
    assert isinstance(sched.ledger.sampler, DedupeSampler)
    assert parse_study(study, source=str(tmp_path / "d.yaml")).dedupe is False
    with pytest.raises(ConfigError, match="dedupe must be true or false"):
        parse_study(dict(study, dedupe="yes"), source=str(tmp_path / "d.yaml"))


def load_shared_mlpf():
    from hpoq.curves.shared import load_shared

    return load_shared("mlpf")
