"""QSVR (sa, 4 x 20 subset ensemble; paper and tuned settings) vs classical SVR on the same 80 points (MLPF, 25% known).

Protocol (the predict-eval protocol of issue 2): target = last epoch value; prefix = first
ceil(F * epochs) epochs; per seed an 80/20 split grouped by identical hyperparameter rows
(GroupShuffleSplit, random_state = seed). QSVR is fitted on the training part (its QUBOs see 80
points: four seeded chunks of 20; the other training points only score the chunks). Baselines are
fitted on exactly the 80 points QSVR's QUBOs saw:

- ``svr20``: SVR(epsilon=0.02, gamma=0.1, C=67.61) on ``stride2`` quantile-scaled features
  (method.md 4.5, the QSVR study's classical reference);
- ``nusvr``: the ``svr`` predictor (NuSVR defaults, ``baker`` features, MinMax; the paper method).

``qsvr`` has the paper's settings (stride2, quantile, gamma 0.1); ``qsvr-tuned`` is
:class:`~hpoq.predict.qsvr.QSVRTunedPredictor` (minmax, gamma 4, centred targets).

Prints a markdown table: per-seed test R2, mean, seed-to-seed std, median single-fit wall and
CPU seconds (one process, OMP_NUM_THREADS=1, so CPU seconds = seconds on one core) and peak RSS.

    .venv/bin/python benchmarks/qsvr_quality.py [--seeds 0-4] [--known 0.25] [--num-reads 100] [--num-sweeps 1000]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from hpoq.curves.shared import load_shared  # noqa: E402
from hpoq.predict.evaluate import grouped_split, known_epochs  # noqa: E402
from hpoq.predict.qsvr import QSVRPredictor, QSVRTunedPredictor, r2  # noqa: E402
from hpoq.predict.svr import SVRPredictor  # noqa: E402


def parse_seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


VARIANTS = {"qsvr": QSVRPredictor, "qsvr-tuned": QSVRTunedPredictor}


def _std(x) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def paper_protocol(table, splits: int, qparams: dict) -> None:
    """method.md 8.2/8.3: random 50/50 splits (random_state 0..splits-1) of the 295 rows, target loss_98
    (epoch 99), 25% known, the first 20 (single QSVR) or 80 (4 x 20 ensemble) training rows; the scalers
    are fitted leak-free on those rows (the study fitted its QuantileTransformer on all rows)."""
    from sklearn.model_selection import train_test_split

    curves = table.minimized()
    y = curves[:, 98]
    prefixes = curves[:, :25]
    res = {k: [] for k in ("qsvr 1x20", "svr20 same 20", "qsvr 4x20", "svr20 same 80", "qsvr-tuned 4x20")}
    for s in range(splits):
        tr, te = train_test_split(np.arange(table.n_rows), test_size=0.5, random_state=s)
        for npts, qname, bname in ((20, "qsvr 1x20", "svr20 same 20"), (80, "qsvr 4x20", "svr20 same 80")):
            rows = tr[:npts]
            q = QSVRPredictor(seed=s, chunks=npts // 20, **qparams).fit(None, prefixes[rows], y[rows])
            res[qname].append(r2(y[te], q.predict(None, prefixes[te]).mean))
            b = SVRPredictor(features="stride2", scaler="quantile", kind="epsilon", C=67.61, gamma=0.1, epsilon=0.02)
            res[bname].append(r2(y[te], b.fit(None, prefixes[rows], y[rows]).predict(None, prefixes[te]).mean))
        q = QSVRTunedPredictor(seed=s, **qparams).fit(None, prefixes[tr[:80]], y[tr[:80]])
        res["qsvr-tuned 4x20"].append(r2(y[te], q.predict(None, prefixes[te]).mean))
    print(f"\nPaper protocol (method.md 8.3): {splits} random 50/50 splits of {table.n_rows} rows, target loss_98, "
          f"25% known, stride2; scalers fitted on the training rows only\n")
    print("| setup | mean R2 | median | std | min | max |")
    print("|---|---|---|---|---|---|")
    for name, vals in res.items():
        v = np.array(vals)
        print(f"| {name} | {v.mean():.4f} | {np.median(v):.4f} | {_std(v):.4f} | {v.min():.4f} | {v.max():.4f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--known", type=float, default=0.25)
    ap.add_argument("--num-reads", type=int, default=None)
    ap.add_argument("--num-sweeps", type=int, default=None)
    ap.add_argument("--combine", default="mean7")
    ap.add_argument("--paper-splits", type=int, default=10,
                    help="also run the paper's 50/50-split protocol with this many splits (0: skip)")
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)

    table = load_shared("mlpf")  # 295 rows: the 597.3 outlier dropped (method.md 6), as predict-eval
    curves = table.minimized()
    y = curves[:, -1]
    e = known_epochs(args.known, table.n_epochs)
    prefixes = curves[:, :e]
    qparams = {"combine": args.combine}
    if args.num_reads:
        qparams["num_reads"] = args.num_reads
    if args.num_sweeps:
        qparams["num_sweeps"] = args.num_sweeps

    r2s = {name: [] for name in (*VARIANTS, "svr20", "nusvr")}
    cpu = {name: [] for name in VARIANTS}
    wall = {name: [] for name in VARIANTS}
    for seed in seeds:
        tr, te = grouped_split(table.configs, seed)
        cfg_tr = [table.configs[i] for i in tr]
        cfg_te = [table.configs[i] for i in te]
        used = None
        for name, cls in VARIANTS.items():
            q = cls(seed=seed, **qparams)
            w0, c0 = time.perf_counter(), time.process_time()
            q.fit(cfg_tr, prefixes[tr], y[tr])
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
            r2s[name].append(r2(y[te], q.predict(cfg_te, prefixes[te]).mean))
            rows = tr[q.used_rows_]
            assert used is None or np.array_equal(rows, used)  # both variants see the same 80 points
            used = rows
        cfg_used = [table.configs[i] for i in used]
        svr20 = SVRPredictor(features="stride2", scaler="quantile", kind="epsilon", C=67.61, gamma=0.1, epsilon=0.02)
        r2s["svr20"].append(r2(y[te], svr20.fit(cfg_used, prefixes[used], y[used]).predict(cfg_te, prefixes[te]).mean))
        nusvr = SVRPredictor()
        r2s["nusvr"].append(r2(y[te], nusvr.fit(cfg_used, prefixes[used], y[used]).predict(cfg_te, prefixes[te]).mean))

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    d = QSVRPredictor(**qparams)
    print(f"MLPF table ({table.n_rows} rows), {args.known:.0%} known ({e} epochs), target = last epoch, grouped 80/20 "
          f"splits, seeds {args.seeds}; qsvr sampler sa, num_reads {d.num_reads}, num_sweeps {d.num_sweeps}, "
          f"top-k {d.k_solutions}, combine {args.combine}, 4 x 20 ensemble; baselines fitted on the same 80 points\n")
    names = list(r2s)
    print("| seed | " + " | ".join(f"{n} R2" for n in names) + " | " + " | ".join(f"{n} fit CPU s" for n in VARIANTS) + " |")
    print("|---" * (1 + len(names) + len(VARIANTS)) + "|")
    for i, seed in enumerate(seeds):
        print(f"| {seed} | " + " | ".join(f"{r2s[n][i]:.4f}" for n in names) + " | "
              + " | ".join(f"{cpu[n][i]:.2f}" for n in VARIANTS) + " |")
    print("| mean | " + " | ".join(f"{np.mean(r2s[n]):.4f}" for n in names) + " | "
          + " | ".join(f"{np.median(cpu[n]):.2f} (median)" for n in VARIANTS) + " |")
    print("| std | " + " | ".join(f"{_std(r2s[n]):.4f}" for n in names) + " |" + " |" * len(VARIANTS))
    print()
    for name in VARIANTS:
        gaps = ", ".join(f"{np.mean(r2s[name]) - np.mean(r2s[b]):+.4f} vs {b}" for b in ("svr20", "nusvr"))
        print(f"- {name}: R2 {gaps} (target >= -0.01); seed std {_std(r2s[name]):.4f} (target <= 0.03); "
              f"median fit CPU {np.median(cpu[name]):.2f} s, wall {np.median(wall[name]):.2f} s (target <= 3 s)")
    print(f"- peak RSS of this whole benchmark process {rss_mb:.0f} MB (target < 500 MB per fit)")
    if args.paper_splits > 0:
        paper_protocol(table, args.paper_splits, qparams)
    return 0


if __name__ == "__main__":
    sys.exit(main())
