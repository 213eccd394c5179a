"""The model-based peers replayed side by side with hpoq's algorithms on the shared tables (issue 23, items 1-2).

Who runs. hpoq's ``hyperband``, ``asha``, ``swift``, ``topk-1epoch`` and ``default`` through hpoq's own
simulator (:func:`hpoq.simulate.simulate_run`, the code of ``hpoq simulate``, whatever this branch's
schedulers are), and the peers, each inside its own virtual environment under ``benchmarks/.venvs/``
(``make peers`` builds them; their pins conflict with hpoq's and with each other), driven by
:mod:`benchmarks.peers_driver` as their users run them:

- ``syne-tune==0.13.0`` (``benchmarks/.venvs/syne-tune-0.13``): Hyper-Tune, MOBSTER and DyHPO (removed in
  0.15): a ``BlackboxTabular`` over the table, searchers restricted to the table's rows
  (``restrict_configurations``), the simulator backend with n workers;
- ``syne-tune==0.16.0`` (``syne-tune-0.16``): ASHA, BOHB, ASHA-CQR, searching the table's space, each
  configuration answered by its nearest row (``add_surrogate`` with a 1-nearest-neighbour regressor);
- ``neural-pipeline-search==0.17.0`` (``neps``): Hyperband, ASHA, PriorBand through ``neps.AskAndTell``;
- ``dehb==0.1.2`` (``dehb``): DEHB through ask/tell.

Protocol. Per table (R = its epochs, eta = 2), seed and worker count (1 and 50), every method trains at
most Hyperband's epochs (``budget``: hpoq's Hyperband, brackets side by side, on the same table); hpoq's
algorithms end on their own before that. Epochs, simulated time (1 per epoch, the table's seconds per
epoch where it has them) and the incumbent (the best value at R among the trials that reached R) are
counted for everyone by :class:`benchmarks.peers_harness.Ledger`. Cold (no curve store), the peers'
own defaults except R, eta (2; Syne Tune's ``reduction_factor``, NePS's and DEHB's ``eta``) and a grace
period / minimum fidelity of 1 epoch. Seeds are the peers' own random seeds; hpoq's seed s draws
hpoq's rows for s (the peers cannot take hpoq's draws: they choose their configurations).

Metrics (``report``):
- epochs and simulated time until the incumbent first reaches the final quality of Hyperband's run of
  the same seed (minimised value <= Hyperband's ``best_final``; median over the seeds, a seed that never
  does counts as infinite, and the number of seeds that did);
- normalized regret of the incumbent, (value - best final of the table) / (worst - best), against epochs
  (one plot per table and worker count: mean and 25-75% band over the seeds), and the average rank over
  tables and seeds at 25%, 50% and 100% of Hyperband's epochs;
- "equal quality at the end" exactly as :mod:`benchmarks.hpo_replay` defines it (:func:`fair_row`: mean
  best final within 0.25 x Hyperband's seed-to-seed std), for the answer at the end of each run.

Usage (hpoq's venv): ``benchmarks/peers_model.py run [--tables a,b] [--methods a,b] [--seeds 0-19]
[--workers 1,50] [--fresh]`` (seeds a cell in ``benchmarks/results/peers_model_runs/`` already holds are
kept unless ``--fresh``; a peer whose venv is missing is skipped with a message), or ``run --rerun`` (every
cell on disk again with its own seeds: ``make peers``), then ``benchmarks/peers_model.py report``
(markdown ``peers_model.md``, ``peers_model.json`` and ``peers_model_<table>_w<W>.png`` in
``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peers_harness import (  # noqa: E402
    Ledger,
    PeerTable,
    best_at,
    median_censored,
    normalized_regret,
    ranks,
    reach,
    units_to_ledger,
)

VENVS = ROOT / "benchmarks" / ".venvs"
RESULTS = ROOT / "benchmarks" / "results"
RUNS = RESULTS / "peers_model_runs"
CACHE = ROOT / "benchmarks" / ".cache" / "peers"
DRIVER = ROOT / "benchmarks" / "peers_driver.py"

#: peer method -> (venv under benchmarks/.venvs, the package that runs it, as pinned by ``make peers``)
PEERS: dict[str, tuple[str, str]] = {
    "hyper-tune": ("syne-tune-0.13", "syne-tune 0.13.0"),
    "mobster": ("syne-tune-0.13", "syne-tune 0.13.0"),
    "dyhpo": ("syne-tune-0.13", "syne-tune 0.13.0"),
    "st-asha": ("syne-tune-0.16", "syne-tune 0.16.0"),
    "st-bohb": ("syne-tune-0.16", "syne-tune 0.16.0"),
    "st-asha-cqr": ("syne-tune-0.16", "syne-tune 0.16.0"),
    "neps-hyperband": ("neps", "neural-pipeline-search 0.17.0"),
    "neps-asha": ("neps", "neural-pipeline-search 0.17.0"),
    "neps-priorband": ("neps", "neural-pipeline-search 0.17.0"),
    "dehb": ("dehb", "dehb 0.1.2"),
}
#: hpoq's algorithms (columns of benchmarks/hpo_replay.py), run through hpoq's simulator
HPOQ = ["hyperband", "asha", "swift", "topk-1epoch", "default"]
METHODS = HPOQ + list(PEERS)
WORKERS = (1, 50)
FRACTIONS = (0.25, 0.5, 1.0)  # of Hyperband's epochs, for regret and rank


# --- the table as the peers see it --------------------------------------------------------------------


def peer_table(name: str) -> PeerTable:
    """Shared table ``name`` in the peers' terms (minimised curves, seconds per epoch, R, eta 2)."""
    from hpoq.curves.shared import load_shared

    return to_peer_table(load_shared(name), name)


def to_peer_table(table, name: str) -> PeerTable:
    """A :class:`~hpoq.curves.table.CurveTable` in the peers' terms."""
    seconds = np.ones(table.n_rows) if table.time is None else np.asarray(table.time, dtype=float)
    configs = [{k: _plain(c[k]) for k in table.hp_names} for c in table.configs]
    return PeerTable(
        name=name,
        hp_names=list(table.hp_names),
        configs=configs,
        curves=np.asarray(table.minimized(), dtype=float),
        seconds_per_epoch=seconds,
        R=table.n_epochs,
        eta=2,
        mode=table.mode,
    )


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def export_table(name: str, folder: Path = CACHE) -> Path:
    """Write the table for the peer drivers (JSON, read with :meth:`PeerTable.load`); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    peer_table(name).dump(path)
    return path


# --- hpoq's algorithms through hpoq's simulator ---------------------------------------------------------


class _RowsSeen:
    """A scheduler that notes the table row of every unit it suggests (the replay's events name trials,
    not rows); everything else is the scheduler's own."""

    def __init__(self, scheduler):
        self._scheduler, self.rows = scheduler, {}

    def suggest(self):
        unit = self._scheduler.suggest()
        if unit is not None:
            self.rows[unit.trial_id] = int(unit.config["_row"])
        return unit

    def __getattr__(self, name):
        return getattr(self._scheduler, name)


@contextlib.contextmanager
def _rows_seen(seen: list):
    """Within the block, :func:`hpoq.simulate.simulate_run` builds its scheduler as always (through
    :func:`hpoq.study.build.assemble`, which calls :func:`hpoq.schedulers.make_scheduler`) and wraps it in
    :class:`_RowsSeen` (appended to ``seen``), so the run is exactly ``hpoq simulate``'s."""
    import hpoq.schedulers as sim

    make = sim.make_scheduler

    def wrapped(*args, **kwargs):
        seen.append(_RowsSeen(make(*args, **kwargs)))
        return seen[-1]

    sim.make_scheduler = wrapped
    try:
        yield
    finally:
        sim.make_scheduler = make


def hpoq_run(name: str, method: str, seed: int, workers: int, budget: float = math.inf) -> dict:
    """One seed of hpoq's ``method`` (a column of benchmarks/hpo_replay.py) on shared table ``name``, cold."""
    from benchmarks.hpo_replay import _shared

    return hpoq_table_run(_shared(name), _cached_peer_table(name), method, seed, workers, budget)


def hpoq_table_run(table, peer: PeerTable, method: str, seed: int, workers: int, budget: float = math.inf) -> dict:
    """One seed of hpoq's ``method`` on CurveTable ``table`` (``peer``: the same in the peers' terms), cold,
    through ``simulate_run`` (``hpoq simulate``), scored by the same :class:`Ledger` as the peers."""
    from benchmarks.hpo_replay import VARIANTS, variant_params
    from hpoq.simulate import simulate_run

    algorithm, predictor = VARIANTS[method]
    seen: list = []
    t0 = time.process_time()
    with _rows_seen(seen):
        run = simulate_run(
            table,
            algorithm,
            seed,
            table.n_epochs,
            2,
            workers=workers,
            predictor=predictor,
            params=variant_params(algorithm),
            keep_events=True,
        )
    rows = seen[-1].rows
    units = [(e[1], rows[e[1]], e[2], e[3], e[4], e[5]) for e in run["events"] if e[0] == "unit"]
    ledger = units_to_ledger(Ledger(peer, budget=budget), units)
    out = ledger.result(seed=int(seed), cpu_s=time.process_time() - t0)
    out["simulate_epochs"], out["simulate_trace"] = run["epochs"], run["trace"]
    return out


_PEER_TABLES: dict = {}


def _cached_peer_table(name: str) -> PeerTable:
    if name not in _PEER_TABLES:
        _PEER_TABLES[name] = peer_table(name)
    return _PEER_TABLES[name]


# --- running cells ------------------------------------------------------------------------------------


def cell_path(name: str, method: str, workers: int) -> Path:
    return RUNS / name / f"{method}_w{workers}.json"


def budget_for(name: str) -> int:
    """Hyperband's epochs on ``name`` (brackets side by side, R = the table's epochs, eta 2): every method's
    epoch budget. The same for every seed and worker count (its brackets are fixed)."""
    return int(hpoq_run(name, "hyperband", 0, 1)["epochs"])


def venv_python(method: str) -> Path:
    return VENVS / PEERS[method][0] / "bin" / "python"


def run_cell(name: str, method: str, seeds: list, workers: int, budget: int) -> dict:
    """All seeds of one (table, method, workers) cell; a peer runs in its venv (:mod:`benchmarks.peers_driver`)."""
    t0 = time.time()
    if method in PEERS:
        table_file = export_table(name)
        cmd = [
            str(venv_python(method)),
            str(DRIVER),
            "--method",
            method,
            "--table",
            str(table_file),
            "--seeds",
            ",".join(map(str, seeds)),
            "--workers",
            str(workers),
            "--budget",
            str(budget),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"{method} on {name}: driver failed: {proc.stderr.strip()[-2000:]}")
        runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        version = PEERS[method][1]
    else:
        runs = [hpoq_run(name, method, seed, workers, budget) for seed in seeds]
        version = "hpoq (this branch)"
    return {
        "table": name,
        "method": method,
        "workers": workers,
        "budget": budget,
        "version": version,
        "seeds": list(seeds),
        "wall_s": time.time() - t0,
        "runs": runs,
    }


def run_main(args) -> int:
    """Run every (table, method, workers) cell for the seeds it does not hold yet (all with ``--fresh``)."""
    from hpoq.cli._common import parse_seeds

    if args.rerun:  # every cell on disk again, with its own seeds (what `make peers` does)
        for path in sorted(RUNS.glob("*/*_w*.json")):
            cell = json.loads(path.read_text())
            again = argparse.Namespace(
                seeds=",".join(map(str, cell["seeds"])),
                workers=str(cell["workers"]),
                tables=cell["table"],
                methods=cell["method"],
                fresh=True,
                rerun=False,
            )
            run_main(again)
        return 0
    seeds = parse_seeds(args.seeds)
    for workers in [int(w) for w in args.workers.split(",")]:
        for name in args.tables.split(","):
            budget = None
            for method in args.methods.split(","):
                path = cell_path(name, method, workers)
                done = json.loads(path.read_text()) if path.exists() and not args.fresh else None
                todo = [s for s in seeds if done is None or s not in done["seeds"]]
                if not todo:
                    continue
                if method in PEERS and not venv_python(method).exists():
                    print(f"skip {method}: no venv {venv_python(method).parent.parent} (make peers)", flush=True)
                    continue
                budget = budget_for(name) if budget is None else budget
                try:
                    cell = run_cell(name, method, todo, workers, budget)
                except RuntimeError as exc:
                    print(f"FAILED {exc}", flush=True)
                    continue
                if done is not None:  # add the new seeds to those on disk
                    runs = {r["seed"]: r for r in done["runs"] + cell["runs"]}
                    cell["runs"] = [runs[s] for s in sorted(runs)]
                    cell["seeds"] = sorted(runs)
                    cell["wall_s"] += done["wall_s"]
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(cell))
                os.replace(tmp, path)
                print(f"{name} {method} w{workers}: seeds {todo[0]}-{todo[-1]} in {cell['wall_s']:.0f} s", flush=True)
    return 0


# --- metrics ------------------------------------------------------------------------------------------


def load_cells(tables, methods, workers) -> dict:
    """{(table, method, workers): cell} for the cells on disk."""
    out = {}
    for name in tables:
        for method in methods:
            for w in workers:
                path = cell_path(name, method, w)
                if path.exists():
                    out[(name, method, w)] = json.loads(path.read_text())
    return out


def cell_metrics(table: PeerTable, runs: list, hb_runs: list, budget: int) -> dict:
    """Per method and worker count: seeds reaching Hyperband's final quality (same seed), the median epochs
    and time to it, regret at the fractions of ``budget``."""
    hb = {r["seed"]: r for r in hb_runs}
    pairs = [(r, hb[r["seed"]]) for r in runs if r["seed"] in hb]
    epochs, times = [], []
    for r, h in pairs:
        target = math.inf if h["best_row"] is None else float(table.curves[h["best_row"], table.R - 1])
        e, t = reach(r["trace"], target)
        epochs.append(e)
        times.append(t)
    regret = {f: [normalized_regret(table, best_at(r["trace"], f * budget)) for r, _ in pairs] for f in FRACTIONS}
    return {
        "seeds": len(pairs),
        "reached": sum(e is not None for e in epochs),
        "epochs_to_hb": median_censored(epochs, budget),
        "time_to_hb": median_censored(times, math.inf),
        "epochs_to_hb_per_seed": epochs,
        "regret": {str(f): float(np.mean(v)) for f, v in regret.items()},
        "regret_per_seed": {str(f): v for f, v in regret.items()},
        "epochs_mean": float(np.mean([r["epochs"] for r, _ in pairs])),
        "makespan_mean": float(np.mean([r["makespan"] for r, _ in pairs])),
    }


def end_quality(table, runs: list, hb_runs: list) -> dict:
    """``fair_row`` of benchmarks/hpo_replay.py for the answers at the end of the runs (same seeds) on CurveTable
    ``table``."""
    from benchmarks.hpo_replay import fair_row, table_final_std

    sign = -1.0 if table.mode == "max" else 1.0

    def as_replay(run):  # fair_row reads a trace of (epochs, value in the table's direction)
        return {**run, "trace": [(e, sign * value) for e, _, value in run["trace"]]}

    hb = {r["seed"]: as_replay(r) for r in hb_runs}
    paired = [as_replay(r) for r in runs if r["seed"] in hb]
    return fair_row(table, paired, [hb[r["seed"]] for r in paired], table_final_std(table))


def average_ranks(cells: dict, tables, methods, workers: int) -> dict:
    """{fraction: {method: mean rank}} over (table, seed) pairs where every method in ``methods`` ran that
    seed (their number under ``"pairs"``); ranks by normalized regret at the fraction of Hyperband's epochs
    (ties share)."""
    out: dict = {"pairs": 0}
    for f in FRACTIONS:
        per_method: dict = {m: [] for m in methods}
        for name in tables:
            have = [m for m in methods if (name, m, workers) in cells]
            if len(have) < len(methods):
                continue
            runs = {m: {r["seed"]: r for r in cells[(name, m, workers)]["runs"]} for m in methods}
            table = _cached_peer_table(name)
            budget = cells[(name, "hyperband", workers)]["budget"]
            seeds = set.intersection(*[set(v) for v in runs.values()])
            out["pairs"] += len(seeds) if f == FRACTIONS[0] else 0
            for seed in seeds:
                values = {m: normalized_regret(table, best_at(runs[m][seed]["trace"], f * budget)) for m in methods}
                for m, rank in ranks(values).items():
                    per_method[m].append(rank)
        out[str(f)] = {m: float(np.mean(v)) if v else None for m, v in per_method.items()}
    return out


def plot_regret(name: str, workers: int, cells: dict, methods, budget: int, out_dir: Path) -> Path | None:
    """Normalized regret against epochs (mean over seeds, 25-75% band), log y; one PNG per table and W."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = _cached_peer_table(name)
    grid = np.linspace(0, budget, 200)
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    drawn = 0
    for method in methods:
        cell = cells.get((name, method, workers))
        if cell is None:
            continue
        curves = np.array(
            [[normalized_regret(table, best_at(r["trace"], x)) for x in grid] for r in cell["runs"]], dtype=float
        )
        floor = 1e-4
        mean = np.maximum(curves.mean(axis=0), floor)
        lo, hi = np.percentile(curves, 25, axis=0), np.percentile(curves, 75, axis=0)
        style = {"lw": 2.4, "color": "black"} if method == "default" else {"lw": 1.2}
        style["ls"] = "-" if method in HPOQ else "--"
        (line,) = ax.plot(grid, mean, label=method, **style)
        ax.fill_between(grid, np.maximum(lo, floor), np.maximum(hi, floor), color=line.get_color(), alpha=0.08)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_yscale("log")
    ax.set_xlabel("epochs used")
    ax.set_ylabel("normalized regret of the incumbent (mean, 25-75%)")
    ax.set_title(f"{name}, {workers} worker{'s' if workers > 1 else ''}, cold")
    ax.set_xlim(0, budget)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = out_dir / f"peers_model_{name}_w{workers}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fmt(value, digits=0):
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(tables, methods, out_dir: Path, name: str = "peers_model") -> dict:
    """Markdown and JSON of every metric over the cells on disk; returns the JSON summary."""
    from benchmarks.hpo_replay import _shared, fmt_value

    cells = load_cells(tables, methods, WORKERS)
    summary: dict = {"cells": {}, "targets": [], "ran": {}}
    lines = [
        "# Model-based peers beside hpoq (benchmarks/peers_model.py)",
        "",
        __doc__.split("\n\n")[2].replace("\n", " "),
        "",
        __doc__.split("\n\n")[3],
        "",
        "Versions: " + "; ".join(sorted({f"{m}: {v[1]}" for m, v in PEERS.items()})) + "; hpoq: this commit.",
        "",
    ]
    for workers in WORKERS:
        for tname in tables:
            hb_cell = cells.get((tname, "hyperband", workers))
            if hb_cell is None:
                continue
            table = _cached_peer_table(tname)
            budget = hb_cell["budget"]
            lines += [
                f"## {tname}, {workers} worker{'s' if workers > 1 else ''} ({table.n_rows} rows, R = {table.R}, "
                f"budget = Hyperband's {budget} epochs)",
                "",
                "| method | version | seeds | reached HB quality | epochs to HB quality (median) "
                "| time to HB quality (median) | regret @25% | @50% | @100% | epochs | best_final mean ± std "
                "| equal quality at end | seeds worse | wall s |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for method in methods:
                cell = cells.get((tname, method, workers))
                if cell is None:
                    continue
                m = cell_metrics(table, cell["runs"], hb_cell["runs"], budget)
                q = end_quality(_shared(tname), cell["runs"], hb_cell["runs"])
                value = fmt_value(_shared(tname), q["quality"], q["std"])
                no = f" ({q['no_answer']} no answer)" if q["no_answer"] else ""
                lines.append(
                    f"| {method} | {cell['version']} | {m['seeds']} | {m['reached']}/{m['seeds']} | "
                    f"{_fmt(m['epochs_to_hb'])} | {_fmt(m['time_to_hb'], 1)} | {m['regret']['0.25']:.4f} | "
                    f"{m['regret']['0.5']:.4f} | {m['regret']['1.0']:.4f} | {m['epochs_mean']:.0f} | {value} | "
                    f"{'yes' if q['equal'] else 'NO'} | {q['worse']}/{q['seeds']}{no} | {cell['wall_s']:.0f} |"
                )
                summary["cells"].setdefault(tname, {}).setdefault(str(workers), {})[method] = {
                    **{k: v for k, v in m.items() if k != "regret_per_seed"},
                    "end": q,
                    "version": cell["version"],
                    "wall_s": cell["wall_s"],
                    "seed_list": cell["seeds"],
                }
                summary["ran"].setdefault(method, []).append(f"{tname} w{workers} seeds {len(cell['seeds'])}")
            lines.append("")
            png = plot_regret(tname, workers, cells, methods, budget, out_dir)
            if png is not None:
                lines += [f"![{tname}, {workers} workers]({png.name})", ""]
    lines += rank_section(cells, tables, methods, summary)
    lines += target_section(summary, tables)
    lines += summary_section(summary, tables)
    (out_dir / f"{name}.md").write_text("\n".join(lines) + "\n")
    (out_dir / f"{name}.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def rank_section(cells, tables, methods, summary) -> list:
    """Average ranks per worker count, twice: the methods that ran every table (over all tables), and every
    method that ran anything (over the tables where all of them ran); each over the seeds all of them ran."""
    lines = []
    for workers in WORKERS:
        ran = [m for m in methods if any((t, m, workers) in cells for t in tables)]
        every_table = [m for m in ran if all((t, m, workers) in cells for t in tables)]
        common = [t for t in tables if all((t, m, workers) in cells for m in ran)]
        views = [("ranks", every_table, tables, "methods that ran every table")]
        views.append(("ranks_all_methods", ran, common, f"every method, on the tables all ran: {', '.join(common)}"))
        for key, have, over, what in views:
            if "default" not in have or not over:
                continue
            r = average_ranks(cells, over, have, workers)
            summary.setdefault(key, {})[str(workers)] = r
            lines += [
                f"## Average rank, {workers} worker{'s' if workers > 1 else ''}: {what} ({r['pairs']} (table, seed) "
                "pairs; normalized regret at a fraction of Hyperband's epochs; 1 = best, ties share)",
                "",
                "| method | @25% | @50% | @100% |",
                "|---|---|---|---|",
            ]
            for m in sorted(have, key=lambda m: r["1.0"][m]):
                lines.append(f"| {m} | {r['0.25'][m]:.2f} | {r['0.5'][m]:.2f} | {r['1.0'][m]:.2f} |")
            lines.append("")
    return lines


def target_section(summary, tables) -> list:
    """The peer-vs-default targets of issue 23, as measured."""
    checks = []
    wins = cells_seen = 0
    detail = []
    for tname in tables:
        for w in map(str, WORKERS):
            rows = summary["cells"].get(tname, {}).get(w, {})
            peers = {m: r for m, r in rows.items() if m in PEERS}
            if "default" not in rows or not peers:
                continue
            cells_seen += 1
            # each peer against default's median over the same seeds (peers may have run fewer)
            default_by_seed = dict(zip(rows["default"]["seed_list"], rows["default"]["epochs_to_hb_per_seed"]))
            pairs = {}
            for m, r in peers.items():
                budget = summary["cells"][tname][w]["hyperband"]["epochs_mean"]
                mine = median_censored([default_by_seed.get(s) for s in r["seed_list"]], budget)
                pairs[m] = (mine, r["epochs_to_hb"])
            best_peer = min(pairs, key=lambda m: math.inf if pairs[m][1] is None else pairs[m][1])
            d, p = pairs[best_peer]
            win = d is not None and (p is None or d < p)
            wins += win
            n = len(peers[best_peer]["seed_list"])
            detail.append(f"{tname} w{w}: {_fmt(d)} vs {best_peer} {_fmt(p)} ({n} seeds)")
    checks.append(
        (
            "default reaches Hyperband's final quality in fewer epochs (median) than the best peer, >= 9 of 14 cells",
            wins >= 9 and cells_seen == 14,
            f"{wins} of {cells_seen} cells with a peer (default's median on the best peer's seeds; n/a: fewer "
            "than half of them reached it); " + "; ".join(detail),
        )
    )
    behind = []
    for tname in tables:
        rows = summary["cells"].get(tname, {}).get("1", {})
        if "default" in rows and "topk-1epoch" in rows:
            d, t = rows["default"], rows["topk-1epoch"]
            if t["end"]["equal"] and (not d["end"]["equal"] or t["end"]["epochs"] < d["end"]["epochs"]):
                behind.append(f"{tname}: topk {t['end']['epochs']:.0f} vs default {d['end']['epochs']:.0f}")
    checks.append(
        (
            "default never behind topk-1epoch at equal quality (1 worker)",
            not behind,
            "; ".join(behind) or "never behind",
        )
    )
    late = []
    for tname in tables:
        rows = summary["cells"].get(tname, {}).get("1", {})
        if "default" in rows and "hyperband" in rows:
            d, h = rows["default"]["epochs_to_hb"], rows["hyperband"]["epochs_to_hb"]
            if d is None or (h is not None and d > h):
                late.append(f"{tname}: {_fmt(d)} vs {_fmt(h)}")
    checks.append(
        (
            "default's incumbent reaches Hyperband's final quality no later than Hyperband's run (median, 1 worker)",
            not late,
            "; ".join(late) or "every table",
        )
    )
    for w, r in summary.get("ranks", {}).items():
        for f in map(str, FRACTIONS):
            other = min((v, m) for m, v in r[f].items() if v is not None and m != "default")
            tie = " (a tie)" if abs(r[f]["default"] - other[0]) <= 1e-9 else ""
            checks.append(
                (
                    f"default has the best average rank at {float(f):.0%} of Hyperband's epochs, {w} worker(s)",
                    r[f]["default"] <= other[0] + 1e-9,
                    f"default {r[f]['default']:.2f}, best other {other[1]} {other[0]:.2f}{tie}",
                )
            )
    summary["targets"] = [{"target": t, "met": ok, "measured": m} for t, ok, m in checks]
    lines = ["## Targets of issue 23 (peers against default), as measured", "", "| target | met | measured |"]
    lines.append("|---|---|---|")
    lines += [f"| {t} | {'yes' if ok else 'NO'} | {m} |" for t, ok, m in checks]
    return lines + [""]


def summary_section(summary, tables) -> list:
    """One line per (table, workers): median epochs to Hyperband's final quality (seeds that reached it) of
    Hyperband, default, topk-1epoch and the peer with the lowest median, and which peers ran how many seeds."""

    def cell(r):
        return f"{_fmt(r['epochs_to_hb'])} ({r['reached']}/{r['seeds']})"

    lines = [
        "## Summary: median epochs until the incumbent reaches Hyperband's final quality (seeds that did)",
        "",
        "| table | workers | hyperband | default | topk-1epoch | best peer | peers run (seeds) |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in map(str, WORKERS):
        for tname in tables:
            rows = summary["cells"].get(tname, {}).get(w, {})
            if "default" not in rows:
                continue
            peers = {m: r for m, r in rows.items() if m in PEERS}
            best = min(peers, key=lambda m: (peers[m]["epochs_to_hb"] or math.inf, -peers[m]["reached"]), default=None)
            ran = ", ".join(f"{m} ({r['seeds']})" for m, r in peers.items()) or "none"
            lines.append(
                f"| {tname} | {w} | {cell(rows['hyperband'])} | {cell(rows['default'])} | "
                f"{cell(rows['topk-1epoch']) if 'topk-1epoch' in rows else 'n/a'} | "
                f"{f'{best} {cell(peers[best])}' if best else 'n/a'} | {ran} |"
            )
    return lines + [""]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the cells (skips those on disk unless --fresh)")
    rep = sub.add_parser("report", help="markdown, JSON and plots from the cells on disk")
    from hpoq.curves.shared import SHARED_TABLES

    for p in (run, rep):
        p.add_argument("--tables", default=",".join(SHARED_TABLES))
        p.add_argument("--methods", default=",".join(METHODS))
    run.add_argument("--seeds", default="0-19")
    run.add_argument("--workers", default=",".join(map(str, WORKERS)))
    run.add_argument("--fresh", action="store_true", help="rerun cells already on disk")
    run.add_argument(
        "--rerun", action="store_true", help="rerun every cell on disk with its own seeds (ignores the other options)"
    )
    rep.add_argument("--out", default=str(RESULTS))
    rep.add_argument("--name", default="peers_model")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == "run":
        return run_main(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = report(args.tables.split(","), args.methods.split(","), out, args.name)
    print((out / f"{args.name}.md").read_text())
    return 0 if summary else 1


if __name__ == "__main__":
    sys.exit(main())
