"""Leave-one-table-out choice of ``default``'s constants, with the left-out scores (issue 24).

Families: ``mlpf``; ``mnist`` (mnist6, mnist4, mnist4rs42: one model family); ``cifar10``; ``lcbench``;
``taskset`` (the 12 tasks of ``shared/data/taskset_dyhpo``, counted as one family). For every candidate
setting of the constants, ``default`` runs on every table of every family, cold and warm (half the table's
configurations as the store), on the development seeds (0-19 by default; the first 5 of them on each
TaskSet task), paired with Hyperband on the same
draws (the protocol of ``benchmarks/hpo_replay.py``: equal quality = mean answer within 0.25 x Hyperband's
seed-to-seed std).

For each family left out, the candidate chosen on the *other* families is the one with the largest mean
saving (cold and warm cells together) among those with equal quality in every one of their cells (none
qualifying: the most cautious); the table then reports how that choice does on the family left out. The
constants shipped are those chosen on all families. Runs are cached in ``OUT/loto_cache.json``.

Usage: ``benchmarks/loto.py [--out DIR] [--seeds 0-19] [--jobs N] [--families a,b]``
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hpo_replay import MODES, TOLERANCE, answer_values, load_named  # noqa: E402
from hpoq.cli._common import parse_seeds  # noqa: E402
from hpoq.simulate import simulate_run  # noqa: E402

FAMILIES = {
    "mlpf": ["mlpf"],
    "mnist": ["mnist6", "mnist4", "mnist4rs42"],
    "cifar10": ["cifar10"],
    "lcbench": ["lcbench"],
    "taskset": [f"taskset/{i}" for i in range(12)],
}
#: candidate settings of default's constants (the most cautious first)
CANDIDATES = [{"protect": p} for p in (0.65, 0.5, 0.35)]
#: seeds per TaskSet task (the family's 12 tasks x 5 seeds: as many runs per cell as 20 seeds of one table would
#: give three times over, at a quarter of the cost)
TASKSET_SEEDS = 5


def run_one(table_name: str, params: dict, seed: int, warm_fraction: float) -> tuple[int, float | None]:
    """(epochs, best final or None) of one run; ``params`` empty = Hyperband."""
    table = load_named(table_name)
    algorithm = "default" if params else "hyperband"
    run = simulate_run(table, algorithm, seed, table.n_epochs, 2, params=dict(params), warm_fraction=warm_fraction)
    return run["epochs"], run["best_final"]


def key(table: str, params: dict, mode: str, seed: int) -> str:
    return json.dumps([table, params, mode, seed], sort_keys=True)


def seeds_of(table: str, seeds) -> list:
    return list(seeds)[:TASKSET_SEEDS] if table.startswith("taskset/") else list(seeds)


def fill_cache(cache: dict, tables, candidates, seeds, jobs: int, cache_file: Path) -> None:
    """Run what the cache lacks, table by table, saving the cache after each table."""
    for table in tables:
        _fill(cache, [table], candidates, seeds_of(table, seeds), jobs)
        cache_file.write_text(json.dumps(cache))


def _fill(cache: dict, tables, candidates, seeds, jobs: int) -> None:
    todo = [
        (t, p, mode, s)
        for t in tables
        for p in [{}] + candidates
        for mode in MODES
        for s in seeds
        if key(t, p, mode, s) not in cache
    ]
    args = [(t, p, s, MODES[mode]) for t, p, mode, s in todo]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            done = list(pool.map(run_one, *zip(*args))) if args else []
    else:
        done = [run_one(*a) for a in args]
    for (t, p, mode, s), result in zip(todo, done):
        cache[key(t, p, mode, s)] = result


def cell(cache: dict, table_name: str, params: dict, mode: str, seeds) -> dict:
    """Saving and equal quality of ``params`` against Hyperband in one (table, mode) cell."""
    table = load_named(table_name)
    runs = [cache[key(table_name, params, mode, s)] for s in seeds]
    hb = [cache[key(table_name, {}, mode, s)] for s in seeds]
    values = answer_values(table, [{"best_final": b} for _, b in runs])
    hb_values = answer_values(table, [{"best_final": b} for _, b in hb])
    tol = TOLERANCE * hb_values.std()
    return {
        "saving": 1.0 - np.mean([e for e, _ in runs]) / np.mean([e for e, _ in hb]),
        "equal": bool(values.mean() <= hb_values.mean() + tol + 1e-12),
        "gap": float(values.mean() - hb_values.mean()),
        "tol": float(tol),
    }


def choose(cells: dict, families, candidates) -> int:
    """Index of the candidate with the largest mean saving among those with equal quality in every cell of
    ``families`` (the most cautious, index 0, if none qualifies)."""
    best, best_saving = 0, -np.inf
    for i, _ in enumerate(candidates):
        mine = [c for (fam, _, _, j), c in cells.items() if fam in families and j == i]
        if mine and all(c["equal"] for c in mine):
            saving = float(np.mean([c["saving"] for c in mine]))
            if saving > best_saving:
                best, best_saving = i, saving
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--seeds", default="0-19")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    families = {f: FAMILIES[f] for f in args.families.split(",")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_file = out / "loto_cache.json"
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    tables = [t for ts in families.values() for t in ts]
    fill_cache(cache, tables, CANDIDATES, seeds, args.jobs, cache_file)
    cells = {
        (fam, t, mode, i): cell(cache, t, p, mode, seeds_of(t, seeds))
        for fam, ts in families.items()
        for t in ts
        for mode in MODES
        for i, p in enumerate(CANDIDATES)
    }
    lines = [
        f"# Leave-one-table-out choice of default's constants (seeds {args.seeds})",
        "",
        "Candidates: " + "; ".join(f"{i}: {json.dumps(p)}" for i, p in enumerate(CANDIDATES)),
        "",
        "## Every candidate, per family (mean saving over the family's cold and warm cells; cells with equal quality)",
        "",
        "| family | " + " | ".join(f"candidate {i}" for i in range(len(CANDIDATES))) + " |",
        "|---|" + "---|" * len(CANDIDATES),
    ]
    for fam in families:
        row = []
        for i in range(len(CANDIDATES)):
            mine = [c for (f, _, _, j), c in cells.items() if f == fam and j == i]
            row.append(
                f"{100 * np.mean([c['saving'] for c in mine]):.1f}% ({sum(c['equal'] for c in mine)}/{len(mine)})"
            )
        lines.append(f"| {fam} | " + " | ".join(row) + " |")
    lines += ["", "## Left out: the choice made without the family, on the family", ""]
    lines += ["| left out | chosen on the others | saving (left out) | cells with equal quality (left out) |"]
    lines += ["|---|---|---|---|"]
    for fam in families:
        i = choose(cells, [f for f in families if f != fam], CANDIDATES)
        mine = [c for (f, _, _, j), c in cells.items() if f == fam and j == i]
        lines.append(
            f"| {fam} | {json.dumps(CANDIDATES[i])} | {100 * np.mean([c['saving'] for c in mine]):.1f}% | "
            f"{sum(c['equal'] for c in mine)}/{len(mine)} |"
        )
    final = choose(cells, list(families), CANDIDATES)
    lines += ["", f"Chosen on all families (shipped): {json.dumps(CANDIDATES[final])}", ""]
    text = "\n".join(lines) + "\n"
    (out / "loto.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
