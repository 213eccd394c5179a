"""Replay benchmark under the fair protocol: every algorithm on every shared table and on the stress family, cold
and warm.

Tables: the 7 shared tables and the stress family of generated tables (:mod:`hpoq.curves.stress`,
``stress0`` .. ``stress1``: one knob for how misleading the early epochs are; ``stress0`` and ``stress0.25``
are the levels whose early ranks are reliable). ``taskset/<i>`` names one of TaskSet's 12 tasks.

Protocol. For each table (R = its number of epochs, eta = 2) and each mode, cold (no curve store)
and warm (``--warm-fraction 0.5``: half of the table's distinct configurations form the store of
an "earlier study"), every algorithm runs on the same seeds through
:func:`hpoq.simulate.simulate_run` (the semantics of ``hpoq simulate --json``), one worker, dedupe
off for all. Seed s gives every algorithm, the Optuna pruners included, the same draws.
Seed sets are reported separately: by default 0-19 (development: constants are tuned on these
only) and 20-59 (reported).

Columns (per table, mode and seed set), all paired by seed against ``hyperband``:

- epochs (mean) and the saving against Hyperband's;
- best_final mean ± std over the seeds (table direction);
- equal quality: mean best_final within 0.25 x Hyperband's seed-to-seed std (worse only in the bad
  direction), the definition of issue 3;
- regret of seed s: (best_final_s - Hyperband's best_final_s) in the bad direction, divided by the
  table's std of final values (all rows, epoch R); mean and worst over the seeds;
- seeds worse: seeds whose best_final is worse than Hyperband's for that seed ("no answer": every trial
  was pruned and nothing reached R; such a seed counts with the table's worst final value).

- epochs to Hyperband's answer (the "anytime" column, cold tables): median over seeds of the epochs
  after which the run's best value at R is first at least as good as Hyperband's final one (a seed that
  never gets there counts as infinite);
- ``default``'s audit: the share of (table, mode, seed) runs whose false-prune interval contains the
  true rate (known here from the table: every stopped trial's value at R against the best of the kept).

Algorithms: ``hyperband`` (brackets side by side), ``asha``, ``swift``, ``default``,
``default-nopred`` (``default`` with ``--predictor none``: the ablation), and with
``--algorithms`` also ``topk-1epoch``, ``random`` and the Optuna pruners of
:mod:`benchmarks.peers` (``optuna-hyperband``, ...). Then the makespan at 50 simulated workers,
and a check of each target of issue 24.

Usage: ``benchmarks/hpo_replay.py [--out DIR] [--seeds 0-19,20-59] [--tables a,b] [--algorithms a,b]
[--quick] [--plots] [--jobs N]``. The "CPU s" column is summed over the seeds, the same whatever ``--jobs``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpoq.cli._common import parse_seeds  # noqa: E402
from hpoq.curves.shared import SHARED_TABLES, load_shared  # noqa: E402
from hpoq.curves.stress import STRESS_LEVELS, load_stress, stress_name  # noqa: E402
from hpoq.schedulers import scheduler_parameters  # noqa: E402
from hpoq.simulate import simulate_run  # noqa: E402

#: column name -> (algorithm, predictor) run through simulate_run
VARIANTS = {
    "hyperband": ("hyperband", None),
    "asha": ("asha", None),
    "swift": ("swift", None),
    "default": ("default", None),
    "default-nopred": ("default", "none"),
    "default-qsvr": ("default", "qsvr"),  # the QA-SVR ensemble (simulated annealing) as the pruning brain
    "topk-1epoch": ("topk-1epoch", None),
    "random": ("random", None),
}
ALGORITHMS = ["hyperband", "asha", "swift", "default", "default-nopred"]
STRESS_TABLES = [stress_name(level) for level in STRESS_LEVELS]
#: the stress levels whose early ranks are reliable (savings target)
RELIABLE_STRESS = [stress_name(0.0), stress_name(0.25)]
MODES = {"cold": 0.0, "warm": 0.5}
SEED_SETS = "0-19,20-59"
MAKESPAN_WORKERS = 50
MAKESPAN_ALGORITHMS = ["hyperband", "asha", "default", "default-nopred"]
TOLERANCE = 0.25  # equal quality: mean within TOLERANCE x Hyperband's seed-to-seed std


class Tee:
    """Print to the terminal and to ``OUT/NAME.md``."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
            stream.flush()

    def flush(self):
        for stream in self.streams:
            stream.flush()


def minimised(table, value):
    return -value if table.mode == "max" else value


def is_peer(name: str) -> bool:
    return name.startswith("optuna-")


def variant_params(algorithm: str) -> dict:
    """Dedupe off for all: an algorithm that still has its own ``dedupe`` parameter gets it off."""
    return {"dedupe": False} if "dedupe" in scheduler_parameters(algorithm) else {}


#: process pool of ``--jobs`` (None: every seed runs in this process)
POOL = None


@functools.lru_cache(maxsize=None)
def _shared(name: str):
    return load_named(name)


def load_named(name: str):
    """A benchmark table by name: a shared table, ``stress<level>``, or ``taskset/<task index>``."""
    if name.startswith("stress"):
        return load_stress(name)
    if name.startswith("taskset/"):
        table = load_shared("taskset", task=name.split("/", 1)[1])
        table.provenance["shared_table"] = name
        return table
    return load_shared(name)


def run_seed(table_name: str, name: str, seed: int, warm_fraction: float, workers: int = 1) -> tuple[dict, float]:
    """(run entry, CPU seconds) of column ``name`` on shared table ``table_name`` for one seed."""
    table = _shared(table_name)
    R = table.n_epochs
    t0 = time.process_time()
    if is_peer(name):
        from benchmarks.peers import optuna_run

        run = optuna_run(table, name, seed, R, 2, warm_fraction)
    else:
        algorithm, predictor = VARIANTS[name]
        run = simulate_run(
            table,
            algorithm,
            seed,
            R,
            2,
            workers=workers,
            predictor=predictor,
            params=variant_params(algorithm),
            warm_fraction=warm_fraction,
        )
    return run, time.process_time() - t0


def run_variant(table, name: str, seeds, warm_fraction: float, workers: int = 1):
    """Run entries of column ``name`` over ``seeds``; returns (runs, CPU seconds summed over the seeds, the
    same with any ``--jobs``) or (None, error text)."""
    table_name = table.provenance["shared_table"]
    args = [(table_name, name, seed, warm_fraction, workers) for seed in seeds]
    try:
        done = list(POOL.map(run_seed, *zip(*args))) if POOL is not None else [run_seed(*a) for a in args]
    except Exception as exc:  # a missing or failing algorithm is reported in its row, not fatal
        return None, f"{type(exc).__name__}: {exc}"
    return [run for run, _ in done], sum(cpu for _, cpu in done)


def table_final_std(table) -> float:
    """Std of the final values (epoch R, all rows with a finite one): the unit of regret."""
    col = table.minimized()[:, table.n_epochs - 1]
    return float(np.std(col[np.isfinite(col)]))


def answer_values(table, runs) -> np.ndarray:
    """Minimised best_final per run; a run that returned no configuration (every trial pruned) counts
    as the table's worst final value."""
    col = table.minimized()[:, table.n_epochs - 1]
    worst = float(np.max(col[np.isfinite(col)]))
    return np.array(
        [worst if r["best_final"] is None else minimised(table, r["best_final"]) for r in runs], dtype=float
    )


def fair_row(table, runs, hb_runs, unit: float) -> dict:
    """Paired statistics of ``runs`` against Hyperband's runs of the same seeds."""
    assert [r["seed"] for r in runs] == [h["seed"] for h in hb_runs]
    values, hb = answer_values(table, runs), answer_values(table, hb_runs)
    reach = [epochs_to(r, h["best_final"], table) for r, h in zip(runs, hb_runs)]
    epochs = float(np.mean([r["epochs"] for r in runs]))
    hb_epochs = float(np.mean([h["epochs"] for h in hb_runs]))
    regret = (values - hb) / unit
    return {
        "epochs": epochs,
        "saving": 1.0 - epochs / hb_epochs,
        "quality": float(values.mean()),
        "std": float(values.std()),
        "equal": bool(values.mean() <= hb.mean() + TOLERANCE * hb.std() + 1e-12),
        "gap": float(values.mean() - hb.mean()),
        "tolerance": float(TOLERANCE * hb.std()),
        "regret_mean": float(regret.mean()),
        "regret_worst": float(regret.max()),
        "worse": int(np.sum(values > hb + 1e-12)),
        "seeds": len(runs),
        "no_answer": sum(1 for r in runs if r["best_final"] is None),
        "epochs_max_ratio": float(max(r["epochs"] / h["epochs"] for r, h in zip(runs, hb_runs))),
        "to_hb_answer": float(np.median(reach)),
        "audit": audit_cover(runs),
    }


def epochs_to(run: dict, target, table) -> float:
    """Epochs after which ``run``'s best value at R first equals or beats ``target`` (Hyperband's final one,
    table direction); infinite if it never does."""
    if target is None:
        return 0.0
    goal = minimised(table, target)
    for epochs, value in run.get("trace", []):
        if minimised(table, value) <= goal + 1e-12:
            return float(epochs)
    return float("inf")


def audit_cover(runs) -> dict | None:
    """How many runs' false-prune intervals contain the true rate (runs that stopped and audited something)."""
    audits = [r["audit"] for r in runs if r.get("audit") and r["audit"].get("true_rate") is not None]
    if not audits:
        return None
    inside = sum(1 for a in audits if a["low"] - 1e-12 <= a["true_rate"] <= a["high"] + 1e-12)
    return {
        "runs": len(audits),
        "covered": inside,
        "audited": sum(a["audited"] for a in audits),
        "true_mean": float(np.mean([a["true_rate"] for a in audits])),
        "estimate_mean": float(np.mean([a["rate"] for a in audits if a["rate"] is not None] or [np.nan])),
    }


def fmt_value(table, mean_min, std):
    mean = minimised(table, mean_min)
    return f"{mean:.4f} ± {std:.4f}" if abs(mean) < 100 else f"{mean:.3f} ± {std:.3f}"


def print_cell(table, name, mode, label, rows, walls, errors, algorithms):
    print(
        f"### {name} ({table.n_rows} rows, R = {table.n_epochs}, {table.metric} {table.mode}), {mode}, seeds {label}\n"
    )
    print(
        "| algorithm | epochs | saving vs HB | best_final mean ± std | equal quality | regret mean | regret worst "
        "| seeds worse | epochs to HB's answer (median) | CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for alg in algorithms:
        if alg in errors:
            print(f"| {alg} | n/a | | | | | | | | ({errors[alg][:80]}) |")
            continue
        r = rows[alg]
        print(
            f"| {alg} | {r['epochs']:.0f} | {100 * r['saving']:.1f}% | {fmt_value(table, r['quality'], r['std'])} | "
            f"{'yes' if r['equal'] else 'NO'} | {r['regret_mean']:+.4f} | {r['regret_worst']:+.4f} | "
            f"{r['worse']}/{r['seeds']}{f' ({no} no answer)' if (no := r['no_answer']) else ''} | "
            f"{r['to_hb_answer']:.0f} | {walls[alg]:.1f} |"
        )
    print()


def plot_traces(table_name, mode, results, table, out_dir: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    hb = results.get("hyperband")
    x_max = 1.2 * np.mean([r["epochs"] for r in hb])
    grid = np.linspace(0, x_max, 400)
    for algorithm, runs in results.items():
        if not runs or not all("trace" in r for r in runs):
            continue
        curves = []
        for r in runs:
            ys = np.full(grid.shape, np.nan)
            for epochs, value in r["trace"]:
                ys[grid >= epochs] = value
            curves.append(ys)
        stacked = np.vstack(curves)
        mean = np.full(grid.shape, np.nan)
        seen = np.isfinite(stacked).all(axis=0)  # plotted once every seed has a final value
        mean[seen] = stacked[:, seen].mean(axis=0)
        ax.plot(grid, mean, label=algorithm, lw=2 if algorithm == "default" else 1)
    ax.axvline(np.mean([r["epochs"] for r in hb]), color="grey", ls=":", lw=1)
    ax.set_xlabel("epochs used")
    ax.set_ylabel(f"best final {table.metric} so far (mean over seeds)")
    ax.set_xlim(0, x_max)
    ax.set_title(f"{table_name}, {mode}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / f"hpo_replay_{table_name}_{mode}.png", dpi=110)
    plt.close(fig)


def run_cell(table, warm_fraction, algorithms, seeds):
    """{algorithm: runs over all seeds}, walls, errors for one (table, mode)."""
    results, walls, errors = {}, {}, {}
    for alg in algorithms:
        runs, wall = run_variant(table, alg, seeds, warm_fraction)
        if runs is None:
            errors[alg] = wall
        else:
            results[alg], walls[alg] = runs, wall
    return results, walls, errors


def cell_checks(name, mode, label, rows, checks):
    """Targets about one (table, mode, seed set)."""
    d = rows.get("default")
    if d is not None:
        checks.append(
            (
                f"{name} {mode} seeds {label}: default equal quality",
                d["equal"],
                f"gap {d['gap']:+.4g} (tol {d['tolerance']:.3g}), regret mean {d['regret_mean']:+.3f}",
            )
        )
        checks.append(
            (
                f"{name} {mode} seeds {label}: default epochs never above Hyperband's",
                d["epochs_max_ratio"] <= 1.0,
                f"worst seed {d['epochs_max_ratio']:.2f}x",
            )
        )
    h = rows.get("hyperband")
    if d is not None and h is not None and mode == "cold":
        checks.append(
            (
                f"{name} cold seeds {label}: default reaches Hyperband's answer no later than Hyperband (median)",
                d["to_hb_answer"] <= h["to_hb_answer"],
                f"{d['to_hb_answer']:.0f} vs {h['to_hb_answer']:.0f}",
            )
        )
    q = rows.get("default-qsvr")
    if q is not None and d is not None:
        checks.append(
            (
                f"{name} {mode} seeds {label}: default-qsvr equal quality, epochs within 10% of default's",
                q["equal"] and abs(q["epochs"] - d["epochs"]) <= 0.10 * d["epochs"],
                f"gap {q['gap']:+.4g} (tol {q['tolerance']:.3g}); {q['epochs']:.0f} vs {d['epochs']:.0f} epochs",
            )
        )
    for peer, p in rows.items():
        if is_peer(peer) and d is not None:
            beats = p["epochs"] < d["epochs"] and p["quality"] <= d["quality"] + 1e-12
            checks.append(
                (
                    f"{name} {mode} seeds {label}: {peer} not fewer epochs at equal-or-better quality than default",
                    not beats,
                    f"{p['epochs']:.0f} vs {d['epochs']:.0f} epochs; gap {p['quality'] - d['quality']:+.4g}",
                )
            )


def predictor_earns(default: dict, nopred: dict) -> bool:
    """The predictor earns its place in a cell: without it ``default`` loses equal quality (it had it with
    the predictor) or spends at least 15% more epochs."""
    return (default["equal"] and not nopred["equal"]) or nopred["epochs"] >= 1.15 * default["epochs"]


def summary_checks(label, cells, checks):
    """Targets over all cells of one seed set: mean savings, the predictor's worth, the audit's coverage."""
    shared = {k: v for k, v in cells.items() if k[0] in SHARED_TABLES}
    for mode, target in (("cold", 0.45), ("warm", 0.50)):
        savings = [rows["default"]["saving"] for (name, m), rows in shared.items() if m == mode and "default" in rows]
        if savings:
            avg = float(np.mean(savings))
            checks.append(
                (
                    f"seeds {label}: mean saving {mode} >= {100 * target:.0f}% (shared tables)",
                    avg >= target,
                    f"{100 * avg:.1f}% over {len(savings)} tables",
                )
            )
    reliable = [
        (k, rows["default"]["saving"]) for k, rows in cells.items() if k[0] in RELIABLE_STRESS and "default" in rows
    ]
    if reliable:
        worst = min(reliable, key=lambda kv: kv[1])
        checks.append(
            (
                f"seeds {label}: saving >= 40% on the stress tables with reliable early ranks",
                worst[1] >= 0.40,
                ", ".join(f"{n} {m} {100 * v:.1f}%" for (n, m), v in reliable),
            )
        )
    earns = [
        f"{name} {mode}"
        for (name, mode), rows in cells.items()
        if "default" in rows and "default-nopred" in rows and predictor_earns(rows["default"], rows["default-nopred"])
    ]
    if any("default-nopred" in rows for rows in cells.values()):
        checks.append(
            (
                f"seeds {label}: --predictor none loses equal quality or spends >= 15% more in >= 3 cells",
                len(earns) >= 3,
                f"{len(earns)} cells: {', '.join(earns) or 'none'}",
            )
        )
    audits = [rows["default"]["audit"] for rows in cells.values() if "default" in rows and rows["default"].get("audit")]
    if audits:
        runs, covered = sum(a["runs"] for a in audits), sum(a["covered"] for a in audits)
        checks.append(
            (
                f"seeds {label}: the audit's interval contains the true false-prune rate in >= 90% of runs",
                covered >= 0.9 * runs,
                f"{covered} of {runs} runs with stops ({100 * covered / runs:.1f}%); "
                f"{sum(a['audited'] for a in audits)} audited trials",
            )
        )


def makespan_section(tables, seed_sets, all_seeds, summary, checks, algorithms=MAKESPAN_ALGORITHMS):
    print(
        f"## Makespan with {MAKESPAN_WORKERS} simulated workers (simulated time: 1 per epoch, or the table's "
        "seconds per epoch where it has a time column, e.g. lcbench); Hyperband's brackets side by side\n"
    )
    print("| table | mode | seeds | " + " | ".join(algorithms) + " | default / HB | HB utilization |")
    print("|---|---|---|" + "---|" * len(algorithms) + "---|---|")
    for name in tables:
        table = load_named(name)
        for mode, warm_fraction in MODES.items():
            runs = {a: run_variant(table, a, all_seeds, warm_fraction, workers=MAKESPAN_WORKERS)[0] for a in algorithms}
            for label, seeds in seed_sets:
                pick = {a: [r for r in rs if r["seed"] in seeds] for a, rs in runs.items() if rs is not None}
                ms = {a: float(np.mean([r["makespan"] for r in rs])) for a, rs in pick.items()}
                util = float(np.mean([r["utilization"] for r in pick["hyperband"]]))
                cols = " | ".join(f"{ms[a]:.1f}" if a in ms else "n/a" for a in algorithms)
                ratio = ms["default"] / ms["hyperband"] if "default" in ms else float("nan")
                print(f"| {name} | {mode} | {label} | {cols} | {ratio:.2f} | {util:.2f} |")
                summary["makespan"].setdefault(name, {}).setdefault(mode, {})[label] = ms
                if name == "mlpf":
                    checks.append(
                        (
                            f"mlpf {mode} seeds {label}: Hyperband makespan < 200 at {MAKESPAN_WORKERS} workers",
                            ms["hyperband"] < 200,
                            f"{ms['hyperband']:.1f}",
                        )
                    )
                if "default" in ms:
                    checks.append(
                        (
                            f"{name} {mode} seeds {label}: default makespan <= Hyperband's at {MAKESPAN_WORKERS} "
                            "workers",
                            ms["default"] <= ms["hyperband"],
                            f"{ms['default']:.1f} vs {ms['hyperband']:.1f}",
                        )
                    )
    print()


def fit_time_check(checks):
    mlpf = load_shared("mlpf")
    t0 = time.process_time()
    for seed in range(20):
        simulate_run(mlpf, "default", seed, mlpf.n_epochs, 2, params=variant_params("default"), warm_fraction=0.5)
    cpu = time.process_time() - t0
    checks.append(("20 seeds of default on MLPF (warm) in < 60 s of one core", cpu < 60, f"{cpu:.1f} s CPU"))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results", help="folder for the markdown, JSON and PNG plots")
    parser.add_argument("--name", default="hpo_replay", help="output file stem (default hpo_replay)")
    parser.add_argument(
        "--seeds",
        default=SEED_SETS,
        help="comma-separated seed sets, each reported on its own, e.g. 0-19,20-59 (default) or 0-4",
    )
    parser.add_argument(
        "--tables",
        default=",".join(list(SHARED_TABLES) + STRESS_TABLES),
        help="comma-separated table names: shared tables, stress<level>, taskset/<task> (default: shared and stress)",
    )
    parser.add_argument(
        "--algorithms",
        default=",".join(ALGORITHMS),
        help=f"comma-separated columns: {', '.join(VARIANTS)} and optuna-* pruners",
    )
    parser.add_argument("--quick", action="store_true", help="seeds 0-4, tables mlpf and mnist6, no swift")
    parser.add_argument("--plots", action="store_true", help="PNG plots of best-so-far vs epochs (first seed set)")
    parser.add_argument("--jobs", type=int, default=1, help="processes running seeds side by side (default 1)")
    parser.add_argument("--no-makespan", action="store_true", help="skip the 50-worker makespan table")
    parser.add_argument(
        "--makespan-only",
        action="store_true",
        help="only the 50-worker makespan table, for the --algorithms among " + ",".join(MAKESPAN_ALGORITHMS),
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    global POOL
    args = parse_args(argv)
    if args.jobs > 1:
        POOL = ProcessPoolExecutor(args.jobs)
    seed_sets = [(part, parse_seeds(part)) for part in ("0-4" if args.quick else args.seeds).split(",") if part]
    all_seeds = sorted({s for _, seeds in seed_sets for s in seeds})
    tables = ["mlpf", "mnist6"] if args.quick else [t for t in args.tables.split(",") if t]
    algorithms = [a for a in args.algorithms.split(",") if a and not (args.quick and a == "swift")]
    if "hyperband" not in algorithms:
        algorithms.insert(0, "hyperband")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout = Tee(sys.stdout, open(out_dir / f"{args.name}.md", "w"))
    summary: dict = {"seed_sets": dict(seed_sets), "tables": {}, "makespan": {}}
    checks: list[tuple[str, bool, str]] = []
    cells: dict = {label: {} for label, _ in seed_sets}

    print(
        f"# Replay benchmark, fair protocol: seeds {', '.join(label for label, _ in seed_sets)} reported separately; "
        "eta = 2, R = the table's epochs, dedupe off, 1 worker unless stated\n"
    )
    print(
        f"Equal quality: mean best_final within {TOLERANCE} x Hyperband's seed-to-seed std. Regret: per seed, "
        "best_final minus Hyperband's (bad direction positive), in units of the table's std of final values. "
        "Seeds worse: seeds with a worse best_final than Hyperband's.\n"
    )
    for name in [] if args.makespan_only else tables:
        table = load_named(name)
        unit = table_final_std(table)
        summary["tables"][name] = {"final_std": unit}
        for mode, warm_fraction in MODES.items():
            results, walls, errors = run_cell(table, warm_fraction, algorithms, all_seeds)
            for label, seeds in seed_sets:
                pick = {a: [r for r in rs if r["seed"] in seeds] for a, rs in results.items()}
                rows = {a: fair_row(table, rs, pick["hyperband"], unit) for a, rs in pick.items()}
                print_cell(table, name, mode, label, rows, walls, errors, algorithms)
                cells[label][(name, mode)] = rows
                cell_checks(name, mode, label, rows, checks)
                summary["tables"][name].setdefault(mode, {})[label] = {"rows": rows, "errors": errors}
            if args.plots:
                first = seed_sets[0][1]
                plot_traces(
                    name,
                    mode,
                    {a: [r for r in rs if r["seed"] in first] for a, rs in results.items() if not is_peer(a)},
                    table,
                    out_dir,
                )
    for label, _ in seed_sets:
        summary_checks(label, cells[label], checks)
    if args.makespan_only or (not args.no_makespan and "default" in algorithms):
        makespan_section(
            tables,
            seed_sets,
            all_seeds,
            summary,
            checks,
            [a for a in MAKESPAN_ALGORITHMS if a in algorithms] if args.makespan_only else MAKESPAN_ALGORITHMS,
        )
    if "mlpf" in tables and "default" in algorithms and not args.quick and not args.makespan_only:
        fit_time_check(checks)

    print("## Targets\n")
    print("| target | met | measured |")
    print("|---|---|---|")
    for label, ok, detail in checks:
        print(f"| {label} | {'yes' if ok else 'NO'} | {detail} |")
    summary["checks"] = [{"target": label, "met": ok, "measured": detail} for label, ok, detail in checks]
    (out_dir / f"{args.name}.json").write_text(json.dumps(summary, indent=1, default=float))
    sys.stdout = sys.stdout.streams[0]
    if POOL is not None:
        POOL.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
