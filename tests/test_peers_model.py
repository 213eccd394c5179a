"""The model-based peers' harness (benchmarks/peers_model.py, peers_harness.py, peers_driver.py).

What needs no peer library runs here, in hpoq's venv: the table adapter, the epoch accounting, the
ask/tell loop with simulated workers, hpoq's runs through the simulator and the metrics. Each peer
itself runs inside its own venv (``make peers``); those tests skip where the venv is absent.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import peers_harness as h  # noqa: E402
from benchmarks.peers_driver import ask_tell_loop  # noqa: E402
from benchmarks.peers_model import (  # noqa: E402
    PEERS,
    average_ranks,
    cell_metrics,
    end_quality,
    hpoq_table_run,
    to_peer_table,
)
from hpoq.curves.table import CurveTable  # noqa: E402


def small_table(n=40, epochs=8, seed=5, time=False, mode="min") -> CurveTable:
    rng = np.random.default_rng(seed)
    level = rng.uniform(0, 1, n)
    lr = 10 ** rng.uniform(-4, -1, n)
    curves = level[:, None] + np.exp(-np.outer(rng.uniform(0.1, 0.8, n), np.arange(1, epochs + 1)))
    return CurveTable(
        hp_names=["a", "lr", "layers"],
        configs=[
            {"a": 0.5 + float(v), "lr": float(r), "layers": int(k)} for v, r, k in zip(level, lr, rng.integers(1, 4, n))
        ],
        curves=curves if mode == "min" else 2.0 - curves,
        metric="loss" if mode == "min" else "accuracy",
        mode=mode,
        time=rng.uniform(0.5, 2.0, n) if time else None,
        source="small",
    )


def test_table_adapter_round_trips_and_maps_configurations_to_their_rows(tmp_path):
    table = small_table(time=True)
    peer = to_peer_table(table, "small")
    peer.dump(tmp_path / "t.json")
    back = h.PeerTable.load(tmp_path / "t.json")
    assert back.R == 8 and back.eta == 2 and back.n_rows == 40
    np.testing.assert_allclose(back.curves, table.minimized())
    np.testing.assert_allclose(back.seconds_per_epoch, table.time)
    space = back.space()
    assert space["layers"] == {"type": "choice", "values": [1, 2, 3]}
    assert space["lr"]["type"] == "float" and space["lr"]["log"] and not space["a"]["log"]
    # every row's own configuration is its nearest row; a perturbed one still maps to it
    assert all(back.nearest_row(c) == i for i, c in enumerate(back.configs))
    near = dict(back.configs[7], lr=back.configs[7]["lr"] * 1.001)
    assert back.nearest_row(near) == 7


def test_ledger_pays_each_epoch_once_stops_at_budget_and_tracks_the_answer_at_R():
    peer = to_peer_table(small_table(), "small")
    R = peer.R
    ledger = h.Ledger(peer, budget=20)
    assert ledger.unit("t0", 3, 0, 2, 0.0, 2.0)
    # a promoted trial resumes: epochs 1-2 are not paid again
    assert ledger.unit("t0", 3, 0, R, 2.0, 8.0) and ledger.epochs == R
    assert ledger.trace == [[R, 8.0, float(peer.curves[3, R - 1])]]
    with pytest.raises(ValueError, match="skips"):
        ledger.epoch("t1", 4, 3, 9.0)
    assert ledger.unit("t1", 4, 0, R, 8.0, 16.0) and ledger.epochs == 2 * R == 16
    # the budget (20) ends inside t2's unit: its first 4 epochs count, the rest and anything after do not
    assert ledger.unit("t2", 5, 0, 6, 16.0, 22.0) is False and ledger.epochs == 20 and ledger.spent
    assert ledger.trained["t2"] == 4 and ledger.epoch("t3", 6, 1, 23.0) is False and "t3" not in ledger.trials
    out = ledger.result(seed=1)
    assert out["trials"] == 3 and out["makespan"] == 20.0
    assert out["best_row"] in (3, 4) and out["best_final"] == pytest.approx(peer.curves[out["best_row"], R - 1])


def test_units_are_counted_in_the_order_their_epochs_finish():
    peer = to_peer_table(small_table(), "small")
    R = peer.R
    # two workers: a long unit and a short one that ends first; the budget cuts the long one's last epochs
    units = [("long", 0, 0, R, 0.0, float(R)), ("short", 1, 0, 2, 0.0, 2.0)]
    ledger = h.units_to_ledger(h.Ledger(peer, budget=R), units)
    assert ledger.epochs == R and ledger.trained == {"long": R - 2, "short": 2}
    assert ledger.trace == []  # nothing reached R within the budget


def test_ask_tell_loop_resumes_lineages_and_keeps_workers_busy():
    peer = to_peer_table(small_table(), "small")
    R, rng = peer.R, np.random.default_rng(0)
    told, asked = [], []

    waiting = []  # configurations told at 2 epochs, to be continued to R (a two-rung schedule)

    def ask():
        if waiting:
            job = dict(waiting.pop(0), epochs=R)
        else:
            job = {"config": peer.configs[int(rng.integers(peer.n_rows))], "epochs": 2, "lineage": f"c{len(asked)}"}
        asked.append(job)
        return job

    def tell(job, value):
        told.append((job["epochs"], job["row"], value))
        if job["epochs"] == 2:
            waiting.append({"config": job["config"], "lineage": job["lineage"]})

    out = ask_tell_loop(peer, 0, 3, 6 * R, ask, tell)
    assert 6 * R - R <= out["epochs"] <= 6 * R  # dispatched until the budget, counted up to it
    # a continuation pays only its R - 2 new epochs, on its lineage's row; told values are the rows' values
    assert all(job["paid"] == (2 if job["epochs"] == 2 else R - 2) for job in asked)
    assert all(v == peer.curves[row, e - 1] for e, row, v in told)
    finals = [v for e, _, v in told if e == R]
    assert out["best_final"] == pytest.approx(min(finals))  # every continuation to R finished within the budget
    assert out["makespan"] < out["epochs"]  # three workers in parallel
    # a peer that continues a trial still training (NePS's ASHA does, with pending trials): the continuation
    # starts when its predecessor ends and pays only its new epochs
    steps = iter([2, 4, 6, 8, 8, 8])
    out = ask_tell_loop(peer, 0, 2, 8, lambda: {"config": peer.configs[0], "epochs": next(steps), "lineage": "x"}, tell)
    assert out["epochs"] == 8 and out["makespan"] == 8 and out["best_final"] == pytest.approx(peer.curves[0, R - 1])


@pytest.mark.parametrize("method", ["hyperband", "asha", "default"])
def test_hpoq_runs_through_the_simulator_and_the_ledger_agrees_with_it(method):
    table = small_table(n=60)
    peer = to_peer_table(table, "small")
    run = hpoq_table_run(table, peer, method, seed=3, workers=1)
    # one worker: the ledger's epochs and incumbent trace are hpoq simulate's own
    assert run["epochs"] == run["simulate_epochs"]
    assert [[e, v] for e, _, v in run["trace"]] == [[e, v] for e, v in run["simulate_trace"]]
    assert run["best_final"] == pytest.approx(table.curves[run["best_row"], table.n_epochs - 1])
    parallel = hpoq_table_run(table, peer, method, seed=3, workers=4)
    assert parallel["makespan"] < run["makespan"]


def test_metrics_reach_regret_rank_and_censoring():
    peer = to_peer_table(small_table(), "small")
    finals = peer.finals()
    best, worst = float(finals.min()), float(finals.max())
    trace = [[10, 5.0, worst], [30, 9.0, best]]
    assert h.reach(trace, best) == (30, 9.0) and h.reach(trace, best - 1) == (None, None)
    assert h.best_at(trace, 9) == math.inf and h.best_at(trace, 10) == worst and h.best_at(trace, 99) == best
    assert h.normalized_regret(peer, math.inf) == 1.0 and h.normalized_regret(peer, best) == 0.0
    assert h.normalized_regret(peer, worst) == 1.0
    assert h.ranks({"a": 0.1, "b": 0.1, "c": 0.5}) == {"a": 1.5, "b": 1.5, "c": 3.0}
    assert h.median_censored([10, None, 30], 100) == 30 and h.median_censored([None, None, 5], 100) is None


def test_cell_metrics_and_ranks_pair_seeds_with_hyperband():
    table = small_table(n=60)
    peer = to_peer_table(table, "small")
    hb = [hpoq_table_run(table, peer, "hyperband", s, 1) for s in range(3)]
    asha = [hpoq_table_run(table, peer, "asha", s, 1) for s in range(3)]
    budget = hb[0]["epochs"]
    m = cell_metrics(peer, hb, hb, budget)
    assert m["reached"] == 3 and m["epochs_to_hb"] <= budget  # Hyperband reaches its own answer
    a = cell_metrics(peer, asha, hb, budget)
    assert a["seeds"] == 3 and 0 <= a["reached"] <= 3
    import benchmarks.peers_model as pm

    pm._PEER_TABLES["small"] = peer
    cells = {("small", "hyperband", 1): {"runs": hb, "budget": budget}, ("small", "asha", 1): {"runs": asha}}
    r = average_ranks(cells, ["small"], ["hyperband", "asha"], 1)
    assert set(r) == {"pairs", "0.25", "0.5", "1.0"} and r["pairs"] == 3
    assert all(1.0 <= v <= 2.0 for v in r["1.0"].values())
    assert sum(r["1.0"].values()) == pytest.approx(3.0)  # ranks of two methods sum to 3 on every seed


@pytest.mark.parametrize("mode", ["min", "max"])
def test_end_quality_reads_the_ledger_trace_in_the_table_direction(mode):
    table = small_table(n=60, mode=mode)
    peer = to_peer_table(table, "small")
    hb = [hpoq_table_run(table, peer, "hyperband", s, 1) for s in range(3)]
    q = end_quality(table, hb, hb)
    assert q["equal"] and q["worse"] == 0 and q["seeds"] == 3
    # the replay's "epochs to Hyperband's answer" and the peers' metric read the same traces alike
    m = cell_metrics(peer, hb, hb, hb[0]["epochs"])
    assert q["to_hb_answer"] == pytest.approx(np.median(m["epochs_to_hb_per_seed"]))
    # a run whose only answer is the table's worst row never reaches Hyperband's: infinite, and worse
    worst = int(np.argmax(peer.finals()))
    lost = [{**r, "best_final": float(table.curves[worst, -1]), "best_row": worst} for r in hb]
    for r in lost:
        r["trace"] = [[r["epochs"], 0.0, float(peer.finals()[worst])]]
    q = end_quality(table, lost, hb)
    assert q["to_hb_answer"] == math.inf and not q["equal"] and q["worse"] == 3


VENVS = ROOT / "benchmarks" / ".venvs"


@pytest.mark.parametrize("method", sorted(PEERS))
def test_peer_harness_runs_in_its_venv(method, tmp_path):
    python = VENVS / PEERS[method][0] / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no venv {python.parent.parent} (make peers builds it)")
    peer = to_peer_table(small_table(n=20, epochs=4), "small")
    peer.dump(tmp_path / "small.json")
    budget = 24
    cmd = [str(python), str(ROOT / "benchmarks" / "peers_driver.py"), "--method", method]
    cmd += ["--table", str(tmp_path / "small.json"), "--seeds", "0", "--workers", "2", "--budget", str(budget)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    assert run["method"] == method and run["seed"] == 0 and 0 < run["epochs"] <= budget
    for e, _, value in run["trace"]:  # every incumbent is a row's value at R
        assert e <= budget and np.isclose(peer.finals(), value).any()
    if run["best_row"] is not None:
        assert run["best_final"] == pytest.approx(peer.finals()[run["best_row"]])
