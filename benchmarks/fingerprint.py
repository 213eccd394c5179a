"""Fingerprint of the replay benchmark's events and decisions: a refactor that keeps it keeps behaviour.

Every algorithm of ``benchmarks/hpo_replay.py`` (hyperband, asha, swift, default, default with
``--predictor none``, topk-1epoch, random) runs through :func:`hpoq.simulate.simulate_run` with
``keep_events`` on every shared table, cold and warm (``warm_fraction`` 0.5), with 1 and 7 simulated
workers and eta 2 and 3. The SHA-256 of each run's units (trial, epochs, simulated start and end
times), decisions (trial, action, epoch, reason and every input in ``info``) and answer is printed per
cell, with one hash over all of them. The same hash before and after a change means the change left
every event and decision of the benchmark as it was.

Usage: ``benchmarks/fingerprint.py [--seeds 0-1] [--tables a,b] [--algorithms a,b] [--jobs N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hpo_replay import MODES  # noqa: E402
from benchmarks.hpo_replay import VARIANTS as REPLAY_VARIANTS  # noqa: E402
from hpoq.cli._common import parse_seeds  # noqa: E402
from hpoq.curves.shared import SHARED_TABLES, load_shared  # noqa: E402
from hpoq.runtime.journal import dumps  # noqa: E402
from hpoq.simulate import simulate_run  # noqa: E402

#: column name -> (algorithm, predictor): hpo_replay's columns, less the QA-SVR one (minutes of annealing per cell)
VARIANTS = {name: spec for name, spec in REPLAY_VARIANTS.items() if name != "default-qsvr"}
WORKERS = (1, 7)
ETAS = (2, 3)


def run_hash(table_name: str, variant: str, mode: str, workers: int, eta: int, seed: int) -> tuple[str, float]:
    """(SHA-256 of the run's events, decisions and answer; CPU seconds) of one cell and seed."""
    table = load_shared(table_name)
    algorithm, predictor = VARIANTS[variant]
    t0 = time.process_time()
    run = simulate_run(
        table,
        algorithm,
        seed,
        table.n_epochs,
        eta,
        workers=workers,
        predictor=predictor,
        warm_fraction=MODES[mode],
        keep_events=True,
    )
    seconds = time.process_time() - t0
    facts = {k: run[k] for k in ("events", "decisions", "epochs", "best_row", "makespan", "configs")}
    # a decision's typed forecast restates inputs its info holds (hashed there): a change of form, not of behaviour
    facts["decisions"] = [{k: v for k, v in d.items() if k != "forecast"} for d in facts["decisions"]]
    return hashlib.sha256(dumps(facts).encode()).hexdigest(), seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-1")
    ap.add_argument("--tables", default=",".join(SHARED_TABLES))
    ap.add_argument("--algorithms", default=",".join(VARIANTS))
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    cells = [
        (t, v, m, w, e)
        for t in args.tables.split(",")
        for v in args.algorithms.split(",")
        for m in MODES
        for w in WORKERS
        for e in ETAS
    ]
    jobs = [(*cell, s) for cell in cells for s in seeds]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            out = list(pool.map(run_hash, *zip(*jobs)))
    else:
        out = [run_hash(*job) for job in jobs]
    per_cell: dict = {}
    for job, (digest, seconds) in zip(jobs, out):
        entry = per_cell.setdefault(job[:-1], [hashlib.sha256(), 0.0])
        entry[0].update(digest.encode())
        entry[1] += seconds
    total = hashlib.sha256()
    print(f"seeds {args.seeds}\n")
    print("| table | algorithm | mode | workers | eta | sha256 (12) | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for cell, (digest, seconds) in per_cell.items():
        hexdigest = digest.hexdigest()
        total.update(hexdigest.encode())
        print(f"| {' | '.join(str(c) for c in cell)} | {hexdigest[:12]} | {seconds:.1f} |")
    print(f"\nfingerprint over {len(per_cell)} cells x {len(seeds)} seeds: **{total.hexdigest()}**")
    print(json.dumps({"fingerprint": total.hexdigest(), "cells": len(per_cell), "seeds": args.seeds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
