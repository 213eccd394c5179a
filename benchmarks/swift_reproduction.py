"""Paper reproduction of synchronous Swift-Hyperband on recorded curves (method.md 8.4, issue 3).

Prints markdown tables:
1. Hyperband accounting (configs, epochs) for R = 100, 300, 35 (eta = 2);
2. MLPF, R = 100, eta = 2: hyperband, swift (svr on curve features, paper defaults), random,
   topk-1epoch over the seeds: mean epochs +- std, saving vs Hyperband, returned configuration
   equal to Hyperband's, mean best_final, 1-worker and 50-worker makespan, wall seconds for all
   seeds (one process, one core);
3. the same for swift and hyperband on every shared table (R = its epochs), cold and warm (0.5).

Usage: ``.venv/bin/python benchmarks/swift_reproduction.py [--seeds 0-9] [--tables mlpf,...] [--out DIR]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpoq.cli._common import parse_seeds  # noqa: E402
from hpoq.curves.shared import SHARED_TABLES, load_shared  # noqa: E402
from hpoq.schedulers.brackets import hyperband_budget  # noqa: E402
from hpoq.simulate import simulate_run  # noqa: E402


def runs_of(table, algo, seeds, R, eta, workers=1, warm=0.0):
    t0 = time.perf_counter()
    runs = [simulate_run(table, algo, s, R, eta, workers=workers, warm_fraction=warm) for s in seeds]
    return runs, time.perf_counter() - t0


def row(name, runs, hb_runs, seconds, hb_epochs, runs50=None):
    epochs = np.array([r["epochs"] for r in runs], dtype=float)
    best = np.array([r["best_final"] for r in runs], dtype=float)
    same = sum(r["best_row"] == h["best_row"] or r["best_final"] == h["best_final"] for r, h in zip(runs, hb_runs))
    mk1 = np.mean([r["makespan"] for r in runs])
    mk50 = "" if runs50 is None else f"{np.mean([r['makespan'] for r in runs50]):.0f}"
    return (
        f"| {name} | {epochs.mean():.1f} +- {epochs.std():.1f} | {100 * (1 - epochs.mean() / hb_epochs):+.1f}% | "
        f"{same}/{len(runs)} | {best.mean():.4f} +- {best.std():.4f} | {mk1:.0f} | {mk50} | {seconds:.2f} |"
    )


HEADER = (
    "| algorithm | epochs (mean +- std) | saving vs HB | same config as HB | best_final (mean +- std) | "
    "makespan W=1 | makespan W=50 | wall s (all seeds, W=1) |\n|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--tables", default="mlpf,mnist6,cifar10,lcbench,taskset")
    ap.add_argument("--out", default=None, help="also write the tables to OUT/swift_reproduction.md")
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    lines = ["## Hyperband accounting (eta = 2)", "", "| R | configs | epochs |", "|---|---|---|"]
    for R in (100, 300, 35):
        c, e = hyperband_budget(R, 2)
        lines.append(f"| {R} | {c} | {e} |")
    print("\n".join(lines), flush=True)
    for name in [t for t in args.tables.split(",") if t]:
        if name not in SHARED_TABLES:
            print(f"unknown shared table {name}", file=sys.stderr)
            return 2
        table = load_shared(name)
        R = table.n_epochs
        hb_epochs = hyperband_budget(R, 2)[1]
        algos = ["hyperband", "swift"] + (["random", "topk-1epoch"] if name == "mlpf" else [])
        block = [
            f"\n## {name}: R = {R}, eta = 2, {len(seeds)} seeds ({table.n_rows} rows; Hyperband {hb_epochs} epochs)",
            "",
        ]
        for warm in (0.0, 0.5):
            block += [f"\n### warm fraction {warm}", "", HEADER]
            hb_runs, hb_s = runs_of(table, "hyperband", seeds, R, 2, warm=warm)
            for algo in algos:
                runs, seconds = (hb_runs, hb_s) if algo == "hyperband" else runs_of(table, algo, seeds, R, 2, warm=warm)
                runs50, _ = runs_of(table, algo, seeds, R, 2, workers=50, warm=warm)
                block.append(row(algo, runs, hb_runs, seconds, hb_epochs, runs50))
        print("\n".join(block), flush=True)
        lines += block
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        Path(args.out, "swift_reproduction.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
