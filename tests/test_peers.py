"""The Optuna peer (benchmarks/peers.py): Optuna's own pruners replay a small table on our draws."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hpo_replay import fair_row, table_final_std  # noqa: E402
from benchmarks.peers import PRUNERS, optuna_run  # noqa: E402
from hpoq.curves.table import CurveTable  # noqa: E402
from hpoq.schedulers.brackets import hyperband_budget  # noqa: E402
from hpoq.schedulers.sampling import table_sampler_for  # noqa: E402
from hpoq.simulate import simulate_run  # noqa: E402


def small_table(n=40, epochs=8) -> CurveTable:
    rng = np.random.default_rng(5)
    level = rng.uniform(0, 1, n)
    curves = level[:, None] + np.exp(-np.outer(rng.uniform(0.1, 0.8, n), np.arange(1, epochs + 1)))
    return CurveTable(
        hp_names=["a"],
        configs=[{"a": float(v)} for v in level],
        curves=curves,
        metric="loss",
        mode="min",
        source="small",
    )


@pytest.mark.parametrize("pruner", sorted(PRUNERS))
def test_optuna_pruner_replays_our_draws(pruner):
    table = small_table()
    R = table.n_epochs
    run = optuna_run(table, pruner, seed=2, R=R)
    n_trials = hyperband_budget(R, 2)[0]
    assert run["configs"] == n_trials
    # each trial took the next row of our draw sequence: the answer is the best final among the
    # trials that reached R, and it is one of the rows drawn for this seed
    sampler, _ = table_sampler_for(table, 2)
    drawn = [sampler.sample()["_row"] for _ in range(n_trials)]
    assert run["best_row"] in drawn
    assert run["best_final"] == pytest.approx(table.curves[run["best_row"], R - 1])
    assert run["epochs"] <= n_trials * R and (run["pruned"] > 0) == (run["epochs"] < n_trials * R)
    assert run == optuna_run(table, pruner, seed=2, R=R)  # deterministic for a seed


def test_optuna_pruning_really_happens_and_is_scored_like_ours():
    table = small_table()
    R = table.n_epochs
    runs = [optuna_run(table, "optuna-sha", seed, R) for seed in range(3)]
    assert all(r["pruned"] > 0 and r["epochs"] < hyperband_budget(R, 2)[0] * R for r in runs)
    hb = [simulate_run(table, "hyperband", seed, R, 2) for seed in range(3)]
    row = fair_row(table, runs, hb, table_final_std(table))
    assert row["seeds"] == 3 and row["epochs"] == pytest.approx(np.mean([r["epochs"] for r in runs]))
    assert row["worse"] == sum(r["best_final"] > h["best_final"] for r, h in zip(runs, hb))


def test_warm_store_enters_the_optuna_study():
    table = small_table(n=60)
    R = table.n_epochs
    cold = optuna_run(table, "optuna-median", seed=1, R=R)
    warm = optuna_run(table, "optuna-median", seed=1, R=R, warm_fraction=0.5)
    assert cold["warm_curves"] == 0 and warm["warm_curves"] == 30
    # with 30 finished curves in the study the median rule prunes from the first trial on
    assert warm["pruned"] > cold["pruned"]
