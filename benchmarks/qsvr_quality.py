"""QSVR (sa, 4 x 20 subset ensemble) vs classical SVR trained on the same 80 points (MLPF, 25% known).

Protocol (the predict-eval protocol of issue 2): target = last epoch value; prefix = first
ceil(F * epochs) epochs; per seed an 80/20 split grouped by identical hyperparameter rows
(GroupShuffleSplit, random_state = seed). QSVR is fitted on the training part (its QUBOs see 80
points: four seeded chunks of 20; the other training points only score the chunks). Baselines are
fitted on exactly the 80 points QSVR's QUBOs saw:

- ``svr20``: SVR(epsilon=0.02, gamma=0.1, C=67.61) on ``stride2`` quantile-scaled features
  (method.md 4.5, the QSVR study's classical reference);
- ``nusvr``: the ``svr`` predictor (NuSVR defaults, ``baker`` features, MinMax; the paper method).

Prints a markdown table: per-seed test R2, mean, seed-to-seed std, median single-fit wall and
CPU seconds (one process, OMP_NUM_THREADS=1, so CPU seconds = seconds on one core) and peak RSS.

    .venv/bin/python benchmarks/qsvr_quality.py [--seeds 0-4] [--known 0.25] [--num-reads 100] [--num-sweeps 1000]
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from hpoq.curves.table import load_table  # noqa: E402
from hpoq.predict.qsvr import QSVRPredictor, r2  # noqa: E402
from hpoq.predict.svr import SVRPredictor  # noqa: E402

MLPF = REPO.parent / "shared" / "data" / "mlpf_perfpred" / "mlpf_delphes_trainings_processed.csv.gz"


def grouped_split(configs, n: int, seed: int):
    from sklearn.model_selection import GroupShuffleSplit

    keys = [repr(sorted((k, repr(v)) for k, v in c.items() if not str(k).startswith("_"))) for c in configs]
    _, groups = np.unique(np.array(keys), return_inverse=True)
    return next(GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed).split(np.zeros(n), groups=groups))


def parse_seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--known", type=float, default=0.25)
    ap.add_argument("--num-reads", type=int, default=None)
    ap.add_argument("--num-sweeps", type=int, default=None)
    ap.add_argument("--combine", default="mean7")
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)

    table = load_table(str(MLPF), "loss", "min")
    curves = table.minimized()
    y = curves[:, -1]
    e = math.ceil(args.known * table.n_epochs)
    prefixes = curves[:, :e]
    qparams = {"combine": args.combine}
    if args.num_reads:
        qparams["num_reads"] = args.num_reads
    if args.num_sweeps:
        qparams["num_sweeps"] = args.num_sweeps

    rows, walls, cpus = [], [], []
    for seed in seeds:
        tr, te = grouped_split(table.configs, table.n_rows, seed)
        cfg_tr = [table.configs[i] for i in tr]
        cfg_te = [table.configs[i] for i in te]
        q = QSVRPredictor(seed=seed, **qparams)
        w0, c0 = time.perf_counter(), time.process_time()
        q.fit(cfg_tr, prefixes[tr], y[tr])
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        r_q = r2(y[te], q.predict(cfg_te, prefixes[te]).mean)
        used = tr[q.used_rows_]
        cfg_used = [table.configs[i] for i in used]
        svr20 = SVRPredictor(features="stride2", scaler="quantile", kind="epsilon", C=67.61, gamma=0.1, epsilon=0.02)
        r_s20 = r2(y[te], svr20.fit(cfg_used, prefixes[used], y[used]).predict(cfg_te, prefixes[te]).mean)
        nusvr = SVRPredictor()
        r_nu = r2(y[te], nusvr.fit(cfg_used, prefixes[used], y[used]).predict(cfg_te, prefixes[te]).mean)
        rows.append((seed, r_q, r_s20, r_nu, walls[-1], cpus[-1], q.describe()["schemes"]))

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    d = QSVRPredictor(**qparams)
    print(f"MLPF table, {args.known:.0%} known ({e} epochs), target = last epoch, grouped 80/20 splits; "
          f"qsvr sampler sa, num_reads {d.num_reads}, num_sweeps {d.num_sweeps}, top-k {d.k_solutions}, "
          f"combine {args.combine}, 4 x 20 ensemble\n")
    print("| seed | qsvr R2 | svr20 R2 (same 80) | nusvr R2 (same 80) | qsvr fit wall s | qsvr fit CPU s | chunk schemes |")
    print("|---|---|---|---|---|---|---|")
    for seed, rq, rs, rn, w, c, sch in rows:
        print(f"| {seed} | {rq:.4f} | {rs:.4f} | {rn:.4f} | {w:.2f} | {c:.2f} | {','.join(sch)} |")
    a = np.array([[r[1], r[2], r[3]] for r in rows])
    print(f"| mean | {a[:, 0].mean():.4f} | {a[:, 1].mean():.4f} | {a[:, 2].mean():.4f} | "
          f"{np.median(walls):.2f} (median) | {np.median(cpus):.2f} (median) | |")
    print(f"| std | {a[:, 0].std(ddof=1) if len(a) > 1 else 0:.4f} | {a[:, 1].std(ddof=1) if len(a) > 1 else 0:.4f} | "
          f"{a[:, 2].std(ddof=1) if len(a) > 1 else 0:.4f} | | | |")
    best_base = max(a[:, 1].mean(), a[:, 2].mean())
    print(f"\nqsvr - best baseline: {a[:, 0].mean() - best_base:+.4f} (target >= -0.01); "
          f"qsvr seed std {a[:, 0].std(ddof=1) if len(a) > 1 else 0:.4f} (target <= 0.03); "
          f"median fit CPU {np.median(cpus):.2f} s (target <= 3 s); peak RSS {rss_mb:.0f} MB (target < 500 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
