"""Replay benchmark of the search algorithms on every shared curve table, cold and warm (issue 3).

For each table (R = its number of epochs, eta = 2) and each mode — cold (no curve store) and warm
(``--warm-fraction 0.5``: half of the table's distinct configurations form the store of an
"earlier study") — every algorithm runs on the same seeds through the simulator's Python API
(:func:`hpoq.simulate.simulate_run`, the JSON semantics of ``hpoq simulate``), one worker.
Printed per row: epochs (mean), saving vs Hyperband, best_final mean +- std (table direction),
equal quality (mean within 0.25 x std of Hyperband's best_final, worse only in the bad direction),
how often the returned configuration has Hyperband's hyperparameters, wall seconds. Then: makespan
at 50 simulated workers (Hyperband vs default), whether ``default`` is dominated by ``asha`` or
``hyperband``, and a check of each target. PNG plots of best-so-far versus epochs go to ``--out``.

Usage: ``benchmarks/hpo_replay.py [--out DIR] [--seeds N] [--tables a,b] [--quick]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpoq.curves.shared import SHARED_TABLES, load_shared  # noqa: E402
from hpoq.schedulers.default import config_key  # noqa: E402
from hpoq.simulate import simulate_run  # noqa: E402

ALGORITHMS = ["hyperband", "swift", "asha", "topk-1epoch", "random", "default"]
MODES = {"cold": 0.0, "warm": 0.5}
MAKESPAN_WORKERS = 50


class Tee:
    """Print to the terminal and to ``OUT/hpo_replay.md``."""

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


def run_rows(table, algorithm, seeds, warm_fraction, workers=1):
    """simulate_run over ``seeds``; returns (runs, wall seconds) or (None, error text)."""
    t0 = time.perf_counter()
    runs = []
    try:
        for seed in seeds:
            runs.append(simulate_run(table, algorithm, seed, table.n_epochs, 2, workers=workers, warm_fraction=warm_fraction))
    except Exception as exc:  # a missing or failing algorithm is reported in its row, not fatal
        return None, f"{type(exc).__name__}: {exc}"
    return runs, time.perf_counter() - t0


def quality(table, runs):
    values = np.array([minimised(table, r["best_final"]) for r in runs], dtype=float)
    return float(values.mean()), float(values.std())


def same_config_count(table, runs, ref_runs):
    return sum(config_key(table.configs[r["best_row"]]) == config_key(table.configs[h["best_row"]])
               for r, h in zip(runs, ref_runs))


def fmt_value(table, mean_min, std):
    mean = minimised(table, mean_min)
    return f"{mean:.4f} ± {std:.4f}" if abs(mean) < 100 else f"{mean:.3f} ± {std:.3f}"


def plot_traces(table_name, mode, results, table, out_dir: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    hb = results.get("hyperband")
    # the interesting range is up to Hyperband's budget (random search runs far beyond it)
    x_max = 1.2 * np.mean([r["epochs"] for r in hb]) if hb else max(r["epochs"] for runs in results.values() for r in runs)
    grid = np.linspace(0, x_max, 400)
    for algorithm, runs in results.items():
        if not runs:
            continue
        curves = []
        for r in runs:
            trace = r.get("trace") or []
            ys = np.full(grid.shape, np.nan)
            for epochs, value in trace:
                ys[grid >= epochs] = value
            curves.append(ys)
        stacked = np.vstack(curves)
        mean = np.full(grid.shape, np.nan)
        seen = np.isfinite(stacked).all(axis=0)  # plotted once every seed has a final value
        mean[seen] = stacked[:, seen].mean(axis=0)
        ax.plot(grid, mean, label=algorithm, lw=2 if algorithm == "default" else 1)
    if hb:
        ax.axvline(np.mean([r["epochs"] for r in hb]), color="grey", ls=":", lw=1)
    ax.set_xlabel("epochs used")
    ax.set_ylabel(f"best final {table.metric} so far (mean over seeds)")
    ax.set_xlim(0, x_max)
    ax.set_title(f"{table_name}, {mode}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / f"hpo_replay_{table_name}_{mode}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results", help="folder for PNG plots and the JSON summary")
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 (default 20)")
    parser.add_argument("--tables", default=",".join(SHARED_TABLES), help="comma-separated shared table names")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated algorithms")
    parser.add_argument("--quick", action="store_true", help="5 seeds, tables mlpf and mnist6, no swift, no plots")
    args = parser.parse_args(argv)
    seeds = list(range(5 if args.quick else args.seeds))
    tables = ["mlpf", "mnist6"] if args.quick else [t for t in args.tables.split(",") if t]
    algorithms = [a for a in args.algorithms.split(",") if a and not (args.quick and a == "swift")]
    if "hyperband" not in algorithms:
        algorithms.insert(0, "hyperband")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout = Tee(sys.stdout, open(out_dir / "hpo_replay.md", "w"))
    summary: dict = {"seeds": len(seeds), "tables": {}}
    checks: list[tuple[str, bool, str]] = []
    warm_savings: dict[str, float] = {}

    print(f"# Replay benchmark: {len(seeds)} seeds, eta = 2, R = the table's epochs, 1 worker unless stated\n")
    for name in tables:
        table = load_shared(name)
        R = table.n_epochs
        summary["tables"][name] = {}
        for mode, warm_fraction in MODES.items():
            results, walls, errors = {}, {}, {}
            for algorithm in algorithms:
                runs, wall = run_rows(table, algorithm, seeds, warm_fraction)
                if runs is None:
                    errors[algorithm] = wall
                    results[algorithm] = None
                else:
                    results[algorithm], walls[algorithm] = runs, wall
            hb = results["hyperband"]
            hb_epochs = np.mean([r["epochs"] for r in hb])
            hb_mean, hb_std = quality(table, hb)
            tol = 0.25 * hb_std
            print(f"## {name} ({table.n_rows} rows, R = {R}, {table.metric} {table.mode}), {mode}"
                  f"{' (warm fraction 0.5)' if warm_fraction else ''}\n")
            print("| algorithm | epochs (mean) | saving vs HB | best_final mean ± std | equal quality | same config as HB | wall s |")
            print("|---|---|---|---|---|---|---|")
            rows = {}
            for algorithm in algorithms:
                runs = results[algorithm]
                if runs is None:
                    print(f"| {algorithm} | n/a | | | | | ({errors[algorithm][:80]}) |")
                    continue
                epochs = float(np.mean([r["epochs"] for r in runs]))
                q_mean, q_std = quality(table, runs)
                equal = q_mean <= hb_mean + tol + 1e-12
                same = same_config_count(table, runs, hb)
                rows[algorithm] = {"epochs": epochs, "saving": 1 - epochs / hb_epochs, "quality": q_mean, "std": q_std,
                                   "equal": bool(equal), "same": same, "wall": walls[algorithm]}
                print(f"| {algorithm} | {epochs:.0f} | {100 * (1 - epochs / hb_epochs):.1f}% | {fmt_value(table, q_mean, q_std)} | "
                      f"{'yes' if equal else 'no'} | {same}/{len(seeds)} | {walls[algorithm]:.1f} |")
            print()
            if "default" in rows:
                d = rows["default"]
                for other in ("asha", "hyperband"):
                    if other in rows:
                        o = rows[other]
                        dominated = o["epochs"] < d["epochs"] and o["quality"] <= d["quality"] + tol + 1e-12
                        checks.append((f"{name} {mode}: default not dominated by {other}", not dominated,
                                       f"{other} {o['epochs']:.0f} epochs vs default {d['epochs']:.0f}; quality gap "
                                       f"{o['quality'] - d['quality']:+.4g} (tol {tol:.3g})"))
                if mode == "warm":
                    checks.append((f"{name} warm: default equal quality", d["equal"],
                                   f"gap {d['quality'] - hb_mean:+.4g} (tol {tol:.3g})"))
                    if name == "mlpf":
                        checks.append(("mlpf warm: >= 30% fewer epochs than HB", d["saving"] >= 0.30, f"{100 * d['saving']:.1f}%"))
                        checks.append(("mlpf warm: HB's configuration in >= 18 seeds" if len(seeds) == 20 else
                                       f"mlpf warm: HB's configuration in >= 90% of {len(seeds)} seeds",
                                       d["same"] >= 0.9 * len(seeds), f"{d['same']}/{len(seeds)}"))
                    else:
                        warm_savings[name] = d["saving"]
                elif name == "mlpf":
                    checks.append(("mlpf cold: >= 15% fewer epochs than HB at equal quality",
                                   d["saving"] >= 0.15 and d["equal"], f"{100 * d['saving']:.1f}%, equal={d['equal']}"))
            summary["tables"][name][mode] = {"hyperband_std": hb_std, "rows": rows, "errors": errors}
            if not args.quick:
                plot_traces(name, mode, {a: r for a, r in results.items() if r}, table, out_dir)

    # makespan with 50 workers: Hyperband vs default, cold and warm
    if "default" in algorithms:
        print(f"## Makespan with {MAKESPAN_WORKERS} simulated workers (simulated time: 1 per epoch, or the table's "
              "seconds per epoch where it has a time column, e.g. lcbench)\n")
        print("| table | mode | hyperband makespan | default makespan | ratio | default utilization |")
        print("|---|---|---|---|---|---|")
        for name in tables:
            table = load_shared(name)
            for mode, warm_fraction in MODES.items():
                hb, _ = run_rows(table, "hyperband", seeds, warm_fraction, workers=MAKESPAN_WORKERS)
                de, _ = run_rows(table, "default", seeds, warm_fraction, workers=MAKESPAN_WORKERS)
                if hb is None or de is None:
                    continue
                hm, dm = np.mean([r["makespan"] for r in hb]), np.mean([r["makespan"] for r in de])
                util = np.mean([r["utilization"] for r in de])
                print(f"| {name} | {mode} | {hm:.1f} | {dm:.1f} | {dm / hm:.2f} | {util:.2f} |")
                checks.append((f"{name} {mode}: default makespan < hyperband at {MAKESPAN_WORKERS} workers", dm < hm,
                               f"{dm:.1f} vs {hm:.1f}"))
                summary["tables"][name].setdefault(mode, {})["makespan50"] = {"hyperband": hm, "default": dm}
        print()

    if warm_savings:
        avg = float(np.mean(list(warm_savings.values())))
        checks.append(("other tables warm: >= 25% fewer epochs on average", avg >= 0.25,
                       f"{100 * avg:.1f}% over {', '.join(warm_savings)}"))
    if "mlpf" in tables and "default" in algorithms:
        mlpf = load_shared("mlpf")
        t0 = time.process_time()
        for seed in range(20):
            simulate_run(mlpf, "default", seed, mlpf.n_epochs, 2, warm_fraction=0.5)
        cpu = time.process_time() - t0
        checks.append(("20 seeds of default on MLPF (warm) in < 60 s of one core", cpu < 60, f"{cpu:.1f} s CPU"))

    print("## Targets\n")
    print("| target | met | measured |")
    print("|---|---|---|")
    for label, ok, detail in checks:
        print(f"| {label} | {'yes' if ok else 'NO'} | {detail} |")
    summary["checks"] = [{"target": label, "met": ok, "measured": detail} for label, ok, detail in checks]
    (out_dir / "hpo_replay.json").write_text(json.dumps(summary, indent=1, default=float))
    sys.stdout = sys.stdout.streams[0]
    return 0


if __name__ == "__main__":
    sys.exit(main())
