"""random and topk-1epoch baselines, and the scheduler registry."""

from __future__ import annotations

import pytest

from hpoq.curves.shared import load_shared
from hpoq.errors import ConfigError
from hpoq.schedulers import SCHEDULERS, make_scheduler, scheduler_parameters
from hpoq.schedulers.sampling import table_sampler_for
from hpoq.schedulers.topk import hyperband_full_trainings
from hpoq.simulate import simulate_run


@pytest.fixture(scope="module")
def mlpf():
    return load_shared("mlpf")


def test_registry_names():
    assert {"hyperband", "swift", "asha", "random", "topk-1epoch", "default"} <= set(SCHEDULERS)
    assert scheduler_parameters("swift")[:4] == ["d", "k", "known_curve", "threshold_quantile"]
    with pytest.raises(ConfigError, match="unknown algorithm"):
        scheduler_parameters("bogus")


def test_random_trains_hyperbands_count_to_R(mlpf):
    res = simulate_run(mlpf, "random", 0, 100, 2, workers=4)
    assert res["configs"] == 163 and res["epochs"] == 163 * 100 and res["pruned"] == 0
    assert res["best_final"] == min(mlpf.curves[r, 99] for r in rows_drawn(mlpf, 0, 163))
    small = simulate_run(mlpf, "random", 0, 100, 2, params={"n": 5})
    assert small["configs"] == 5 and small["epochs"] == 500


def rows_drawn(table, seed, n):
    sampler, _ = table_sampler_for(table, seed)
    return [sampler.sample()["_row"] for _ in range(n)]


def test_topk_one_epoch_then_best_k(mlpf):
    assert hyperband_full_trainings(100, 2) == 16
    res = simulate_run(mlpf, "topk-1epoch", 2, 100, 2, keep_events=True)
    assert res["configs"] == 163 and res["epochs"] == 163 + 16 * 99 and res["pruned"] == 147
    rows = rows_drawn(mlpf, 2, 163)
    first = sorted(range(163), key=lambda t: (mlpf.curves[rows[t], 0], t))[:16]
    continued = {d["trial_id"] for d in res["decisions"] if d["action"] == "continue"}
    assert continued == set(first)
    # the barrier: no continuation starts before every 1-epoch unit has finished
    units = [e for e in res["events"] if e[0] == "unit"]
    assert all(e[2] == 0 for e in units[:163]) and all(e[2] == 1 for e in units[163:])
    custom = simulate_run(mlpf, "topk-1epoch", 2, 100, 2, params={"K": 3, "n": 20}, workers=5)
    assert custom["epochs"] == 20 + 3 * 99


@pytest.mark.parametrize("algo,params", [("random", {"n": 0}), ("topk-1epoch", {"K": 0}), ("random", {"K": 3})])
def test_bad_baseline_parameters(mlpf, algo, params):
    with pytest.raises(ConfigError):
        make_scheduler(algo, R=100, eta=2, sampler=table_sampler_for(mlpf, 0)[0], seed=0, **params)
